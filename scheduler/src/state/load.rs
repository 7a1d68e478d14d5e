//! Rebuilding the state from what the database holds.

use super::State;
use crate::engine::SchedPolicy;
use crate::store::{Mutation, Snapshot};
use std::sync::Arc;

impl State {
    /// Rebuilds the state from a snapshot, through the same [`State::apply`] that later
    /// changes use (claims are checked as they are added: the schema forbids overlaps, so
    /// a refusal means the schema was bypassed, and is logged).
    pub fn from_snapshot(snap: Snapshot) -> Self {
        let mut s = State::default();
        if let Some(p) = &snap.policy {
            match SchedPolicy::from_json(&p.json) {
                Ok(policy) => s.sched = policy,
                Err(e) => tracing::error!(error = %e, "keeping the default scheduling policy"),
            }
        }
        let rows = snap
            .sites
            .into_iter()
            .map(Mutation::InsertSite)
            .chain(snap.classes.into_iter().map(Mutation::InsertClass))
            .chain(snap.orgs.into_iter().map(Mutation::InsertOrg))
            .chain(snap.users.into_iter().map(Mutation::InsertUser))
            .chain(snap.join_tokens.into_iter().map(Mutation::InsertJoinToken))
            .chain(
                snap.dataset_grants
                    .into_iter()
                    .map(Mutation::UpsertDatasetGrant),
            )
            .chain(
                snap.subscriptions
                    .into_iter()
                    .map(Mutation::SetSubscription),
            )
            .chain(snap.webhooks.into_iter().map(Mutation::InsertWebhook))
            .chain(snap.nodes.into_iter().map(Mutation::UpsertNode))
            .chain(snap.devices.into_iter().map(Mutation::UpsertDevice))
            .chain(std::iter::once(Mutation::InsertClaims(snap.claims)))
            .chain(snap.budgets.into_iter().map(Mutation::UpsertBudget))
            .chain(snap.projects.into_iter().map(Mutation::UpsertProject))
            .chain(snap.prices.into_iter().map(Mutation::UpsertPrice))
            .chain(snap.discounts.into_iter().map(Mutation::UpsertDiscount))
            .chain(
                snap.invoices
                    .into_iter()
                    .map(|i| Mutation::UpsertInvoice(Arc::new(i))),
            )
            .chain(std::iter::once(Mutation::InsertLedger(snap.ledger)))
            .chain(snap.recent_usage.into_iter().map(Mutation::InsertUsage))
            .chain(
                snap.reservations
                    .into_iter()
                    .map(|r| Mutation::UpsertReservation(Arc::new(r))),
            )
            .chain(
                snap.jobs
                    .into_iter()
                    .map(|j| Mutation::UpsertJob(Arc::new(j))),
            );
        for m in rows {
            s.apply(&m);
        }
        s
    }
}
