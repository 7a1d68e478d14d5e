//! Timing and error counts of every store operation.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::error;
use crate::store::StoreError;

/// A store operation: the `op` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Migrate,
    Apply,
    Load,
    ListReservations,
    GetReservation,
    ListJobs,
    GetJob,
    ListUsers,
    ListUsage,
    ListLedger,
    ListAudit,
    ListClaims,
    AppendLogs,
    ReadLogs,
    Prune,
    Ping,
    GetWebSession,
    GetWebLogin,
    GetUserSettings,
    ListNotifications,
    DueNotifications,
}

impl Op {
    const ALL: [Op; 21] = [
        Op::Migrate,
        Op::Apply,
        Op::Load,
        Op::ListReservations,
        Op::GetReservation,
        Op::ListJobs,
        Op::GetJob,
        Op::ListUsers,
        Op::ListUsage,
        Op::ListLedger,
        Op::ListAudit,
        Op::ListClaims,
        Op::AppendLogs,
        Op::ReadLogs,
        Op::Prune,
        Op::Ping,
        Op::GetWebSession,
        Op::GetWebLogin,
        Op::GetUserSettings,
        Op::ListNotifications,
        Op::DueNotifications,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Op::Migrate => "migrate",
            Op::Apply => "apply",
            Op::Load => "load",
            Op::ListReservations => "list_reservations",
            Op::GetReservation => "get_reservation",
            Op::ListJobs => "list_jobs",
            Op::GetJob => "get_job",
            Op::ListUsers => "list_users",
            Op::ListUsage => "list_usage",
            Op::ListLedger => "list_ledger",
            Op::ListAudit => "list_audit",
            Op::ListClaims => "list_claims",
            Op::AppendLogs => "append_logs",
            Op::ReadLogs => "read_logs",
            Op::Prune => "prune",
            Op::Ping => "ping",
            Op::GetWebSession => "get_web_session",
            Op::GetWebLogin => "get_web_login",
            Op::GetUserSettings => "get_user_settings",
            Op::ListNotifications => "list_notifications",
            Op::DueNotifications => "due_notifications",
        }
    }
}

/// The store's metrics, registered on an explicit registry by the caller.
#[derive(Clone)]
pub(super) struct StoreMetrics {
    seconds: HistogramVec,
    errors: IntCounterVec,
}

const ERROR_KINDS: [&str; 3] = ["conflict", "already_exists", "db"];

impl StoreMetrics {
    pub(super) fn new() -> Result<StoreMetrics, prometheus::Error> {
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "berth_store_operation_seconds",
                "Time taken by store operations (one transaction each), by operation.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["op"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "berth_store_errors_total",
                "Store operations that failed, by operation and kind (conflict, already_exists, db).",
            ),
            &["op", "kind"],
        )?;
        // Export every series from the start, so rates and alerts see zeros, not gaps.
        for op in Op::ALL {
            seconds.with_label_values(&[op.as_str()]);
            for kind in ERROR_KINDS {
                errors.with_label_values(&[op.as_str(), kind]);
            }
        }
        Ok(StoreMetrics { seconds, errors })
    }

    pub(super) fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.seconds.clone()))?;
        registry.register(Box::new(self.errors.clone()))
    }

    /// Runs `fut`, recording its duration and, if it fails, the error.
    pub(super) async fn time<T>(
        &self,
        op: Op,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let timer = self.seconds.with_label_values(&[op.as_str()]).start_timer();
        let result = fut.await;
        timer.observe_duration();
        if let Err(e) = &result {
            self.errors
                .with_label_values(&[op.as_str(), error::label(e)])
                .inc();
        }
        result
    }
}
