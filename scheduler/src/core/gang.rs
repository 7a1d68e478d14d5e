//! Queued jobs on whole nodes: `count` devices on each of `nodes` distinct nodes, all or
//! nothing, and the earliest time such a shape fits.
//!
//! Packing policy, deterministic for the same state: the nodes with the fewest free devices
//! that still fit are chosen (best fit), ties broken by node name; within a node devices are
//! taken in UUID order.

use super::admission::{Request, validate};
use super::bitset::BitSet;
use super::cluster::{Class, Cluster, Group};
use super::error::Refusal;

impl Cluster {
    /// The slots of `class` holding the devices named (other UUIDs are ignored).
    pub(super) fn slot_mask<'a>(
        &self,
        class: &str,
        uuids: impl IntoIterator<Item = &'a str>,
    ) -> BitSet {
        let mut mask = BitSet::default();
        let Some(cid) = self.class_id(class) else {
            return mask;
        };
        for u in uuids {
            if let Some(dev) = self.device_by_uuid(u)
                && dev.class == cid
            {
                mask.set(dev.slot, true);
            }
        }
        mask
    }

    /// Picks `req.count` devices on each of `nodes` distinct nodes (at least one), free for
    /// the whole window and not in `avoid`, following this module's packing policy.
    pub fn find_gang(&self, req: &Request, nodes: u32) -> Result<Vec<String>, Refusal> {
        self.find_gang_avoiding(req, nodes, None)
    }

    /// [`Cluster::find_gang`], never choosing the slots set in `avoid`.
    pub(super) fn find_gang_avoiding(
        &self,
        req: &Request,
        nodes: u32,
        avoid: Option<&BitSet>,
    ) -> Result<Vec<String>, Refusal> {
        validate(req)?;
        let nodes = nodes.max(1);
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
        let mut fits: Vec<(u32, usize)> = Vec::new();
        let mut most = 0;
        for (gi, g) in class.groups.iter().enumerate() {
            if !self.group_usable(g, site) {
                continue;
            }
            let free = g.count_in(&avail);
            most = most.max(free);
            if free >= req.count {
                fits.push((free, gi));
            }
        }
        if fits.len() < nodes as usize {
            return Err(Refusal::NoNodeFits {
                class: req.class.clone(),
                per_node: req.count,
                nodes,
                fitting: fits.len() as u32,
                most_free: most,
            });
        }
        // Groups are in node-name order, so a stable sort by free count breaks ties by name.
        fits.sort_by_key(|&(free, _)| free);
        let mut out = Vec::with_capacity((req.count * nodes) as usize);
        for &(_, gi) in fits.iter().take(nodes as usize) {
            self.take(class, &class.groups[gi], &avail, req.count, &mut out);
        }
        Ok(out)
    }

    /// Earliest `t >= req.start` (and `t < horizon_end`) at which [`Cluster::find_gang`]
    /// for `[t, t + (req.end - req.start))` would succeed, considering existing claims only.
    /// `None` if never before the horizon or if the request is invalid.
    pub fn earliest_gang(&self, req: &Request, nodes: u32, horizon_end: i64) -> Option<i64> {
        validate(req).ok()?;
        if req.start >= horizon_end {
            return None;
        }
        if self.find_gang(req, nodes).is_ok() {
            return Some(req.start);
        }
        let nodes = nodes.max(1) as usize;
        let class = self.class_by_name(&req.class)?;
        let site = self.site_filter(req.site.as_deref());
        // Per node: the start instants at which `count` of its devices are free together.
        let mut events: Vec<(i128, i32)> = Vec::new();
        for g in &class.groups {
            if !self.group_usable(g, site) {
                continue;
            }
            for (a, b) in self.feasible_starts(class, g, req, horizon_end) {
                events.push((a, 1));
                events.push((b, -1));
            }
        }
        events.sort_unstable();
        let mut open = 0usize;
        let mut k = 0;
        while k < events.len() {
            let t = events[k].0;
            while k < events.len() && events[k].0 == t {
                open = (open as i64 + i64::from(events[k].1)) as usize;
                k += 1;
            }
            if open >= nodes {
                return Some(t as i64);
            }
        }
        None
    }

    /// Half-open ranges of start instants in `[req.start, horizon_end)` at which at least
    /// `req.count` healthy devices of group `g` are free for the request's length.
    fn feasible_starts(
        &self,
        class: &Class,
        g: &Group,
        req: &Request,
        horizon_end: i64,
    ) -> Vec<(i128, i128)> {
        let len = i128::from(req.end) - i128::from(req.start);
        let mut events: Vec<(i128, i32)> = Vec::new();
        let mut healthy = 0u32;
        for &slot in &g.slots {
            if !class.healthy.get(slot) {
                continue;
            }
            healthy += 1;
            let dev = &self.devices[class.slot_device[slot as usize] as usize];
            dev.calendar
                .start_ranges(req.start, len, horizon_end, |a, b| {
                    events.push((a, 1));
                    events.push((b, -1));
                });
        }
        let mut out = Vec::new();
        if healthy < req.count {
            return out;
        }
        events.sort_unstable();
        let (mut open, mut from) = (0i64, None);
        let mut k = 0;
        while k < events.len() {
            let t = events[k].0;
            while k < events.len() && events[k].0 == t {
                open += i64::from(events[k].1);
                k += 1;
            }
            match from {
                None if open >= i64::from(req.count) => from = Some(t),
                Some(f) if open < i64::from(req.count) => {
                    out.push((f, t));
                    from = None;
                }
                _ => {}
            }
        }
        if let Some(f) = from {
            out.push((f, i128::from(horizon_end)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(count: u32, start: i64, end: i64) -> Request {
        Request {
            class: "gpu".into(),
            count,
            site: None,
            start,
            end,
        }
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Nodes `n1..` with the given device counts, devices `<node>-d<i>`.
    fn centre(sizes: &[usize]) -> Cluster {
        let mut c = Cluster::new();
        for (i, &n) in sizes.iter().enumerate() {
            let node = format!("n{}", i + 1);
            c.upsert_node(&node, "s", true);
            for d in 0..n {
                c.upsert_device(&format!("{node}-d{d}"), &node, "gpu", true);
            }
        }
        c
    }

    #[test]
    fn single_node_jobs_never_spread() {
        let mut c = centre(&[4, 4]);
        c.add_claim("x", &strs(&["n1-d0", "n2-d0"]), 0, 100)
            .unwrap();
        // 6 devices are free, but no node has 4.
        let err = c.find_gang(&req(4, 0, 10), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not enough gpu devices free on one node: 4 needed on each of 1 node(s), 0 node(s) have that many free (at most 3 on any node)"
        );
        assert_eq!(
            c.find_gang(&req(3, 0, 10), 1).unwrap(),
            strs(&["n1-d1", "n1-d2", "n1-d3"])
        );
        assert_eq!(c.earliest_gang(&req(4, 0, 10), 1, 1000), Some(100));
    }

    #[test]
    fn gangs_take_distinct_nodes_best_fit_first() {
        let mut c = centre(&[4, 4, 4]);
        c.add_claim("x", &strs(&["n2-d0"]), 0, 100).unwrap();
        let got = c.find_gang(&req(2, 0, 10), 2).unwrap();
        assert_eq!(got, strs(&["n2-d1", "n2-d2", "n1-d0", "n1-d1"]));
        assert!(c.find_gang(&req(4, 0, 10), 3).is_err());
        assert_eq!(c.earliest_gang(&req(4, 0, 10), 3, 1000), Some(100));
        assert_eq!(
            c.earliest_gang(&req(4, 0, 10), 3, 100),
            None,
            "beyond the horizon"
        );
        assert_eq!(c.earliest_gang(&req(4, 0, 10), 4, 1000), None, "never");
    }

    #[test]
    fn earliest_gang_needs_the_nodes_free_at_the_same_time() {
        let mut c = centre(&[2, 2]);
        // n1 is busy [0, 50), n2 is busy [40, 90): both free together only from 90.
        c.add_claim("a", &strs(&["n1-d0"]), 0, 50).unwrap();
        c.add_claim("b", &strs(&["n2-d1"]), 40, 90).unwrap();
        assert_eq!(c.earliest_gang(&req(2, 0, 20), 2, 1000), Some(90));
        // One node for 30: n2's pair is free until 40, so it fits at once...
        assert_eq!(c.earliest_gang(&req(2, 0, 30), 1, 1000), Some(0));
        // ...but 50 long only once n1 is free again at 50.
        assert_eq!(c.earliest_gang(&req(2, 0, 50), 1, 1000), Some(50));
    }

    #[test]
    fn avoided_slots_are_never_chosen() {
        let c = centre(&[2, 2]);
        let avoid = c.slot_mask("gpu", ["n1-d0"]);
        let got = c
            .find_gang_avoiding(&req(2, 0, 10), 1, Some(&avoid))
            .unwrap();
        assert_eq!(got, strs(&["n2-d0", "n2-d1"]));
        assert!(
            c.find_gang_avoiding(&req(2, 0, 10), 2, Some(&avoid))
                .is_err()
        );
    }
}
