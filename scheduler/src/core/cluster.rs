//! The cluster inventory (sites, nodes, devices grouped by class and node) and the claims held on
//! its devices.
//!
//! Names are interned to dense integer ids. Each device keeps its own [`Calendar`] (the source of
//! truth for its claims); each class keeps its devices in class-local *slots*, grouped by node in
//! node-name order (devices within a node in UUID order), a bit set of healthy slots and a
//! [`WindowIndex`] over the claims of its devices, so that admission touches only the claims that
//! overlap the asked window.

use std::collections::HashMap;
use std::sync::Arc;

use super::bitset::BitSet;
use super::calendar::{Calendar, Claim, Cut};
use super::error::ClaimError;
use super::owners::Owners;
use super::window_index::WindowIndex;

/// Marks a class slot that holds no device.
const NO_DEVICE: u32 = u32::MAX;

/// A server at a site.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// The node's name (unique), shared with the name index: a snapshot of the cluster
    /// copies a pointer, not the name.
    pub name: Arc<str>,
    /// Interned site id.
    pub site: u32,
    /// Whether the node is ready to take new work.
    pub schedulable: bool,
}

/// One accelerator.
#[derive(Debug, Clone)]
pub(super) struct Device {
    /// The device's UUID (unique), shared with the UUID index as the node's name is.
    pub uuid: Arc<str>,
    /// Cluster node id.
    pub node: u32,
    /// Cluster class id.
    pub class: u32,
    /// Slot within its class.
    pub slot: u32,
    /// Whether the device is healthy.
    pub healthy: bool,
    /// The device's claims.
    pub calendar: Calendar,
}

/// The slots of one class that sit on one node, in device-UUID order.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// Cluster node id.
    pub node: u32,
    /// Class slots, sorted by device UUID.
    pub slots: Vec<u32>,
    /// `(first, len)` when the slots are exactly `first..first + len` (the usual case when a node's
    /// devices are registered together), so they can be counted a word at a time.
    span: Option<(u32, u32)>,
}

impl Group {
    fn new(node: u32) -> Self {
        Self {
            node,
            slots: Vec::new(),
            span: None,
        }
    }

    /// Recomputes `span` after `slots` changed.
    fn refresh_span(&mut self) {
        let first = self.slots.iter().copied().min().unwrap_or(0);
        let last = self.slots.iter().copied().max().unwrap_or(0);
        let contiguous = !self.slots.is_empty() && (last - first) as usize + 1 == self.slots.len();
        self.span = contiguous.then_some((first, self.slots.len() as u32));
    }

    /// Number of this group's slots set in `bits`.
    #[inline]
    pub fn count_in(&self, bits: &BitSet) -> u32 {
        match self.span {
            Some((first, len)) => bits.count_range(first, len),
            None => self.slots.iter().filter(|&&s| bits.get(s)).count() as u32,
        }
    }
}

/// Everything a class knows about its devices.
#[derive(Debug, Clone, Default)]
pub(super) struct Class {
    /// Slot -> cluster device id ([`NO_DEVICE`] when free).
    pub slot_device: Vec<u32>,
    /// Free slots, reused before new ones are made.
    free_slots: Vec<u32>,
    /// Slots whose device is healthy.
    pub healthy: BitSet,
    /// Slots grouped by node, groups sorted by node name; no group is empty.
    pub groups: Vec<Group>,
    /// The claims of the class's devices, by time.
    pub window: WindowIndex,
    /// Number of devices in the class.
    pub devices: u32,
}

/// Which nodes a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SiteFilter {
    /// Any site.
    Any,
    /// Only the site with this id.
    Only(u32),
    /// No node at all (the site named is unknown).
    Nowhere,
}

impl SiteFilter {
    /// Whether a node at `site` passes.
    #[inline]
    pub fn accepts(self, site: u32) -> bool {
        match self {
            SiteFilter::Any => true,
            SiteFilter::Only(s) => s == site,
            SiteFilter::Nowhere => false,
        }
    }
}

/// The cluster's devices and the claims (reservations and job windows) held on them.
///
/// Pure and synchronous: every method is a plain function of the state and its arguments, and the
/// same sequence of calls on a fresh `Cluster` always gives the same results.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub(super) nodes: Vec<Node>,
    node_ids: HashMap<Arc<str>, u32>,
    sites: Vec<String>,
    site_ids: HashMap<String, u32>,
    pub(super) classes: Vec<Class>,
    class_ids: HashMap<String, u32>,
    pub(super) devices: Vec<Device>,
    device_ids: HashMap<Arc<str>, u32>,
    owners: Owners,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or updates a node. `schedulable` = node is ready (not draining/drained/unreachable/down).
    pub fn upsert_node(&mut self, name: &str, site: &str, schedulable: bool) {
        let site = self.intern_site(site);
        let id = self.ensure_node(name);
        let node = &mut self.nodes[id as usize];
        node.site = site;
        node.schedulable = schedulable;
    }

    /// Marks a node ready or not. Unknown nodes are ignored.
    pub fn set_node_schedulable(&mut self, name: &str, schedulable: bool) {
        if let Some(&id) = self.node_ids.get(name) {
            self.nodes[id as usize].schedulable = schedulable;
        }
    }

    /// Adds or updates a device (moves it if node/class changed, keeping its claims). Creates the
    /// node as non-schedulable, at site `""`, if unknown.
    pub fn upsert_device(&mut self, uuid: &str, node: &str, class: &str, healthy: bool) {
        let node = self.ensure_node(node);
        let class = self.ensure_class(class);
        let Some(&d) = self.device_ids.get(uuid) else {
            let d = self.devices.len() as u32;
            let uuid: Arc<str> = Arc::from(uuid);
            self.devices.push(Device {
                uuid: uuid.clone(),
                node,
                class,
                slot: NO_DEVICE,
                healthy,
                calendar: Calendar::default(),
            });
            self.device_ids.insert(uuid, d);
            self.attach(d, class);
            return;
        };
        let dev = &self.devices[d as usize];
        if dev.class != class {
            self.detach(d);
            let dev = &mut self.devices[d as usize];
            dev.node = node;
            dev.healthy = healthy;
            self.attach(d, class);
            return;
        }
        if dev.node != node {
            let (old, slot) = (dev.node, dev.slot);
            let cls = &mut self.classes[class as usize];
            remove_from_group(cls, &self.nodes, old, slot);
            self.devices[d as usize].node = node;
            insert_into_group(cls, &self.nodes, &self.devices, node, slot);
        }
        self.set_device_healthy_id(d, healthy);
    }

    /// Marks a device healthy or not. Unknown devices are ignored.
    pub fn set_device_healthy(&mut self, uuid: &str, healthy: bool) {
        if let Some(&d) = self.device_ids.get(uuid) {
            self.set_device_healthy_id(d, healthy);
        }
    }

    /// Adds claims for `owner` (a reservation or job id) on every device for `[start, end)`, all or
    /// nothing. Claims may be added on any known device, schedulable or not (they restore what was
    /// already decided). An empty window (`start >= end`) claims nothing and succeeds once every
    /// device is known.
    pub fn add_claim(
        &mut self,
        owner: &str,
        devices: &[String],
        start: i64,
        end: i64,
    ) -> Result<(), ClaimError> {
        let mut ids = Vec::with_capacity(devices.len());
        for uuid in devices {
            match self.device_ids.get(uuid.as_str()) {
                Some(&d) => ids.push(d),
                None => return Err(ClaimError::UnknownDevice(uuid.clone())),
            }
        }
        if start >= end || ids.is_empty() {
            return Ok(());
        }
        for (&d, uuid) in ids.iter().zip(devices) {
            if !self.devices[d as usize].calendar.is_free(start, end) {
                return Err(ClaimError::Overlap {
                    device: uuid.clone(),
                });
            }
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            let device = self.devices[w[0] as usize].uuid.to_string();
            return Err(ClaimError::Overlap { device });
        }
        let owner = self.owners.intern(owner);
        for d in ids {
            let dev = &mut self.devices[d as usize];
            let inserted = dev.calendar.insert(Claim { start, end, owner });
            debug_assert!(inserted, "checked free above");
            self.classes[dev.class as usize]
                .window
                .insert(start, end, dev.slot);
            self.owners.note_device(owner, d);
        }
        Ok(())
    }

    /// Removes every claim of `owner` (no-op if none).
    pub fn remove_claims(&mut self, owner: &str) {
        let Some(o) = self.owners.get(owner) else {
            return;
        };
        let devices = std::mem::take(&mut self.owners.entry_mut(o).devices);
        let mut removed = Vec::new();
        for d in devices {
            removed.clear();
            let dev = &mut self.devices[d as usize];
            dev.calendar.remove_owner(o, &mut removed);
            let window = &mut self.classes[dev.class as usize].window;
            for c in &removed {
                window.remove(c.start, c.end, dev.slot);
            }
        }
        self.owners.release(o);
    }

    /// Ends the owner's claims at `end`: claims starting at/after `end` are removed, longer ones
    /// shortened. No-op if the owner holds no claim.
    pub fn truncate_claims(&mut self, owner: &str, end: i64) {
        let Some(o) = self.owners.get(owner) else {
            return;
        };
        let devices = std::mem::take(&mut self.owners.entry_mut(o).devices);
        let mut kept = Vec::with_capacity(devices.len());
        let mut cuts = Vec::new();
        for d in devices {
            cuts.clear();
            let dev = &mut self.devices[d as usize];
            dev.calendar.truncate_owner(o, end, &mut cuts);
            let window = &mut self.classes[dev.class as usize].window;
            for cut in &cuts {
                match *cut {
                    Cut::Removed(c) => {
                        window.remove(c.start, c.end, dev.slot);
                    }
                    Cut::Shortened(c, new_end) => {
                        window.remove(c.start, c.end, dev.slot);
                        window.insert(c.start, new_end, dev.slot);
                    }
                }
            }
            if dev.calendar.has_owner(o) {
                kept.push(d);
            }
        }
        if kept.is_empty() {
            self.owners.release(o);
        } else {
            self.owners.entry_mut(o).devices = kept;
        }
    }

    /// (total devices, schedulable devices) of a class; schedulable = healthy on a ready node.
    pub fn class_counts(&self, class: &str) -> (u32, u32) {
        match self.class_by_name(class) {
            Some(c) => self.counts(c, SiteFilter::Any),
            None => (0, 0),
        }
    }

    /// Whether the device is known and no claim overlaps `[start, end)` (an empty window is free).
    /// Says nothing about whether the device is schedulable.
    pub fn is_free(&self, uuid: &str, start: i64, end: i64) -> bool {
        self.device_ids
            .get(uuid)
            .is_some_and(|&d| self.devices[d as usize].calendar.is_free(start, end))
    }

    /// The owners of the claims on a device that overlap `[start, end)`, in time order
    /// (empty for an unknown device).
    pub fn owners_on(&self, uuid: &str, start: i64, end: i64) -> Vec<&str> {
        let Some(&d) = self.device_ids.get(uuid) else {
            return Vec::new();
        };
        self.devices[d as usize]
            .calendar
            .overlapping(start, end)
            .iter()
            .map(|c| self.owners.entry(c.owner).name.as_str())
            .collect()
    }

    /// All claims currently held (owner, device uuid, start, end), sorted — for tests and
    /// consistency checks.
    pub fn claims(&self) -> Vec<(String, String, i64, i64)> {
        let mut out = Vec::new();
        for dev in &self.devices {
            for c in dev.calendar.claims() {
                let owner = self.owners.entry(c.owner).name.clone();
                out.push((owner, dev.uuid.to_string(), c.start, c.end));
            }
        }
        out.sort();
        out
    }

    /// Number of devices known, in every class.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Checks the internal indexes against each other: every calendar sorted and non-overlapping,
    /// every claim indexed under its class and owner, every class slot and node group consistent.
    /// For tests and debugging; `Err` describes the first inconsistency found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut indexed = vec![0usize; self.classes.len()];
        for (d, dev) in self.devices.iter().enumerate() {
            dev.calendar
                .check()
                .map_err(|e| format!("device {}: {e}", dev.uuid))?;
            let class = &self.classes[dev.class as usize];
            if class.slot_device.get(dev.slot as usize) != Some(&(d as u32)) {
                return Err(format!("device {} not in its class slot", dev.uuid));
            }
            if class.healthy.get(dev.slot) != dev.healthy {
                return Err(format!("device {}: health bit out of date", dev.uuid));
            }
            let in_group = class
                .groups
                .iter()
                .any(|g| g.node == dev.node && g.slots.contains(&dev.slot));
            if !in_group {
                return Err(format!("device {} not in its node group", dev.uuid));
            }
            for c in dev.calendar.claims() {
                if !class.window.contains(c.start, c.end, dev.slot) {
                    return Err(format!("claim of {} not in the class index", dev.uuid));
                }
                if !self.owners.is_live(c.owner)
                    || !self.owners.entry(c.owner).devices.contains(&(d as u32))
                {
                    return Err(format!("claim of {} not listed under its owner", dev.uuid));
                }
            }
            indexed[dev.class as usize] += dev.calendar.len();
        }
        for (c, class) in self.classes.iter().enumerate() {
            if class.window.len() != indexed[c] {
                return Err(format!("class {c} indexes stale claims"));
            }
            let slots: usize = class.groups.iter().map(|g| g.slots.len()).sum();
            let used = class
                .slot_device
                .iter()
                .filter(|&&d| d != NO_DEVICE)
                .count();
            if slots != class.devices as usize || used != slots {
                return Err(format!("class {c}: group and slot counts disagree"));
            }
            for g in &class.groups {
                let mut fresh = g.clone();
                fresh.refresh_span();
                if fresh.span != g.span {
                    return Err(format!("class {c}: stale span for node {}", g.node));
                }
            }
            for w in class.groups.windows(2) {
                if self.nodes[w[0].node as usize].name >= self.nodes[w[1].node as usize].name {
                    return Err(format!("class {c}: node groups out of order"));
                }
            }
        }
        Ok(())
    }

    // ---- internal helpers shared with admission and availability ----

    /// The class with this name, if it has at least one device.
    pub(super) fn class_by_name(&self, name: &str) -> Option<&Class> {
        let c = &self.classes[*self.class_ids.get(name)? as usize];
        (c.devices > 0).then_some(c)
    }

    /// The id of the class with this name.
    pub(super) fn class_id(&self, name: &str) -> Option<u32> {
        self.class_ids.get(name).copied()
    }

    /// The device with this UUID.
    pub(super) fn device_by_uuid(&self, uuid: &str) -> Option<&Device> {
        self.device_ids
            .get(uuid)
            .map(|&d| &self.devices[d as usize])
    }

    /// The nodes a request naming `site` may use.
    pub(super) fn site_filter(&self, site: Option<&str>) -> SiteFilter {
        match site {
            None => SiteFilter::Any,
            Some(s) => self
                .site_ids
                .get(s)
                .map_or(SiteFilter::Nowhere, |&id| SiteFilter::Only(id)),
        }
    }

    /// Whether the devices of group `g` may be chosen (node ready, at an accepted site).
    #[inline]
    pub(super) fn group_usable(&self, g: &Group, site: SiteFilter) -> bool {
        let node = &self.nodes[g.node as usize];
        node.schedulable && site.accepts(node.site)
    }

    /// (total, schedulable) devices of `class` at the accepted sites.
    pub(super) fn counts(&self, class: &Class, site: SiteFilter) -> (u32, u32) {
        let (mut total, mut schedulable) = (0, 0);
        for g in &class.groups {
            let node = &self.nodes[g.node as usize];
            if !site.accepts(node.site) {
                continue;
            }
            total += g.slots.len() as u32;
            if node.schedulable {
                schedulable += g.slots.iter().filter(|&&s| class.healthy.get(s)).count() as u32;
            }
        }
        (total, schedulable)
    }

    /// The schedulable devices of `class` at the accepted sites, in node-name then UUID order.
    pub(super) fn usable_devices<'a>(
        &'a self,
        class: &'a Class,
        site: SiteFilter,
    ) -> impl Iterator<Item = &'a Device> + 'a {
        class
            .groups
            .iter()
            .filter(move |g| self.group_usable(g, site))
            .flat_map(|g| g.slots.iter().copied())
            .filter(|&s| class.healthy.get(s))
            .map(|s| &self.devices[class.slot_device[s as usize] as usize])
    }

    /// The UUID of the device in `slot` of `class`.
    #[inline]
    pub(super) fn slot_uuid(&self, class: &Class, slot: u32) -> &str {
        &self.devices[class.slot_device[slot as usize] as usize].uuid
    }

    fn intern_site(&mut self, site: &str) -> u32 {
        if let Some(&id) = self.site_ids.get(site) {
            return id;
        }
        let id = self.sites.len() as u32;
        self.sites.push(site.to_owned());
        self.site_ids.insert(site.to_owned(), id);
        id
    }

    fn ensure_node(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.node_ids.get(name) {
            return id;
        }
        let site = self.intern_site("");
        let id = self.nodes.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.nodes.push(Node {
            name: name.clone(),
            site,
            schedulable: false,
        });
        self.node_ids.insert(name, id);
        id
    }

    fn ensure_class(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.class_ids.get(name) {
            return id;
        }
        let id = self.classes.len() as u32;
        self.classes.push(Class::default());
        self.class_ids.insert(name.to_owned(), id);
        id
    }

    fn set_device_healthy_id(&mut self, d: u32, healthy: bool) {
        let dev = &mut self.devices[d as usize];
        dev.healthy = healthy;
        self.classes[dev.class as usize]
            .healthy
            .set(dev.slot, healthy);
    }

    /// Puts device `d` (not in any class) into `class`, indexing its claims there.
    fn attach(&mut self, d: u32, class: u32) {
        let cls = &mut self.classes[class as usize];
        let slot = match cls.free_slots.pop() {
            Some(s) => {
                cls.slot_device[s as usize] = d;
                s
            }
            None => {
                cls.slot_device.push(d);
                (cls.slot_device.len() - 1) as u32
            }
        };
        let dev = &mut self.devices[d as usize];
        dev.class = class;
        dev.slot = slot;
        cls.healthy.set(slot, dev.healthy);
        for c in dev.calendar.claims() {
            cls.window.insert(c.start, c.end, slot);
        }
        cls.devices += 1;
        let node = dev.node;
        insert_into_group(cls, &self.nodes, &self.devices, node, slot);
    }

    /// Takes device `d` out of its class, un-indexing its claims there (the claims stay on the device).
    fn detach(&mut self, d: u32) {
        let dev = &self.devices[d as usize];
        let cls = &mut self.classes[dev.class as usize];
        remove_from_group(cls, &self.nodes, dev.node, dev.slot);
        for c in dev.calendar.claims() {
            cls.window.remove(c.start, c.end, dev.slot);
        }
        cls.healthy.set(dev.slot, false);
        cls.slot_device[dev.slot as usize] = NO_DEVICE;
        cls.free_slots.push(dev.slot);
        cls.devices -= 1;
    }
}

/// Index of the group of `node` in `cls`, or where it would go.
fn find_group(cls: &Class, nodes: &[Node], node: u32) -> Result<usize, usize> {
    let name = &nodes[node as usize].name;
    cls.groups
        .binary_search_by(|g| nodes[g.node as usize].name.cmp(name))
}

/// Adds `slot` to the group of `node`, keeping groups in node-name and slots in UUID order.
fn insert_into_group(cls: &mut Class, nodes: &[Node], devices: &[Device], node: u32, slot: u32) {
    let gi = match find_group(cls, nodes, node) {
        Ok(gi) => gi,
        Err(gi) => {
            cls.groups.insert(gi, Group::new(node));
            gi
        }
    };
    let uuid_of = |s: u32| &devices[cls.slot_device[s as usize] as usize].uuid;
    let uuid = uuid_of(slot);
    let at = cls.groups[gi]
        .slots
        .binary_search_by(|&s| uuid_of(s).cmp(uuid))
        .unwrap_or_else(|at| at);
    cls.groups[gi].slots.insert(at, slot);
    cls.groups[gi].refresh_span();
}

/// Removes `slot` from the group of `node`, dropping the group when it becomes empty.
fn remove_from_group(cls: &mut Class, nodes: &[Node], node: u32, slot: u32) {
    if let Ok(gi) = find_group(cls, nodes, node) {
        let g = &mut cls.groups[gi];
        g.slots.retain(|&s| s != slot);
        g.refresh_span();
        if g.slots.is_empty() {
            cls.groups.remove(gi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn small() -> Cluster {
        let mut c = Cluster::new();
        c.upsert_node("n1", "s1", true);
        c.upsert_node("n2", "s1", true);
        for (u, n) in [("a", "n1"), ("b", "n1"), ("c", "n2")] {
            c.upsert_device(u, n, "gpu", true);
        }
        c
    }

    #[test]
    fn claims_are_all_or_nothing() {
        let mut c = small();
        c.add_claim("r1", &ids(&["a", "b"]), 0, 10).unwrap();
        assert_eq!(
            c.add_claim("r2", &ids(&["c", "b"]), 5, 15),
            Err(ClaimError::Overlap { device: "b".into() })
        );
        assert!(
            c.is_free("c", 0, 100),
            "nothing claimed on c after the refusal"
        );
        assert_eq!(
            c.add_claim("r2", &ids(&["c", "zz"]), 5, 15),
            Err(ClaimError::UnknownDevice("zz".into()))
        );
        assert_eq!(
            c.add_claim("r2", &ids(&["c", "c"]), 5, 15),
            Err(ClaimError::Overlap { device: "c".into() })
        );
        c.add_claim("r2", &ids(&["c", "b"]), 10, 15).unwrap();
        assert_eq!(c.claims().len(), 4);
        c.check_invariants().unwrap();
    }

    #[test]
    fn empty_window_claims_nothing() {
        let mut c = small();
        c.add_claim("r", &ids(&["a"]), 10, 10).unwrap();
        c.add_claim("r", &ids(&["a"]), 10, 5).unwrap();
        assert!(c.claims().is_empty());
        assert!(c.add_claim("r", &ids(&["nope"]), 10, 10).is_err());
    }

    #[test]
    fn remove_and_truncate() {
        let mut c = small();
        c.add_claim("job", &ids(&["a", "b"]), 0, 100).unwrap();
        c.add_claim("job", &ids(&["c"]), 200, 300).unwrap();
        c.add_claim("other", &ids(&["a"]), 100, 150).unwrap();
        c.truncate_claims("job", 50);
        assert_eq!(
            c.claims(),
            vec![
                ("job".into(), "a".into(), 0, 50),
                ("job".into(), "b".into(), 0, 50),
                ("other".into(), "a".into(), 100, 150),
            ]
        );
        assert!(c.is_free("a", 50, 100));
        c.check_invariants().unwrap();
        c.truncate_claims("job", 0);
        assert_eq!(c.claims().len(), 1);
        c.remove_claims("other");
        c.remove_claims("other");
        c.truncate_claims("nobody", 5);
        assert!(c.claims().is_empty());
        assert!(c.owners.is_empty(), "owner ids are released");
        c.check_invariants().unwrap();
    }

    #[test]
    fn moving_a_device_keeps_its_claims() {
        let mut c = small();
        c.add_claim("r", &ids(&["a"]), 0, 10).unwrap();
        c.upsert_device("a", "n3", "npu", true);
        c.check_invariants().unwrap();
        assert_eq!(c.class_counts("gpu"), (2, 2));
        assert_eq!(
            c.class_counts("npu"),
            (1, 0),
            "n3 was created non-schedulable"
        );
        c.upsert_node("n3", "s2", true);
        assert_eq!(c.class_counts("npu"), (1, 1));
        assert!(!c.is_free("a", 5, 6));
        c.upsert_device("a", "n2", "npu", true);
        c.upsert_device("a", "n1", "gpu", false);
        c.check_invariants().unwrap();
        assert_eq!(c.class_counts("gpu"), (3, 2));
        assert_eq!(c.class_counts("npu"), (0, 0));
        c.remove_claims("r");
        c.check_invariants().unwrap();
    }

    #[test]
    fn counts_follow_health_and_drain() {
        let mut c = small();
        assert_eq!(c.class_counts("gpu"), (3, 3));
        c.set_device_healthy("c", false);
        assert_eq!(c.class_counts("gpu"), (3, 2));
        c.set_node_schedulable("n1", false);
        assert_eq!(c.class_counts("gpu"), (3, 0));
        c.set_node_schedulable("ghost", true);
        c.set_device_healthy("ghost", true);
        assert_eq!(c.class_counts("tpu"), (0, 0));
        assert!(!c.is_free("ghost", 0, 1));
        assert_eq!(c.device_count(), 3);
    }
}
