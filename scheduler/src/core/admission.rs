//! Admission: which devices a booking or a queued job gets, if any.
//!
//! Packing policy, deterministic for the same state:
//! - If the count fits on one node, every device comes from ONE node: the node with the fewest free
//!   devices that still fits (best fit), ties broken by node name (lowest first).
//! - Otherwise the devices are spread over as few nodes as possible: whole nodes with the most free
//!   devices first (ties by node name), and the remainder from the node that fits it best.
//! - Within a node, devices are taken in UUID order.

use std::collections::HashSet;

use super::bitset::BitSet;
use super::cluster::{Class, Cluster, Group};
use super::error::Refusal;

/// A request for `count` devices of `class` for the window `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// Device class, e.g. `h100-80gb`.
    pub class: String,
    /// How many devices.
    pub count: u32,
    /// Only devices at this site, if set.
    pub site: Option<String>,
    /// Window start, ms since the Unix epoch (inclusive).
    pub start: i64,
    /// Window end, ms since the Unix epoch (exclusive).
    pub end: i64,
}

/// Checks what every request needs: a non-empty window and at least one device.
pub(super) fn validate(req: &Request) -> Result<(), Refusal> {
    if req.start >= req.end {
        return Err(Refusal::InvalidWindow {
            reason: berth_i18n::text!(WindowInverted, start = req.start, end = req.end),
        });
    }
    if req.count == 0 {
        return Err(Refusal::InvalidWindow {
            reason: berth_i18n::text!(AtLeastOneDevice),
        });
    }
    Ok(())
}

impl Cluster {
    /// Picks `count` schedulable devices of `class` (optionally at `site`) free for the whole
    /// `[start, end)`, following the packing policy of this module. Returns their UUIDs.
    pub fn find_devices(&self, req: &Request) -> Result<Vec<String>, Refusal> {
        self.find_devices_avoiding(req, None)
    }

    /// [`Cluster::find_devices`], never choosing the slots set in `avoid` (devices held
    /// outside the calendar, e.g. by preemptible jobs).
    pub(super) fn find_devices_avoiding(
        &self,
        req: &Request,
        avoid: Option<&BitSet>,
    ) -> Result<Vec<String>, Refusal> {
        validate(req)?;
        let class = self
            .class_by_name(&req.class)
            .ok_or_else(|| Refusal::UnknownClass {
                class: req.class.clone(),
            })?;
        let site = self.site_filter(req.site.as_deref());
        let mut avail = self.available_slots(class, req.start, req.end);
        if let Some(avoid) = avoid {
            avail.remove_all(avoid);
        }
        let want = req.count;

        // One node, best fit. Groups are in node-name order, so the first exact fit is the answer.
        let mut best: Option<(usize, u32)> = None;
        let mut total_free = 0u32;
        for (gi, g) in class.groups.iter().enumerate() {
            if !self.group_usable(g, site) {
                continue;
            }
            let free = g.count_in(&avail);
            total_free += free;
            if free >= want && best.is_none_or(|(_, b)| free < b) {
                best = Some((gi, free));
                if free == want {
                    break;
                }
            }
        }
        if let Some((gi, _)) = best {
            let mut out = Vec::with_capacity(want as usize);
            self.take(class, &class.groups[gi], &avail, want, &mut out);
            return Ok(out);
        }
        if total_free < want {
            let (total, schedulable) = self.counts(class, site);
            return Err(Refusal::NotEnough {
                class: req.class.clone(),
                requested: want,
                free: total_free,
                schedulable,
                total,
            });
        }

        // Spread over as few nodes as possible.
        let mut frees: Vec<(u32, usize)> = class
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| self.group_usable(g, site))
            .map(|(gi, g)| (g.count_in(&avail), gi))
            .filter(|&(free, _)| free > 0)
            .collect();
        frees.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out = Vec::with_capacity(want as usize);
        let mut need = want;
        for (i, &(free, gi)) in frees.iter().enumerate() {
            if free < need {
                self.take(class, &class.groups[gi], &avail, free, &mut out);
                need -= free;
                continue;
            }
            // The last node: the one with the fewest free devices that still covers the rest
            // (frees[i] does, so there is one).
            let last = frees[i..].iter().filter(|&&(f, _)| f >= need).min();
            let &(_, last) = last.unwrap_or(&(free, gi));
            self.take(class, &class.groups[last], &avail, need, &mut out);
            break;
        }
        debug_assert_eq!(out.len(), want as usize);
        Ok(out)
    }

    /// Slots of `class` whose device is healthy and free for the whole `[start, end)` (node
    /// readiness and site are checked per group by the caller).
    pub(super) fn available_slots(&self, class: &Class, start: i64, end: i64) -> BitSet {
        let mut busy = BitSet::with_len(class.slot_device.len());
        class.window.mark_busy(start, end, &mut busy);
        let mut avail = class.healthy.clone();
        avail.remove_all(&busy);
        avail
    }

    /// Appends the UUIDs of the first `n` available slots of `g` to `out`.
    pub(super) fn take(
        &self,
        class: &Class,
        g: &Group,
        avail: &BitSet,
        n: u32,
        out: &mut Vec<String>,
    ) {
        let chosen = g.slots.iter().filter(|&&s| avail.get(s)).take(n as usize);
        out.extend(chosen.map(|&s| self.slot_uuid(class, s).to_owned()));
    }
}

/// Picks `count` devices from a reservation's `reserved` devices that are not in `busy` (used by
/// other running jobs of the same reservation), in the reserved order. `None` if not enough.
pub fn pick_within(reserved: &[String], busy: &HashSet<String>, count: u32) -> Option<Vec<String>> {
    let picked: Vec<String> = reserved
        .iter()
        .filter(|d| !busy.contains(d.as_str()))
        .take(count as usize)
        .cloned()
        .collect();
    (picked.len() == count as usize).then_some(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(class: &str, count: u32, start: i64, end: i64) -> Request {
        Request {
            class: class.into(),
            count,
            site: None,
            start,
            end,
        }
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Nodes `n1..` with the given device counts, devices named `<node>-d<i>`.
    fn centre(sizes: &[usize]) -> Cluster {
        let mut c = Cluster::new();
        for (i, &n) in sizes.iter().enumerate() {
            let node = format!("n{}", i + 1);
            c.upsert_node(&node, if i % 2 == 0 { "east" } else { "west" }, true);
            for d in 0..n {
                c.upsert_device(&format!("{node}-d{d}"), &node, "gpu", true);
            }
        }
        c
    }

    fn node_of(uuid: &str) -> &str {
        uuid.split('-').next().unwrap()
    }

    #[test]
    fn fits_on_one_node_means_one_node() {
        let c = centre(&[4, 4, 4]);
        let got = c.find_devices(&req("gpu", 3, 0, 10)).unwrap();
        assert_eq!(got, strs(&["n1-d0", "n1-d1", "n1-d2"]));
    }

    #[test]
    fn best_fit_prefers_the_fullest_node_that_still_fits() {
        let mut c = centre(&[8, 8, 8]);
        // n1 keeps 5 free, n2 keeps 2 free, n3 keeps 8.
        c.add_claim("x", &strs(&["n1-d0", "n1-d1", "n1-d2"]), 0, 100)
            .unwrap();
        let n2: Vec<String> = (0..6).map(|d| format!("n2-d{d}")).collect();
        c.add_claim("y", &n2, 0, 100).unwrap();
        let got = c.find_devices(&req("gpu", 2, 10, 20)).unwrap();
        assert_eq!(got, strs(&["n2-d6", "n2-d7"]));
        let got = c.find_devices(&req("gpu", 3, 10, 20)).unwrap();
        assert!(got.iter().all(|d| node_of(d) == "n1"), "{got:?}");
        let got = c.find_devices(&req("gpu", 6, 10, 20)).unwrap();
        assert!(got.iter().all(|d| node_of(d) == "n3"), "{got:?}");
        // After the claims end everything is free again and ties go to the first name.
        let got = c.find_devices(&req("gpu", 2, 100, 200)).unwrap();
        assert_eq!(got, strs(&["n1-d0", "n1-d1"]));
    }

    #[test]
    fn spreads_over_as_few_nodes_as_possible() {
        let mut c = centre(&[8, 8, 3, 2]);
        let got = c.find_devices(&req("gpu", 10, 0, 10)).unwrap();
        let nodes: Vec<&str> = got.iter().map(|d| node_of(d)).collect();
        assert_eq!(nodes.iter().filter(|&&n| n == "n1").count(), 8);
        assert_eq!(
            nodes.iter().filter(|&&n| n == "n4").count(),
            2,
            "remainder best fit: {got:?}"
        );
        let got = c.find_devices(&req("gpu", 21, 0, 10)).unwrap();
        assert_eq!(got.len(), 21);
        let set: HashSet<&String> = got.iter().collect();
        assert_eq!(set.len(), 21);
        c.add_claim("big", &got, 0, 10).unwrap();
        let err = c.find_devices(&req("gpu", 1, 0, 10)).unwrap_err();
        assert_eq!(
            err,
            Refusal::NotEnough {
                class: "gpu".into(),
                requested: 1,
                free: 0,
                schedulable: 21,
                total: 21
            }
        );
    }

    #[test]
    fn skips_unhealthy_devices_and_unready_nodes() {
        let mut c = centre(&[2, 2]);
        c.set_device_healthy("n1-d0", false);
        assert_eq!(
            c.find_devices(&req("gpu", 2, 0, 10)).unwrap(),
            strs(&["n2-d0", "n2-d1"])
        );
        c.set_node_schedulable("n2", false);
        assert_eq!(
            c.find_devices(&req("gpu", 1, 0, 10)).unwrap(),
            strs(&["n1-d1"])
        );
        let err = c.find_devices(&req("gpu", 2, 0, 10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not enough gpu devices free for the whole window: 2 requested, 1 free \
             (4 in the class, 1 schedulable)"
        );
    }

    #[test]
    fn site_filter() {
        let c = centre(&[2, 4]);
        let mut r = req("gpu", 2, 0, 10);
        r.site = Some("west".into());
        assert_eq!(c.find_devices(&r).unwrap(), strs(&["n2-d0", "n2-d1"]));
        r.count = 5;
        assert!(matches!(
            c.find_devices(&r),
            Err(Refusal::NotEnough {
                free: 4,
                total: 4,
                schedulable: 4,
                ..
            })
        ));
        r.site = Some("mars".into());
        r.count = 1;
        assert!(matches!(
            c.find_devices(&r),
            Err(Refusal::NotEnough {
                free: 0,
                total: 0,
                ..
            })
        ));
    }

    #[test]
    fn invalid_requests() {
        let c = centre(&[1]);
        assert!(matches!(
            c.find_devices(&req("gpu", 1, 10, 10)),
            Err(Refusal::InvalidWindow { .. })
        ));
        assert!(matches!(
            c.find_devices(&req("gpu", 0, 0, 10)),
            Err(Refusal::InvalidWindow { .. })
        ));
        assert_eq!(
            c.find_devices(&req("tpu", 1, 0, 10)),
            Err(Refusal::UnknownClass {
                class: "tpu".into()
            })
        );
    }

    #[test]
    fn free_only_for_the_whole_window() {
        let mut c = centre(&[1]);
        c.add_claim("x", &strs(&["n1-d0"]), 50, 60).unwrap();
        assert!(c.find_devices(&req("gpu", 1, 0, 50)).is_ok());
        assert!(c.find_devices(&req("gpu", 1, 60, 70)).is_ok());
        assert!(c.find_devices(&req("gpu", 1, 0, 51)).is_err());
        assert!(c.find_devices(&req("gpu", 1, 59, 70)).is_err());
        assert!(c.find_devices(&req("gpu", 1, 0, 100)).is_err());
    }

    #[test]
    fn pick_within_keeps_reserved_order() {
        let reserved = strs(&["d3", "d1", "d2", "d0"]);
        let busy: HashSet<String> = strs(&["d1"]).into_iter().collect();
        assert_eq!(pick_within(&reserved, &busy, 2), Some(strs(&["d3", "d2"])));
        assert_eq!(
            pick_within(&reserved, &busy, 3),
            Some(strs(&["d3", "d2", "d0"]))
        );
        assert_eq!(pick_within(&reserved, &busy, 4), None);
        assert_eq!(pick_within(&reserved, &busy, 0), Some(vec![]));
    }
}
