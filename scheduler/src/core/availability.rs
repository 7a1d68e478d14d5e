//! Capacity over time: free devices per time bucket, and the earliest start for a request.
//!
//! Availability asks the class's time index (`window_index`) for the busy devices of each bucket
//! and counts the schedulable ones left; the earliest start walks the calendars of the schedulable
//! devices of a class (at a site), touching only the claims inside the asked range. Arithmetic on instants is done in `i128`, so any `i64` instants
//! (including `i64::MIN` and `i64::MAX`) are safe.

use super::admission::{Request, validate};
use super::bitset::BitSet;
use super::cluster::Cluster;
use super::error::Refusal;

/// The most buckets one [`Cluster::availability`] call may return.
pub const MAX_BUCKETS: i128 = 1000;

/// Free capacity of a class in one time bucket `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Bucket start, ms since the Unix epoch (inclusive).
    pub start: i64,
    /// Bucket end, ms since the Unix epoch (exclusive).
    pub end: i64,
    /// Schedulable devices free for the whole bucket.
    pub free: u32,
    /// Schedulable devices (healthy, on a ready node, at the site if one was named), free or not.
    pub total: u32,
}

impl Cluster {
    /// Free schedulable devices of a class per bucket `[from + k*step, from + (k+1)*step)` up to `to`
    /// (the last bucket ends at `to`). A device counts as free in a bucket only if it is free for the
    /// whole bucket. At most [`MAX_BUCKETS`] buckets (an error if more).
    pub fn availability(
        &self,
        class: &str,
        site: Option<&str>,
        from: i64,
        to: i64,
        step: i64,
    ) -> Result<Vec<Slot>, Refusal> {
        if step <= 0 {
            return Err(Refusal::InvalidWindow {
                reason: berth_i18n::text!(StepNotPositive, step),
            });
        }
        if from >= to {
            return Err(Refusal::InvalidWindow {
                reason: berth_i18n::text!(RangeInverted, from, to),
            });
        }
        let (from_w, to_w, step_w) = (i128::from(from), i128::from(to), i128::from(step));
        let n = (to_w - from_w + step_w - 1) / step_w;
        if n > MAX_BUCKETS {
            return Err(Refusal::InvalidWindow {
                reason: berth_i18n::text!(TooManyBucketsAsked, n, max = MAX_BUCKETS),
            });
        }
        let n = n as usize;
        let cls = self
            .class_by_name(class)
            .ok_or_else(|| Refusal::UnknownClass {
                class: class.to_owned(),
            })?;
        // The schedulable slots: healthy, in a group on a ready node at an accepted site.
        let site = self.site_filter(site);
        let mut usable = BitSet::with_len(cls.slot_device.len());
        for g in cls.groups.iter().filter(|g| self.group_usable(g, site)) {
            for &s in &g.slots {
                if cls.healthy.get(s) {
                    usable.set(s, true);
                }
            }
        }
        let total = usable.count_without(&BitSet::default());

        // Per bucket, the busy slots from the class's time index: a few bit-set unions and scans
        // of the claims that start or end near the bucket's edges.
        let sweep = cls.window.sweep(from, to);
        let mut busy = BitSet::with_len(cls.slot_device.len());
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            let start = from_w + k as i128 * step_w;
            let end = (start + step_w).min(to_w);
            let (start, end) = (start as i64, end as i64);
            sweep.busy_in(start, end, &mut busy);
            out.push(Slot {
                start,
                end,
                free: usable.count_without(&busy),
                total,
            });
        }
        Ok(out)
    }

    /// Earliest `t >= req.start` (and `t < horizon_end`) at which [`Cluster::find_devices`] for
    /// `[t, t + (req.end - req.start))` would succeed, considering existing claims only (the
    /// candidates are `req.start` and the ends of claims). `None` if never, or if the request is
    /// invalid.
    pub fn earliest_start(&self, req: &Request, horizon_end: i64) -> Option<i64> {
        validate(req).ok()?;
        if req.start >= horizon_end {
            return None;
        }
        let cls = self.class_by_name(&req.class)?;
        let site = self.site_filter(req.site.as_deref());
        let want = req.count as usize;

        // Fast path: enough devices free right away.
        let avail = self.available_slots(cls, req.start, req.end);
        let now: u32 = cls
            .groups
            .iter()
            .filter(|g| self.group_usable(g, site))
            .map(|g| g.count_in(&avail))
            .sum();
        if now >= req.count {
            return Some(req.start);
        }

        // Each device can host the window from any t in [gap start, gap end - len] of a free gap.
        // Sweep those ranges (clipped to [req.start, horizon_end - 1]) for the first t where
        // enough of them are open at once.
        let len = i128::from(req.end) - i128::from(req.start);
        let mut events: Vec<(i128, i32)> = Vec::new();
        let mut usable = 0usize;
        for dev in self.usable_devices(cls, site) {
            usable += 1;
            dev.calendar
                .start_ranges(req.start, len, horizon_end, |a, b| {
                    events.push((a, 1));
                    events.push((b, -1));
                });
        }
        if usable < want {
            return None;
        }
        events.sort_unstable();
        let mut open = 0i64;
        let mut k = 0;
        while k < events.len() {
            let t = events[k].0;
            while k < events.len() && events[k].0 == t {
                open += i64::from(events[k].1);
                k += 1;
            }
            if open >= want as i64 {
                return Some(t as i64);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Two nodes with two gpus each: n1-d0, n1-d1, n2-d0, n2-d1.
    fn centre() -> Cluster {
        let mut c = Cluster::new();
        for (n, site) in [("n1", "east"), ("n2", "west")] {
            c.upsert_node(n, site, true);
            for d in 0..2 {
                c.upsert_device(&format!("{n}-d{d}"), n, "gpu", true);
            }
        }
        c
    }

    fn req(count: u32, start: i64, end: i64) -> Request {
        Request {
            class: "gpu".into(),
            count,
            site: None,
            start,
            end,
        }
    }

    #[test]
    fn buckets_count_devices_free_for_the_whole_bucket() {
        let mut c = centre();
        c.add_claim("a", &strs(&["n1-d0"]), 10, 20).unwrap();
        c.add_claim("b", &strs(&["n1-d1"]), 15, 16).unwrap();
        c.add_claim("c", &strs(&["n1-d1"]), 18, 35).unwrap();
        let slots = c.availability("gpu", None, 0, 45, 10).unwrap();
        let free: Vec<u32> = slots.iter().map(|s| s.free).collect();
        assert_eq!(free, vec![4, 2, 3, 3, 4]);
        assert!(slots.iter().all(|s| s.total == 4));
        assert_eq!(
            (slots[4].start, slots[4].end),
            (40, 45),
            "the last bucket ends at `to`"
        );
        let east = c.availability("gpu", Some("east"), 0, 40, 10).unwrap();
        assert_eq!(
            east.iter().map(|s| s.free).collect::<Vec<_>>(),
            vec![2, 0, 1, 1]
        );
        assert!(east.iter().all(|s| s.total == 2));
        c.set_device_healthy("n2-d0", false);
        let slots = c.availability("gpu", None, 0, 10, 10).unwrap();
        assert_eq!(
            slots,
            vec![Slot {
                start: 0,
                end: 10,
                free: 3,
                total: 3
            }]
        );
    }

    #[test]
    fn buckets_off_the_checkpoints_match_the_calendars() {
        const M: i64 = 60_000;
        let mut c = centre();
        // Claims around the 15-minute checkpoints, before 0, shorter than one interval, and one
        // longer than the index's limit for marking checkpoints.
        c.add_claim("a", &strs(&["n1-d0"]), -20 * M - 1, -15 * M + 1)
            .unwrap();
        c.add_claim("b", &strs(&["n1-d0"]), 7 * M, 8 * M).unwrap();
        c.add_claim("c", &strs(&["n1-d1"]), 14 * M, 31 * M).unwrap();
        c.add_claim("d", &strs(&["n2-d0"]), 30 * M, 60 * 24 * 60 * M)
            .unwrap();
        c.add_claim("e", &strs(&["n2-d1"]), -45 * M, 15 * M)
            .unwrap();
        for (from, to, step) in [
            (-60 * M, 90 * M, 7 * M + 3),
            (-16 * M, 40 * M, M),
            (-1, 1, 1),
        ] {
            for site in [None, Some("east"), Some("west"), Some("moon")] {
                let slots = c.availability("gpu", site, from, to, step).unwrap();
                for s in slots {
                    let want = ["n1-d0", "n1-d1", "n2-d0", "n2-d1"]
                        .iter()
                        .filter(|d| match site {
                            None => true,
                            Some("east") => d.starts_with("n1"),
                            Some("west") => d.starts_with("n2"),
                            Some(_) => false,
                        })
                        .filter(|d| c.is_free(d, s.start, s.end))
                        .count() as u32;
                    assert_eq!(s.free, want, "{site:?} {s:?}");
                }
            }
        }
    }

    #[test]
    fn availability_refuses_bad_ranges() {
        let c = centre();
        assert!(c.availability("gpu", None, 0, 1001, 1).is_err());
        assert_eq!(c.availability("gpu", None, 0, 1000, 1).unwrap().len(), 1000);
        assert!(c.availability("gpu", None, 0, 10, 0).is_err());
        assert!(c.availability("gpu", None, 10, 10, 1).is_err());
        assert!(matches!(
            c.availability("tpu", None, 0, 10, 1),
            Err(Refusal::UnknownClass { .. })
        ));
        let all = c
            .availability("gpu", None, i64::MIN, i64::MAX, i64::MAX)
            .unwrap();
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn earliest_start_waits_for_claims_to_end() {
        let mut c = centre();
        c.add_claim("a", &strs(&["n1-d0", "n1-d1"]), 0, 100)
            .unwrap();
        c.add_claim("b", &strs(&["n2-d0"]), 0, 50).unwrap();
        c.add_claim("c", &strs(&["n2-d1"]), 60, 70).unwrap();
        assert_eq!(c.earliest_start(&req(1, 0, 10), 1000), Some(0));
        assert_eq!(
            c.earliest_start(&req(1, 0, 61), 1000),
            Some(50),
            "n2-d0 from 50"
        );
        assert_eq!(c.earliest_start(&req(2, 0, 11), 1000), Some(70));
        assert_eq!(
            c.earliest_start(&req(2, 0, 10), 1000),
            Some(50),
            "both n2 free in [50, 60)"
        );
        assert_eq!(c.earliest_start(&req(4, 0, 10), 1000), Some(100));
        assert_eq!(
            c.earliest_start(&req(4, 0, 10), 100),
            None,
            "beyond the horizon"
        );
        assert_eq!(
            c.earliest_start(&req(5, 0, 10), 1000),
            None,
            "more than the class has"
        );
        assert_eq!(
            c.earliest_start(&req(1, 10, 10), 1000),
            None,
            "empty window"
        );
        for r in [req(1, 0, 61), req(2, 0, 11), req(2, 0, 10), req(4, 0, 10)] {
            let t = c.earliest_start(&r, 1000).unwrap();
            let len = r.end - r.start;
            assert!(c.find_devices(&req(r.count, t, t + len)).is_ok());
            assert!(c.find_devices(&req(r.count, t - 1, t - 1 + len)).is_err());
        }
    }

    #[test]
    fn earliest_start_respects_site_and_health() {
        let mut c = centre();
        c.add_claim("a", &strs(&["n1-d0"]), 0, 30).unwrap();
        let mut r = req(2, 0, 10);
        r.site = Some("east".into());
        assert_eq!(c.earliest_start(&r, 1000), Some(30));
        c.set_device_healthy("n1-d1", false);
        assert_eq!(c.earliest_start(&r, 1000), None);
        assert_eq!(c.earliest_start(&req(1, 0, i64::MAX), i64::MAX), Some(0));
        c.set_node_schedulable("n2", false);
        assert_eq!(c.earliest_start(&req(1, 0, i64::MAX), i64::MAX), None);
        assert_eq!(c.earliest_start(&req(1, 40, i64::MAX), i64::MAX), Some(40));
    }
}
