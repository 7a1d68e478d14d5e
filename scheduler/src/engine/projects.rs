//! Projects (과제): grants of device-hours per class to an org for a period, under a
//! public programme.
//!
//! An org-admin requests a project, an admin approves it (or creates one, approved at
//! once). An approved project becomes active when its period starts and expires when
//! it ends; an admin may close or revoke it before. Bookings and jobs name a project
//! (or their user's default one) and are charged to its grant first (see
//! [`crate::core::Accounts::admit`]). When a project ends, its future bookings are
//! cancelled, its active ones end, its queued jobs are cancelled and its running jobs are
//! stopped (grace signal first); all of it is audited.

use super::booking::end_booking_early;
use super::stage::stage_stop;
use super::{Engine, Tx, audit, notify, now};
use crate::auth::Caller;
use crate::convert::hours as ms_hours;
use crate::core::utc_label;
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::{
    AuditRow, GrantRow, JobRow, JobState, Mutation, OrgRow, Overage, ProjectRow, ProjectState,
    ReservationState, StopCause,
};
use berth_i18n::api::Msg;
use berth_i18n::text;
use berth_proto::model::{self, Role};
use berth_proto::time::{HOUR_MS, ms_to_ts, ts_to_ms};
use berth_proto::v1;
use std::sync::Arc;

/// Longest project period: five years.
const MAX_PERIOD_MS: i64 = 5 * 366 * 24 * HOUR_MS;
/// Longest title and programme name, in characters.
const MAX_TEXT_CHARS: usize = 200;
/// Most device-hours one class may be granted.
const MAX_GRANT_HOURS: f64 = 10_000_000.0;

/// What an admin does to a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectAction {
    /// requested → approved.
    Approve,
    /// Takes the grant back.
    Revoke,
    /// Ends it normally.
    Close,
}

impl ProjectAction {
    fn audit_name(self) -> &'static str {
        match self {
            ProjectAction::Approve => "project.approve",
            ProjectAction::Revoke => "project.revoke",
            ProjectAction::Close => "project.close",
        }
    }

    /// The verb for messages.
    fn verb(self) -> &'static str {
        match self {
            ProjectAction::Approve => "approved",
            ProjectAction::Revoke => "revoked",
            ProjectAction::Close => "closed",
        }
    }

    /// The states it applies to, for messages.
    fn applies_to_names(self) -> &'static str {
        match self {
            ProjectAction::Approve => "requested",
            ProjectAction::Revoke => "requested, approved or active",
            ProjectAction::Close => "approved or active",
        }
    }

    fn applies_to(self, s: ProjectState) -> bool {
        match self {
            ProjectAction::Approve => s == ProjectState::Requested,
            ProjectAction::Revoke => !s.is_final(),
            ProjectAction::Close => s.grants(),
        }
    }
}

/// A project as the API shows it, with what its grants have been drawn.
pub(crate) fn project_view(state: &State, p: &ProjectRow) -> v1::Project {
    v1::Project {
        id: p.id.clone(),
        org: p.org.clone(),
        title: p.title.clone(),
        programme: p.programme.clone(),
        start: Some(ms_to_ts(p.start_ms)),
        end: Some(ms_to_ts(p.end_ms)),
        grants: p
            .grants
            .iter()
            .map(|g| {
                let used = state.accounts.grant_used(&p.id, &g.class);
                v1::ProjectGrant {
                    class: g.class.clone(),
                    hours: ms_hours(g.device_ms),
                    used_hours: ms_hours(used),
                    left_hours: ms_hours(g.device_ms - used),
                }
            })
            .collect(),
        contact: p.contact.clone(),
        state: p.state.to_proto() as i32,
        reason: p.reason.clone(),
        created_at: Some(ms_to_ts(p.created_ms)),
        updated_at: Some(ms_to_ts(p.updated_ms)),
    }
}

/// What a project request or creation asks for, before it is checked.
struct Ask<'a> {
    org: &'a str,
    title: &'a str,
    programme: &'a str,
    start: Option<&'a prost_types::Timestamp>,
    end: Option<&'a prost_types::Timestamp>,
    grants: &'a [v1::GrantSpec],
    contact: &'a str,
}

/// A short text field: trimmed, not empty, not too long, no control characters.
fn text_field(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::field(field, Msg::MustNotBeEmpty));
    }
    if v.chars().count() > MAX_TEXT_CHARS {
        return Err(Error::field(
            field,
            text!(AtMostCharacters, max = MAX_TEXT_CHARS),
        ));
    }
    model::no_control_characters(field, v)?;
    Ok(v.to_owned())
}

/// Checks a request against the state and builds the project's row.
fn project_row(state: &State, ask: &Ask<'_>, st: ProjectState, t: i64) -> Result<ProjectRow> {
    if !state.orgs.contains_key(ask.org) {
        return Err(Error::field("org", text!(UnknownOrg, org = ?ask.org)));
    }
    let title = text_field("title", ask.title)?;
    let programme = text_field("programme", ask.programme)?;
    let start = ask
        .start
        .map(ts_to_ms)
        .ok_or_else(|| Error::field("start", Msg::IsRequired))?;
    let end = ask
        .end
        .map(ts_to_ms)
        .ok_or_else(|| Error::field("end", Msg::IsRequired))?;
    if end <= start {
        return Err(Error::field("end", Msg::AfterStart));
    }
    if end <= t {
        return Err(Error::field("end", Msg::IsInThePast));
    }
    if end - start > MAX_PERIOD_MS {
        return Err(Error::field(
            "end",
            text!(AtMost, max = "5 years after start"),
        ));
    }
    if ask.grants.is_empty() {
        return Err(Error::field("grants", Msg::AtLeastOneGrant));
    }
    let mut grants: Vec<GrantRow> = Vec::new();
    for g in ask.grants {
        super::booking::check_class_field("grants", &state.classes, &g.class)?;
        if !g.hours.is_finite() || g.hours <= 0.0 {
            return Err(Error::field("grants", text!(HoursPositive, h = g.hours)));
        }
        if g.hours > MAX_GRANT_HOURS {
            return Err(Error::field("grants", Msg::TooLarge));
        }
        if grants.iter().any(|x| x.class == g.class) {
            return Err(Error::field("grants", text!(GivenTwice, name = ?g.class)));
        }
        grants.push(GrantRow {
            class: g.class.clone(),
            device_ms: (g.hours * HOUR_MS as f64).round() as i64,
        });
    }
    grants.sort_by(|a, b| a.class.cmp(&b.class));
    let contact = match ask.contact.trim() {
        "" => String::new(),
        name => {
            if state.user(ask.org, name).is_none() {
                return Err(Error::field(
                    "contact",
                    text!(WhatUserInOrg, name = ?name, org = ?ask.org),
                ));
            }
            name.to_owned()
        }
    };
    if let Some(other) = state.projects.values().find(|p| {
        p.org == ask.org
            && p.programme == programme
            && !p.state.is_final()
            && p.start_ms < end
            && start < p.end_ms
    }) {
        return Err(Error::field(
            "start",
            text!(
                ProjectOverlaps,
                other = other.id,
                start = utc_label(other.start_ms),
                end = utc_label(other.end_ms)
            ),
        ));
    }
    Ok(ProjectRow {
        id: uuid::Uuid::new_v4().to_string(),
        org: ask.org.to_owned(),
        title,
        programme,
        start_ms: start,
        end_ms: end,
        contact,
        state: st,
        reason: String::new(),
        grants,
        created_ms: t,
        updated_ms: t,
        expiry_warned_ms: None,
    })
}

/// A short description of a project for the audit log.
fn summary(p: &ProjectRow) -> String {
    let grants: Vec<String> = p
        .grants
        .iter()
        .map(|g| format!("{}={}h", g.class, ms_hours(g.device_ms)))
        .collect();
    format!(
        "{} {} ({}, {} to {}, {})",
        p.id,
        p.org,
        p.programme,
        utc_label(p.start_ms),
        utc_label(p.end_ms),
        grants.join(",")
    )
}

/// The project a booking or job is charged to: the one it names (which must be the
/// caller's org's and open), else the caller's default project while that is open.
pub(crate) fn resolve_project(
    state: &State,
    caller: &Caller,
    asked: Option<&str>,
) -> Result<Option<String>> {
    match asked {
        Some(id) => {
            let Some(p) = state.projects.get(id).filter(|p| p.org == caller.org) else {
                return Err(Error::field(
                    "project",
                    text!(UnknownProject, project = ?id),
                ));
            };
            if !p.state.grants() {
                return Err(Error::FailedPrecondition(text!(
                    ProjectNotOpen,
                    project = p.id
                )));
            }
            Ok(Some(p.id.clone()))
        }
        None => Ok(state
            .user_by_id(&caller.id)
            .and_then(|u| u.default_project.as_ref())
            .and_then(|id| state.projects.get(id))
            .filter(|p| p.org == caller.org && p.state.grants())
            .map(|p| p.id.clone())),
    }
}

impl Engine {
    /// The projects the caller may see: their org's (admins: every org's, or `org`'s).
    pub fn list_projects(&self, caller: &Caller, org: &str) -> Result<Vec<v1::Project>> {
        caller.require_user()?;
        let state = self.view();
        let org = if caller.is_admin() {
            (!org.is_empty()).then_some(org)
        } else {
            Some(caller.org.as_str())
        };
        let mut out: Vec<&ProjectRow> = state
            .projects
            .values()
            .filter(|p| org.is_none_or(|o| p.org == o))
            .collect();
        out.sort_by(|a, b| (a.org.as_str(), a.start_ms).cmp(&(b.org.as_str(), b.start_ms)));
        Ok(out.into_iter().map(|p| project_view(&state, p)).collect())
    }

    /// One project the caller may see; another org's is not found.
    pub fn get_project(&self, caller: &Caller, id: &str) -> Result<v1::Project> {
        caller.require_user()?;
        let id = model::id("id", id)?;
        let state = self.view();
        state
            .projects
            .get(&id)
            .filter(|p| caller.can_see_org(&p.org))
            .map(|p| project_view(&state, p))
            .ok_or_else(|| Error::NotFound(text!(WhatProject, id)))
    }

    /// An org-admin asks for a project for their org (admins may too, for their own).
    pub async fn request_project(
        &self,
        caller: &Caller,
        r: &v1::RequestProjectRequest,
    ) -> Result<v1::Project> {
        caller.require_user()?;
        if !(caller.is_admin() || caller.role == Role::OrgAdmin) {
            return Err(Error::PermissionDenied(text!(OnlyOrgAdminsRequestProjects)));
        }
        let contact = if r.contact.trim().is_empty() {
            caller.name.as_str()
        } else {
            r.contact.as_str()
        };
        let ask = Ask {
            org: &caller.org,
            title: &r.title,
            programme: &r.programme,
            start: r.start.as_ref(),
            end: r.end.as_ref(),
            grants: &r.grants,
            contact,
        };
        self.add_project(caller, &ask, ProjectState::Requested, "project.request")
            .await
    }

    /// An admin creates a project for an org, approved at once.
    pub async fn create_project(
        &self,
        caller: &Caller,
        r: &v1::CreateProjectRequest,
    ) -> Result<v1::Project> {
        caller.require_admin()?;
        if r.org.is_empty() {
            return Err(Error::field("org", Msg::MustNotBeEmpty));
        }
        let ask = Ask {
            org: &r.org,
            title: &r.title,
            programme: &r.programme,
            start: r.start.as_ref(),
            end: r.end.as_ref(),
            grants: &r.grants,
            contact: &r.contact,
        };
        self.add_project(caller, &ask, ProjectState::Approved, "project.create")
            .await
    }

    async fn add_project(
        &self,
        caller: &Caller,
        ask: &Ask<'_>,
        st: ProjectState,
        action: &str,
    ) -> Result<v1::Project> {
        let t = now();
        let view = self
            .commit(|tx| {
                let mut row = project_row(tx.state(), ask, st, t)?;
                if st == ProjectState::Approved && row.start_ms <= t {
                    row.state = ProjectState::Active;
                }
                tx.push(Mutation::UpsertProject(row.clone()));
                tx.push(Mutation::Audit(audit(
                    caller,
                    action,
                    &summary(&row),
                    t,
                    "ok",
                )));
                Ok(project_view(tx.state(), &row))
            })
            .await?;
        tracing::info!(project = %view.id, org = %view.org, "{action}");
        self.kick();
        Ok(view)
    }

    /// Approves, revokes or closes a project (admin).
    pub async fn project_action(
        &self,
        caller: &Caller,
        id: &str,
        action: ProjectAction,
        reason: &str,
    ) -> Result<v1::Project> {
        caller.require_admin()?;
        let id = model::id("id", id)?;
        let reason = reason.trim();
        if reason.chars().count() > MAX_TEXT_CHARS {
            return Err(Error::field(
                "reason",
                text!(AtMostCharacters, max = MAX_TEXT_CHARS),
            ));
        }
        let t = now();
        let view = self
            .commit(|tx| {
                let Some(current) = tx.state().projects.get(&id).cloned() else {
                    return Err(Error::NotFound(text!(WhatProject, id)));
                };
                if !action.applies_to(current.state) {
                    return Err(Error::FailedPrecondition(text!(
                        ProjectCannot,
                        id,
                        state = current.state,
                        from = action.applies_to_names(),
                        action = action.verb()
                    )));
                }
                let mut row = current;
                row.updated_ms = t;
                let words = if reason.is_empty() {
                    format!("{} by {}", action.verb(), caller.name)
                } else {
                    format!("{} by {}: {reason}", action.verb(), caller.name)
                };
                match action {
                    ProjectAction::Approve => {
                        row.state = if row.start_ms <= t {
                            ProjectState::Active
                        } else {
                            ProjectState::Approved
                        };
                        if row.end_ms <= t {
                            row.state = ProjectState::Expired;
                        }
                    }
                    ProjectAction::Revoke => {
                        row.state = ProjectState::Revoked;
                        row.reason = words.clone();
                    }
                    ProjectAction::Close => {
                        row.state = ProjectState::Closed;
                        row.reason = words.clone();
                    }
                }
                tx.push(Mutation::UpsertProject(row.clone()));
                tx.push(Mutation::Audit(audit(
                    caller,
                    action.audit_name(),
                    &format!("{} {}", row.id, row.org),
                    t,
                    "ok",
                )));
                if row.state.is_final() {
                    let cause = if action == ProjectAction::Revoke {
                        StopCause::ProjectRevoked
                    } else {
                        StopCause::ProjectEnded
                    };
                    end_project_work(tx, &row, t, cause, &format!("project {}", row.state));
                }
                Ok(project_view(tx.state(), &row))
            })
            .await?;
        self.kick();
        Ok(view)
    }

    /// Sets (or with an empty id clears) the caller's default project.
    pub async fn set_default_project(&self, caller: &Caller, project: &str) -> Result<String> {
        caller.require_user()?;
        let project = model::optional_id("project", project)?;
        let t = now();
        self.commit(|tx| {
            if let Some(id) = &project {
                resolve_project(tx.state(), caller, Some(id))?;
            }
            tx.push(Mutation::SetDefaultProject {
                user_id: caller.id.clone(),
                project: project.clone(),
            });
            tx.push(Mutation::Audit(audit(
                caller,
                "project.default",
                project.as_deref().unwrap_or("none"),
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok(project.unwrap_or_default())
    }

    /// Sets whether an org's work a project cannot cover may go to its budget (admin).
    pub async fn set_org_overage(
        &self,
        caller: &Caller,
        org: &str,
        overage: Overage,
    ) -> Result<OrgRow> {
        self.update_org(caller, org, "org.overage", overage.as_str(), |row| {
            row.overage = overage;
        })
        .await
    }
}

/// How long before its end a project's members are told it expires.
const EXPIRY_NOTICE_MS: i64 = 7 * 24 * HOUR_MS;

/// The project-expiry notice of `p`.
fn expiry_event(p: &ProjectRow, expired: bool) -> notify::Event {
    notify::Event::ProjectExpiry {
        org: p.org.clone(),
        id: p.id.clone(),
        title: p.title.clone(),
        end_ms: p.end_ms,
        expired,
    }
}

/// Approved projects whose period started become active; those whose period ended
/// expire, and their work ends; those ending within 7 days tell their members once.
/// Returns how many changed.
pub(crate) fn advance_projects(tx: &mut Tx<'_>, t: i64) -> usize {
    let mut due: Vec<ProjectRow> = tx
        .state()
        .projects
        .values()
        .filter(|p| {
            (p.state.grants() && p.end_ms <= t)
                || (p.state == ProjectState::Approved && p.start_ms <= t)
                || (p.state.grants()
                    && p.expiry_warned_ms.is_none()
                    && p.end_ms - EXPIRY_NOTICE_MS <= t)
        })
        .cloned()
        .collect();
    due.sort_by(|a, b| a.id.cmp(&b.id));
    let n = due.len();
    for mut p in due {
        p.updated_ms = t;
        if p.end_ms > t && p.expiry_warned_ms.is_none() && p.end_ms - EXPIRY_NOTICE_MS <= t {
            p.expiry_warned_ms = Some(t);
            notify::stage(tx, &expiry_event(&p, false));
            if !(p.state == ProjectState::Approved && p.start_ms <= t) {
                tx.push(Mutation::UpsertProject(p));
                continue;
            }
        }
        if p.end_ms <= t {
            p.state = ProjectState::Expired;
            p.reason = format!("its period ended at {}", utc_label(p.end_ms));
        } else {
            p.state = ProjectState::Active;
        }
        tx.push(Mutation::UpsertProject(p.clone()));
        tx.push(Mutation::Audit(AuditRow {
            time_ms: t,
            actor: "scheduler".into(),
            action: format!("project.{}", p.state),
            target: format!("{} {}", p.id, p.org),
            outcome: "ok".into(),
        }));
        if p.state == ProjectState::Expired {
            notify::stage(tx, &expiry_event(&p, true));
            end_project_work(tx, &p, t, StopCause::ProjectEnded, "project expired");
        }
    }
    n
}

/// Ends the work of a project that ended: future bookings are cancelled and active ones
/// end now (their unused rest refunded), queued jobs are cancelled and placed ones are
/// stopped (grace signal first). Each is audited.
fn end_project_work(tx: &mut Tx<'_>, p: &ProjectRow, t: i64, cause: StopCause, why: &str) {
    let state = tx.state();
    let mut bookings: Vec<String> = state
        .reservations
        .values()
        .filter(|r| r.project.as_deref() == Some(p.id.as_str()) && !r.state.is_final())
        .map(|r| r.id.clone())
        .collect();
    bookings.sort();
    let mut jobs: Vec<(i64, String)> = state
        .jobs
        .values()
        .filter(|j| j.row.project.as_deref() == Some(p.id.as_str()) && !j.row.state.is_final())
        .map(|j| (j.row.created_ms, j.row.id.clone()))
        .collect();
    jobs.sort();
    for id in bookings {
        let Some(r) = tx.state().reservations.get(&id).cloned() else {
            continue;
        };
        let ended = if r.start_ms >= t {
            ReservationState::Cancelled
        } else {
            ReservationState::Reclaimed
        };
        end_booking_early(tx, &r, t, ended, (cause, why));
        tx.push(Mutation::Audit(AuditRow {
            time_ms: t,
            actor: "scheduler".into(),
            action: "reservation.end".into(),
            target: format!("{id} ({why})"),
            outcome: "ok".into(),
        }));
    }
    for (_, id) in jobs {
        let Some(j) = tx.state().jobs.get(&id) else {
            continue;
        };
        let row = j.row.clone();
        if row.state == JobState::Pending {
            let mut ended = JobRow::clone(&row);
            ended.state = JobState::Cancelled;
            ended.reason = why.to_owned();
            ended.finished_ms = Some(t);
            tx.push(Mutation::UpsertJob(Arc::new(ended)));
        } else if !stage_stop(tx, &id, cause, why) {
            continue;
        }
        tx.push(Mutation::Audit(AuditRow {
            time_ms: t,
            actor: "scheduler".into(),
            action: "job.end".into(),
            target: format!("{id} ({why})"),
            outcome: "ok".into(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_apply_to_the_states_they_name() {
        use ProjectState::*;
        let all = [Requested, Approved, Active, Closed, Expired, Revoked];
        let ok = |a: ProjectAction| -> Vec<ProjectState> {
            all.iter().copied().filter(|s| a.applies_to(*s)).collect()
        };
        assert_eq!(ok(ProjectAction::Approve), [Requested]);
        assert_eq!(ok(ProjectAction::Revoke), [Requested, Approved, Active]);
        assert_eq!(ok(ProjectAction::Close), [Approved, Active]);
    }
}
