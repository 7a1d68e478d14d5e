//! Retention: an admin policy says how long logs, audit events, usage, ledger entries and
//! finished jobs and bookings are kept; a background sweep deletes older rows in small
//! batches, so it never holds the database for long. Usage and ledger rows of a budget
//! period that has not ended are never deleted.

use super::{Engine, Retention, audit, now};
use crate::auth::Caller;
use crate::core::Period;
use crate::error::Result;
use crate::store::{Mutation, PolicyRow, Prunable};
use berth_proto::v1;

/// Rows deleted per statement.
pub const PRUNE_BATCH: u32 = 500;

/// Fair share looks this far back at start: usage younger than this is never deleted.
const FAIR_SHARE_LOOKBACK_MS: i64 = 90 * 24 * berth_proto::time::HOUR_MS;

impl Engine {
    /// The retention policy (admin).
    pub async fn get_retention(&self, caller: &Caller) -> Result<v1::Retention> {
        caller.require_admin()?;
        Ok(self.view().sched.retention.to_proto())
    }

    /// Changes the named retention fields (admin).
    pub async fn set_retention(
        &self,
        caller: &Caller,
        r: &v1::SetRetentionRequest,
    ) -> Result<v1::Retention> {
        caller.require_admin()?;
        let t = now();
        self.commit(|tx| {
            let mut policy = tx.state().sched.clone();
            policy.retention = policy
                .retention
                .apply(&r.retention.unwrap_or_default(), &r.fields)?;
            let out = policy.retention.to_proto();
            tx.push(Mutation::SetPolicy(PolicyRow {
                json: policy.to_json(),
                updated_ms: t,
            }));
            tx.push(Mutation::Audit(audit(
                caller,
                "retention.set",
                &r.fields.join(","),
                t,
                "ok",
            )));
            Ok(out)
        })
        .await
    }

    /// One sweep: deletes, batch by batch, every row the policy no longer keeps. Returns
    /// the rows deleted of each kind.
    pub async fn sweep_retention(&self) -> Result<Vec<(Prunable, u64)>> {
        let (retention, oldest_open) = {
            let state = self.view();
            let t = now();
            // The oldest start of a period that has not ended, over every budget.
            let oldest_open = state
                .budgets
                .values()
                .map(|b| Period::parse(&b.period).unwrap_or_default().bounds(t).0)
                .chain(std::iter::once(Period::Month.bounds(t).0))
                .min()
                .unwrap_or(t);
            (state.sched.retention, oldest_open)
        };
        let t = now();
        let mut out = Vec::new();
        for (what, keep) in cutoffs(&retention) {
            let Some(keep) = keep else { continue };
            let mut before = t - keep;
            if matches!(what, Prunable::Usage | Prunable::Ledger) {
                before = before.min(oldest_open);
            }
            if what == Prunable::Usage {
                before = before.min(t - FAIR_SHARE_LOOKBACK_MS);
            }
            let mut total = 0;
            loop {
                let n = self.store.prune(what, before, PRUNE_BATCH).await?.rows;
                total += n;
                if n == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if total > 0 {
                tracing::info!(kind = what.as_str(), rows = total, "retention sweep");
            }
            out.push((what, total));
        }
        self.logs.sweep();
        Ok(out)
    }
}

/// What each kind keeps. Logs go first and never outlive their job: a job's logs are
/// deleted no later than the job itself.
fn cutoffs(r: &Retention) -> [(Prunable, Option<i64>); 6] {
    let logs = match (r.logs_ms, r.finished_ms) {
        (Some(l), Some(f)) => Some(l.min(f)),
        (None, f) => f,
        (l, None) => l,
    };
    [
        (Prunable::Logs, logs),
        (Prunable::Audit, r.audit_ms),
        (Prunable::Usage, r.usage_ms),
        (Prunable::Ledger, r.ledger_ms),
        (Prunable::Finished, r.finished_ms),
        // Deliveries sent or given up are kept as long as finished jobs.
        (Prunable::Notifications, r.finished_ms),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_outlive_their_jobs() {
        let r = Retention {
            finished_ms: Some(10),
            ..Retention::default()
        };
        assert_eq!(cutoffs(&r)[0], (Prunable::Logs, Some(10)));
        let r = Retention {
            logs_ms: Some(5),
            finished_ms: Some(10),
            ..Retention::default()
        };
        assert_eq!(cutoffs(&r)[0], (Prunable::Logs, Some(5)));
        assert_eq!(cutoffs(&Retention::default())[0], (Prunable::Logs, None));
    }
}
