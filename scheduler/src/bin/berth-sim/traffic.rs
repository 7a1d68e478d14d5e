//! The synthetic traffic: orgs, queued jobs and bookings, deterministic for a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::*;

/// An organisation of the simulated centre.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct OrgSpec {
    pub(crate) name: String,
    pub(crate) weight: f64,
    /// Heavy orgs submit five times a light org's volume, in larger bursts.
    pub(crate) heavy: bool,
}

/// A queued job as submitted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobSpec {
    pub(crate) org: usize,
    pub(crate) count: u32,
    pub(crate) nodes: u32,
    pub(crate) max_ms: i64,
    /// How long it really runs (at most `max_ms`).
    pub(crate) run_ms: i64,
    pub(crate) preemptible: bool,
    pub(crate) priority: i32,
}

impl JobSpec {
    pub(crate) fn devices(&self) -> u32 {
        self.count * self.nodes
    }
}

/// A booking request, made at its arrival time for a window ahead.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BookingSpec {
    pub(crate) org: usize,
    pub(crate) count: u32,
    pub(crate) start: i64,
    pub(crate) end: i64,
    /// Whether its holder uses it (busy all along) or never does.
    pub(crate) used: bool,
}

/// Something that arrives at an instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arrival {
    Job(JobSpec),
    Booking(BookingSpec),
}

/// What the generator needs to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TrafficConfig {
    pub(crate) orgs: u32,
    pub(crate) devices_total: u32,
    pub(crate) days: u32,
    pub(crate) load: f64,
    pub(crate) seed: u64,
}

/// A month of traffic: the orgs and every arrival in time order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Traffic {
    pub(crate) orgs: Vec<OrgSpec>,
    pub(crate) arrivals: Vec<(i64, Arrival)>,
}

/// The orgs: every 4th (from the 2nd) has weight 2; every 7th (from the 2nd) is heavy.
pub(crate) fn make_orgs(n: u32) -> Vec<OrgSpec> {
    (0..n)
        .map(|i| OrgSpec {
            name: format!("org-{i:02}"),
            weight: if i % 4 == 1 { 2.0 } else { 1.0 },
            heavy: i % 7 == 1,
        })
        .collect()
}

/// Mean devices of a job shape drawn from [`SHAPES`].
pub(crate) fn mean_job_devices() -> f64 {
    let total: u32 = SHAPES.iter().map(|s| s.2).sum();
    SHAPES
        .iter()
        .map(|&(c, n, p)| f64::from(c * n * p))
        .sum::<f64>()
        / f64::from(total)
}

/// Mean real device-hours of one job: max runtime uniform in 1..=24 h, real runtime a
/// fraction of it (see [`run_fraction`]).
pub(crate) fn mean_job_device_hours() -> f64 {
    let mean_fraction = TIMEOUT_SHARE + (1.0 - TIMEOUT_SHARE) * 0.55;
    mean_job_devices() * 12.5 * mean_fraction
}

/// The fraction of its max runtime a job really runs.
pub(crate) fn run_fraction(rng: &mut StdRng) -> f64 {
    if rng.random_bool(TIMEOUT_SHARE) {
        1.0
    } else {
        rng.random_range(0.1..1.0)
    }
}

/// Exponential gap (ms) of a Poisson process of `per_ms` events per ms.
pub(crate) fn exp_gap(rng: &mut StdRng, per_ms: f64) -> i64 {
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    (-u.ln() / per_ms).ceil() as i64
}

/// One burst of jobs of the same shape and max runtime (a sweep).
pub(crate) fn job_burst(rng: &mut StdRng, org: usize, heavy: bool) -> Vec<JobSpec> {
    let total: u32 = SHAPES.iter().map(|s| s.2).sum();
    let mut pick = rng.random_range(0..total);
    let &(count, nodes, _) = SHAPES
        .iter()
        .find(|s| {
            let hit = pick < s.2;
            pick = pick.saturating_sub(s.2);
            hit
        })
        .unwrap_or(&SHAPES[0]);
    let max_ms = rng.random_range(1..=24) * HOUR;
    let size = if heavy {
        rng.random_range(1..=20)
    } else {
        rng.random_range(1..=3)
    };
    let preemptible = nodes == 1 && rng.random_bool(PREEMPTIBLE_SHARE);
    let priority = i32::from(rng.random_bool(0.1));
    (0..size)
        .map(|_| JobSpec {
            org,
            count,
            nodes,
            max_ms,
            run_ms: ((max_ms as f64 * run_fraction(rng)) as i64).max(MINUTE),
            preemptible,
            priority,
        })
        .collect()
}

/// One booking request made at `at`: 1–16 devices, 2–48 h, starting 1 h to 7 days ahead.
pub(crate) fn booking(rng: &mut StdRng, org: usize, at: i64) -> BookingSpec {
    let count = BOOKING_SIZES[rng.random_range(0..BOOKING_SIZES.len())];
    let lead = rng.random_range(1..=7 * 24) * HOUR;
    let start = (at + lead).div_euclid(HOUR) * HOUR + HOUR;
    BookingSpec {
        org,
        count,
        start,
        end: start + rng.random_range(2..=48) * HOUR,
        used: !rng.random_bool(IDLE_BOOKING_SHARE),
    }
}

/// Generates the month: per org, Poisson bursts of jobs and Poisson booking requests sized so
/// that the offered device-hours are `load` × capacity, heavy orgs five times a light one.
pub(crate) fn generate(cfg: &TrafficConfig) -> Traffic {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let orgs = make_orgs(cfg.orgs);
    let span = i64::from(cfg.days) * DAY;
    let capacity_dh = f64::from(cfg.devices_total) * f64::from(cfg.days) * 24.0;
    let demand_units: f64 = orgs.iter().map(|o| if o.heavy { 5.0 } else { 1.0 }).sum();
    let mean_booking_dh =
        BOOKING_SIZES.iter().sum::<u32>() as f64 / BOOKING_SIZES.len() as f64 * 25.0;
    let mut arrivals = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        let units = if org.heavy { 5.0 } else { 1.0 };
        let offered = cfg.load * capacity_dh * units / demand_units.max(1.0);
        let burst = if org.heavy { 10.5 } else { 2.0 };
        let job_rate =
            offered * (1.0 - BOOKING_SHARE) / (mean_job_device_hours() * burst) / span as f64;
        let mut t = START;
        loop {
            t += exp_gap(&mut rng, job_rate);
            if t >= START + span {
                break;
            }
            for j in job_burst(&mut rng, i, org.heavy) {
                arrivals.push((t, Arrival::Job(j)));
            }
        }
        let booking_rate = offered * BOOKING_SHARE / mean_booking_dh / span as f64;
        let mut t = START;
        loop {
            t += exp_gap(&mut rng, booking_rate);
            if t >= START + span {
                break;
            }
            arrivals.push((t, Arrival::Booking(booking(&mut rng, i, t))));
        }
    }
    // Stable: equal instants keep their generation order.
    arrivals.sort_by_key(|a| a.0);
    Traffic { orgs, arrivals }
}
