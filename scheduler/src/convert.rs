//! Rows to wire messages.

use crate::engine::Hint;
use crate::state::{DeviceEntry, NodeEntry};
use crate::store::{
    AuditRow, ClassRow, JobRow, JobState, LedgerRow, OrgRow, ReservationRow, SiteRow, UsageRow,
    UserRow,
};
use berth_proto::time::{ms_to_dur, ms_to_ts, opt_ts};
use berth_proto::v1;
use std::sync::Arc;

/// A short UTC time for messages (`2026-11-21 14:00 UTC`).
pub fn local_hint(ms: i64) -> String {
    crate::core::utc_label(ms)
}

/// A site.
pub fn site(r: &SiteRow) -> v1::Site {
    v1::Site {
        name: r.name.clone(),
        description: r.description.clone(),
    }
}

/// A device class with its counts.
pub fn class(r: &ClassRow, total: u32, schedulable: u32) -> v1::DeviceClass {
    v1::DeviceClass {
        name: r.name.clone(),
        description: r.description.clone(),
        vendor: r.vendor.clone(),
        total_devices: total,
        schedulable_devices: schedulable,
        rate: r.rate,
    }
}

/// An org.
pub fn org(r: &OrgRow) -> v1::Org {
    v1::Org {
        name: r.name.clone(),
        description: r.description.clone(),
        created_at: Some(ms_to_ts(r.created_ms)),
        weight: r.weight,
        overage: r.overage.to_proto() as i32,
    }
}

/// A user.
pub fn user(r: &UserRow) -> v1::User {
    v1::User {
        id: r.id.clone(),
        name: r.name.clone(),
        org: r.org.clone(),
        role: r.role.to_proto() as i32,
        created_at: Some(ms_to_ts(r.created_ms)),
    }
}

/// A device, with its latest sample.
pub fn device(d: &DeviceEntry, telemetry: Option<v1::Telemetry>) -> v1::Device {
    let r = &d.row;
    v1::Device {
        uuid: r.uuid.clone(),
        node: r.node.clone(),
        class: r.class.clone(),
        vendor: r.vendor.clone(),
        model: r.model.clone(),
        memory_bytes: r.memory_bytes.max(0) as u64,
        health: r.health.to_proto() as i32,
        health_reason: r.health_reason.clone(),
        index: r.index.max(0) as u32,
        pci_bus_id: r.pci_bus_id.clone(),
        telemetry,
    }
}

/// A node with its devices.
pub fn node(n: &NodeEntry, devices: Vec<v1::Device>) -> v1::Node {
    let r = &n.row;
    v1::Node {
        name: r.name.clone(),
        site: r.site.clone(),
        state: r.state.to_proto() as i32,
        hostname: r.hostname.clone(),
        last_heartbeat: opt_ts(r.last_heartbeat_ms),
        devices,
        agent_version: r.agent_version.clone(),
        runtime: r.runtime.clone(),
    }
}

/// A reservation.
pub fn reservation(r: &ReservationRow) -> v1::Reservation {
    v1::Reservation {
        id: r.id.clone(),
        org: r.org.clone(),
        user: r.user_name.clone(),
        class: r.class.clone(),
        count: r.count.max(0) as u32,
        site: r.site.clone().unwrap_or_default(),
        start: Some(ms_to_ts(r.start_ms)),
        end: Some(ms_to_ts(r.end_ms)),
        state: r.state.to_proto() as i32,
        devices: r.devices.clone(),
        created_at: Some(ms_to_ts(r.created_ms)),
        reason: r.reason.clone(),
        charged_hours: hours(r.charge.amount_ms),
        budget_class: r.charge.budget_class.clone(),
        idle_since: opt_ts(r.idle_since_ms),
        idle_warned_at: opt_ts(r.idle_warned_ms),
        // Filled by the engine, which knows the idle policy.
        reclaim_at: None,
        warning: String::new(),
        project: r.project.clone().unwrap_or_default(),
        charged_project: r.charge.project.clone().unwrap_or_default(),
    }
}

/// Milliseconds (device-ms or budget-ms) as the hours the API shows.
pub fn hours(ms: i64) -> f64 {
    ms as f64 / 3_600_000.0
}

/// Pending reasons already put in words, for one reply: jobs that wait for the same
/// thing share one rendering (in a page of waiting jobs, the words would otherwise cost
/// more than everything else of a job).
#[derive(Debug, Default)]
pub struct Reasons(Vec<(Arc<crate::engine::PendingWhy>, Arc<str>)>);

impl Reasons {
    /// Most distinct reasons remembered; the rest are put in words each time.
    const KEEP: usize = 32;

    /// `why` in words. Hints share their reasons, so the same one is found by its
    /// address first; an equal one held apart by its value.
    pub fn describe(&mut self, why: &Arc<crate::engine::PendingWhy>) -> Arc<str> {
        let found = self
            .0
            .iter()
            .find(|(w, _)| Arc::ptr_eq(w, why))
            .or_else(|| self.0.iter().find(|(w, _)| w == why));
        if let Some((_, words)) = found {
            return words.clone();
        }
        let words: Arc<str> = why.describe().into();
        if self.0.len() < Self::KEEP {
            self.0.push((why.clone(), words.clone()));
        }
        words
    }
}

/// The reason a job shows, held without a copy where it can be: the row's own, or words
/// shared by the jobs of one reply.
#[derive(Debug, Clone)]
pub enum ReasonText {
    /// The row's own `reason`.
    Row,
    /// Why it waits, in words shared by the reply's jobs that wait for the same thing.
    Shared(Arc<str>),
    /// Put in words for this job alone.
    Own(String),
}

impl ReasonText {
    /// The reason as text, for the row it was made for.
    pub fn of<'a>(&'a self, row: &'a JobRow) -> &'a str {
        match self {
            ReasonText::Row => &row.reason,
            ReasonText::Shared(s) => s,
            ReasonText::Own(s) => s,
        }
    }
}

/// The reason a job shows: why it waits (from the latest pass), why it is being
/// stopped, or why it ended.
pub fn job_reason(r: &JobRow, hint: Option<&Hint>, reasons: &mut Reasons) -> ReasonText {
    match (&r.stop, hint) {
        (Some(stop), _) if r.state.is_placed() => ReasonText::Own(format!(
            "stopping ({}): {}",
            stop.cause.final_state(),
            stop.reason
        )),
        (_, Some(h)) if r.state == JobState::Pending => {
            ReasonText::Shared(reasons.describe(&h.why))
        }
        _ => ReasonText::Row,
    }
}

/// When a pending job is expected to start, from its hint.
pub fn estimated_start(r: &JobRow, hint: Option<&Hint>) -> Option<i64> {
    hint.filter(|_| r.state == JobState::Pending)
        .and_then(|h| h.estimated_start)
}

/// A job, with its pending hint if it waits.
pub fn job(r: &JobRow, hint: Option<&Hint>) -> v1::Job {
    job_with(r, hint, &mut Reasons::default())
}

/// A job, with its pending hint if it waits, putting the reason in words through
/// `reasons` (one per reply).
pub fn job_with(r: &JobRow, hint: Option<&Hint>, reasons: &mut Reasons) -> v1::Job {
    let reason = job_reason(r, hint, reasons).of(r).to_owned();
    let estimated_start = estimated_start(r, hint);
    v1::Job {
        id: r.id.clone(),
        name: r.name.clone(),
        org: r.org.clone(),
        user: r.user_name.clone(),
        class: r.class.clone(),
        count: r.count.max(0) as u32,
        image: r.image.clone(),
        command: r.command.clone(),
        env: r.env.clone().into_iter().collect(),
        max_runtime: Some(ms_to_dur(r.max_runtime_ms)),
        reservation_id: r.reservation_id.clone().unwrap_or_default(),
        state: r.state.to_proto() as i32,
        reason,
        node: r.node.clone().unwrap_or_default(),
        devices: r.devices.clone(),
        exit_code: r.exit_code,
        created_at: Some(ms_to_ts(r.created_ms)),
        started_at: opt_ts(r.started_ms),
        finished_at: opt_ts(r.finished_ms),
        estimated_start: opt_ts(estimated_start),
        datasets: datasets(&r.datasets),
        network: r.network.clone(),
        priority: r.priority,
        preemptible: r.preemptible,
        nodes: r.nodes.max(1) as u32,
        charged_hours: hours(r.charge.amount_ms),
        requeued_from: r.requeued_from.clone().unwrap_or_default(),
        evidence: r.evidence.as_deref().map(crate::store::Evidence::to_proto),
        project: r.project.clone().unwrap_or_default(),
        charged_project: r.charge.project.clone().unwrap_or_default(),
    }
}

/// An issued credential (never its secret).
pub fn credential(t: &crate::store::TokenRow, user: Option<&UserRow>) -> v1::Credential {
    v1::Credential {
        id: t.id.clone(),
        kind: if t.node.is_some() { "node" } else { "user" }.into(),
        user: user.map(|u| u.name.clone()).unwrap_or_default(),
        org: user.map(|u| u.org.clone()).unwrap_or_default(),
        node: t.node.clone().unwrap_or_default(),
        created_at: Some(ms_to_ts(t.created_ms)),
        expires_at: Some(ms_to_ts(t.expires_ms)),
        revoked: t.revoked,
    }
}

/// Who leads among the schedulers, as `berth admin status` shows it.
pub fn scheduler_status(
    status: &crate::engine::Status,
    seen: &crate::engine::Seen,
) -> v1::SchedulerStatus {
    let me = seen.me.as_ref().map(|m| m.id.clone()).unwrap_or_default();
    let Some(lease) = &status.lease else {
        return v1::SchedulerStatus {
            shared_database: false,
            leader: me.clone(),
            answered_by: me,
            ..Default::default()
        };
    };
    let alive = lease.expires_ms > lease.db_now_ms && !lease.holder.is_empty();
    v1::SchedulerStatus {
        shared_database: true,
        leader: if alive {
            lease.holder.clone()
        } else {
            String::new()
        },
        leader_address: if alive {
            lease.address.clone()
        } else {
            String::new()
        },
        fencing_token: lease.token.max(0) as u64,
        leader_since: alive.then(|| ms_to_ts(lease.since_ms)),
        lease_expires: alive.then(|| ms_to_ts(lease.expires_ms)),
        schedulers: status
            .members
            .iter()
            .map(|m| v1::SchedulerMember {
                id: m.id.clone(),
                address: m.address.clone(),
                role: if alive && m.id == lease.holder {
                    "leader".into()
                } else {
                    "standby".into()
                },
                started_at: Some(ms_to_ts(m.started_ms)),
                last_seen: Some(ms_to_ts(m.last_seen_ms)),
                lag: Some(ms_to_dur((lease.db_now_ms - m.last_seen_ms).max(0))),
                fencing_token: m.token.max(0) as u64,
            })
            .collect(),
        answered_by: me,
    }
}

/// Dataset mounts on the wire.
pub fn datasets(d: &[(String, bool)]) -> Vec<v1::DatasetMount> {
    d.iter()
        .map(|(name, rw)| v1::DatasetMount {
            name: name.clone(),
            read_write: *rw,
        })
        .collect()
}

/// A usage record.
pub fn usage(r: &UsageRow, user_name: &str) -> v1::UsageRecord {
    v1::UsageRecord {
        org: r.org.clone(),
        user: user_name.to_owned(),
        kind: r.kind.as_str().to_owned(),
        subject_id: r.subject_id.clone(),
        class: r.class.clone(),
        devices: r.devices.max(0) as u32,
        start: Some(ms_to_ts(r.start_ms)),
        end: Some(ms_to_ts(r.end_ms)),
        device_hours: hours(r.device_ms),
        evidence: r.evidence.as_ref().map(crate::store::Evidence::to_proto),
    }
}

/// A ledger entry.
pub fn ledger_entry(r: &LedgerRow) -> v1::LedgerEntry {
    v1::LedgerEntry {
        id: r.id.clone(),
        org: r.org.clone(),
        budget_class: r.budget_class.clone(),
        time: Some(ms_to_ts(r.time_ms)),
        kind: r.kind.as_str().to_owned(),
        hours: hours(r.amount_ms),
        subject_kind: r
            .subject_kind
            .map_or(String::new(), |k| k.as_str().to_owned()),
        subject_id: r.subject_id.clone(),
        device_class: r.device_class.clone(),
        device_hours: hours(r.device_ms),
        note: r.note.clone(),
        period_start: Some(ms_to_ts(r.period_start_ms)),
        project: r.project_id.clone().unwrap_or_default(),
    }
}

/// An audit event.
pub fn audit(r: &AuditRow) -> v1::AuditEvent {
    v1::AuditEvent {
        time: Some(ms_to_ts(r.time_ms)),
        actor: r.actor.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        outcome: r.outcome.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LedgerKind, OwnerKind};

    #[test]
    fn ledger_entries_show_hours_and_their_subject() {
        let row = LedgerRow {
            id: "l1".into(),
            org: "acme".into(),
            budget_class: "*".into(),
            time_ms: 1_000,
            kind: LedgerKind::Refund,
            amount_ms: 5_400_000,
            period_start_ms: 0,
            subject_kind: Some(OwnerKind::Reservation),
            subject_id: "r1".into(),
            device_class: "npu".into(),
            device_ms: 10_800_000,
            note: "cancelled early".into(),
            project_id: None,
        };
        let e = ledger_entry(&row);
        assert_eq!((e.kind.as_str(), e.hours), ("refund", 1.5));
        assert_eq!(
            (e.subject_kind.as_str(), e.subject_id.as_str()),
            ("reservation", "r1")
        );
        assert_eq!((e.device_class.as_str(), e.device_hours), ("npu", 3.0));
        assert_eq!(e.period_start, Some(ms_to_ts(0)));
        assert_eq!(e.time, Some(ms_to_ts(1_000)));
        let top_up = ledger_entry(&LedgerRow {
            kind: LedgerKind::TopUp,
            subject_kind: None,
            subject_id: String::new(),
            ..row
        });
        assert_eq!(
            (top_up.kind.as_str(), top_up.subject_kind.as_str()),
            ("top-up", "")
        );
    }

    #[test]
    fn hints_are_utc_calendar_times() {
        assert_eq!(super::local_hint(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::local_hint(1_796_220_000_000), "2026-12-02 14:00 UTC");
    }
}
