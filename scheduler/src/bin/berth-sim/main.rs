//! `berth-sim`: replays a synthetic month of SME traffic through the pure scheduling core
//! ([`berth_scheduler::core`]) in simulated time and reports utilisation, waits by job size,
//! fairness between orgs, idle reclaim, preemptions and what the planner cost.
//!
//! Run with, for example:
//!
//! ```sh
//! cargo run --release -p berth-scheduler --bin berth-sim -- --backfill easy --seed 1
//! ```
//!
//! The loop advances one simulated minute at a time. Each minute it processes the events due
//! (job ends, booking starts and ends), the arrivals (queued jobs and booking requests),
//! samples the active bookings for idle reclaim, and runs a queue pass (`core::plan`) when
//! something changed since the last pass, and at least every ten minutes. Everything is
//! deterministic for a seed; only the wall-clock timings vary between runs.
//!
//! The traffic: orgs of weight 1 or 2, a few heavy ones submitting far more than their share
//! in bursts (sweeps), many light ones; jobs of 1, 2, 4 or 8 devices on one node and some of
//! 2 or 4 whole nodes; max runtimes of 1–24 h, most ending early; a share preemptible; and
//! bookings made hours to days ahead, some of which their holder never uses.

mod report;
mod sim;
mod traffic;

use std::time::Instant;

use anyhow::{Context, bail};
use berth_scheduler::core::{Backfill, IdlePolicy, PlanPolicy};
use clap::{Parser, ValueEnum};

use report::*;
use sim::*;
use traffic::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// The one device class of the simulated centre.
const CLASS: &str = "h100-80gb";
/// 2026-12-01T00:00:00Z: the simulated month starts on a budget period boundary.
const START: i64 = 1_796_083_200_000;
/// Share of each org's offered device-hours that comes as bookings (the rest is queued).
const BOOKING_SHARE: f64 = 0.15;
/// Share of bookings whose holder never uses them.
const IDLE_BOOKING_SHARE: f64 = 0.2;
/// Share of single-node jobs submitted as preemptible.
const PREEMPTIBLE_SHARE: f64 = 0.15;
/// Share of jobs that run to their max runtime (the rest end at a random fraction of it).
const TIMEOUT_SHARE: f64 = 0.15;
/// Job shapes `(devices per node, nodes, percent of jobs)`.
const SHAPES: [(u32, u32, u32); 6] = [
    (1, 1, 30),
    (2, 1, 20),
    (4, 1, 20),
    (8, 1, 20),
    (8, 2, 6),
    (8, 4, 4),
];
/// Booking sizes (devices), equally likely; 16 spreads over two nodes.
const BOOKING_SIZES: [u32; 6] = [1, 2, 4, 8, 8, 16];
/// A pass runs at least this often even when nothing changed (guests' protection expires).
const MAX_PASS_GAP_MIN: i64 = 10;
/// Size buckets of the wait report.
const BUCKETS: [&str; 5] = ["1", "2", "4", "8", "16+"];

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "berth-sim",
    about = "Replay a synthetic month of SME traffic through the Berth scheduling core"
)]
struct Args {
    /// Nodes in the simulated centre.
    #[arg(long, default_value_t = 1000)]
    nodes: u32,
    /// Devices per node (one class).
    #[arg(long, default_value_t = 8)]
    devices: u32,
    /// Simulated days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Seed of the traffic generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Organisations.
    #[arg(long, default_value_t = 20)]
    orgs: u32,
    /// Offered load as a fraction of capacity (device-hours submitted / available).
    #[arg(long, default_value_t = 1.0)]
    load: f64,
    /// Backfill mode of the queue pass.
    #[arg(long, value_enum, default_value_t = BackfillArg::Easy)]
    backfill: BackfillArg,
    /// Planned starts per class under conservative backfill.
    #[arg(long, default_value_t = 16)]
    reserve_depth: u32,
    /// Minutes a preemptible job runs before a waiting job may preempt it.
    #[arg(long, default_value_t = 10)]
    min_runtime: u32,
    /// Fair-share half-life of past usage, in hours (0: forget at once).
    #[arg(long, default_value_t = 168.0)]
    half_life: f64,
    /// Reclaim bookings whose devices stay idle (warn after 30 min, reclaim 30 min later).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    idle_reclaim: OnOff,
    /// Minutes between queue passes (a pass runs on the first tick after a change).
    #[arg(long, default_value_t = 1)]
    pass_every: u32,
    /// Check every simulated minute that no device is held by two runs or by a run and a
    /// used booking at once (slower); exits with an error naming the device if one is.
    #[arg(long)]
    check: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// `--backfill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackfillArg {
    None,
    Easy,
    Conservative,
}

/// An on/off switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Checks the flags and turns them into a run's knobs.
fn config(args: &Args) -> anyhow::Result<SimConfig> {
    if args.nodes == 0 || args.devices == 0 || args.days == 0 || args.orgs == 0 {
        bail!("--nodes, --devices, --days and --orgs must be at least 1");
    }
    if args.pass_every == 0 {
        bail!("--pass-every must be at least 1 minute");
    }
    if !(args.half_life.is_finite() && args.half_life >= 0.0) {
        bail!("--half-life must be a number of hours, 0 or more");
    }
    if !(args.load.is_finite() && args.load > 0.0 && args.load <= 10.0) {
        bail!("--load must be in (0, 10]");
    }
    args.nodes
        .checked_mul(args.devices)
        .context("--nodes x --devices is too large")?;
    let backfill = match args.backfill {
        BackfillArg::None => Backfill::None,
        BackfillArg::Easy => Backfill::Easy,
        BackfillArg::Conservative => Backfill::Conservative,
    };
    let idle = IdlePolicy {
        threshold_pct: 5.0,
        warn_after_ms: if args.idle_reclaim == OnOff::On {
            30 * MINUTE
        } else {
            0
        },
        reclaim_after_ms: 30 * MINUTE,
    };
    Ok(SimConfig {
        nodes: args.nodes,
        devices: args.devices,
        days: args.days,
        plan: PlanPolicy {
            backfill,
            reserve_depth: args.reserve_depth,
            min_runtime_ms: i64::from(args.min_runtime) * MINUTE,
            ..PlanPolicy::default()
        },
        half_life_ms: (args.half_life * HOUR as f64).round() as i64,
        idle,
        pass_every: i64::from(args.pass_every),
        check: args.check,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = config(&args)?;
    let t0 = Instant::now();
    let traffic = generate(&TrafficConfig {
        orgs: args.orgs,
        devices_total: args.nodes * args.devices,
        days: args.days,
        load: args.load,
        seed: args.seed,
    });
    let mut sim = Sim::new(cfg, traffic.orgs);
    sim.run(&traffic.arrivals).map_err(anyhow::Error::msg)?;
    sim.finish();
    let report = sim.report(&args, t0.elapsed().as_secs_f64());
    match args.output {
        Output::Table => print_table(&report),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> TrafficConfig {
        TrafficConfig {
            orgs: 6,
            devices_total: 64,
            days: 3,
            load: 1.0,
            seed: 7,
        }
    }

    #[test]
    fn traffic_is_deterministic_for_a_seed() {
        let a = generate(&small());
        assert_eq!(a, generate(&small()));
        assert!(!a.arrivals.is_empty());
        assert!(
            a.arrivals.windows(2).all(|w| w[0].0 <= w[1].0),
            "in time order"
        );
        let other = generate(&TrafficConfig { seed: 8, ..small() });
        assert_ne!(a.arrivals, other.arrivals);
    }

    #[test]
    fn offered_load_is_near_the_target() {
        let cfg = TrafficConfig {
            orgs: 20,
            devices_total: 800,
            days: 30,
            load: 1.0,
            seed: 3,
        };
        let t = generate(&cfg);
        let offered: f64 = t
            .arrivals
            .iter()
            .map(|(_, a)| match a {
                Arrival::Job(j) => f64::from(j.devices()) * j.run_ms as f64,
                Arrival::Booking(b) => f64::from(b.count) * (b.end - b.start) as f64,
            })
            .sum::<f64>()
            / HOUR as f64;
        let capacity = 800.0 * 30.0 * 24.0;
        assert!(
            (0.8..1.2).contains(&(offered / capacity)),
            "offered {offered} of {capacity}"
        );
    }

    #[test]
    fn jobs_respect_their_shapes_and_limits() {
        let t = generate(&small());
        for (_, a) in &t.arrivals {
            if let Arrival::Job(j) = a {
                assert!(j.run_ms <= j.max_ms && j.run_ms >= MINUTE);
                assert!((HOUR..=24 * HOUR).contains(&j.max_ms));
                assert!(SHAPES.iter().any(|s| (s.0, s.1) == (j.count, j.nodes)));
                assert!(!j.preemptible || j.nodes == 1);
            }
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 95.0), 95.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
        assert_eq!(percentile(&mut [3.0], 99.0), 3.0);
    }

    #[test]
    fn fair_targets_fill_small_demands_first() {
        // 90 to share; a small demand is met, the rest split by weight.
        let t = fair_targets(&[10.0, 100.0, 100.0], &[1.0, 1.0, 2.0], 90.0);
        assert!((t[0] - 10.0).abs() < 1e-9);
        assert!((t[1] - 80.0 / 3.0).abs() < 1e-9);
        assert!((t[2] - 160.0 / 3.0).abs() < 1e-9);
        assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn buckets_and_ids() {
        assert_eq!([1, 2, 4, 8, 16, 32].map(bucket), [0, 1, 2, 3, 4, 4]);
        assert_eq!(job_index(&job_id(42)), Some(42));
        assert_eq!(job_index("b1"), None);
    }

    #[test]
    fn a_small_run_keeps_the_books_straight() {
        let args = Args::parse_from([
            "berth-sim",
            "--nodes",
            "8",
            "--days",
            "2",
            "--orgs",
            "5",
            "--check",
        ]);
        let cfg = config(&args).expect("valid flags");
        let traffic = generate(&TrafficConfig {
            orgs: 5,
            devices_total: 64,
            days: 2,
            load: 1.0,
            seed: 1,
        });
        let mut sim = Sim::new(cfg, traffic.orgs);
        sim.run(&traffic.arrivals)
            .expect("no device is ever held twice");
        assert!(sim.cluster.check_invariants().is_ok());
        sim.finish();
        let r = sim.report(&args, 0.0);
        assert!(
            r.utilisation > 0.0 && r.utilisation <= 1.0 + 1e-9,
            "{}",
            r.utilisation
        );
        assert!(r.jobs_completed > 0);
        assert!(sim.holding.iter().all(|&h| h == 0), "everything released");
    }

    #[test]
    fn bad_flags_are_refused() {
        for bad in [
            "--nodes=0",
            "--half-life=-1",
            "--pass-every=0",
            "--load=nan",
        ] {
            let args = Args::try_parse_from(["berth-sim", bad]).expect("parses");
            assert!(config(&args).is_err(), "{bad}");
        }
        assert!(Args::try_parse_from(["berth-sim", "--backfill", "sometimes"]).is_err());
    }
}
