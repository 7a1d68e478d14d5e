//! Property tests of the queue pass and the budget accounts.
//!
//! Random centres (with existing bookings and running preemptible jobs), random orgs with
//! budgets and caps, and random queues are planned; then every invariant the scheduler
//! promises is checked: no device is claimed twice or given to a job while a preemptible
//! job holds it, booked devices are lent only while idle and to one preemptible job at a
//! time, jobs get exactly their shape or nothing, budgets are never overdrawn, the
//! charges recorded are exactly the placements' cost, caps are never exceeded, planned
//! starts leave no trace, and the same state always gives the same decisions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use berth_scheduler::core::{
    ANY, Accounts, Backfill, Budget, Cluster, Decision, Guest, IdleBooked, Period, PlanInput,
    PlanPolicy, QueuedJob, Usage, plan, rated,
};
use proptest::prelude::*;

const H: i64 = 3_600_000;
const NOW: i64 = 1_795_264_496_000;
const ORGS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
struct World {
    nodes: usize,
    per_node: usize,
    /// Node, device, start and length (hours from now), and whether it is idle while active.
    bookings: Vec<(usize, usize, i64, i64, bool)>,
    guests: Vec<(usize, usize, i64)>,
    budgets: Vec<(usize, bool, Option<i64>, Option<u32>)>,
    charged: Vec<i64>,
    jobs: Vec<QueuedJob<'static>>,
    weights: Vec<f64>,
    usage: Vec<f64>,
    backfill: Backfill,
}

fn uuid(node: usize, d: usize) -> String {
    format!("n{node}-d{d}")
}

fn world() -> impl Strategy<Value = World> {
    (2usize..5, 2usize..5).prop_flat_map(|(nodes, per_node)| {
        let job = (
            0usize..3,
            1u32..=per_node as u32,
            prop_oneof![4 => Just(1u32), 1 => 2u32..=nodes as u32],
            1i64..12,
            -3i32..3,
            0i64..1000,
            prop::bool::weighted(0.2),
            prop_oneof![Just(1.0f64), Just(0.5), Just(2.0)],
        );
        (
            Just(nodes),
            Just(per_node),
            prop::collection::vec(
                (0..nodes, 0..per_node, -4i64..8, 1i64..10, any::<bool>()),
                0..8,
            ),
            prop::collection::vec((0..nodes, 0..per_node, 0i64..60), 0..3),
            prop::collection::vec(
                (
                    0usize..3,
                    any::<bool>(),
                    prop::option::of(0i64..40),
                    prop::option::of(1u32..8),
                ),
                0..4,
            ),
            prop::collection::vec(0i64..20, 3),
            prop::collection::vec(job, 0..25),
            prop::collection::vec(prop_oneof![Just(1.0f64), Just(2.0), Just(0.5)], 3),
            prop::collection::vec(0.0f64..50.0, 3),
            prop_oneof![
                Just(Backfill::None),
                Just(Backfill::Easy),
                Just(Backfill::Conservative)
            ],
        )
            .prop_map(
                |(
                    nodes,
                    per_node,
                    bookings,
                    guests,
                    budgets,
                    charged,
                    jobs,
                    weights,
                    usage,
                    backfill,
                )| {
                    World {
                        nodes,
                        per_node,
                        bookings,
                        guests,
                        budgets,
                        charged,
                        jobs: jobs
                            .into_iter()
                            .enumerate()
                            .map(
                                |(i, (org, count, n, hours, prio, age, pre, rate))| QueuedJob {
                                    id: format!("j{i:02}").into(),
                                    org: ORGS[org].into(),
                                    class: "gpu".into(),
                                    count,
                                    nodes: n,
                                    runtime_ms: hours * H,
                                    priority: prio,
                                    submitted_ms: NOW - age * 1000,
                                    preemptible: pre,
                                    rate,
                                    project: None,
                                },
                            )
                            .collect(),
                        weights,
                        usage,
                        backfill,
                    }
                },
            )
    })
}

/// The cluster, the accounts, the guests and the booked-but-idle devices of a world.
fn build(w: &World) -> (Cluster, Accounts, Vec<Guest>, Vec<IdleBooked>) {
    let mut c = Cluster::new();
    for n in 0..w.nodes {
        c.upsert_node(&format!("n{n}"), "s", true);
        for d in 0..w.per_node {
            c.upsert_device(&uuid(n, d), &format!("n{n}"), "gpu", true);
        }
    }
    let mut idle = Vec::new();
    for (i, &(n, d, start, len, unused)) in w.bookings.iter().enumerate() {
        let (from, until) = (NOW + start * H, NOW + (start + len) * H);
        let booked = c.add_claim(&format!("r{i}"), &[uuid(n, d)], from, until);
        if booked.is_ok() && unused && from <= NOW && until > NOW {
            idle.push(IdleBooked {
                device: uuid(n, d),
                class: "gpu".into(),
                node: format!("n{n}"),
                until,
            });
        }
    }
    let mut a = Accounts::new();
    let (p, _) = Period::Month.bounds(NOW);
    for &(org, any_class, hours, cap) in &w.budgets {
        let key = if any_class { ANY } else { "gpu" };
        a.set_budget(
            ORGS[org],
            key,
            Budget {
                allowance_ms: hours.map(|h| h * H),
                max_devices: cap,
                ..Budget::default()
            },
        );
    }
    for (org, &h) in ORGS.iter().zip(&w.charged) {
        for key in [ANY, "gpu"] {
            if let Some(left) = a.left(org, key, NOW) {
                // Start from a valid state: charge at most what is left.
                a.add_charged(org, key, p, (h * H).min(left.max(0)));
            }
        }
    }
    let mut guests = Vec::new();
    let mut taken = BTreeSet::new();
    for (i, &(n, d, age)) in w.guests.iter().enumerate() {
        let dev = uuid(n, d);
        let lent = idle.iter().any(|b| b.device == dev);
        if (lent || c.is_free(&dev, NOW, NOW + 1)) && taken.insert(dev.clone()) {
            guests.push(Guest {
                job: format!("g{i}"),
                class: "gpu".into(),
                devices: vec![dev],
                started_ms: NOW - age * 60_000,
            });
        }
    }
    (c, a, guests, idle)
}

fn run(
    w: &World,
    c: &mut Cluster,
    a: &mut Accounts,
    guests: &[Guest],
    idle: &[IdleBooked],
    jobs: &[QueuedJob],
) -> Vec<Decision> {
    let weights: BTreeMap<String, f64> = ORGS
        .iter()
        .zip(&w.weights)
        .map(|(o, &x)| (o.to_string(), x))
        .collect();
    let mut usage = Usage::new(NOW, 24 * H);
    for (o, &u) in ORGS.iter().zip(&w.usage) {
        usage.add(o, u * H as f64, NOW);
    }
    let policy = PlanPolicy {
        backfill: w.backfill,
        reserve_depth: 3,
        ..PlanPolicy::default()
    };
    plan(
        c,
        a,
        &PlanInput {
            now: NOW,
            jobs,
            weights: &weights,
            usage: &usage,
            guests,
            idle_booked: idle,
            policy: &policy,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_queue_pass_keeps_every_promise(w in world()) {
        let (mut c, mut a, guests, idle) = build(&w);
        let before_claims = c.claims();
        let before = a.clone();
        let d = run(&w, &mut c, &mut a, &guests, &idle, &w.jobs);
        c.check_invariants().map_err(TestCaseError::fail)?;

        let jobs: HashMap<&str, &QueuedJob> = w.jobs.iter().map(|j| (&*j.id, j)).collect();
        let guest_devices: BTreeSet<&str> =
            guests.iter().flat_map(|g| g.devices.iter().map(String::as_str)).collect();
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut decided: BTreeSet<&str> = BTreeSet::new();
        let mut charged: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut expected_claims = before_claims.clone();
        for dec in &d {
            match dec {
                Decision::Place(p) => {
                    let j = jobs[p.job.as_str()];
                    prop_assert!(decided.insert(&p.job), "decided twice: {}", p.job);
                    // Exactly its shape: `count` devices on each of `nodes` distinct nodes.
                    prop_assert_eq!(p.devices.len() as u32, j.count * j.nodes);
                    let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
                    for dev in &p.devices {
                        *per_node.entry(dev.split('-').next().unwrap()).or_default() += 1;
                        prop_assert!(used.insert(dev.clone()), "device {} given twice", dev);
                        prop_assert!(!guest_devices.contains(dev.as_str()),
                            "{} is held by a preemptible job", dev);
                    }
                    prop_assert_eq!(per_node.len() as u32, j.nodes);
                    prop_assert!(per_node.values().all(|&n| n == j.count));
                    prop_assert_eq!(p.claim, !j.preemptible);
                    if p.claim {
                        for dev in &p.devices {
                            expected_claims.push((p.job.clone(), dev.clone(), p.start, p.end));
                        }
                    } else {
                        // A preemptible job runs its whole max runtime, on devices that
                        // are free for it or that an active booking leaves idle now.
                        prop_assert_eq!(p.end - p.start, j.runtime_ms);
                        for dev in &p.devices {
                            let lent = idle.iter().any(|b| &b.device == dev && p.start < b.until);
                            prop_assert!(lent || before_claims.iter().all(|(_, u, s, e)|
                                u != dev || *e <= p.start || *s >= p.end),
                                "a preemptible job on claimed {}", dev);
                        }
                    }
                    if let Some(ch) = &p.charge {
                        prop_assert_eq!(ch.amount_ms,
                            rated(j.runtime_ms * i64::from(j.count * j.nodes), j.rate));
                        *charged.entry((j.org.to_string(), ch.key.clone())).or_default() += ch.amount_ms;
                    }
                }
                Decision::Wait { job, .. } => {
                    prop_assert!(decided.insert(job), "decided twice: {}", job);
                }
                Decision::Preempt { job, for_job } => {
                    prop_assert!(guests.iter().any(|g| &g.job == job));
                    prop_assert!(jobs.contains_key(for_job.as_str()));
                }
            }
        }
        prop_assert_eq!(decided.len(), w.jobs.len(), "every job gets one decision");
        // Planned starts leave no trace; placed claims are exactly the placements.
        expected_claims.sort();
        prop_assert_eq!(c.claims(), expected_claims);

        let (p, _) = Period::Month.bounds(NOW);
        for org in ORGS {
            for key in [ANY, "gpu"] {
                // Budgets are never overdrawn.
                if let Some(left) = a.left(org, key, NOW) {
                    prop_assert!(left >= 0, "{org}/{key} overdrawn: {left}");
                }
                // The accounts moved by exactly the placements' charges.
                let delta = a.totals(org, key, p).charged - before.totals(org, key, p).charged;
                let want = charged.get(&(org.to_string(), key.to_string())).copied().unwrap_or(0);
                prop_assert_eq!(delta, want, "{}/{}", org, key);
            }
            // Caps hold over every placed job's window.
            let cap = a.budget(org, "gpu").and_then(|b| b.max_devices)
                .or_else(|| a.budget(org, ANY).and_then(|b| b.max_devices));
            if let (Some(cap), Some(h)) = (cap, a.holdings(org, "gpu")) {
                prop_assert!(h.peak(NOW, NOW + 12 * H) <= cap, "{org} over its cap");
            }
        }

        // The same state gives the same decisions, whatever order the jobs come in.
        let (mut c2, mut a2, g2, i2) = build(&w);
        let mut shuffled = w.jobs.clone();
        shuffled.reverse();
        let d2 = run(&w, &mut c2, &mut a2, &g2, &i2, &shuffled);
        prop_assert_eq!(d, d2);
        prop_assert_eq!(a, a2);
    }
}
