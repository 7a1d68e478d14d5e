//! Property tests of the scheduling core against a brute-force model.
//!
//! Random sequences of bookings, cancellations, queued-job submissions, early finishes, node drains,
//! device failures and device moves are applied both to a [`Cluster`] and to a naive model (a flat
//! list of claims). After every step the two must agree, no device may hold overlapping claims, and
//! every decision must be one the model accepts; replaying the same sequence on a fresh cluster
//! must give the same decisions.

use std::collections::{BTreeMap, BTreeSet};

use berth_scheduler::core::{Cluster, Refusal, Request, Slot};
use proptest::prelude::*;

const NODES: [(&str, &str); 4] = [("n0", "s0"), ("n1", "s1"), ("n2", "s0"), ("n3", "s1")];
const CLASSES: [&str; 2] = ["gpu", "npu"];
const SITES: [&str; 3] = ["s0", "s1", "nowhere"];
const DEVICES: usize = 12;

/// Initial layout: d0..d4 on n0, d5..d7 on n1, d8..d9 on n2, d10..d11 on n3; every third is an npu.
fn initial_node(i: usize) -> &'static str {
    match i {
        0..=4 => "n0",
        5..=7 => "n1",
        8..=9 => "n2",
        _ => "n3",
    }
}

fn initial_class(i: usize) -> &'static str {
    CLASSES[usize::from(i % 3 == 2)]
}

#[derive(Debug, Clone)]
enum Op {
    /// Book `count` devices for `[start, start + len)`.
    Book {
        owner: u8,
        class: u8,
        count: u32,
        site: Option<u8>,
        start: i64,
        len: i64,
    },
    /// A queued job: `count` devices for `[now, now + runtime)`.
    Submit {
        owner: u8,
        class: u8,
        count: u32,
        now: i64,
        runtime: i64,
    },
    /// Cancel a booking or a job.
    Cancel { owner: u8 },
    /// A job or booking ends early at `at`.
    Finish { owner: u8, at: i64 },
    /// Drain (or undrain) a node.
    Drain { node: u8, schedulable: bool },
    /// A device fails (or recovers).
    Fail { device: u8, healthy: bool },
    /// A device is re-registered, possibly on another node or as another class.
    Move {
        device: u8,
        node: u8,
        class: u8,
        healthy: bool,
    },
    /// Ask when a request could start and what is free over time; changes nothing.
    Ask {
        class: u8,
        count: u32,
        site: Option<u8>,
        start: i64,
        len: i64,
        horizon: i64,
        step: i64,
    },
}

/// Times are drawn in ticks of 3 minutes, nudged by a millisecond either way now and then, so that
/// windows fall on, just before and just after the core's 15-minute checkpoints.
const TICK: i64 = 180_000;

fn ticks(range: std::ops::Range<i64>) -> impl Strategy<Value = i64> + Clone {
    (range, 0usize..5).prop_map(|(t, nudge)| t * TICK + [0, 0, 0, 1, -1][nudge])
}

fn op() -> impl Strategy<Value = Op> {
    let site = proptest::option::of(0u8..3);
    let (start, len) = (ticks(0..200), ticks(1..60));
    prop_oneof![
        6 => (0u8..10, 0u8..2, 1u32..9, site.clone(), start.clone(), len.clone()).prop_map(
            |(owner, class, count, site, start, len)| Op::Book { owner, class, count, site, start, len }
        ),
        4 => (0u8..10, 0u8..2, 1u32..6, start.clone(), len.clone()).prop_map(
            |(owner, class, count, now, runtime)| Op::Submit { owner, class, count, now, runtime }
        ),
        2 => (0u8..10).prop_map(|owner| Op::Cancel { owner }),
        2 => (0u8..10, ticks(0..260)).prop_map(|(owner, at)| Op::Finish { owner, at }),
        1 => (0u8..4, any::<bool>()).prop_map(|(node, schedulable)| Op::Drain { node, schedulable }),
        1 => (0u8..DEVICES as u8, any::<bool>()).prop_map(|(device, healthy)| Op::Fail { device, healthy }),
        1 => (0u8..DEVICES as u8, 0u8..5, 0u8..2, any::<bool>())
            .prop_map(|(device, node, class, healthy)| Op::Move { device, node, class, healthy }),
        2 => (0u8..2, 1u32..9, site, start, len, ticks(0..300), ticks(1..40)).prop_map(
            |(class, count, site, start, len, horizon, step)| Op::Ask {
                class, count, site, start, len, horizon, step
            }
        ),
    ]
}

/// The brute-force model.
#[derive(Debug, Clone, Default)]
struct Model {
    /// node -> (site, schedulable)
    nodes: BTreeMap<String, (String, bool)>,
    /// device -> (node, class, healthy)
    devices: BTreeMap<String, (String, String, bool)>,
    /// (owner, device, start, end)
    claims: Vec<(String, String, i64, i64)>,
}

impl Model {
    fn usable(&self, dev: &str, class: &str, site: Option<&str>) -> bool {
        let (node, c, healthy) = &self.devices[dev];
        let Some((s, ready)) = self.nodes.get(node) else {
            return false;
        };
        c == class && *healthy && *ready && site.is_none_or(|x| x == s)
    }

    fn free(&self, dev: &str, start: i64, end: i64) -> bool {
        !self
            .claims
            .iter()
            .any(|(_, d, s, e)| d == dev && *s < end && *e > start)
    }

    /// Usable devices of the class free for the whole window, by node.
    fn free_by_node(
        &self,
        class: &str,
        site: Option<&str>,
        s: i64,
        e: i64,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (dev, (node, _, _)) in &self.devices {
            if self.usable(dev, class, site) && self.free(dev, s, e) {
                out.entry(node.clone()).or_default().push(dev.clone());
            }
        }
        out
    }

    fn free_count(&self, class: &str, site: Option<&str>, s: i64, e: i64) -> u32 {
        self.free_by_node(class, site, s, e)
            .values()
            .map(|v| v.len() as u32)
            .sum()
    }

    /// (total, schedulable) of a class at a site.
    fn counts(&self, class: &str, site: Option<&str>) -> (u32, u32) {
        let mut total = 0;
        let mut schedulable = 0;
        for (dev, (node, c, _)) in &self.devices {
            let at_site = self
                .nodes
                .get(node)
                .is_some_and(|(s, _)| site.is_none_or(|x| x == s));
            if c == class && at_site {
                total += 1;
                if self.usable(dev, class, site) {
                    schedulable += 1;
                }
            }
        }
        (total, schedulable)
    }

    fn class_exists(&self, class: &str) -> bool {
        self.devices.values().any(|(_, c, _)| c == class)
    }
}

fn fresh() -> (Cluster, Model) {
    let mut c = Cluster::new();
    let mut m = Model::default();
    for (n, s) in NODES {
        c.upsert_node(n, s, true);
        m.nodes.insert(n.into(), (s.into(), true));
    }
    for i in 0..DEVICES {
        let (dev, node, class) = (format!("d{i:02}"), initial_node(i), initial_class(i));
        c.upsert_device(&dev, node, class, true);
        m.devices.insert(dev, (node.into(), class.into(), true));
    }
    (c, m)
}

/// Checks a `find_devices` decision against the model; returns the devices to claim, if any.
fn check_choice(
    m: &Model,
    req: &Request,
    got: &Result<Vec<String>, Refusal>,
) -> Option<Vec<String>> {
    let site = req.site.as_deref();
    let by_node = m.free_by_node(&req.class, site, req.start, req.end);
    let free: u32 = by_node.values().map(|v| v.len() as u32).sum();
    match got {
        Ok(devs) => {
            assert_eq!(devs.len(), req.count as usize, "{req:?}");
            let distinct: BTreeSet<&String> = devs.iter().collect();
            assert_eq!(distinct.len(), devs.len(), "duplicate devices {devs:?}");
            for d in devs {
                assert!(
                    m.usable(d, &req.class, site),
                    "{d} not schedulable/of class for {req:?}"
                );
                assert!(m.free(d, req.start, req.end), "{d} not free for {req:?}");
            }
            // Packing.
            let nodes: BTreeSet<&String> = devs.iter().map(|d| &m.devices[d].0).collect();
            let fitting: Vec<(usize, &String)> = by_node
                .iter()
                .filter(|(_, v)| v.len() >= req.count as usize)
                .map(|(n, v)| (v.len(), n))
                .collect();
            if let Some(&(_, best)) = fitting.iter().min() {
                assert_eq!(
                    nodes.len(),
                    1,
                    "fits on one node but spread: {devs:?} for {req:?}"
                );
                assert_eq!(
                    nodes.first(),
                    Some(&best),
                    "not the best fit for {req:?}: {by_node:?}"
                );
            } else {
                let mut sizes: Vec<usize> = by_node.values().map(Vec::len).collect();
                sizes.sort_unstable_by(|a, b| b.cmp(a));
                let mut sum = 0;
                let min_nodes = sizes.iter().take_while(|&&s| {
                    let before = sum;
                    sum += s;
                    before < req.count as usize
                });
                assert_eq!(
                    nodes.len(),
                    min_nodes.count(),
                    "not on as few nodes as possible"
                );
            }
            Some(devs.clone())
        }
        Err(Refusal::NotEnough {
            free: f,
            schedulable,
            total,
            requested,
            class,
        }) => {
            assert!(
                free < req.count,
                "refused although the model has {free} free for {req:?}"
            );
            assert_eq!(*f, free);
            assert_eq!((*total, *schedulable), m.counts(&req.class, site));
            assert!(f <= schedulable && schedulable <= total);
            assert_eq!((*requested, class), (req.count, &req.class));
            None
        }
        Err(Refusal::UnknownClass { .. }) => {
            assert!(!m.class_exists(&req.class));
            None
        }
        Err(e) => panic!("unexpected refusal {e} for {req:?}"),
    }
}

/// Applies one op to both, checks the decision, and returns a log line of what happened.
fn step(c: &mut Cluster, m: &mut Model, op: &Op) -> String {
    match *op {
        Op::Book {
            owner,
            class,
            count,
            site,
            start,
            len,
        } => book(c, m, &format!("r{owner}"), class, count, site, start, len),
        Op::Submit {
            owner,
            class,
            count,
            now,
            runtime,
        } => book(c, m, &format!("j{owner}"), class, count, None, now, runtime),
        Op::Cancel { owner } => {
            for o in [format!("r{owner}"), format!("j{owner}")] {
                c.remove_claims(&o);
                m.claims.retain(|(x, ..)| *x != o);
            }
            "cancel".into()
        }
        Op::Finish { owner, at } => {
            for o in [format!("r{owner}"), format!("j{owner}")] {
                c.truncate_claims(&o, at);
                m.claims.retain(|(x, _, s, _)| *x != o || *s < at);
                for cl in m.claims.iter_mut().filter(|(x, ..)| *x == o) {
                    cl.3 = cl.3.min(at);
                }
            }
            "finish".into()
        }
        Op::Drain { node, schedulable } => {
            let name = NODES[node as usize].0;
            c.set_node_schedulable(name, schedulable);
            m.nodes.get_mut(name).unwrap().1 = schedulable;
            "drain".into()
        }
        Op::Fail { device, healthy } => {
            let dev = format!("d{device:02}");
            c.set_device_healthy(&dev, healthy);
            m.devices.get_mut(&dev).unwrap().2 = healthy;
            "fail".into()
        }
        Op::Move {
            device,
            node,
            class,
            healthy,
        } => {
            let dev = format!("d{device:02}");
            // Node "n4" is unknown until now: it is created non-schedulable.
            let node = format!("n{node}");
            let class = CLASSES[class as usize];
            c.upsert_device(&dev, &node, class, healthy);
            m.nodes
                .entry(node.clone())
                .or_insert_with(|| (String::new(), false));
            m.devices.insert(dev, (node, class.into(), healthy));
            "move".into()
        }
        Op::Ask {
            class,
            count,
            site,
            start,
            len,
            horizon,
            step,
        } => {
            let req = Request {
                class: CLASSES[class as usize].into(),
                count,
                site: site.map(|s| SITES[s as usize].into()),
                start,
                end: start + len,
            };
            let got = c.earliest_start(&req, horizon);
            assert_eq!(
                got,
                brute_earliest(m, &req, horizon),
                "earliest_start {req:?} < {horizon}"
            );
            if let Some(t) = got {
                // The horizon is exclusive and nothing earlier works.
                assert_eq!(c.earliest_start(&req, t), None);
                assert_eq!(c.earliest_start(&req, t + 1), Some(t));
                let len = req.end - req.start;
                let at_t = Request {
                    start: t,
                    end: t + len,
                    ..req.clone()
                };
                assert!(c.find_devices(&at_t).is_ok());
            }
            let slots = c.availability(
                &req.class,
                req.site.as_deref(),
                start,
                start + 3 * len,
                step,
            );
            check_availability(m, &req, start, start + 3 * len, step, &slots);
            format!("ask {got:?} {slots:?}")
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn book(
    c: &mut Cluster,
    m: &mut Model,
    owner: &str,
    class: u8,
    count: u32,
    site: Option<u8>,
    start: i64,
    len: i64,
) -> String {
    let req = Request {
        class: CLASSES[class as usize].into(),
        count,
        site: site.map(|s| SITES[s as usize].into()),
        start,
        end: start + len,
    };
    let got = c.find_devices(&req);
    if let Some(devs) = check_choice(m, &req, &got) {
        c.add_claim(owner, &devs, req.start, req.end)
            .expect("chosen devices must be claimable");
        for d in &devs {
            m.claims.push((owner.into(), d.clone(), req.start, req.end));
        }
    }
    format!("book {got:?}")
}

fn brute_earliest(m: &Model, req: &Request, horizon: i64) -> Option<i64> {
    if !m.class_exists(&req.class) {
        return None;
    }
    let len = req.end - req.start;
    let mut candidates: BTreeSet<i64> = m
        .claims
        .iter()
        .map(|c| c.3)
        .filter(|&e| e > req.start)
        .collect();
    candidates.insert(req.start);
    candidates
        .into_iter()
        .filter(|&t| t < horizon)
        .find(|&t| m.free_count(&req.class, req.site.as_deref(), t, t + len) >= req.count)
}

fn check_availability(
    m: &Model,
    req: &Request,
    from: i64,
    to: i64,
    step: i64,
    slots: &Result<Vec<Slot>, Refusal>,
) {
    let site = req.site.as_deref();
    let slots = match slots {
        Ok(s) => s,
        Err(Refusal::UnknownClass { .. }) => return assert!(!m.class_exists(&req.class)),
        Err(e) => panic!("availability refused: {e}"),
    };
    let schedulable = m.counts(&req.class, site).1;
    let mut t = from;
    for s in slots {
        let end = (t + step).min(to);
        assert_eq!((s.start, s.end), (t, end));
        assert_eq!(s.total, schedulable);
        assert_eq!(
            s.free,
            m.free_count(&req.class, site, s.start, s.end),
            "bucket {s:?}"
        );
        assert!(s.free <= s.total);
        t = end;
    }
    assert_eq!(t, to);
}

/// The cluster's own view agrees with the model and holds no overlapping claims.
fn check_state(c: &Cluster, m: &Model) {
    c.check_invariants().unwrap();
    let mut want = m.claims.clone();
    want.sort();
    let got = c.claims();
    assert_eq!(got, want);
    for (i, a) in got.iter().enumerate() {
        for b in &got[i + 1..] {
            assert!(
                a.1 != b.1 || a.3 <= b.2 || b.3 <= a.2,
                "overlap {a:?} {b:?}"
            );
        }
    }
    for class in CLASSES {
        assert_eq!(c.class_counts(class), m.counts(class, None));
    }
}

fn run(ops: &[Op]) -> Vec<String> {
    let (mut c, mut m) = fresh();
    let mut log = Vec::with_capacity(ops.len());
    for op in ops {
        log.push(step(&mut c, &mut m, op));
        check_state(&c, &m);
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn core_agrees_with_the_brute_force_model(ops in proptest::collection::vec(op(), 1..80)) {
        let first = run(&ops);
        let second = run(&ops);
        prop_assert_eq!(first, second, "decisions must be deterministic");
    }
}

#[test]
fn a_full_centre_books_every_device_exactly_once() {
    let (mut c, _) = fresh();
    let mut taken = BTreeSet::new();
    loop {
        let req = Request {
            class: "gpu".into(),
            count: 1,
            site: None,
            start: 0,
            end: 10,
        };
        match c.find_devices(&req) {
            Ok(d) => {
                c.add_claim(&format!("j{}", taken.len()), &d, 0, 10)
                    .unwrap();
                assert!(taken.insert(d[0].clone()));
            }
            Err(Refusal::NotEnough { free: 0, .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(taken.len() as u32, c.class_counts("gpu").0);
}

/// Spacing of the core's checkpoints; availability buckets are drawn on and off it.
const CHECKPOINT: i64 = 15 * 60 * 1000;

/// An instant within about a day either side of 0: 5-minute ticks, often nudged off them.
fn instant() -> impl Strategy<Value = i64> {
    (
        -300i64..300,
        prop_oneof![Just(0i64), Just(1), Just(-1), 0i64..300_000],
    )
        .prop_map(|(t, nudge)| t * 300_000 + nudge)
}

/// A claim length: milliseconds to hours, or now and then longer than the index's "long" limit.
fn claim_len() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 1i64..4 * CHECKPOINT,
        4 => (1i64..40).prop_map(|q| q * 300_000),
        1 => 4_000i64 * CHECKPOINT..5_000 * CHECKPOINT,
    ]
}

/// A bucket width: below, on and above the checkpoint spacing, aligned or not.
fn bucket_step() -> impl Strategy<Value = i64> {
    prop_oneof![
        1i64..2 * CHECKPOINT,
        (1i64..9).prop_map(|m| m * CHECKPOINT),
        (1i64..9, 1i64..CHECKPOINT).prop_map(|(m, r)| m * CHECKPOINT + r),
        1i64..1_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// `availability` counts, per bucket, the schedulable devices (healthy, on a ready node, at the
    /// site) free for the whole bucket, exactly as a brute force over every claim does.
    #[test]
    fn availability_agrees_with_brute_force(
        node_sites in proptest::collection::vec((0u8..2, any::<bool>()), 1..5),
        devices in proptest::collection::vec((0usize..5, 0u8..2, prop::bool::weighted(0.8)), 1..14),
        claims in proptest::collection::vec((0usize..14, instant(), claim_len()), 0..60),
        cancel in proptest::collection::vec(0usize..60, 0..8),
        class in 0u8..2,
        site in proptest::option::of(0u8..3),
        from in instant(),
        step in bucket_step(),
        buckets in 1i64..50,
        tail in 0.0f64..1.0,
    ) {
        let mut c = Cluster::new();
        let mut m = Model::default();
        for (i, &(s, ready)) in node_sites.iter().enumerate() {
            let (node, site) = (format!("n{i}"), SITES[usize::from(s)]);
            c.upsert_node(&node, site, ready);
            m.nodes.insert(node, (site.into(), ready));
        }
        for (i, &(node, class, healthy)) in devices.iter().enumerate() {
            // Nodes past the list are created by the device, non-schedulable at site "".
            let (dev, node) = (format!("d{i:02}"), format!("n{node}"));
            c.upsert_device(&dev, &node, CLASSES[usize::from(class)], healthy);
            m.nodes.entry(node.clone()).or_insert((String::new(), false));
            m.devices.insert(dev, (node, CLASSES[usize::from(class)].into(), healthy));
        }
        for (i, &(dev, start, len)) in claims.iter().enumerate() {
            let dev = format!("d{:02}", dev % devices.len());
            let (owner, end) = (format!("o{i}"), start.saturating_add(len));
            if m.free(&dev, start, end) {
                c.add_claim(&owner, std::slice::from_ref(&dev), start, end).unwrap();
                m.claims.push((owner, dev, start, end));
            }
        }
        for i in cancel {
            let owner = format!("o{i}");
            c.remove_claims(&owner);
            m.claims.retain(|cl| cl.0 != owner);
        }
        c.check_invariants().unwrap();

        // The last bucket is cut short at `to` when `tail` says so.
        let to = from + (buckets - 1) * step + 1 + ((step - 1) as f64 * tail) as i64;
        let class = CLASSES[usize::from(class)];
        let site = site.map(|s| SITES[usize::from(s)]);
        let req = Request { class: class.into(), count: 1, site: site.map(Into::into), start: from, end: to };
        let got = c.availability(class, site, from, to, step);
        check_availability(&m, &req, from, to, step, &got);
        if let Ok(slots) = &got {
            prop_assert_eq!(slots.len() as i64, buckets);
        }
    }
}
