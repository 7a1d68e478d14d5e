//! Prometheus metrics of the scheduler, on an explicit registry.
//!
//! Label values come from enums or admin-defined names (classes, node states), never
//! from user input, so every label set is bounded.

use crate::state::State;
use crate::store::{JobState, LedgerKind, NodeState, ReservationState};
use prometheus::{
    Counter, CounterVec, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// The scheduler's metrics.
pub struct Metrics {
    /// The registry everything is registered on.
    pub registry: Registry,
    nodes: IntGaugeVec,
    devices: IntGaugeVec,
    reservations: IntGaugeVec,
    jobs: IntGaugeVec,
    jobs_submitted: IntCounter,
    jobs_finished: IntCounterVec,
    job_wait: Histogram,
    bookings: IntCounterVec,
    pass_seconds: Histogram,
    log_bytes: IntCounter,
    rpc_requests: IntCounterVec,
    rpc_seconds: HistogramVec,
    preemptions: IntCounter,
    reclaimed: IntCounter,
    reclaimed_hours: Counter,
    ledger_entries: IntCounterVec,
    ledger_hours: CounterVec,
    budget_allowance: GaugeVec,
    budget_left: GaugeVec,
    budget_charged: GaugeVec,
    idle_warned: IntGauge,
    jobs_pending: IntGaugeVec,
    commit_batches: Histogram,
    commit_seconds: Histogram,
}

fn float_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn float_counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<CounterVec> {
    let c = CounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

fn plain_histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let jobs_submitted = IntCounter::new(
            "berth_jobs_submitted_total",
            "Jobs accepted by the scheduler.",
        )?;
        registry.register(Box::new(jobs_submitted.clone()))?;
        let log_bytes = IntCounter::new("berth_job_log_bytes_total", "Bytes of job logs stored.")?;
        registry.register(Box::new(log_bytes.clone()))?;
        let preemptions = IntCounter::new(
            "berth_preemptions_total",
            "Preemptible jobs stopped to give their devices back.",
        )?;
        registry.register(Box::new(preemptions.clone()))?;
        let reclaimed = IntCounter::new(
            "berth_reservations_reclaimed_total",
            "Reservations reclaimed because their devices stayed idle.",
        )?;
        registry.register(Box::new(reclaimed.clone()))?;
        let reclaimed_hours = Counter::new(
            "berth_reclaimed_device_hours_total",
            "Device-hours returned to the pool by idle reclaim.",
        )?;
        registry.register(Box::new(reclaimed_hours.clone()))?;
        let idle_warned = IntGauge::new(
            "berth_reservations_idle_warned",
            "Live reservations warned for idleness and not yet reclaimed.",
        )?;
        registry.register(Box::new(idle_warned.clone()))?;
        Ok(Metrics {
            ledger_entries: counter(
                &registry,
                "berth_ledger_entries_total",
                "Budget ledger entries written, by kind (charge, refund, top-up).",
                &["kind"],
            )?,
            ledger_hours: float_counter(
                &registry,
                "berth_ledger_hours_total",
                "Budget hours (device-hours x class rate) in ledger entries, by kind.",
                &["kind"],
            )?,
            budget_allowance: float_gauge(
                &registry,
                "berth_budget_allowance_hours",
                "Budget hours per period, for budgets with an hour allowance.",
                &["org", "class"],
            )?,
            budget_left: float_gauge(
                &registry,
                "berth_budget_left_hours",
                "Budget hours left in the current period, for budgets with an hour allowance.",
                &["org", "class"],
            )?,
            budget_charged: float_gauge(
                &registry,
                "berth_budget_charged_hours",
                "Budget hours charged in the current period (before refunds).",
                &["org", "class"],
            )?,
            jobs_pending: gauge(
                &registry,
                "berth_jobs_pending",
                "Pending jobs by the kind of reason they wait.",
                &["reason"],
            )?,
            preemptions,
            reclaimed,
            reclaimed_hours,
            idle_warned,
            nodes: gauge(
                &registry,
                "berth_nodes",
                "Nodes by state.",
                &["site", "state"],
            )?,
            devices: gauge(
                &registry,
                "berth_devices",
                "Devices by class and status (free, busy: claimed now by a reservation or job, unschedulable).",
                &["class", "status"],
            )?,
            reservations: gauge(
                &registry,
                "berth_reservations",
                "Reservations not yet ended, by state.",
                &["state"],
            )?,
            jobs: gauge(
                &registry,
                "berth_jobs",
                "Jobs not yet ended, by state.",
                &["state"],
            )?,
            jobs_finished: counter(
                &registry,
                "berth_jobs_finished_total",
                "Jobs that ended, by final state.",
                &["state"],
            )?,
            job_wait: plain_histogram(
                &registry,
                "berth_job_wait_seconds",
                "Time from submission to running.",
                vec![
                    0.5,
                    1.0,
                    5.0,
                    15.0,
                    60.0,
                    300.0,
                    900.0,
                    3600.0,
                    4.0 * 3600.0,
                    24.0 * 3600.0,
                ],
            )?,
            bookings: counter(
                &registry,
                "berth_bookings_total",
                "Booking requests by outcome.",
                &["outcome"],
            )?,
            pass_seconds: plain_histogram(
                &registry,
                "berth_scheduling_pass_seconds",
                "Duration of one scheduling pass.",
                prometheus::exponential_buckets(0.0001, 4.0, 10)?,
            )?,
            rpc_requests: counter(
                &registry,
                "berth_rpc_requests_total",
                "gRPC requests by method and status code.",
                &["method", "code"],
            )?,
            rpc_seconds: histogram(
                &registry,
                "berth_rpc_duration_seconds",
                "gRPC request latency by method (long-polls included).",
                &["method"],
                prometheus::exponential_buckets(0.0005, 4.0, 10)?,
            )?,
            commit_batches: plain_histogram(
                &registry,
                "berth_commit_group_batches",
                "Batches (one per request or pass step) committed together in one transaction.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            )?,
            commit_seconds: plain_histogram(
                &registry,
                "berth_commit_group_seconds",
                "Time to commit one group of batches to the database.",
                prometheus::exponential_buckets(0.0001, 4.0, 10)?,
            )?,
            jobs_submitted,
            log_bytes,
            registry,
        })
    }

    /// Sets the gauges from the state (at scrape time).
    pub fn observe_state(
        &self,
        state: &State,
        hints: &std::collections::HashMap<String, crate::engine::Hint>,
    ) {
        let now = berth_proto::time::now_ms();
        self.nodes.reset();
        for n in state.nodes.values() {
            self.nodes
                .with_label_values(&[&n.row.site, n.row.state.as_str()])
                .inc();
        }
        self.devices.reset();
        for class in state.classes.keys() {
            for status in ["free", "busy", "unschedulable"] {
                self.devices
                    .with_label_values(&[class.as_str(), status])
                    .set(0);
            }
        }
        for d in state.devices.values() {
            let schedulable = d.row.health != crate::store::Health::Failed
                && state
                    .nodes
                    .get(&d.row.node)
                    .is_some_and(|n| n.row.state == NodeState::Ready);
            let status = if !schedulable {
                "unschedulable"
            } else if state.cluster.is_free(&d.row.uuid, now, now + 1) {
                "free"
            } else {
                "busy"
            };
            self.devices
                .with_label_values(&[d.row.class.as_str(), status])
                .inc();
        }
        self.reservations.reset();
        for s in [ReservationState::Confirmed, ReservationState::Active] {
            self.reservations.with_label_values(&[s.as_str()]).set(0);
        }
        for r in state.reservations.values() {
            self.reservations
                .with_label_values(&[r.state.as_str()])
                .inc();
        }
        self.jobs.reset();
        for s in [
            JobState::Pending,
            JobState::Scheduled,
            JobState::Starting,
            JobState::Running,
        ] {
            self.jobs.with_label_values(&[s.as_str()]).set(0);
        }
        for j in state.jobs.values() {
            self.jobs.with_label_values(&[j.row.state.as_str()]).inc();
        }
        self.jobs_pending.reset();
        for reason in crate::engine::PENDING_KINDS {
            self.jobs_pending.with_label_values(&[reason]).set(0);
        }
        for j in state.jobs.values() {
            if j.row.state == JobState::Pending {
                let kind = hints.get(&j.row.id).map_or("other", |h| h.why.kind());
                self.jobs_pending.with_label_values(&[kind]).inc();
            }
        }
        self.idle_warned.set(
            state
                .reservations
                .values()
                .filter(|r| !r.state.is_final() && r.idle_warned_ms.is_some())
                .count() as i64,
        );
        self.budget_allowance.reset();
        self.budget_left.reset();
        self.budget_charged.reset();
        let hours = crate::convert::hours;
        for ((org, class), b) in state.accounts.budgets() {
            let labels = [org.as_str(), class.as_str()];
            let (start, _) = b.period.bounds(now);
            let totals = state.accounts.totals(org, class, start);
            self.budget_charged
                .with_label_values(&labels)
                .set(hours(totals.charged));
            if let Some(allowance) = b.allowance_ms {
                self.budget_allowance
                    .with_label_values(&labels)
                    .set(hours(allowance));
            }
            if let Some(left) = state.accounts.left(org, class, now) {
                self.budget_left.with_label_values(&labels).set(hours(left));
            }
        }
    }

    /// A job was accepted.
    pub fn job_submitted(&self) {
        self.jobs_submitted.inc();
    }

    /// A job started running `wait_ms` after it was submitted.
    pub fn job_started(&self, _class: &str, wait_ms: i64) {
        self.job_wait.observe(wait_ms as f64 / 1000.0);
    }

    /// A job ended.
    pub fn job_finished(&self, state: JobState) {
        self.jobs_finished
            .with_label_values(&[state.as_str()])
            .inc();
    }

    /// A booking request ended with `outcome`.
    pub fn booking(&self, outcome: &'static str) {
        self.bookings.with_label_values(&[outcome]).inc();
    }

    /// A group of `batches` was committed in `d`.
    pub fn commit_group(&self, batches: usize, d: Duration) {
        self.commit_batches.observe(batches as f64);
        self.commit_seconds.observe(d.as_secs_f64());
    }

    /// A scheduling pass took `d`.
    pub fn pass(&self, d: Duration) {
        self.pass_seconds.observe(d.as_secs_f64());
    }

    /// Log bytes were stored.
    pub fn log_bytes(&self, n: usize) {
        self.log_bytes.inc_by(n as u64);
    }

    /// An RPC finished.
    pub fn rpc(&self, method: &str, code: &str, d: Duration) {
        self.rpc_requests.with_label_values(&[method, code]).inc();
        self.rpc_seconds
            .with_label_values(&[method])
            .observe(d.as_secs_f64());
    }

    /// A preemptible job was preempted.
    pub fn preemption(&self) {
        self.preemptions.inc();
    }

    /// A reservation was reclaimed for idleness, returning `device_ms` to the pool.
    pub fn reclaimed(&self, device_ms: i64) {
        self.reclaimed.inc();
        self.reclaimed_hours
            .inc_by(crate::convert::hours(device_ms.max(0)));
    }

    /// A ledger entry of `kind` for `amount_ms` budget-ms was committed.
    pub fn ledger(&self, kind: LedgerKind, amount_ms: i64) {
        self.ledger_entries
            .with_label_values(&[kind.as_str()])
            .inc();
        self.ledger_hours
            .with_label_values(&[kind.as_str()])
            .inc_by(crate::convert::hours(amount_ms.max(0)));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Reduces a gRPC path to a bounded method label (`Reservations/CreateReservation`).
pub fn method_label(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    let known = service.starts_with("berth.v1.") || service.starts_with("grpc.");
    let valid = method.chars().all(|c| c.is_ascii_alphanumeric()) && method.len() < 64;
    if known && valid && !method.is_empty() {
        format!("{}/{method}", service.rsplit('.').next().unwrap_or(service))
    } else {
        "other".into()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn new_metrics_are_exposed() {
        let m = super::Metrics::new().unwrap();
        m.preemption();
        m.reclaimed(5_400_000);
        m.ledger(crate::store::LedgerKind::TopUp, 7_200_000);
        m.observe_state(&crate::state::State::default(), &Default::default());
        let text = m.render();
        for needle in [
            "berth_preemptions_total 1",
            "berth_reservations_reclaimed_total 1",
            "berth_reclaimed_device_hours_total 1.5",
            "berth_ledger_entries_total{kind=\"top-up\"} 1",
            "berth_ledger_hours_total{kind=\"top-up\"} 2",
            "berth_jobs_pending{reason=\"budget\"} 0",
            "berth_reservations_idle_warned 0",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(
            super::method_label("/berth.v1.Jobs/SubmitJob"),
            "Jobs/SubmitJob"
        );
        assert_eq!(super::method_label("/evil/../x"), "other");
        assert_eq!(super::method_label("/berth.v1.Jobs/a b"), "other");
    }
}
