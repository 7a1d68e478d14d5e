//! What a finished run reports: utilisation, waits by size, fairness and timings.

use serde::Serialize;

use super::*;
use crate::sim::*;

/// The nearest-rank percentile `p` (0–100) of `values` (sorted here); 0 when empty.
pub(crate) fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// The mean of `values`; 0 when empty.
pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The wait-report bucket of a job of `devices` devices.
pub(crate) fn bucket(devices: u32) -> usize {
    match devices {
        0 | 1 => 0,
        2 => 1,
        3 | 4 => 2,
        5..=8 => 3,
        _ => 4,
    }
}

/// Weighted max-min fair targets: each org gets `min(demand, λ·weight)`, with λ such that the
/// targets add up to `total` (or every demand is met).
pub(crate) fn fair_targets(demand: &[f64], weight: &[f64], total: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..demand.len()).collect();
    order.sort_by(|&a, &b| (demand[a] / weight[a]).total_cmp(&(demand[b] / weight[b])));
    let mut out = vec![0.0; demand.len()];
    let mut left = total;
    let mut w_left: f64 = weight.iter().sum();
    for i in order {
        let fair = if w_left > 0.0 {
            left * weight[i] / w_left
        } else {
            0.0
        };
        out[i] = demand[i].min(fair);
        left -= out[i];
        w_left -= weight[i];
    }
    out
}

/// Jain's fairness index of `x`: 1 when all equal, 1/n when one takes everything.
pub(crate) fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if sq == 0.0 {
        1.0
    } else {
        sum * sum / (x.len() as f64 * sq)
    }
}

/// Device-ms to device-hours.
pub(crate) fn dh(v: i128) -> f64 {
    v as f64 / HOUR as f64
}

/// Waits of one job size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WaitRow {
    pub(crate) size: String,
    pub(crate) jobs: usize,
    pub(crate) never_started: usize,
    pub(crate) mean_h: f64,
    pub(crate) p95_h: f64,
}

/// One org's outcome.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OrgRow {
    pub(crate) org: String,
    pub(crate) weight: f64,
    pub(crate) heavy: bool,
    /// Device-hours its queued jobs asked for (real runtimes).
    pub(crate) demand_dh: f64,
    /// Device-hours its queued jobs ran.
    pub(crate) got_dh: f64,
    /// Its share of all queued device-hours run.
    pub(crate) share: f64,
    /// Its weight's share among orgs with demand.
    pub(crate) entitlement: f64,
    /// Its weighted max-min fair target given every org's demand.
    pub(crate) target_dh: f64,
    pub(crate) mean_wait_h: f64,
}

/// Fairness between orgs.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fairness {
    /// Jain's index of got / fair target over orgs with demand.
    pub(crate) jain: f64,
    /// Smallest got / fair target.
    pub(crate) min_ratio: f64,
    /// max/min of share / entitlement among orgs whose demand exceeds their entitlement.
    pub(crate) contended_max_min: f64,
    pub(crate) heavy_mean_wait_h: f64,
    pub(crate) light_mean_wait_h: f64,
    pub(crate) orgs: Vec<OrgRow>,
}

/// The planner's cost.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Timing {
    pub(crate) wall_s: f64,
    pub(crate) passes: u64,
    pub(crate) plan_total_s: f64,
    pub(crate) plan_mean_ms: f64,
    pub(crate) plan_p99_ms: f64,
    pub(crate) plan_max_ms: f64,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) nodes: u32,
    pub(crate) devices: u32,
    pub(crate) days: u32,
    pub(crate) seed: u64,
    pub(crate) orgs: u32,
    pub(crate) load: f64,
    pub(crate) backfill: String,
    pub(crate) reserve_depth: u32,
    pub(crate) min_runtime_min: i64,
    pub(crate) half_life_h: f64,
    pub(crate) idle_reclaim: bool,
    pub(crate) pass_every_min: i64,
    pub(crate) capacity_dh: f64,
    pub(crate) utilisation: f64,
    pub(crate) job_used_dh: f64,
    pub(crate) booked_used_dh: f64,
    pub(crate) booked_idle_dh: f64,
    pub(crate) preemptible_started_on_idle_dh: f64,
    pub(crate) reclaimed_dh: f64,
    pub(crate) reclaims: u64,
    pub(crate) idle_warnings: u64,
    pub(crate) jobs_submitted: usize,
    pub(crate) jobs_completed: u64,
    pub(crate) jobs_pending_at_end: usize,
    pub(crate) bookings_made: u64,
    pub(crate) bookings_refused: u64,
    pub(crate) preemptions_for_jobs: u64,
    pub(crate) preemptions_by_booking_start: u64,
    pub(crate) preempted_lost_dh: f64,
    pub(crate) preempted_within_15_min: u64,
    pub(crate) limit_waits: u64,
    /// Waits of every job by size.
    pub(crate) waits: Vec<WaitRow>,
    /// Waits of regular (not preemptible) jobs by size: what backfill is for.
    pub(crate) waits_regular: Vec<WaitRow>,
    pub(crate) fairness: Fairness,
    pub(crate) timing: Timing,
}

impl Sim {
    /// Wait of job `i`: until its first start, or until the end for one never started.
    pub(crate) fn wait_h(&self, i: usize) -> f64 {
        let j = &self.jobs[i];
        (j.first_start.unwrap_or(self.end_ms()) - j.submitted) as f64 / HOUR as f64
    }

    /// Waits by size of the jobs `keep` selects.
    pub(crate) fn wait_rows(&self, keep: impl Fn(&JobSpec) -> bool) -> Vec<WaitRow> {
        let mut waits: Vec<Vec<f64>> = vec![Vec::new(); BUCKETS.len()];
        let mut never = vec![0; BUCKETS.len()];
        for (i, j) in self.jobs.iter().enumerate() {
            if !keep(&j.spec) {
                continue;
            }
            let b = bucket(j.spec.devices());
            waits[b].push(self.wait_h(i));
            never[b] += usize::from(j.first_start.is_none());
        }
        BUCKETS
            .iter()
            .zip(waits.iter_mut().zip(never))
            .map(|(size, (w, never_started))| WaitRow {
                size: (*size).to_owned(),
                jobs: w.len(),
                never_started,
                mean_h: mean(w),
                p95_h: percentile(w, 95.0),
            })
            .collect()
    }

    pub(crate) fn fairness(&self, got: &[f64]) -> Fairness {
        let n = self.orgs.len();
        let mut demand = vec![0.0; n];
        let mut waits: Vec<Vec<f64>> = vec![Vec::new(); n];
        for (i, j) in self.jobs.iter().enumerate() {
            demand[j.spec.org] += f64::from(j.spec.devices()) * j.spec.run_ms as f64 / HOUR as f64;
            waits[j.spec.org].push(self.wait_h(i));
        }
        let with: Vec<usize> = (0..n).filter(|&o| demand[o] > 0.0).collect();
        let w: Vec<f64> = with.iter().map(|&o| self.orgs[o].weight).collect();
        let d: Vec<f64> = with.iter().map(|&o| demand[o]).collect();
        let total_got: f64 = got.iter().sum();
        let targets = fair_targets(&d, &w, total_got);
        let w_sum: f64 = w.iter().sum();
        let mut rows = Vec::new();
        let mut ratios = Vec::new();
        let mut contended = Vec::new();
        for (k, &o) in with.iter().enumerate() {
            let share = if total_got > 0.0 {
                got[o] / total_got
            } else {
                0.0
            };
            let entitlement = w[k] / w_sum;
            if targets[k] > 0.0 {
                ratios.push(got[o] / targets[k]);
            }
            if demand[o] / d.iter().sum::<f64>() > entitlement {
                contended.push(share / entitlement);
            }
            rows.push(OrgRow {
                org: self.orgs[o].name.clone(),
                weight: w[k],
                heavy: self.orgs[o].heavy,
                demand_dh: demand[o],
                got_dh: got[o],
                share,
                entitlement,
                target_dh: targets[k],
                mean_wait_h: mean(&waits[o]),
            });
        }
        let class_wait = |heavy: bool| {
            let all: Vec<f64> = (0..n)
                .filter(|&o| self.orgs[o].heavy == heavy)
                .flat_map(|o| waits[o].iter().copied())
                .collect();
            mean(&all)
        };
        let max = contended.iter().copied().fold(f64::MIN, f64::max);
        let min = contended.iter().copied().fold(f64::MAX, f64::min);
        Fairness {
            jain: jain(&ratios),
            min_ratio: ratios.iter().copied().fold(f64::INFINITY, f64::min),
            contended_max_min: if contended.is_empty() || min <= 0.0 {
                0.0
            } else {
                max / min
            },
            heavy_mean_wait_h: class_wait(true),
            light_mean_wait_h: class_wait(false),
            orgs: rows,
        }
    }
}

impl Sim {
    /// The report of a finished run.
    pub(crate) fn report(&mut self, args: &Args, wall_s: f64) -> Report {
        let capacity =
            i128::from(self.cfg.nodes * self.cfg.devices) * i128::from(self.end_ms() - START);
        let c = &self.counters;
        let used = c.job_used + c.booked_used;
        let mut plan_ms: Vec<f64> = c.plan_us.iter().map(|us| us / 1000.0).collect();
        let plan_total_s = plan_ms.iter().sum::<f64>() / 1000.0;
        let timing = Timing {
            wall_s,
            passes: c.passes,
            plan_total_s,
            plan_mean_ms: mean(&plan_ms),
            plan_p99_ms: percentile(&mut plan_ms, 99.0),
            plan_max_ms: plan_ms.last().copied().unwrap_or(0.0),
        };
        let got: Vec<f64> = self.org_used.iter().map(|&v| dh(v)).collect();
        Report {
            nodes: self.cfg.nodes,
            devices: self.cfg.devices,
            days: self.cfg.days,
            seed: args.seed,
            orgs: args.orgs,
            load: args.load,
            backfill: self.cfg.plan.backfill.as_str().to_owned(),
            reserve_depth: self.cfg.plan.reserve_depth,
            min_runtime_min: self.cfg.plan.min_runtime_ms / MINUTE,
            half_life_h: args.half_life,
            idle_reclaim: self.cfg.idle.enabled(),
            pass_every_min: self.cfg.pass_every,
            capacity_dh: dh(capacity),
            utilisation: if capacity > 0 {
                used as f64 / capacity as f64
            } else {
                0.0
            },
            job_used_dh: dh(c.job_used),
            booked_used_dh: dh(c.booked_used),
            booked_idle_dh: dh(c.booked_idle),
            preemptible_started_on_idle_dh: dh(c.guest_on_idle),
            reclaimed_dh: dh(c.reclaimed),
            reclaims: c.reclaims,
            idle_warnings: c.warnings,
            jobs_submitted: self.jobs.len(),
            jobs_completed: c.completed,
            jobs_pending_at_end: self.pending.len(),
            bookings_made: c.bookings_made,
            bookings_refused: c.bookings_refused,
            preemptions_for_jobs: c.preempt_for_job,
            preemptions_by_booking_start: c.preempt_booking,
            preempted_lost_dh: dh(c.preempted_lost),
            preempted_within_15_min: c.preempt_young,
            limit_waits: c.limit_waits,
            waits: self.wait_rows(|_| true),
            waits_regular: self.wait_rows(|j| !j.preemptible),
            fairness: self.fairness(&got),
            timing,
        }
    }
}

/// Prints the human table.
pub(crate) fn print_table(r: &Report) {
    println!(
        "berth-sim: {} nodes x {} devices, {} days, {} orgs, seed {}, load {:.2}",
        r.nodes, r.devices, r.days, r.orgs, r.seed, r.load
    );
    println!(
        "policy: backfill {} (reserve depth {}), min runtime {} min, half-life {} h, idle reclaim {}, pass every {} min",
        r.backfill,
        r.reserve_depth,
        r.min_runtime_min,
        r.half_life_h,
        if r.idle_reclaim { "on" } else { "off" },
        r.pass_every_min
    );
    println!();
    println!(
        "utilisation            {:>6.1} %  (used {:.0} of {:.0} device-hours)",
        r.utilisation * 100.0,
        r.job_used_dh + r.booked_used_dh,
        r.capacity_dh
    );
    println!(
        "  queued jobs          {:>10.0} device-hours",
        r.job_used_dh
    );
    println!(
        "  used bookings        {:>10.0} device-hours",
        r.booked_used_dh
    );
    println!(
        "booked but idle        {:>10.0} device-hours",
        r.booked_idle_dh
    );
    println!(
        "  lent                 {:>10.0} device-hours run by preemptible jobs started on idle booked devices",
        r.preemptible_started_on_idle_dh
    );
    println!(
        "reclaimed              {:>10.0} device-hours ({} bookings, {} warnings)",
        r.reclaimed_dh, r.reclaims, r.idle_warnings
    );
    println!(
        "jobs                   {} submitted, {} completed, {} pending at the end",
        r.jobs_submitted, r.jobs_completed, r.jobs_pending_at_end
    );
    println!(
        "bookings               {} made, {} refused",
        r.bookings_made, r.bookings_refused
    );
    println!(
        "preemptions            {} for waiting jobs, {} by booking starts",
        r.preemptions_for_jobs, r.preemptions_by_booking_start
    );
    println!(
        "  of which             {} within 15 min of their start; {:.0} device-hours of work lost",
        r.preempted_within_15_min, r.preempted_lost_dh
    );
    println!("waits over a limit     {} (job x pass)", r.limit_waits);
    println!();
    for (title, rows) in [("all jobs", &r.waits), ("regular jobs", &r.waits_regular)] {
        println!(
            "{:<6} {:>8} {:>14} {:>10} {:>10}   {title}",
            "size", "jobs", "never started", "mean (h)", "p95 (h)"
        );
        for w in rows {
            println!(
                "{:<6} {:>8} {:>14} {:>10.2} {:>10.2}",
                w.size, w.jobs, w.never_started, w.mean_h, w.p95_h
            );
        }
    }
    let f = &r.fairness;
    println!();
    println!(
        "fairness: Jain {:.3} (got / weighted max-min target), min ratio {:.2}, contended max/min {:.2}",
        f.jain, f.min_ratio, f.contended_max_min
    );
    println!(
        "mean wait: heavy orgs {:.2} h, light orgs {:.2} h",
        f.heavy_mean_wait_h, f.light_mean_wait_h
    );
    println!(
        "{:<8} {:>6} {:>6} {:>12} {:>12} {:>12} {:>7} {:>7} {:>9}",
        "org", "weight", "heavy", "demand dh", "got dh", "target dh", "share", "entitl", "wait (h)"
    );
    for o in &f.orgs {
        println!(
            "{:<8} {:>6.0} {:>6} {:>12.0} {:>12.0} {:>12.0} {:>6.1}% {:>6.1}% {:>9.2}",
            o.org,
            o.weight,
            if o.heavy { "yes" } else { "" },
            o.demand_dh,
            o.got_dh,
            o.target_dh,
            o.share * 100.0,
            o.entitlement * 100.0,
            o.mean_wait_h
        );
    }
    let t = &r.timing;
    println!();
    println!(
        "time: {:.1} s wall; {} passes, {:.1} s in plan (mean {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
        t.wall_s, t.passes, t.plan_total_s, t.plan_mean_ms, t.plan_p99_ms, t.plan_max_ms
    );
}
