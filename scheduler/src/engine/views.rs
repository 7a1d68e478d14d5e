//! What readers see: listings a page at a time from the database (committed rows only),
//! and live objects from the committed state, with why pending jobs wait.

use super::{Engine, Hint, now};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::paging;
use crate::store::{
    AuditFilter, AuditRow, Cursor, JobFilter, JobRow, JobState, LedgerRow, OwnerKind, Page,
    RangeFilter, ReservationFilter, ReservationRow, ReservationState, UsageRow,
};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::model;
use berth_proto::time::{HOUR_MS, ts_to_ms};
use berth_proto::v1;
use std::sync::Arc;

/// A job as readers see it: its committed row, and why it waits if it is pending.
#[derive(Debug, Clone)]
pub struct JobView {
    /// The committed row.
    pub row: Arc<JobRow>,
    /// Why it waits, from the latest pass.
    pub hint: Option<Hint>,
    /// What it has done on its devices so far, while it runs (its agents' latest
    /// reports; the row keeps the final evidence once it ends).
    pub running: Option<crate::store::Evidence>,
}

impl JobView {
    /// A view of a row.
    pub fn new(row: Arc<JobRow>, hint: Option<Hint>) -> Self {
        JobView {
            row,
            hint,
            running: None,
        }
    }

    /// The view with the running job's evidence so far from `observed`.
    pub(crate) fn observed(mut self, observed: &super::observed::Observed) -> Self {
        if self.row.evidence.is_none() && self.row.state.is_placed() {
            self.running = observed.evidence_of(&self.row.id);
        }
        self
    }

    /// On the wire.
    pub fn to_proto(&self) -> v1::Job {
        self.to_proto_with(&mut crate::convert::Reasons::default())
    }

    /// On the wire, as one of a reply's jobs: reasons already put in words for the reply
    /// are reused.
    pub fn to_proto_with(&self, reasons: &mut crate::convert::Reasons) -> v1::Job {
        let mut j = crate::convert::job_with(&self.row, self.hint.as_ref(), reasons);
        if j.evidence.is_none() {
            j.evidence = self.running.as_ref().map(crate::store::Evidence::to_proto);
        }
        j
    }
}

/// A page of items and the token of the next page (empty on the last).
pub struct Listed<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass back for the next page.
    pub next_page_token: String,
}

/// The org a caller may list: users and org-admins their own (another org is "not
/// found"); admins the named org, or every org (`None`).
pub(crate) fn scoped_org(caller: &Caller, asked: &str) -> Result<Option<String>> {
    caller.require_user()?;
    let asked = model::optional_name("org", asked)?;
    match (caller.is_admin(), asked) {
        (true, org) => Ok(org),
        (false, Some(o)) if o != caller.org => Err(Error::NotFound(text!(WhatOrg, name = ?o))),
        (false, _) => Ok(Some(caller.org.clone())),
    }
}

fn job_states(states: &[i32]) -> Result<Vec<JobState>> {
    states
        .iter()
        .map(|&s| {
            let p = v1::JobState::try_from(s)
                .ok()
                .filter(|p| *p != v1::JobState::Unspecified);
            p.and_then(|p| {
                [
                    JobState::Pending,
                    JobState::Scheduled,
                    JobState::Starting,
                    JobState::Running,
                    JobState::Succeeded,
                    JobState::Failed,
                    JobState::Cancelled,
                    JobState::Preempted,
                    JobState::TimedOut,
                    JobState::Lost,
                ]
                .into_iter()
                .find(|j| j.to_proto() == p)
            })
            .ok_or_else(|| Error::field("states", text!(NotAJobState, s)))
        })
        .collect()
}

fn reservation_states(states: &[i32]) -> Result<Vec<ReservationState>> {
    states
        .iter()
        .map(|&s| {
            let p = v1::ReservationState::try_from(s)
                .ok()
                .filter(|p| *p != v1::ReservationState::Unspecified);
            p.and_then(|p| {
                [
                    ReservationState::Requested,
                    ReservationState::Confirmed,
                    ReservationState::Active,
                    ReservationState::Completed,
                    ReservationState::Cancelled,
                    ReservationState::Reclaimed,
                ]
                .into_iter()
                .find(|r| r.to_proto() == p)
            })
            .ok_or_else(|| Error::field("states", text!(NotAReservationState, s)))
        })
        .collect()
}

/// Whether a listing with `filter` shows the live job `j` (its org, user, class and
/// states; the time bounds are the caller's).
fn shows(filter: &JobFilter, j: &JobRow) -> bool {
    filter.org.as_ref().is_none_or(|o| *o == j.org)
        && filter.user.as_ref().is_none_or(|u| *u == j.user_name)
        && filter.class.as_ref().is_none_or(|c| *c == j.class)
        && (filter.states.is_empty() || filter.states.contains(&j.state))
}

/// The database part of a job listing, ended jobs only; `None` when it shows none.
fn ended_filter(filter: &JobFilter) -> Option<JobFilter> {
    let states: Vec<JobState> = filter
        .states
        .iter()
        .copied()
        .filter(|s| s.is_final())
        .collect();
    let wanted = if filter.states.is_empty() {
        filter.include_finished
    } else {
        !states.is_empty()
    };
    wanted.then(|| JobFilter {
        states,
        include_finished: true,
        ended_only: true,
        ..filter.clone()
    })
}

/// The first `limit` of two newest-first lists, newest first; a job in both (live in
/// memory, ended since in the database) is shown as the database has it.
fn merge_newest(live: Vec<Arc<JobRow>>, ended: Vec<JobRow>, limit: usize) -> Vec<Arc<JobRow>> {
    let ended_ids: std::collections::HashSet<&str> = ended.iter().map(|j| j.id.as_str()).collect();
    let live: Vec<Arc<JobRow>> = live
        .into_iter()
        .filter(|j| !ended_ids.contains(j.id.as_str()))
        .collect();
    let mut out = Vec::with_capacity(limit.min(live.len() + ended.len()));
    let mut live = live.into_iter().peekable();
    let mut ended = ended.into_iter().map(Arc::new).peekable();
    while out.len() < limit {
        let take_live = match (live.peek(), ended.peek()) {
            (Some(l), Some(e)) => (l.created_ms, &l.id) > (e.created_ms, &e.id),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_live { live.next() } else { ended.next() };
        out.extend(next);
    }
    out
}

fn optional(field: &str, v: &str) -> Result<Option<String>> {
    Ok(model::optional_name(field, v)?)
}

/// `[from, to)` of a range listing, defaulting to the last `days` days up to `ahead_ms`
/// from now.
fn range(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
    days: i64,
    ahead_ms: i64,
) -> Result<(i64, i64)> {
    let t = now();
    let from = from.map_or(t - days * 24 * HOUR_MS, ts_to_ms);
    let to = to.map_or(t + ahead_ms, ts_to_ms);
    if to <= from {
        return Err(Error::field("to", Msg::AfterFrom));
    }
    Ok((from, to))
}

impl Engine {
    /// A page of jobs the caller may see, newest first: live jobs from the committed
    /// state's ordered index, ended ones from the database's index of ended jobs, merged.
    pub async fn list_jobs(
        &self,
        caller: &Caller,
        r: &v1::ListJobsRequest,
    ) -> Result<Listed<JobView>> {
        caller.require_user()?;
        let filter = JobFilter {
            org: (!caller.is_admin()).then(|| caller.org.clone()),
            include_finished: r.all,
            states: job_states(&r.states)?,
            user: optional("user", &r.user)?,
            class: optional("class", &r.class)?,
            since_ms: r.since.as_ref().map(ts_to_ms),
            ended_only: false,
        };
        let page = paging::page("jobs", &filter, r.page_size, &r.page_token)?;
        // Memory first, then the database: a job live in this snapshot that has ended
        // since is in both (the database's row wins), and one that had ended here has
        // ended there too, so no job falls between the two.
        let (live, ended_may_show) = self.live_jobs_page(&filter, &page);
        let ended = match ended_filter(&filter) {
            Some(f) if ended_may_show => self.store.list_jobs(&f, &page).await?,
            _ => Vec::new(),
        };
        let rows = merge_newest(live, ended, page.limit as usize);
        let last = rows.last().map(|j| Cursor {
            key: j.created_ms,
            id: j.id.clone(),
        });
        let next_page_token = paging::next("jobs", &filter, &page, rows.len(), last);
        let hints = self.hints.get();
        let items = rows
            .into_iter()
            .map(|row| {
                let hint = (row.state == JobState::Pending)
                    .then(|| hints.get(&row.id).cloned())
                    .flatten();
                JobView::new(row, hint).observed(&self.observed)
            })
            .collect();
        Ok(Listed {
            items,
            next_page_token,
        })
    }

    /// Up to a page of the committed live jobs that `filter` shows, after the page's
    /// cursor, newest first; and whether an ended job may come before the last of them
    /// (when the page is full of jobs newer than every ended one, the database has
    /// nothing for it).
    fn live_jobs_page(&self, filter: &JobFilter, page: &Page) -> (Vec<Arc<JobRow>>, bool) {
        let committed = self.pipeline.committed();
        if !filter.states.is_empty() && filter.states.iter().all(|s| s.is_final()) {
            return (Vec::new(), committed.may_hold_ended(None));
        }
        let after = page.after.as_ref().map(|c| (c.key, c.id.as_str()));
        let live: Vec<Arc<JobRow>> = committed
            .live_jobs_newest(after)
            .take_while(|j| filter.since_ms.is_none_or(|since| j.created_ms >= since))
            .filter(|j| shows(filter, j))
            .take(page.limit as usize)
            .cloned()
            .collect();
        let last = live
            .last()
            .filter(|_| live.len() == page.limit as usize)
            .map(|j| (j.created_ms, j.id.as_str()));
        let ended_may_show = committed.may_hold_ended(last);
        (live, ended_may_show)
    }

    /// A page of reservations the caller may see, newest first.
    pub async fn list_reservations(
        &self,
        caller: &Caller,
        r: &v1::ListReservationsRequest,
    ) -> Result<Listed<ReservationRow>> {
        caller.require_user()?;
        let filter = ReservationFilter {
            org: (!caller.is_admin()).then(|| caller.org.clone()),
            include_finished: r.all,
            states: reservation_states(&r.states)?,
            user: optional("user", &r.user)?,
            class: optional("class", &r.class)?,
            since_ms: r.since.as_ref().map(ts_to_ms),
        };
        let page = paging::page("reservations", &filter, r.page_size, &r.page_token)?;
        let items = self.store.list_reservations(&filter, &page).await?;
        let last = items.last().map(|r| Cursor {
            key: r.created_ms,
            id: r.id.clone(),
        });
        let next_page_token = paging::next("reservations", &filter, &page, items.len(), last);
        Ok(Listed {
            items,
            next_page_token,
        })
    }

    /// Reservations as the API shows them, with the idle warning of each under the
    /// current policy.
    pub fn reservation_views<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a ReservationRow>,
    ) -> Vec<v1::Reservation> {
        let policy = self.view().sched.clone();
        rows.into_iter()
            .map(|r| super::reclaim::reservation_view(&policy, r))
            .collect()
    }

    /// A page of audit events (admin), newest first.
    pub async fn list_audit(
        &self,
        caller: &Caller,
        r: &v1::ListAuditRequest,
    ) -> Result<Listed<AuditRow>> {
        caller.require_admin()?;
        let filter = AuditFilter {
            since_ms: r.since.as_ref().map(ts_to_ms),
            action_prefix: (!r.action.is_empty()).then(|| r.action.clone()),
        };
        let size = if r.page_size > 0 {
            r.page_size
        } else {
            r.limit
        };
        let page = paging::page("audit", &filter, size, &r.page_token)?;
        let rows = self.store.list_audit(&filter, &page).await?;
        let last = rows.last().map(|(id, a)| Cursor {
            key: a.time_ms,
            id: id.to_string(),
        });
        let next_page_token = paging::next("audit", &filter, &page, rows.len(), last);
        Ok(Listed {
            items: rows.into_iter().map(|(_, a)| a).collect(),
            next_page_token,
        })
    }

    /// A page of ledger entries the caller may see in `[from, to)` (default: the last 31
    /// days), oldest first.
    pub async fn list_ledger(
        &self,
        caller: &Caller,
        r: &v1::ListLedgerRequest,
    ) -> Result<Listed<LedgerRow>> {
        let org = scoped_org(caller, &r.org)?;
        let (from_ms, to_ms) = range(r.from.as_ref(), r.to.as_ref(), 31, 1)?;
        let filter = RangeFilter {
            org,
            from_ms,
            to_ms,
            class: optional("class", &r.class)?,
        };
        let page = paging::page("ledger", &filter, r.page_size, &r.page_token)?;
        let items = self.store.list_ledger(&filter, &page).await?;
        let last = items.last().map(|e| Cursor {
            key: e.time_ms,
            id: e.id.clone(),
        });
        let next_page_token = paging::next("ledger", &filter, &page, items.len(), last);
        Ok(Listed {
            items,
            next_page_token,
        })
    }

    /// Usage the caller may see in `[from, to)` (default: the last 30 days and the next
    /// hour): a page of records, oldest first; with the first page, totals of the whole
    /// range and the budgets. Live bookings count for their whole window (their final
    /// record replaces this when they end) and come with the last page.
    pub async fn usage(
        &self,
        caller: &Caller,
        r: &v1::GetUsageRequest,
    ) -> Result<v1::GetUsageResponse> {
        let org = scoped_org(caller, &r.org)?;
        let (from_ms, to_ms) = range(r.from.as_ref(), r.to.as_ref(), 30, HOUR_MS)?;
        let filter = RangeFilter {
            org: org.clone(),
            from_ms,
            to_ms,
            class: optional("class", &r.class)?,
        };
        let page = paging::page("usage", &filter, r.page_size, &r.page_token)?;
        let first = page.after.is_none();
        let rows = self.store.list_usage(&filter, &page).await?;
        let last = rows.last().map(|(id, u)| Cursor {
            key: u.start_ms,
            id: id.to_string(),
        });
        let next_page_token = paging::next("usage", &filter, &page, rows.len(), last);
        let mut records: Vec<UsageRow> = rows.into_iter().map(|(_, u)| u).collect();
        let mut totals: std::collections::BTreeMap<(String, String), (f64, f64)> =
            Default::default();
        if first {
            for (org, class, kind, device_ms) in self.store.usage_totals(&filter).await? {
                let t = totals.entry((org, class)).or_default();
                let h = crate::convert::hours(device_ms);
                match kind {
                    OwnerKind::Reservation => t.0 += h,
                    OwnerKind::Job => t.1 += h,
                }
            }
        }
        let state = self.view();
        let live: Vec<UsageRow> = state
            .reservations
            .values()
            .filter(|r| org.as_ref().is_none_or(|o| *o == r.org))
            .filter(|r| filter.class.as_ref().is_none_or(|c| *c == r.class))
            .filter(|r| r.start_ms < to_ms && r.end_ms > from_ms)
            .map(|r| super::reservation_usage(r, r.end_ms))
            .collect();
        if first {
            for u in &live {
                totals
                    .entry((u.org.clone(), u.class.clone()))
                    .or_default()
                    .0 += crate::convert::hours(u.device_ms);
            }
        }
        if next_page_token.is_empty() {
            let mut live = live;
            live.sort_by(|a, b| (a.start_ms, &a.subject_id).cmp(&(b.start_ms, &b.subject_id)));
            records.extend(live);
        }
        let records = records
            .iter()
            .map(|u| {
                crate::convert::usage(
                    u,
                    state.user_by_id(&u.user_id).map_or("", |x| x.name.as_str()),
                )
            })
            .collect();
        let budgets = if first {
            Engine::budget_views(&state, org.as_deref(), now())
        } else {
            Vec::new()
        };
        Ok(v1::GetUsageResponse {
            records,
            totals: totals
                .into_iter()
                .map(|((org, class), (reserved, jobs))| v1::UsageTotal {
                    org,
                    class,
                    reserved_device_hours: reserved,
                    job_device_hours: jobs,
                })
                .collect(),
            budgets,
            next_page_token,
        })
    }
}

impl Engine {
    /// A node as the API shows it, with its devices and their latest samples.
    pub fn node_view(&self, name: &str) -> Result<v1::Node> {
        let state = self.view();
        let n = state
            .nodes
            .get(name)
            .ok_or_else(|| Error::NotFound(text!(WhatNode, name = ?name)))?;
        Ok(self.node_proto(&state, n))
    }

    fn node_proto(&self, state: &crate::state::State, n: &crate::state::NodeEntry) -> v1::Node {
        let mut devices: Vec<_> = state
            .devices
            .values()
            .filter(|d| d.row.node == n.row.name)
            .map(|d| crate::convert::device(d, self.observed.sample(&d.row.uuid)))
            .collect();
        devices.sort_by_key(|d| d.index);
        let mut node = crate::convert::node(n, devices);
        if let Some(ms) = self.observed.last_seen_ms(&n.row.name).filter(|&ms| ms > 0) {
            node.last_heartbeat = Some(berth_proto::time::ms_to_ts(ms));
        }
        node
    }

    /// Nodes (optionally of one site) with their devices.
    pub fn list_nodes(&self, caller: &Caller, site: &str) -> Result<Vec<v1::Node>> {
        caller.require_user()?;
        let site = model::optional_name("site", site)?;
        let state = self.view();
        Ok(state
            .nodes
            .values()
            .filter(|n| site.as_ref().is_none_or(|s| *s == n.row.site))
            .map(|n| self.node_proto(&state, n))
            .collect())
    }

    /// Device classes with their counts.
    pub fn list_classes(&self, caller: &Caller) -> Result<Vec<v1::DeviceClass>> {
        caller.require_user()?;
        let state = self.view();
        Ok(state
            .classes
            .values()
            .map(|c| {
                let (total, schedulable) = state.cluster.class_counts(&c.name);
                crate::convert::class(c, total, schedulable)
            })
            .collect())
    }

    /// Sites.
    pub fn list_sites(&self, caller: &Caller) -> Result<Vec<v1::Site>> {
        caller.require_user()?;
        Ok(self
            .view()
            .sites
            .values()
            .map(crate::convert::site)
            .collect())
    }

    /// Free devices of a class over time, from the committed calendar.
    pub fn availability(
        &self,
        caller: &Caller,
        r: &v1::AvailabilityRequest,
    ) -> Result<v1::AvailabilityResponse> {
        caller.require_user()?;
        let class = model::name("class", &r.class)?;
        let site = model::optional_name("site", &r.site)?;
        let t = now();
        let from = r.from.as_ref().map_or(t, ts_to_ms);
        let to = r.to.as_ref().map_or(from + 24 * HOUR_MS, ts_to_ms);
        let step = r
            .step
            .as_ref()
            .map_or(HOUR_MS, berth_proto::time::dur_to_ms);
        if step <= 0 {
            return Err(Error::field("step", Msg::MustBePositive));
        }
        if to <= from {
            return Err(Error::field("to", Msg::AfterFrom));
        }
        if (to - from) / step > 1000 {
            return Err(Error::field("step", Msg::TooManyBuckets));
        }
        let state = self.view();
        super::check_class(&state.classes, &class)?;
        let slots = state
            .cluster
            .availability(&class, site.as_deref(), from, to, step)
            .map_err(super::refusal)?;
        Ok(v1::AvailabilityResponse {
            class,
            slots: slots
                .into_iter()
                .map(|s| v1::AvailabilitySlot {
                    start: Some(berth_proto::time::ms_to_ts(s.start)),
                    end: Some(berth_proto::time::ms_to_ts(s.end)),
                    free: s.free,
                    total: s.total,
                })
                .collect(),
        })
    }

    /// The caller as the API shows them.
    pub fn who_am_i(&self, c: &Caller) -> v1::WhoAmIResponse {
        let view = self.view();
        let row = view.user_by_id(&c.id);
        let default_project = row
            .and_then(|u| u.default_project.clone())
            .unwrap_or_default();
        let user = row.map(crate::convert::user).unwrap_or(v1::User {
            id: c.id.clone(),
            name: c.name.clone(),
            org: c.org.clone(),
            role: c.role.to_proto() as i32,
            created_at: None,
        });
        v1::WhoAmIResponse {
            user: Some(user),
            node: c.node.clone().unwrap_or_default(),
            token_expires_at: Some(berth_proto::time::ms_to_ts(c.expires_ms)),
            language: String::new(),
            default_project,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;
    use crate::store::Mutation;
    use crate::store::testing::job;

    fn ids(rows: &[Arc<JobRow>]) -> Vec<&str> {
        rows.iter().map(|j| j.id.as_str()).collect()
    }

    /// Live jobs created at 1..=n (ids `j-<created>`; `j-3b` ties with `j-3`).
    fn state_with(n: i64) -> State {
        let mut s = State::default();
        for t in 1..=n {
            let j = job(&format!("j-{t}"), "gpu", JobState::Pending, t);
            s.apply(&Mutation::UpsertJob(Arc::new(j)));
        }
        let tie = job("j-3b", "npu", JobState::Running, 3);
        s.apply(&Mutation::UpsertJob(Arc::new(tie)));
        s
    }

    #[test]
    fn the_live_index_is_newest_first_resumes_after_a_cursor_and_forgets_ended_jobs() {
        let mut s = state_with(5);
        let all: Vec<Arc<JobRow>> = s.live_jobs_newest(None).cloned().collect();
        assert_eq!(ids(&all), ["j-5", "j-4", "j-3b", "j-3", "j-2", "j-1"]);
        let rest: Vec<Arc<JobRow>> = s.live_jobs_newest(Some((3, "j-3b"))).cloned().collect();
        assert_eq!(
            ids(&rest),
            ["j-3", "j-2", "j-1"],
            "strictly after the cursor"
        );
        let gone: Vec<Arc<JobRow>> = s.live_jobs_newest(Some((4, "zz"))).cloned().collect();
        assert_eq!(ids(&gone), ["j-4", "j-3b", "j-3", "j-2", "j-1"]);

        let mut ran = job("j-4", "gpu", JobState::Running, 4);
        ran.node = Some("n1".into());
        s.apply(&Mutation::UpsertJob(Arc::new(ran)));
        let mut ended = job("j-2", "gpu", JobState::Succeeded, 2);
        ended.finished_ms = Some(9);
        s.apply(&Mutation::UpsertJob(Arc::new(ended)));
        let now: Vec<Arc<JobRow>> = s.live_jobs_newest(None).cloned().collect();
        assert_eq!(ids(&now), ["j-5", "j-4", "j-3b", "j-3", "j-1"]);
        assert_eq!(
            now[1].state,
            JobState::Running,
            "the index holds the newest row"
        );
        assert_eq!(s.jobs.len(), now.len());
    }

    #[test]
    fn the_database_is_asked_for_ended_jobs_only_when_one_may_come_before_the_page_ends() {
        let mut s = State::default();
        assert!(!s.may_hold_ended(None), "nothing has ended");
        assert!(!s.may_hold_ended(Some((5, "j-5"))));
        s.note_ended(3, "j-3");
        assert!(s.may_hold_ended(None), "a page that is not full");
        assert!(
            s.may_hold_ended(Some((2, "j-9"))),
            "older than the ended job"
        );
        assert!(s.may_hold_ended(Some((3, "j-2"))), "same time, smaller id");
        assert!(!s.may_hold_ended(Some((3, "j-3"))));
        assert!(
            !s.may_hold_ended(Some((4, "j-0"))),
            "newer than every ended job"
        );
        s.note_ended(1, "j-1");
        assert!(
            !s.may_hold_ended(Some((4, "j-0"))),
            "an older end never lowers it"
        );
        let mut ended = job("j-7", "gpu", JobState::Failed, 7);
        ended.finished_ms = Some(9);
        s.apply(&Mutation::UpsertJob(Arc::new(ended)));
        assert!(
            s.may_hold_ended(Some((6, "j-6"))),
            "a job that ends here raises it"
        );
    }

    #[test]
    fn a_listing_reads_ended_jobs_from_the_database_only_when_it_shows_them() {
        let live_only = JobFilter::default();
        assert!(ended_filter(&live_only).is_none());
        let everything = JobFilter {
            include_finished: true,
            ..JobFilter::default()
        };
        let f = ended_filter(&everything).expect("ended jobs are shown");
        assert!(f.ended_only && f.states.is_empty());
        let running = JobFilter {
            states: vec![JobState::Running],
            ..JobFilter::default()
        };
        assert!(ended_filter(&running).is_none());
        let mixed = JobFilter {
            states: vec![JobState::Running, JobState::Failed],
            user: Some("bob".into()),
            ..JobFilter::default()
        };
        let f = ended_filter(&mixed).expect("failed jobs are shown");
        assert_eq!(f.states, [JobState::Failed]);
        assert_eq!(f.user.as_deref(), Some("bob"));
    }

    #[test]
    fn live_jobs_are_filtered_by_org_user_class_and_state() {
        let mut j = job("j", "gpu", JobState::Pending, 1);
        let f = |org: Option<&str>, user: Option<&str>, class: Option<&str>, st: &[JobState]| {
            JobFilter {
                org: org.map(Into::into),
                user: user.map(Into::into),
                class: class.map(Into::into),
                states: st.to_vec(),
                ..JobFilter::default()
            }
        };
        assert!(shows(&f(None, None, None, &[]), &j));
        assert!(shows(
            &f(
                Some("acme"),
                Some("alice"),
                Some("gpu"),
                &[JobState::Pending]
            ),
            &j
        ));
        assert!(!shows(&f(Some("globex"), None, None, &[]), &j));
        assert!(!shows(&f(None, Some("bob"), None, &[]), &j));
        assert!(!shows(&f(None, None, Some("npu"), &[]), &j));
        assert!(!shows(&f(None, None, None, &[JobState::Running]), &j));
        j.state = JobState::Running;
        assert!(shows(&f(None, None, None, &[JobState::Running]), &j));
    }

    #[test]
    fn merging_keeps_the_order_takes_a_page_and_prefers_the_ended_row() {
        let live: Vec<Arc<JobRow>> = [(6, "a"), (4, "b"), (2, "c"), (2, "b2")]
            .iter()
            .map(|&(t, id)| Arc::new(job(id, "gpu", JobState::Running, t)))
            .collect();
        let ended: Vec<JobRow> = [(5, "d"), (4, "b"), (3, "e"), (1, "f")]
            .iter()
            .map(|&(t, id)| job(id, "gpu", JobState::Failed, t))
            .collect();
        let all = merge_newest(live.clone(), ended.clone(), 100);
        assert_eq!(ids(&all), ["a", "d", "b", "e", "c", "b2", "f"]);
        assert_eq!(
            all[2].state,
            JobState::Failed,
            "the database's row of b wins"
        );
        let page = merge_newest(live, ended, 3);
        assert_eq!(ids(&page), ["a", "d", "b"]);
        assert!(merge_newest(Vec::new(), Vec::new(), 5).is_empty());
    }
}
