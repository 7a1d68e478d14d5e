//! Admission benchmark of the scheduling core (plain `std::time::Instant`, no harness).
//!
//! Run with `cargo bench -p berth-scheduler --bench admission`.
//!
//! - A centre of 1,000 nodes x 8 devices of one class across 2 sites, with 10,000 and then 100,000
//!   random existing bookings (1-8 devices, 1-12 h, starting in the next 30 days; seeded RNG): the
//!   latency of 20,000 admission decisions (`find_devices` for random windows of 1-12 h and 1-8
//!   devices over the next 30 days, a quarter of them restricted to one site), plus a few
//!   `earliest_start` and `availability` calls.
//! - Placements per second onto an empty 1,000 x 8 centre: `find_devices` + `add_claim` for
//!   1-device jobs until the centre is full, then the same for 8-device jobs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use berth_scheduler::core::{Cluster, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 1_000;
const PER_NODE: usize = 8;
const CLASS: &str = "h100-80gb";
const SITES: [&str; 2] = ["busan-ifc", "gwangju-ai"];
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const DECISIONS: usize = 20_000;

fn centre() -> Cluster {
    let mut c = Cluster::new();
    for n in 0..NODES {
        let node = format!("node-{n:04}");
        c.upsert_node(&node, SITES[n % 2], true);
        for d in 0..PER_NODE {
            c.upsert_device(&format!("GPU-{n:04}-{d}"), &node, CLASS, true);
        }
    }
    c
}

fn random_request(rng: &mut StdRng, site_share: f64) -> Request {
    let start = T0 + rng.random_range(0..30 * DAY / (15 * MINUTE)) * 15 * MINUTE;
    let len = rng.random_range(1..=12) * HOUR;
    let site = rng
        .random_bool(site_share)
        .then(|| SITES[rng.random_range(0..2)].to_owned());
    Request {
        class: CLASS.into(),
        count: rng.random_range(1..=8),
        site,
        start,
        end: start + len,
    }
}

/// Adds `n` random bookings; returns how many could be placed.
fn book(c: &mut Cluster, rng: &mut StdRng, n: usize) -> usize {
    let mut placed = 0;
    for i in 0..n {
        let req = random_request(rng, 0.0);
        if let Ok(devs) = c.find_devices(&req) {
            c.add_claim(&format!("res-{i}"), &devs, req.start, req.end)
                .expect("chosen devices are free");
            placed += 1;
        }
    }
    placed
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// Percentiles of per-call latencies, in µs.
fn stats(mut ns: Vec<u64>) -> Stats {
    ns.sort_unstable();
    let us = |v: u64| v as f64 / 1_000.0;
    let at = |q: f64| us(ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)]);
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        max: us(*ns.last().unwrap_or(&0)),
        mean: us(ns.iter().sum::<u64>()) / ns.len().max(1) as f64,
    }
}

fn time_calls(n: usize, mut f: impl FnMut() -> bool) -> (Stats, usize) {
    let mut ns = Vec::with_capacity(n);
    let mut ok = 0;
    for _ in 0..n {
        let t = Instant::now();
        ok += usize::from(black_box(f()));
        ns.push(t.elapsed().as_nanos() as u64);
    }
    (stats(ns), ok)
}

fn row(what: &str, n: usize, ok: usize, s: &Stats) {
    println!(
        "| {what:<44} | {n:>6} | {ok:>6} | {:>8.1} | {:>8.1} | {:>8.1} | {:>8.1} |",
        s.p50, s.p99, s.max, s.mean
    );
}

fn latency(bookings: usize) {
    let mut rng = StdRng::seed_from_u64(42);
    let mut c = centre();
    let t = Instant::now();
    let placed = book(&mut c, &mut rng, bookings);
    let setup = t.elapsed();
    let claims = c.claims().len();
    eprintln!(
        "{bookings} bookings attempted, {placed} placed ({claims} device claims) in {:.2?}",
        setup
    );
    let mut rng = StdRng::seed_from_u64(7);
    let (s, ok) = time_calls(DECISIONS, || {
        c.find_devices(&random_request(&mut rng, 0.25)).is_ok()
    });
    row(
        &format!("find_devices, {placed} bookings"),
        DECISIONS,
        ok,
        &s,
    );

    let n = 200;
    let (s, ok) = time_calls(n, || {
        let mut r = random_request(&mut rng, 0.0);
        r.count = rng.random_range(1..=64);
        c.earliest_start(&r, T0 + 60 * DAY).is_some()
    });
    row(
        &format!("earliest_start (1-64 dev), {placed} bookings"),
        n,
        ok,
        &s,
    );

    let n = 50;
    let (s, ok) = time_calls(n, || {
        c.availability(CLASS, None, T0, T0 + 30 * DAY, HOUR).is_ok()
    });
    row(
        &format!("availability 30 d x 1 h, {placed} bookings"),
        n,
        ok,
        &s,
    );
}

/// Fills an empty centre with `count`-device one-hour jobs; returns (placements, elapsed).
fn fill(count: u32) -> (usize, Duration) {
    let mut c = centre();
    let req = Request {
        class: CLASS.into(),
        count,
        site: None,
        start: T0,
        end: T0 + HOUR,
    };
    let mut placed = 0;
    let t = Instant::now();
    while let Ok(devs) = c.find_devices(&req) {
        c.add_claim(&format!("job-{placed}"), &devs, req.start, req.end)
            .expect("free");
        placed += 1;
    }
    (placed, t.elapsed())
}

fn main() {
    println!("centre: {NODES} nodes x {PER_NODE} devices of one class, 2 sites; latencies in µs");
    println!();
    println!(
        "| {:<44} | {:>6} | {:>6} | {:>8} | {:>8} | {:>8} | {:>8} |",
        "operation", "calls", "ok", "p50", "p99", "max", "mean"
    );
    println!(
        "|{:-<46}|{:-<8}|{:-<8}|{:-<10}|{:-<10}|{:-<10}|{:-<10}|",
        "", "", "", "", "", "", ""
    );
    latency(10_000);
    latency(100_000);
    println!();
    println!(
        "| {:<44} | {:>10} | {:>10} | {:>14} |",
        "placement onto an empty centre", "placed", "ms", "placements/s"
    );
    println!("|{:-<46}|{:-<12}|{:-<12}|{:-<16}|", "", "", "", "");
    for count in [1, 8] {
        let (placed, took) = fill(count);
        println!(
            "| {:<44} | {placed:>10} | {:>10.1} | {:>14.0} |",
            format!("{count}-device jobs until full"),
            took.as_secs_f64() * 1e3,
            placed as f64 / took.as_secs_f64()
        );
    }
}
