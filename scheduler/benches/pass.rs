//! Queue-pass benchmark of the scheduling core (plain `std::time::Instant`, no harness).
//!
//! Run with `cargo bench -p berth-scheduler --bench pass`.
//!
//! - A full pass (`core::plan`) with 10,000 and 50,000 pending jobs on a 1,000 x 8 centre that
//!   already has 10,000 random bookings over the next 30 days and is half full right now: 40
//!   orgs with weights and usage, a budget and a cap on a quarter of them, jobs of 1, 2, 4 and 8
//!   devices (a few 2- and 4-node jobs), 1-24 h, a tenth preemptible, EASY backfill. Each run
//!   starts from a fresh copy of the same state (the copy is not timed).
//! - Placements per second onto an empty 1,000 x 8 centre: one pass placing 8,000 one-device
//!   jobs, then one placing 1,000 eight-device jobs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_scheduler::core::{
    Accounts, Backfill, Budget, Cluster, Decision, Guest, IdleBooked, PlanInput, PlanPolicy,
    QueuedJob, Request, Usage, plan,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 1_000;
const PER_NODE: usize = 8;
const CLASS: &str = "h100-80gb";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-11-21T00:00:00Z.
const NOW: i64 = 1_795_219_200_000;
const ORGS: usize = 40;

fn centre() -> Cluster {
    centre_of(NODES)
}

/// An idle centre of `nodes` nodes of [`PER_NODE`] devices.
fn centre_of(nodes: usize) -> Cluster {
    let mut c = Cluster::new();
    for n in 0..nodes {
        let node = format!("node-{n:05}");
        c.upsert_node(&node, "busan-ifc", true);
        for d in 0..PER_NODE {
            c.upsert_device(&format!("GPU-{n:05}-{d}"), &node, CLASS, true);
        }
    }
    c
}

/// Random bookings over the next 30 days, and running work filling half the centre now.
fn busy_centre(rng: &mut StdRng) -> Cluster {
    let mut c = centre();
    for i in 0..10_000 {
        let start = NOW + rng.random_range(1..30 * 24) * HOUR;
        let req = Request {
            class: CLASS.into(),
            count: rng.random_range(1..=8),
            site: None,
            start,
            end: start + rng.random_range(1..=12) * HOUR,
        };
        if let Ok(d) = c.find_devices(&req) {
            c.add_claim(&format!("res-{i}"), &d, req.start, req.end)
                .expect("free");
        }
    }
    for i in 0..NODES / 2 {
        let req = Request {
            class: CLASS.into(),
            count: 8,
            site: None,
            start: NOW,
            end: NOW + rng.random_range(1..=24) * HOUR,
        };
        if let Ok(d) = c.find_devices(&req) {
            c.add_claim(&format!("run-{i}"), &d, req.start, req.end)
                .expect("free");
        }
    }
    c
}

fn jobs(rng: &mut StdRng, n: usize) -> Vec<QueuedJob<'static>> {
    (0..n)
        .map(|i| {
            let (count, nodes) = match rng.random_range(0..100) {
                0..=39 => (1, 1),
                40..=64 => (2, 1),
                65..=84 => (4, 1),
                85..=96 => (8, 1),
                97..=98 => (8, 2),
                _ => (8, 4),
            };
            QueuedJob {
                id: format!("job-{i:06}").into(),
                org: format!("org-{:02}", rng.random_range(0..ORGS)).into(),
                class: CLASS.into(),
                count,
                nodes,
                runtime_ms: rng.random_range(1..=24) * HOUR,
                priority: rng.random_range(-2..=2),
                submitted_ms: NOW - rng.random_range(0..7 * DAY),
                preemptible: rng.random_bool(0.1),
                rate: 1.0,
                project: None,
            }
        })
        .collect()
}

fn accounts() -> Accounts {
    let mut a = Accounts::new();
    for o in (0..ORGS).step_by(4) {
        a.set_budget(
            &format!("org-{o:02}"),
            CLASS,
            Budget {
                allowance_ms: Some(2_000 * HOUR),
                max_devices: Some(64),
                ..Budget::default()
            },
        );
    }
    a
}

struct Outcome {
    elapsed: Duration,
    placed: usize,
    waiting: usize,
}

fn pass(c: &mut Cluster, a: &mut Accounts, jobs: &[QueuedJob], backfill: Backfill) -> Outcome {
    let weights: BTreeMap<String, f64> = (0..ORGS)
        .map(|o| (format!("org-{o:02}"), if o % 5 == 0 { 2.0 } else { 1.0 }))
        .collect();
    let mut usage = Usage::new(NOW, 7 * DAY);
    for o in 0..ORGS {
        usage.add(
            &format!("org-{o:02}"),
            (o as f64) * 100.0 * HOUR as f64,
            NOW - DAY,
        );
    }
    let guests: Vec<Guest> = Vec::new();
    let idle: Vec<IdleBooked> = Vec::new();
    let policy = PlanPolicy {
        backfill,
        ..PlanPolicy::default()
    };
    let input = PlanInput {
        now: NOW,
        jobs,
        weights: &weights,
        usage: &usage,
        guests: &guests,
        idle_booked: &idle,
        policy: &policy,
    };
    let t = Instant::now();
    let d = plan(c, a, &input);
    let elapsed = t.elapsed();
    let placed = d.iter().filter(|d| matches!(d, Decision::Place(_))).count();
    Outcome {
        elapsed,
        placed,
        waiting: d.len() - placed,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let mut rng = StdRng::seed_from_u64(42);
    let busy = busy_centre(&mut rng);
    println!("| backfill | pending jobs | placed | waiting | pass ms (min of 3) | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for backfill in [Backfill::Easy, Backfill::Conservative] {
        for n in [10_000usize, 50_000] {
            let queue = jobs(&mut StdRng::seed_from_u64(n as u64), n);
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..3 {
                let mut c = busy.clone();
                let mut a = accounts();
                let o = pass(&mut c, &mut a, &queue, backfill);
                times.push(o.elapsed);
                last = Some(o);
            }
            let o = last.expect("ran");
            let min = times.iter().min().copied().unwrap_or_default();
            let max = times.iter().max().copied().unwrap_or_default();
            println!(
                "| {} | {n} | {} | {} | {:.1} | {:.1} |",
                backfill.as_str(),
                o.placed,
                o.waiting,
                ms(min),
                ms(max)
            );
        }
    }

    // Each pass that plans copies the cluster under the live lock, where requests wait
    // for it: its cost is a stall of the API.
    println!();
    println!("| the cluster a pass copies | devices | copy ms (min of 5) | max ms |");
    println!("|---|---:|---:|---:|");
    for nodes in [NODES, 10 * NODES] {
        let c = centre_of(nodes);
        let times: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                let copy = std::hint::black_box(c.clone());
                let took = started.elapsed();
                drop(copy);
                took
            })
            .collect();
        let min = times.iter().min().copied().unwrap_or_default();
        let max = times.iter().max().copied().unwrap_or_default();
        println!(
            "| {nodes} x {PER_NODE} | {} | {:.2} | {:.2} |",
            nodes * PER_NODE,
            ms(min),
            ms(max)
        );
    }

    println!();
    println!(
        "| placement onto an empty 1,000 x 8 centre (one pass) | placed | ms | placements/s |"
    );
    println!("|---|---:|---:|---:|");
    for (label, count) in [("1-device jobs", 1u32), ("8-device jobs", 8)] {
        let n = NODES * PER_NODE / count as usize;
        let queue: Vec<QueuedJob> = (0..n)
            .map(|i| QueuedJob {
                id: format!("job-{i:06}").into(),
                org: format!("org-{:02}", i % ORGS).into(),
                class: CLASS.into(),
                count,
                nodes: 1,
                runtime_ms: 4 * HOUR,
                priority: 0,
                submitted_ms: NOW - i as i64,
                preemptible: false,
                rate: 1.0,
                project: None,
            })
            .collect();
        let mut c = centre();
        let o = pass(&mut c, &mut Accounts::new(), &queue, Backfill::Easy);
        println!(
            "| {label} | {} | {:.1} | {:.0} |",
            o.placed,
            ms(o.elapsed),
            o.placed as f64 / o.elapsed.as_secs_f64()
        );
    }
}
