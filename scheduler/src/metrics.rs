//! Prometheus metrics of the scheduler, on an explicit registry.
//!
//! Every metric has help text and a base unit (seconds; device-hours and budget hours
//! where the product counts in hours). Label values come from enums, from names an
//! admin defines (sites, classes, nodes, orgs) or from the API's own method list, never
//! from what a caller sends, so every label set is bounded.
//!
//! Gauges are read from the in-memory state at scrape time ([`Metrics::observe_state`],
//! in `observe.rs`); counters and histograms are bumped at events by the engine.

mod accrual;
mod observe;

pub use observe::Observations;

use crate::rpc_metrics::MethodSet;
use crate::store::{JobState, LedgerKind, Mutation, OwnerKind, UsageRow};
use accrual::Accrual;
use prometheus::{
    Counter, CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec,
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The scheduler's metrics.
pub struct Metrics {
    /// The registry everything is registered on.
    pub registry: Registry,
    /// The gRPC methods the API serves: the only values of the `method` label.
    pub methods: MethodSet,
    nodes: IntGaugeVec,
    node_state: IntGaugeVec,
    node_heartbeat_age: GaugeVec,
    devices: IntGaugeVec,
    devices_booked_now: IntGaugeVec,
    devices_used_now: IntGaugeVec,
    booked_hours: CounterVec,
    used_hours: CounterVec,
    reservations: IntGaugeVec,
    reservation_idle_max: GaugeVec,
    jobs: IntGaugeVec,
    jobs_submitted: IntCounter,
    jobs_finished: IntCounterVec,
    job_wait: HistogramVec,
    queue_length: IntGaugeVec,
    queue_oldest_wait: GaugeVec,
    bookings: IntCounterVec,
    pass_seconds: Histogram,
    queue_plans: IntCounter,
    heap_trim_seconds: Histogram,
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
    budget_used: GaugeVec,
    budget_limit: GaugeVec,
    idle_warned: IntGauge,
    jobs_pending: IntGaugeVec,
    ready: IntGauge,
    leader: IntGauge,
    failovers: IntCounter,
    leader_lease_age: Gauge,
    commit_batches: Histogram,
    commit_seconds: Histogram,
    /// Device-time already added to the booked and used counters, per booking and job.
    accrual: Mutex<Accrual>,
}

/// The values of the `state` label of `berth_devices`.
pub const DEVICE_STATES: &[&str] = &["free", "busy", "unschedulable", "failed"];

/// The gRPC status code names (the `code` label of `berth_rpc_requests_total`), as the
/// gRPC specification spells them.
pub const GRPC_CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a gRPC status code, from [`GRPC_CODES`].
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    GRPC_CODES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// Registers metrics on one registry.
struct Reg<'a>(&'a Registry);

impl Reg<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, m: M) -> prometheus::Result<M> {
        self.0.register(Box::new(m.clone()))?;
        Ok(m)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn float_gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn float_counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<CounterVec> {
        self.add(CounterVec::new(Opts::new(name, help), labels)?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> prometheus::Result<HistogramVec> {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets),
            labels,
        )?)
    }

    fn int_gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.add(IntGauge::new(name, help)?)
    }

    fn int_counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.add(IntCounter::new(name, help)?)
    }
}

/// Buckets of `berth_job_wait_seconds`: half a second to a day.
fn wait_buckets() -> Vec<f64> {
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
        12.0 * 3600.0,
        24.0 * 3600.0,
    ]
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let r = Reg(&registry);
        let pass_seconds = r.add(Histogram::with_opts(
            HistogramOpts::new(
                "berth_scheduling_pass_seconds",
                "Duration of one scheduling pass, in seconds.",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
        )?)?;
        let heap_trim_seconds = r.add(Histogram::with_opts(
            HistogramOpts::new(
                "berth_heap_trim_seconds",
                "Time spent giving freed heap pages back to the system after passes that planned a large queue, in seconds.",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
        )?)?;
        let reclaimed_hours = r.add(Counter::new(
            "berth_reclaimed_device_hours_total",
            "Device-hours returned to the pool by idle reclaim.",
        )?)?;
        let leader_lease_age = r.add(Gauge::new(
            "berth_leader_lease_age_seconds",
            "Seconds since the leader last renewed its lease (0 while a single scheduler runs).",
        )?)?;
        let m = Metrics {
            methods: MethodSet::standard(),
            nodes: r.gauge("berth_nodes", "Nodes by site and state.", &["site", "state"])?,
            node_state: r.gauge(
                "berth_node_state",
                "1 for each node's current state (ready, draining, drained, unreachable, down), 0 for the others.",
                &["node", "site", "state"],
            )?,
            node_heartbeat_age: r.float_gauge(
                "berth_node_heartbeat_age_seconds",
                "Seconds since the node's agent last called in (since this scheduler started).",
                &["node", "site"],
            )?,
            devices: r.gauge(
                "berth_devices",
                "Devices by class, site and state: free, busy (claimed now by a booking or job), \
                 unschedulable (node not ready) or failed (quarantined).",
                &["class", "site", "state"],
            )?,
            devices_booked_now: r.gauge(
                "berth_devices_booked_now",
                "Devices held now by bookings whose window has started.",
                &["class"],
            )?,
            devices_used_now: r.gauge(
                "berth_devices_used_now",
                "Devices running a job now.",
                &["class"],
            )?,
            booked_hours: r.float_counter(
                "berth_booked_device_hours_total",
                "Device-hours held by bookings, accrued as their windows pass (since this scheduler started).",
                &["class"],
            )?,
            used_hours: r.float_counter(
                "berth_used_device_hours_total",
                "Device-hours that jobs actually ran, booked or queued (since this scheduler started).",
                &["class"],
            )?,
            reservations: r.gauge(
                "berth_reservations",
                "Bookings not yet ended, by state.",
                &["state"],
            )?,
            reservation_idle_max: r.float_gauge(
                "berth_reservation_idle_seconds_max",
                "The longest time, in seconds, that all devices of one started booking have been idle.",
                &["class"],
            )?,
            jobs: r.gauge("berth_jobs", "Jobs not yet ended, by state.", &["state"])?,
            jobs_submitted: r.int_counter(
                "berth_jobs_submitted_total",
                "Jobs accepted by the scheduler.",
            )?,
            jobs_finished: r.counter(
                "berth_jobs_finished_total",
                "Jobs that ended, by final state.",
                &["state"],
            )?,
            job_wait: r.histogram(
                "berth_job_wait_seconds",
                "Time from submission to running, in seconds, by class.",
                &["class"],
                wait_buckets(),
            )?,
            queue_length: r.gauge(
                "berth_queue_length",
                "Pending jobs that could run now (queued, or in a booking that has started), by class.",
                &["class"],
            )?,
            queue_oldest_wait: r.float_gauge(
                "berth_queue_oldest_wait_seconds",
                "How long the longest-waiting job of berth_queue_length has waited, in seconds (0 when none).",
                &["class"],
            )?,
            bookings: r.counter(
                "berth_bookings_total",
                "Booking requests by outcome.",
                &["outcome"],
            )?,
            pass_seconds,
            heap_trim_seconds,
            queue_plans: r.int_counter(
                "berth_queue_plans_total",
                "Passes that planned the whole queue (a pass does not plan again a queue that placed nothing on a state that has not changed since).",
            )?,
            log_bytes: r.int_counter("berth_job_log_bytes_total", "Bytes of job logs stored.")?,
            rpc_requests: r.counter(
                "berth_rpc_requests_total",
                "gRPC requests by method (the API's own methods; `other` for any other path) and status code.",
                &["method", "code"],
            )?,
            rpc_seconds: r.histogram(
                "berth_rpc_duration_seconds",
                "gRPC request latency in seconds, until the response ends (long-polls and streams included).",
                &["method"],
                prometheus::exponential_buckets(0.0005, 4.0, 10)?,
            )?,
            preemptions: r.int_counter(
                "berth_preemptions_total",
                "Preemptible jobs stopped to give their devices back.",
            )?,
            reclaimed: r.int_counter(
                "berth_reservations_reclaimed_total",
                "Reservations reclaimed because their devices stayed idle.",
            )?,
            reclaimed_hours,
            ledger_entries: r.counter(
                "berth_ledger_entries_total",
                "Budget ledger entries written, by kind (charge, refund, top-up).",
                &["kind"],
            )?,
            ledger_hours: r.float_counter(
                "berth_ledger_hours_total",
                "Budget hours (device-hours x class rate) in ledger entries, by kind.",
                &["kind"],
            )?,
            budget_allowance: r.float_gauge(
                "berth_budget_allowance_hours",
                "Budget hours per period, for budgets with an hour allowance.",
                &["org", "class"],
            )?,
            budget_left: r.float_gauge(
                "berth_budget_left_hours",
                "Budget hours left in the current period, for budgets with an hour allowance.",
                &["org", "class"],
            )?,
            budget_charged: r.float_gauge(
                "berth_budget_charged_hours",
                "Budget hours charged in the current period (before refunds).",
                &["org", "class"],
            )?,
            budget_used: r.float_gauge(
                "berth_budget_used_hours",
                "Budget hours used in the current period: charged minus refunded (class `*`: a budget for every class).",
                &["org", "class"],
            )?,
            budget_limit: r.float_gauge(
                "berth_budget_limit_hours",
                "Budget hours available in the current period: the allowance plus top-ups, for budgets with an hour allowance.",
                &["org", "class"],
            )?,
            idle_warned: r.int_gauge(
                "berth_reservations_idle_warned",
                "Live reservations warned for idleness and not yet reclaimed.",
            )?,
            jobs_pending: r.gauge(
                "berth_jobs_pending",
                "Pending jobs by the kind of reason they wait.",
                &["reason"],
            )?,
            ready: r.int_gauge(
                "berth_ready",
                "1 when this scheduler is ready (its database answers), else 0.",
            )?,
            leader: r.int_gauge(
                "berth_leader",
                "1 when this scheduler is the leader that schedules and writes, else 0.",
            )?,
            failovers: r.int_counter(
                "berth_failovers_total",
                "Times this scheduler took over leadership from another.",
            )?,
            leader_lease_age,
            commit_batches: r.add(Histogram::with_opts(
                HistogramOpts::new(
                    "berth_commit_group_batches",
                    "Batches (one per request or pass step) committed together in one transaction.",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]),
            )?)?,
            commit_seconds: r.add(Histogram::with_opts(
                HistogramOpts::new(
                    "berth_commit_group_seconds",
                    "Time to commit one group of batches to the database, in seconds.",
                )
                .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
            )?)?,
            accrual: Mutex::new(Accrual::new(berth_proto::time::now_ms())),
            registry,
        };
        m.init_series();
        Ok(m)
    }

    /// Creates the series of enum-labelled metrics at zero, so they exist before the
    /// first event (rates and alerts then see them from the start).
    fn init_series(&self) {
        for kind in [LedgerKind::Charge, LedgerKind::Refund, LedgerKind::TopUp] {
            self.ledger_entries.with_label_values(&[kind.as_str()]);
            self.ledger_hours.with_label_values(&[kind.as_str()]);
        }
        for outcome in ["confirmed", "refused_capacity", "refused_invalid", "error"] {
            self.bookings.with_label_values(&[outcome]);
        }
    }

    /// A job was accepted.
    pub fn job_submitted(&self) {
        self.jobs_submitted.inc();
    }

    /// A job of `class` started running `wait_ms` after it was submitted.
    pub fn job_started(&self, class: &str, wait_ms: i64) {
        self.job_wait
            .with_label_values(&[class])
            .observe(wait_ms.max(0) as f64 / 1000.0);
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

    /// A scheduling pass took `d`.
    pub fn pass(&self, d: Duration) {
        self.pass_seconds.observe(d.as_secs_f64());
    }

    /// A pass planned the whole queue.
    pub fn queue_planned(&self) {
        self.queue_plans.inc();
    }

    /// Freed heap pages were given back to the system in `d`.
    pub fn heap_trimmed(&self, d: Duration) {
        self.heap_trim_seconds.observe(d.as_secs_f64());
    }

    /// A group of `batches` was committed in `d`.
    pub fn commit_group(&self, batches: usize, d: Duration) {
        self.commit_batches.observe(batches as f64);
        self.commit_seconds.observe(d.as_secs_f64());
    }

    /// Log bytes were stored.
    pub fn log_bytes(&self, n: usize) {
        self.log_bytes.inc_by(n as u64);
    }

    /// An RPC to `method` (a value of [`MethodSet::label`]) ended with `code` after `d`.
    pub fn rpc(&self, method: &str, code: tonic::Code, d: Duration) {
        self.rpc_requests
            .with_label_values(&[method, grpc_code_name(code)])
            .inc();
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

    /// A usage record was committed: a booking or job ended. Adds the device-time it
    /// held that the booked or used counter has not yet accrued at a scrape, so the
    /// counters are exact even for work shorter than a scrape interval. Call it under
    /// the state lock, once the record is durable.
    pub fn usage_recorded(&self, u: &UsageRow) {
        let mut accrual = self.accrual.lock().unwrap_or_else(PoisonError::into_inner);
        let rest = accrual.ended(
            &u.subject_id,
            i64::from(u.devices.max(0)),
            u.start_ms,
            u.end_ms,
        );
        let counter = match u.kind {
            OwnerKind::Reservation => &self.booked_hours,
            OwnerKind::Job => &self.used_hours,
        };
        counter
            .with_label_values(&[u.class.as_str()])
            .inc_by(crate::convert::hours(rest));
    }

    /// A batch of mutations was committed: records the usage rows in it (see
    /// [`Metrics::usage_recorded`]).
    pub fn batch_committed(&self, batch: &[Mutation]) {
        for m in batch {
            if let Mutation::InsertUsage(u) = m {
                self.usage_recorded(u);
            }
        }
    }

    /// Whether this scheduler is ready (its database answers).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Whether this scheduler leads. A single scheduler always does.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// This scheduler took over leadership from another.
    pub fn failover(&self) {
        self.failovers.inc();
    }

    /// Time since the leader last renewed its lease.
    pub fn set_leader_lease_age(&self, age: Duration) {
        self.leader_lease_age.set(age.as_secs_f64());
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

#[cfg(test)]
mod tests;
