//! Notifications: what happened ([`Event`]), who wants to hear of it (users' email
//! subscriptions and orgs' webhooks), and the outbox that carries it to them.
//!
//! An event becomes outbox rows ([`Mutation::InsertNotifications`]) staged in the same
//! batch as the change that caused it, so it is durable exactly when that change is.
//! Most events are derived from the mutations themselves as they are staged
//! ([`derive`], called by [`super::Tx::push`]): a job reaching a final state, a booking
//! warned for idleness or reclaimed, a charge taking a budget past 50, 80 or 100 %.
//! Bookings starting or ending in 15 minutes come from a sweep in the leader's pass
//! ([`sweep_bookings`]). Other parts (projects, invoices) call [`stage`] with their
//! event inside their own batch. The [`sender`] task delivers the rows.

mod ops;
pub mod sender;
mod smtp;
mod webhook;

pub use sender::{NotifyConfig, SmtpConfig};

use super::now;
use super::pipeline::Tx;
use crate::convert::local_hint;
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::{
    Channel, DeliveryState, JobState, LedgerKind, Mutation, NotificationRow, ReservationState,
    SubscriptionRow,
};
use berth_i18n::api::{Msg, Text};
use berth_i18n::text;
use berth_proto::model::Role;
use serde::{Deserialize, Serialize};

/// How long before a booking starts or ends its users are told.
pub const BOOKING_LEAD_MS: i64 = 15 * 60_000;
/// The budget thresholds, in percent of the period's allowance, each told once a period.
pub const BUDGET_THRESHOLDS: [u32; 3] = [50, 80, 100];
/// Most deliveries a listing shows.
pub const MAX_LISTED: u32 = 500;

/// The kinds of event a user or a webhook subscribes to, by their `--events` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A booking starts in 15 minutes.
    BookingStart,
    /// A booking ends in 15 minutes.
    BookingEnd,
    /// An idle booking was warned it will be reclaimed.
    IdleWarning,
    /// An idle booking was reclaimed.
    Reclaimed,
    /// A job ended, failed or was preempted.
    JobEnd,
    /// A budget reached 50, 80 or 100 %.
    Budget,
    /// A project expires in 7 days, or has expired.
    ProjectExpiry,
    /// An invoice was issued.
    Invoice,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 8] = [
        EventKind::BookingStart,
        EventKind::BookingEnd,
        EventKind::IdleWarning,
        EventKind::Reclaimed,
        EventKind::JobEnd,
        EventKind::Budget,
        EventKind::ProjectExpiry,
        EventKind::Invoice,
    ];

    /// The name used by `--events`, in the outbox and in webhook posts.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::BookingStart => "booking-start",
            EventKind::BookingEnd => "booking-end",
            EventKind::IdleWarning => "idle-warning",
            EventKind::Reclaimed => "reclaimed",
            EventKind::JobEnd => "job-end",
            EventKind::Budget => "budget",
            EventKind::ProjectExpiry => "project-expiry",
            EventKind::Invoice => "invoice",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Something that happened that someone may want to hear of. Stored as JSON in the
/// outbox (`{"event": "job-end", ...}`) and worded when it is sent, in the recipient's
/// language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Booking `id` starts at `at_ms`.
    BookingStart {
        org: String,
        id: String,
        user_id: String,
        class: String,
        count: i32,
        at_ms: i64,
    },
    /// Booking `id` ends at `at_ms`.
    BookingEnd {
        org: String,
        id: String,
        user_id: String,
        class: String,
        count: i32,
        at_ms: i64,
    },
    /// Booking `id` is idle and will be reclaimed at `reclaim_at_ms`.
    IdleWarning {
        org: String,
        id: String,
        user_id: String,
        reclaim_at_ms: i64,
    },
    /// Booking `id` was reclaimed for idleness.
    Reclaimed {
        org: String,
        id: String,
        user_id: String,
    },
    /// Job `id` reached the final `state` (`succeeded`, `failed`, `preempted`, ...).
    JobEnd {
        org: String,
        id: String,
        user_id: String,
        name: String,
        state: String,
        reason: String,
    },
    /// The org's budget for `class` (a class or `*`) reached `percent` in the period
    /// starting at `period_start_ms`.
    Budget {
        org: String,
        class: String,
        percent: u32,
        period_start_ms: i64,
    },
    /// Project `project` of `org` has used `percent` of its grant of `class` (a `budget`
    /// event: a budget or a grant).
    Grant {
        org: String,
        project: String,
        class: String,
        percent: u32,
    },
    /// Project `id` expires at `end_ms` (`expired`: it has expired).
    ProjectExpiry {
        org: String,
        id: String,
        title: String,
        end_ms: i64,
        expired: bool,
    },
    /// Invoice `id` for `month` (`YYYY-MM`) was issued for `amount_krw` won.
    Invoice {
        org: String,
        id: String,
        month: String,
        amount_krw: i64,
    },
}

impl Event {
    /// What kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::BookingStart { .. } => EventKind::BookingStart,
            Event::BookingEnd { .. } => EventKind::BookingEnd,
            Event::IdleWarning { .. } => EventKind::IdleWarning,
            Event::Reclaimed { .. } => EventKind::Reclaimed,
            Event::JobEnd { .. } => EventKind::JobEnd,
            Event::Budget { .. } | Event::Grant { .. } => EventKind::Budget,
            Event::ProjectExpiry { .. } => EventKind::ProjectExpiry,
            Event::Invoice { .. } => EventKind::Invoice,
        }
    }

    /// The org it happened in.
    pub fn org(&self) -> &str {
        match self {
            Event::BookingStart { org, .. }
            | Event::BookingEnd { org, .. }
            | Event::IdleWarning { org, .. }
            | Event::Reclaimed { org, .. }
            | Event::JobEnd { org, .. }
            | Event::Budget { org, .. }
            | Event::Grant { org, .. }
            | Event::ProjectExpiry { org, .. }
            | Event::Invoice { org, .. } => org,
        }
    }

    /// The kind of object it is about (`reservation`, `job`, `budget`, `project`,
    /// `invoice`) and its id (a budget's is its class key).
    pub fn object(&self) -> (&'static str, &str) {
        match self {
            Event::BookingStart { id, .. }
            | Event::BookingEnd { id, .. }
            | Event::IdleWarning { id, .. }
            | Event::Reclaimed { id, .. } => ("reservation", id),
            Event::JobEnd { id, .. } => ("job", id),
            Event::Budget { class, .. } => ("budget", class),
            Event::Grant { project, .. } => ("project", project),
            Event::ProjectExpiry { id, .. } => ("project", id),
            Event::Invoice { id, .. } => ("invoice", id),
        }
    }

    /// The user whose object it is; `None` for the org's own (budgets, projects,
    /// invoices), which every subscribed member hears of.
    fn owner(&self) -> Option<&str> {
        match self {
            Event::BookingStart { user_id, .. }
            | Event::BookingEnd { user_id, .. }
            | Event::IdleWarning { user_id, .. }
            | Event::Reclaimed { user_id, .. }
            | Event::JobEnd { user_id, .. } => Some(user_id),
            Event::Budget { .. }
            | Event::Grant { .. }
            | Event::ProjectExpiry { .. }
            | Event::Invoice { .. } => None,
        }
    }

    /// A key naming this occurrence, for events a sweep or a threshold may stage again.
    fn dedupe(&self) -> Option<String> {
        match self {
            Event::BookingStart { id, .. } => Some(format!("booking-start:{id}")),
            Event::BookingEnd { id, .. } => Some(format!("booking-end:{id}")),
            Event::IdleWarning {
                id, reclaim_at_ms, ..
            } => Some(format!("idle-warning:{id}:{reclaim_at_ms}")),
            Event::Budget {
                org,
                class,
                percent,
                period_start_ms,
            } => Some(format!("budget:{org}:{class}:{period_start_ms}:{percent}")),
            Event::Grant {
                project,
                class,
                percent,
                ..
            } => Some(format!("grant:{project}:{class}:{percent}")),
            Event::ProjectExpiry { id, expired, .. } => Some(format!(
                "project-expiry:{id}:{}",
                if *expired { "expired" } else { "soon" }
            )),
            Event::Invoice { id, .. } => Some(format!("invoice:{id}")),
            Event::Reclaimed { .. } | Event::JobEnd { .. } => None,
        }
    }

    /// The message, to be worded in the recipient's language.
    pub fn text(&self) -> Text {
        match self {
            Event::BookingStart {
                id,
                class,
                count,
                at_ms,
                ..
            } => text!(
                NotifyBookingStart,
                id,
                class,
                count,
                at = local_hint(*at_ms)
            ),
            Event::BookingEnd {
                id,
                class,
                count,
                at_ms,
                ..
            } => text!(NotifyBookingEnd, id, class, count, at = local_hint(*at_ms)),
            Event::IdleWarning {
                id, reclaim_at_ms, ..
            } => text!(NotifyIdleWarning, id, at = local_hint(*reclaim_at_ms)),
            Event::Reclaimed { id, .. } => text!(NotifyReclaimed, id),
            Event::JobEnd {
                id,
                name,
                state,
                reason,
                ..
            } => text!(NotifyJobEnd, id, name, state, reason),
            Event::Budget {
                org,
                class,
                percent,
                period_start_ms,
            } => text!(
                NotifyBudget,
                org,
                class,
                percent,
                at = local_hint(*period_start_ms)
            ),
            Event::Grant {
                org,
                project,
                class,
                percent,
            } => text!(NotifyGrant, org, project, class, percent),
            Event::ProjectExpiry {
                id,
                title,
                end_ms,
                expired: false,
                ..
            } => text!(NotifyProjectExpiring, id, title, at = local_hint(*end_ms)),
            Event::ProjectExpiry {
                id,
                title,
                expired: true,
                ..
            } => text!(NotifyProjectExpired, id, title),
            Event::Invoice {
                id,
                month,
                amount_krw,
                ..
            } => text!(NotifyInvoice, id, month, amount = amount_krw),
        }
    }
}

/// Whether a subscription's (or webhook's) events include `kind`; a webhook with no
/// events wants every event.
fn wants(events: &[String], kind: EventKind, empty_means_all: bool) -> bool {
    (empty_means_all && events.is_empty()) || events.iter().any(|e| e == kind.name())
}

/// The outbox rows of `event`: one mail per subscribed user who may hear of it (the
/// owner of the object and the org's admins for a user's object; every member for the
/// org's own), and one post per webhook of the org that wants it. Empty when nobody
/// does, or when this occurrence was staged already.
pub fn outbox(state: &State, event: &Event, now_ms: i64) -> Vec<NotificationRow> {
    let key = event.dedupe();
    if key.as_ref().is_some_and(|k| state.notified.contains_key(k)) {
        return Vec::new();
    }
    let kind = event.kind();
    let org = event.org();
    let (object_kind, object_id) = event.object();
    // Written only once someone is to receive it: most events have no recipient.
    let payload = std::cell::OnceCell::new();
    let row = |channel: Channel, target: &str, user: &str, hook: &str, who: &str| NotificationRow {
        id: uuid::Uuid::new_v4().to_string(),
        dedupe: key.as_ref().map(|k| format!("{k}:{who}")),
        event: kind.name().to_owned(),
        org: org.to_owned(),
        object_kind: object_kind.to_owned(),
        object_id: object_id.to_owned(),
        channel,
        target: target.to_owned(),
        user_id: user.to_owned(),
        webhook_id: hook.to_owned(),
        payload: payload
            .get_or_init(|| serde_json::to_string(event).unwrap_or_default())
            .clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_ms: now_ms,
        last_error: String::new(),
        created_ms: now_ms,
        updated_ms: now_ms,
        sent_ms: None,
    };
    let mut rows = Vec::new();
    let mut subs: Vec<&SubscriptionRow> = state
        .subscriptions
        .values()
        .filter(|s| s.org == org && !s.email.is_empty() && wants(&s.events, kind, false))
        .collect();
    subs.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    for s in subs {
        let Some(user) = state.user_by_id(&s.user_id).filter(|u| u.org == org) else {
            continue;
        };
        let may = match event.owner() {
            None => true,
            Some(owner) => owner == user.id || user.role == Role::OrgAdmin,
        };
        if may {
            let who = format!("email:{}", user.id);
            rows.push(row(Channel::Email, &s.email, &user.id, "", &who));
        }
    }
    for h in state.webhooks.values() {
        if h.org == org && wants(&h.events, kind, true) {
            let who = format!("webhook:{}", h.id);
            rows.push(row(Channel::Webhook, &h.url, "", &h.id, &who));
        }
    }
    rows
}

/// The mutation that puts `event` in the outbox for its recipients, to be staged in the
/// same batch as the change that caused it; `None` when nobody is to hear of it.
pub fn mutation(state: &State, event: &Event, now_ms: i64) -> Option<Mutation> {
    let rows = outbox(state, event, now_ms);
    (!rows.is_empty()).then_some(Mutation::InsertNotifications(rows))
}

/// Stages `event` for its recipients in `tx`'s batch. This is the one call other parts
/// make for their events (a project expiring, an invoice issued).
pub fn stage(tx: &mut Tx<'_>, event: &Event) {
    if let Some(m) = mutation(tx.state(), event, now()) {
        tx.push(m);
    }
}

/// What [`derive`] saw before a mutation was applied.
pub(crate) struct Before {
    events: Vec<Event>,
    /// Budgets charged by the mutation, with the percent used before it.
    budgets: Vec<(String, String, i64, Option<f64>)>,
    /// Project grants charged by the mutation: (org, project, class, percent before).
    grants: Vec<(String, String, String, Option<f64>)>,
}

/// Percent of a budget's period allowance (plus top-ups) used, `None` without a limit.
fn used_pct(state: &State, org: &str, key: &str, period_start: i64) -> Option<f64> {
    let allowance = state.accounts.budget(org, key)?.allowance_ms?;
    let t = state.accounts.totals(org, key, period_start);
    let cap = allowance + t.topped_up;
    if cap <= 0 {
        return None;
    }
    Some((t.charged - t.refunded) as f64 * 100.0 / cap as f64)
}

/// How much of a project's grant of `class` is used, percent.
fn grant_pct(state: &State, project: &str, class: &str) -> Option<f64> {
    let granted = *state.accounts.grant(project)?.device_ms.get(class)?;
    (granted > 0).then(|| state.accounts.grant_used(project, class) as f64 * 100.0 / granted as f64)
}

/// The events `m` causes, seen on the state before it is applied; `None` for most
/// mutations.
pub(crate) fn derive(state: &State, m: &Mutation) -> Option<Before> {
    let mut events = Vec::new();
    let mut budgets = Vec::new();
    let mut grants: Vec<(String, String, String, Option<f64>)> = Vec::new();
    match m {
        Mutation::UpsertJob(row) => {
            let was = state.jobs.get(&row.id).map(|j| j.row.state);
            if row.state.is_final() && was.is_some_and(|s| !s.is_final()) {
                events.push(job_end(row.as_ref()));
            }
        }
        Mutation::UpsertReservation(r) => {
            let was = state.reservations.get(&r.id);
            if r.state == ReservationState::Reclaimed
                && was.is_some_and(|w| w.state != ReservationState::Reclaimed)
            {
                events.push(Event::Reclaimed {
                    org: r.org.clone(),
                    id: r.id.clone(),
                    user_id: r.user_id.clone(),
                });
            } else if r.state == ReservationState::Active
                && let Some(warned) = r.idle_warned_ms
                && was.is_some_and(|w| w.idle_warned_ms.is_none())
            {
                events.push(Event::IdleWarning {
                    org: r.org.clone(),
                    id: r.id.clone(),
                    user_id: r.user_id.clone(),
                    reclaim_at_ms: warned + state.sched.idle_reclaim_after_ms,
                });
            }
        }
        Mutation::InsertLedger(rows) => {
            for e in rows.iter().filter(|e| e.kind == LedgerKind::Charge) {
                if let Some(project) = &e.project_id {
                    if !grants
                        .iter()
                        .any(|(_, p, c, _)| p == project && *c == e.device_class)
                    {
                        let pct = grant_pct(state, project, &e.device_class);
                        grants.push((e.org.clone(), project.clone(), e.device_class.clone(), pct));
                    }
                    continue;
                }
                let key = (e.org.clone(), e.budget_class.clone(), e.period_start_ms);
                if !budgets
                    .iter()
                    .any(|(o, c, p, _)| (o, c, p) == (&key.0, &key.1, &key.2))
                {
                    let pct = used_pct(state, &key.0, &key.1, key.2);
                    budgets.push((key.0, key.1, key.2, pct));
                }
            }
        }
        _ => return None,
    }
    (!events.is_empty() || !budgets.is_empty() || !grants.is_empty()).then_some(Before {
        events,
        budgets,
        grants,
    })
}

/// The outbox mutation of what [`derive`] saw, on the state after the mutation.
pub(crate) fn derived(state: &State, before: Before) -> Option<Mutation> {
    let mut events = before.events;
    for (org, class, period_start_ms, was) in before.budgets {
        let Some(now_pct) = used_pct(state, &org, &class, period_start_ms) else {
            continue;
        };
        let was = was.unwrap_or(0.0);
        for percent in BUDGET_THRESHOLDS {
            let p = f64::from(percent);
            if was < p && now_pct >= p {
                events.push(Event::Budget {
                    org: org.clone(),
                    class: class.clone(),
                    percent,
                    period_start_ms,
                });
            }
        }
    }
    for (org, project, class, was) in before.grants {
        let Some(now_pct) = grant_pct(state, &project, &class) else {
            continue;
        };
        let was = was.unwrap_or(0.0);
        for percent in BUDGET_THRESHOLDS {
            let p = f64::from(percent);
            if was < p && now_pct >= p {
                events.push(Event::Grant {
                    org: org.clone(),
                    project: project.clone(),
                    class: class.clone(),
                    percent,
                });
            }
        }
    }
    let t = now();
    let rows: Vec<NotificationRow> = events.iter().flat_map(|e| outbox(state, e, t)).collect();
    (!rows.is_empty()).then_some(Mutation::InsertNotifications(rows))
}

fn job_end(row: &crate::store::JobRow) -> Event {
    Event::JobEnd {
        org: row.org.clone(),
        id: row.id.clone(),
        user_id: row.user_id.clone(),
        name: row.name.clone(),
        state: row.state.as_str().to_owned(),
        reason: if row.reason.is_empty() && row.state == JobState::Succeeded {
            "exit code 0".to_owned()
        } else {
            row.reason.clone()
        },
    }
}

/// Stages the notices of bookings that start or end within [`BOOKING_LEAD_MS`] of `t`
/// (each once: the outbox's dedupe key). Part of the leader's housekeeping.
pub(crate) fn sweep_bookings(tx: &mut Tx<'_>, t: i64) {
    let state = tx.state();
    if state.subscriptions.is_empty() && state.webhooks.is_empty() {
        return;
    }
    let mut events: Vec<Event> = Vec::new();
    for r in state.reservations.values() {
        let soon = |at: i64| at > t && at - t <= BOOKING_LEAD_MS;
        if r.state == ReservationState::Confirmed && soon(r.start_ms) {
            events.push(Event::BookingStart {
                org: r.org.clone(),
                id: r.id.clone(),
                user_id: r.user_id.clone(),
                class: r.class.clone(),
                count: r.count,
                at_ms: r.start_ms,
            });
        }
        if matches!(
            r.state,
            ReservationState::Confirmed | ReservationState::Active
        ) && soon(r.end_ms)
        {
            events.push(Event::BookingEnd {
                org: r.org.clone(),
                id: r.id.clone(),
                user_id: r.user_id.clone(),
                class: r.class.clone(),
                count: r.count,
                at_ms: r.end_ms,
            });
        }
    }
    events.sort_by(|a, b| a.object().1.cmp(b.object().1));
    for e in events {
        stage(tx, &e);
    }
}

/// Checks a list of event names, in order, without repeats; refused naming `events`.
pub fn check_events(names: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for raw in names.iter().flat_map(|n| n.split(',')) {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        let Some(kind) = EventKind::parse(name) else {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
            return Err(Error::field(
                "events",
                text!(UnknownEvent, name = ?name, known = known.join(", ")),
            ));
        };
        if !out.iter().any(|e| e == kind.name()) {
            out.push(kind.name().to_owned());
        }
    }
    Ok(out)
}

/// Checks an email address (one `@`, a dotted domain, no spaces or header
/// characters); refused naming `email`.
pub fn check_email(addr: &str) -> Result<String> {
    let a = addr.trim();
    let bad = || Error::field("email", text!(NotAnEmail, value = ?a));
    let (local, domain) = a.split_once('@').ok_or_else(bad)?;
    let clean = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"@".contains(c))
    };
    if a.len() > 254 || !clean(local) || !clean(domain) || !domain.contains('.') {
        return Err(bad());
    }
    if domain.starts_with('.') || domain.ends_with('.') {
        return Err(bad());
    }
    Ok(a.to_owned())
}

/// Checks a webhook URL: `http://` or `https://` with a host; refused naming `url`.
pub fn check_url(url: &str) -> Result<String> {
    let u = url.trim();
    let bad = || Error::field("url", Msg::NotHttpUrl);
    webhook::Target::parse(u).map_err(|_| bad())?;
    Ok(u.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip_and_lists_are_checked() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.name()), Some(k));
        }
        let ok = check_events(&["job-end, budget".into(), "job-end".into()]).unwrap();
        assert_eq!(ok, ["job-end", "budget"]);
        let err = check_events(&["job-end,jobs-end".into()]).unwrap_err();
        assert!(err.to_string().contains("events"), "{err}");
    }

    #[test]
    fn emails_and_urls_are_checked_naming_the_field() {
        assert_eq!(check_email(" kim@example.kr ").unwrap(), "kim@example.kr");
        for bad in [
            "kim",
            "kim@localhost",
            "a b@x.kr",
            "kim@x.kr\r\nBcc: y@z.kr",
            "@x.kr",
        ] {
            let e = check_email(bad).unwrap_err();
            assert!(e.to_string().contains("email"), "{bad}: {e}");
        }
        assert!(check_url("https://hooks.slack.com/services/x").is_ok());
        assert!(check_url("http://127.0.0.1:9/x").is_ok());
        for bad in [
            "ftp://x/y",
            "hooks.slack.com",
            "http://",
            "javascript:alert(1)",
        ] {
            let e = check_url(bad).unwrap_err();
            assert!(e.to_string().contains("url"), "{bad}: {e}");
        }
    }

    #[test]
    fn events_are_stored_as_tagged_json_and_worded_in_both_languages() {
        let e = Event::JobEnd {
            org: "acme".into(),
            id: "j1".into(),
            user_id: "u1".into(),
            name: "train".into(),
            state: "failed".into(),
            reason: "exited with code 3".into(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "job-end");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
        let en = e.text().render(berth_i18n::Lang::En);
        let ko = e.text().render(berth_i18n::Lang::Ko);
        assert!(en.starts_with("Job j1 (train) ended: failed"), "{en}");
        assert!(ko.contains("작업 j1"), "{ko}");
    }
}
