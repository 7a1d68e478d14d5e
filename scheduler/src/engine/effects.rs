//! What follows a committed change outside the state: the auth index, heartbeats waiting
//! for new work, log followers, and event metrics. Derived from each mutation and the
//! committed state just before it, so every effect happens once, after it is durable.

use super::Engine;
use crate::state::State;
use crate::store::{JobState, LedgerKind, Mutation, TokenRow, UserRow};
use std::sync::Arc;

/// One effect of a committed mutation.
pub(super) enum Effect {
    User(UserRow),
    Token(TokenRow),
    Revoke(String),
    RevokeNode(String),
    Generation(String, i64),
    JobSubmitted {
        requeued: bool,
    },
    JobStarted {
        wait_ms: i64,
        class: String,
    },
    JobEnded {
        id: String,
        state: JobState,
    },
    Ledger(LedgerKind, i64),
    /// New deliveries are in the outbox.
    Outbox,
}

/// The effects of `m`, given the committed state before it.
pub(super) fn of(before: &State, m: &Mutation, out: &mut Vec<Effect>) {
    match m {
        Mutation::InsertUser(u) => out.push(Effect::User(u.clone())),
        Mutation::InsertToken(t) => out.push(Effect::Token(t.clone())),
        Mutation::RevokeToken { id } => out.push(Effect::Revoke(id.clone())),
        Mutation::RevokeNodeCredentials { node } => out.push(Effect::RevokeNode(node.clone())),
        Mutation::UpsertNode(n) => out.push(Effect::Generation(n.name.clone(), n.generation)),
        Mutation::UpsertJob(row) => {
            let old = before.jobs.get(&row.id).map(|j| Arc::clone(&j.row));
            let was = old.as_ref().map(|o| o.state);
            if was.is_none() && row.state == JobState::Pending {
                out.push(Effect::JobSubmitted {
                    requeued: row.requeued_from.is_some(),
                });
            }
            // Started: reported running, or ended having run without being seen running
            // (a brief job) — either way its wait counts once.
            let ran_unseen = row.state.is_final()
                && row.started_ms.is_some()
                && was.is_some_and(|s| s != JobState::Running && !s.is_final());
            if (row.state == JobState::Running && was != Some(JobState::Running)) || ran_unseen {
                let started = row.started_ms.unwrap_or(row.created_ms);
                out.push(Effect::JobStarted {
                    wait_ms: (started - row.created_ms).max(0),
                    class: row.class.clone(),
                });
            }
            if row.state.is_final() && was.is_some_and(|s| !s.is_final()) {
                out.push(Effect::JobEnded {
                    id: row.id.clone(),
                    state: row.state,
                });
            }
        }
        Mutation::InsertLedger(rows) => {
            out.extend(rows.iter().map(|e| Effect::Ledger(e.kind, e.amount_ms)));
        }
        Mutation::InsertNotifications(_) => out.push(Effect::Outbox),
        _ => {}
    }
}

impl Engine {
    /// Carries out committed effects.
    pub(super) fn run_effects(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::User(u) => self.with_auth(|a| a.put_user(u)),
                Effect::Token(t) => self.with_auth(|a| a.put_token(t)),
                Effect::Revoke(id) => self.with_auth(|a| a.revoke(&id)),
                Effect::RevokeNode(node) => self.with_auth(|a| a.revoke_node(&node)),
                Effect::Generation(node, g) => self.generations.publish(&node, g),
                Effect::JobSubmitted { requeued } => {
                    self.metrics.job_submitted();
                    if requeued {
                        self.metrics.preemption();
                    }
                }
                Effect::JobStarted { wait_ms, class } => self.metrics.job_started(&class, wait_ms),
                Effect::JobEnded { id, state } => {
                    self.logs.close(&id);
                    self.metrics.job_finished(state);
                }
                Effect::Ledger(kind, amount) => self.metrics.ledger(kind, amount),
                Effect::Outbox => self.outbox_wake.notify_one(),
            }
        }
    }
}
