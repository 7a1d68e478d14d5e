//! Applying mutations to the in-memory state: the one place memory changes.
//!
//! Every function here is deterministic in the mutation and the state alone (no clock), so
//! applying the same batches in the same order to two copies gives the same state.

use super::{
    DeviceEntry, LiveJob, NodeEntry, State, apply_ledger, core_budget, core_grant, node_schedulable,
};
use crate::engine::SchedPolicy;
use crate::store::{
    ClaimRow, Health, JobRow, JobState, Mutation, Overage, OwnerKind, ReservationRow, UsageRow,
};
use std::collections::BTreeMap;
use std::sync::Arc;

impl State {
    /// Applies a batch, in order.
    pub fn apply_all(&mut self, batch: &[Mutation]) {
        for m in batch {
            self.apply(m);
        }
    }

    /// Applies one mutation.
    pub fn apply(&mut self, m: &Mutation) {
        self.version += 1;
        match m {
            Mutation::InsertSite(r) => {
                self.sites.insert(r.name.clone(), r.clone());
            }
            Mutation::InsertClass(r) | Mutation::UpdateClass(r) => {
                self.classes.insert(r.name.clone(), r.clone());
            }
            Mutation::InsertOrg(r) | Mutation::UpdateOrg(r) => {
                self.accounts
                    .set_overage(&r.name, r.overage == Overage::Allow);
                self.orgs.insert(r.name.clone(), r.clone());
            }
            Mutation::InsertUser(r) => {
                let key = (r.org.clone(), r.name.clone());
                self.user_names.insert(r.id.clone(), key.clone());
                self.users.insert(key, r.clone());
            }
            // Credentials live in the auth index, updated once committed.
            Mutation::InsertToken(_)
            | Mutation::RevokeToken { .. }
            | Mutation::RevokeNodeCredentials { .. } => {}
            Mutation::UseJoinToken { id, used_ms } => {
                if let Some(j) = self.join_tokens.iter_mut().find(|j| j.id == *id) {
                    j.uses += 1;
                    j.used_ms = Some(*used_ms);
                }
                self.join_tokens.retain(|j| j.uses < j.max_uses);
            }
            Mutation::UpsertDatasetGrant(g) => {
                self.dataset_grants
                    .insert((g.org.clone(), g.name.clone()), g.read_write);
            }
            Mutation::DeleteDatasetGrant { org, name } => {
                self.dataset_grants.remove(&(org.clone(), name.clone()));
            }
            Mutation::InsertJoinToken(r) => {
                self.join_tokens.retain(|j| j.expires_ms > r.created_ms);
                self.join_tokens.push(r.clone());
            }
            Mutation::UpsertNode(r) => {
                self.cluster
                    .upsert_node(&r.name, &r.site, node_schedulable(r.state));
                match self.nodes.get_mut(&r.name) {
                    Some(entry) => entry.row = r.clone(),
                    None => {
                        self.nodes.insert(r.name.clone(), NodeEntry::new(r.clone()));
                    }
                }
            }
            Mutation::UpsertDevice(r) => {
                self.cluster
                    .upsert_device(&r.uuid, &r.node, &r.class, r.health != Health::Failed);
                let old = self
                    .devices
                    .insert(r.uuid.clone(), DeviceEntry { row: r.clone() });
                let moved = old.as_ref().map(|o| o.row.node.as_str());
                for node in std::iter::once(r.node.as_str()).chain(moved) {
                    if let Some(entry) = self.nodes.get_mut(node) {
                        entry.devices_stamp = super::device_stamp();
                    }
                }
                if let Some(old) = old {
                    self.node_sizes
                        .entry(old.row.class)
                        .or_default()
                        .add(&old.row.node, -1);
                }
                self.node_sizes
                    .entry(r.class.clone())
                    .or_default()
                    .add(&r.node, 1);
            }
            Mutation::UpsertReservation(r) => self.put_reservation(r),
            Mutation::UpsertJob(r) => self.put_job(r),
            Mutation::InsertClaims(claims) => self.add_claims(claims),
            Mutation::DeleteClaims { owner_id } => self.cluster.remove_claims(owner_id),
            Mutation::TruncateClaims { owner_id, end_ms } => {
                self.cluster.truncate_claims(owner_id, *end_ms);
            }
            Mutation::InsertUsage(u) => self.add_fair_usage(u),
            Mutation::Audit(_) => {}
            // Web sessions, sign-in links and settings are read from the database.
            Mutation::InsertWebSession(_)
            | Mutation::DeleteWebSession { .. }
            | Mutation::InsertWebLogin(_)
            | Mutation::DeleteWebLogin { .. }
            | Mutation::EndWebSessionsOf { .. }
            | Mutation::PruneWeb { .. }
            | Mutation::SetUserSettings(_) => {}
            Mutation::SetSubscription(r) => {
                self.subscriptions.insert(r.user_id.clone(), r.clone());
            }
            Mutation::DeleteSubscription { user_id } => {
                self.subscriptions.remove(user_id);
            }
            Mutation::InsertWebhook(r) => {
                self.webhooks.insert(r.id.clone(), r.clone());
            }
            Mutation::DeleteWebhook { id } => {
                self.webhooks.remove(id);
            }
            Mutation::InsertNotifications(rows) => {
                let newest = rows.iter().map(|r| r.created_ms).max().unwrap_or(0);
                for r in rows {
                    if let Some(key) = &r.dedupe {
                        self.notified.insert(key.clone(), r.created_ms);
                    }
                }
                let keep_from = newest - super::NOTIFIED_KEEP_MS;
                self.notified.retain(|_, at| *at >= keep_from);
            }
            // Attempts are read from the database by the sender.
            Mutation::UpdateNotification(_) => {}
            Mutation::UpsertBudget(b) => {
                self.accounts.set_budget(&b.org, &b.class, core_budget(b));
                self.budgets
                    .insert((b.org.clone(), b.class.clone()), b.clone());
            }
            Mutation::DeleteBudget { org, class } => {
                self.budgets.remove(&(org.clone(), class.clone()));
                self.accounts.remove_budget(org, class);
            }
            Mutation::UpsertProject(p) => {
                self.accounts.set_grant(&p.id, core_grant(p));
                self.projects.insert(p.id.clone(), p.clone());
            }
            Mutation::SetDefaultProject { user_id, project } => {
                if let Some(key) = self.user_names.get(user_id)
                    && let Some(u) = self.users.get_mut(key)
                {
                    u.default_project = project.clone();
                }
            }
            Mutation::InsertLedger(rows) => {
                for e in rows {
                    apply_ledger(&mut self.accounts, e);
                }
            }
            Mutation::SetPolicy(p) => match SchedPolicy::from_json(&p.json) {
                Ok(policy) => self.sched = policy,
                Err(e) => tracing::error!(error = %e, "keeping the previous scheduling policy"),
            },
            Mutation::UpsertPrice(p) => {
                self.prices.insert(p.class.clone(), p.clone());
            }
            Mutation::UpsertDiscount(d) => {
                self.discounts.insert(d.org.clone(), d.clone());
            }
            Mutation::UpsertInvoice(i) => {
                self.invoices.insert(i.id.clone(), i.clone());
            }
            Mutation::DeleteInvoice { id } => {
                self.invoices.remove(id);
            }
        }
    }

    /// A reservation's new row: live ones are held against the org's caps, final ones are
    /// forgotten.
    fn put_reservation(&mut self, r: &Arc<ReservationRow>) {
        if r.state.is_final() {
            self.accounts.release(&r.org, &r.class, &r.id, i64::MIN);
            self.reservations.remove(&r.id);
        } else {
            let count = r.count.max(0) as u32;
            self.accounts
                .hold(&r.org, &r.class, &r.id, r.start_ms, r.end_ms, count);
            self.reservations.insert(r.id.clone(), r.clone());
        }
    }

    /// A job's new row: placed queued jobs are held against the org's caps for their
    /// window, final ones are forgotten; the index of placed jobs by node follows.
    fn put_job(&mut self, r: &Arc<JobRow>) {
        let previous = self.jobs.remove(&r.id);
        if let Some(old) = &previous {
            self.by_created.remove(&super::Newest(old.row.clone()));
            if old.row.reservation_id.is_some() && old.row.state == JobState::Pending {
                self.pending_in_bookings
                    .remove(&(old.row.created_ms, old.row.id.clone()));
            }
            if !old.row.datasets.is_empty() {
                self.with_datasets.remove(&old.row.id);
            }
            self.unindex(&old.row.clone());
        }
        if r.state.is_final() {
            self.accounts.release(&r.org, &r.class, &r.id, i64::MIN);
            self.note_ended(r.created_ms, &r.id);
            return;
        }
        if r.state.is_placed() && r.reservation_id.is_none() && !r.preemptible {
            let end = r.deadline_ms.unwrap_or(r.created_ms);
            let start = end - r.max_runtime_ms;
            self.accounts
                .hold(&r.org, &r.class, &r.id, start, end, Self::job_devices(r));
        }
        let mut live = previous.unwrap_or_else(|| LiveJob::new(r.clone()));
        live.row = r.clone();
        if r.state.is_placed() {
            self.placed.insert(r.id.clone());
            for node in self.job_nodes(r) {
                self.placed_on.entry(node).or_default().insert(r.id.clone());
            }
        }
        self.by_created.insert(super::Newest(r.clone()));
        if let (Some(booking), JobState::Pending) = (&r.reservation_id, r.state) {
            self.pending_in_bookings
                .insert((r.created_ms, r.id.clone()), booking.clone());
        }
        if !r.datasets.is_empty() {
            self.with_datasets.insert(r.id.clone());
        }
        self.jobs.insert(live);
    }

    /// Drops a job from the index of placed jobs.
    fn unindex(&mut self, row: &JobRow) {
        if !self.placed.remove(&row.id) {
            return;
        }
        for node in self.job_nodes(row) {
            if let Some(ids) = self.placed_on.get_mut(&node) {
                ids.remove(&row.id);
                if ids.is_empty() {
                    self.placed_on.remove(&node);
                }
            }
        }
    }

    /// Adds claims to the calendar, one call per owner and window. The claims were checked
    /// against the calendar when decided and accepted by the database's own check, so a
    /// refusal here is a bug: it is logged, never silently dropped.
    fn add_claims(&mut self, claims: &[ClaimRow]) {
        let mut groups: BTreeMap<(&str, i64, i64), Vec<String>> = BTreeMap::new();
        for c in claims {
            groups
                .entry((c.owner_id.as_str(), c.start_ms, c.end_ms))
                .or_default()
                .push(c.device_uuid.clone());
        }
        for ((owner, start, end), devices) in groups {
            if let Err(e) = self.cluster.add_claim(owner, &devices, start, end) {
                tracing::error!(%owner, error = %e, "a claim does not fit the calendar");
            }
        }
    }

    /// Usage of a job that ran outside a reservation counts in its org's fair share.
    fn add_fair_usage(&mut self, u: &UsageRow) {
        if u.kind != OwnerKind::Job {
            return;
        }
        // A job still live here is ending in this batch: its row says whether it ran in a
        // reservation (whose usage the booking already paid for). Loaded usage of ended
        // jobs counts whole, as it did before.
        if self
            .jobs
            .get(&u.subject_id)
            .is_some_and(|j| j.row.reservation_id.is_some())
        {
            return;
        }
        let rate = self.class_rate(&u.class);
        let half_life = self.sched.fair_share_half_life_ms;
        self.fair
            .add(&u.org, super::usage_amount(u, rate), u.end_ms, half_life);
    }
}
