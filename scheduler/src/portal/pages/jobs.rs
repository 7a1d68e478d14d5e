//! Jobs: state, reason and estimated start; one job with a live log tail; cancelling.

use super::reservations::{short, state_badge};
use super::see_other;
use crate::engine::Engine;
use crate::error::Result as EngineResult;
use crate::logs::RANK_SEQ_SPAN;
use crate::portal::html::Html;
use crate::portal::layout::{self, Nav, button_form, notice};
use crate::portal::session::{Ctx, Form};
use crate::store::JobState;
use axum::Json;
use axum::extract::{Form as PostForm, Path, Query};
use axum::response::{IntoResponse, Response};
use berth_i18n::portal::Msg as M;
use berth_i18n::t;
use berth_proto::v1;
use std::collections::HashMap;

/// Rows per page of the list.
const PAGE: u32 = 50;
/// Chunks read per part in one poll.
const CHUNKS_PER_POLL: u32 = 200;
/// Chunks read for the first view of the log.
const FIRST_VIEW_CHUNKS: u32 = 2000;
/// Bytes of the log shown at first (its tail).
const TAIL_BYTES: usize = 64 * 1024;

const STATES: [JobState; 10] = [
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
];

/// A job's state as the API's enum value.
pub fn state_name(s: i32) -> &'static str {
    STATES
        .iter()
        .find(|j| j.to_proto() as i32 == s)
        .map_or("unknown", |j| j.as_str())
}

fn is_final(s: i32) -> bool {
    STATES
        .iter()
        .any(|j| j.to_proto() as i32 == s && j.is_final())
}

/// `GET /jobs?all=1&page=TOKEN`.
pub async fn list(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let all = q.get("all").is_some_and(|v| v == "1");
    let req = v1::ListJobsRequest {
        all,
        page_size: PAGE,
        page_token: q.get("page").cloned().unwrap_or_default(),
        ..Default::default()
    };
    let page = layout::or_page(&ctx, ctx.engine().list_jobs(ctx.caller(), &req).await)?;
    let mut reasons = crate::convert::Reasons::default();
    let jobs: Vec<v1::Job> = page
        .items
        .iter()
        .map(|j| j.to_proto_with(&mut reasons))
        .collect();
    let csrf = ctx.session.csrf.clone();
    Ok(layout::page(
        &(&ctx).into(),
        t(lang, M::JobsTitle),
        Nav::Jobs,
        |h| {
            if q.get("notice").map(String::as_str) == Some("cancelled") {
                notice(h, t(lang, M::NoticeJobCancelled));
            }
            h.el("p", &[("class", "row")], |h| {
                let (href, label) = if all {
                    ("/jobs", M::ShowLiveOnly)
                } else {
                    ("/jobs?all=1", M::ShowFinishedToo)
                };
                h.el_text("a", &[("href", href)], t(lang, label));
            });
            h.el_text("p", &[("class", "hint")], t(lang, M::JobsHint));
            if jobs.is_empty() {
                h.el_text("p", &[("class", "empty")], t(lang, M::NoJobs));
                return;
            }
            h.el("div", &[("class", "scroll")], |h| {
                h.el("table", &[("id", "jobs")], |h| {
                    h.el("thead", &[], |h| {
                        h.el("tr", &[], |h| {
                            for c in [
                                M::Id,
                                M::Name,
                                M::DeviceClass,
                                M::Devices,
                                M::State,
                                M::Reason,
                                M::EstimatedStart,
                                M::User,
                                M::Actions,
                            ] {
                                h.el_text("th", &[("scope", "col")], t(lang, c));
                            }
                        });
                    });
                    h.el("tbody", &[], |h| {
                        for j in &jobs {
                            h.el("tr", &[], |h| {
                                h.el("td", &[], |h| {
                                    h.el_text(
                                        "a",
                                        &[("href", &format!("/jobs/{}", j.id))],
                                        short(&j.id),
                                    );
                                });
                                h.el_text("td", &[], &j.name);
                                h.el_text("td", &[], &j.class);
                                h.el_text(
                                    "td",
                                    &[("class", "num")],
                                    &(j.count * j.nodes.max(1)).to_string(),
                                );
                                h.el("td", &[], |h| state_badge(h, state_name(j.state)));
                                h.el_text("td", &[], &j.reason);
                                h.el_text("td", &[], &layout::ts(j.estimated_start.as_ref()));
                                h.el_text("td", &[], &j.user);
                                h.el("td", &[], |h| {
                                    if !is_final(j.state) {
                                        button_form(
                                            h,
                                            &csrf,
                                            &format!("/jobs/{}/cancel", j.id),
                                            t(lang, M::Cancel),
                                            "danger",
                                        );
                                    }
                                });
                            });
                        }
                    });
                });
            });
            let base = if all { "/jobs?all=1&" } else { "/jobs?" };
            layout::next_page(h, lang, base, &page.next_page_token);
        },
    ))
}

/// Log text of a job read from each part's cursor on, at most `limit` chunks a part;
/// returns the text and the new cursors.
async fn read_parts(
    engine: &Engine,
    job: &str,
    parts: usize,
    cursors: &[i64],
    limit: u32,
) -> EngineResult<(String, Vec<i64>)> {
    let mut text = String::new();
    let mut out = Vec::with_capacity(parts);
    for rank in 0..parts {
        let base = rank as i64 * RANK_SEQ_SPAN;
        let mut cursor = cursors
            .get(rank)
            .copied()
            .unwrap_or(base)
            .clamp(base, base + RANK_SEQ_SPAN);
        let rows = engine.store.read_logs(job, cursor, limit).await?;
        for r in rows.iter().filter(|r| r.seq < base + RANK_SEQ_SPAN) {
            text.push_str(&String::from_utf8_lossy(&r.data));
            cursor = r.seq;
        }
        out.push(cursor);
    }
    Ok((text, out))
}

/// The last `TAIL_BYTES` of `text`, cut at a character boundary.
fn tail(text: &str) -> &str {
    if text.len() <= TAIL_BYTES {
        return text;
    }
    let mut from = text.len() - TAIL_BYTES;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..]
}

/// `GET /jobs/{id}`: another org's job is "not found", whatever the URL.
pub async fn show(ctx: Ctx, Path(id): Path<String>) -> Result<Response, Response> {
    let lang = ctx.lang;
    let view = layout::or_page(&ctx, ctx.engine().get_job(ctx.caller(), &id).await)?;
    let j = view.to_proto();
    let parts = j.nodes.max(1) as usize;
    let (text, cursors) = layout::or_page(
        &ctx,
        read_parts(ctx.engine(), &j.id, parts, &[], FIRST_VIEW_CHUNKS).await,
    )?;
    let title = format!("{} {}", t(lang, M::Job), short(&j.id));
    Ok(layout::page(&(&ctx).into(), &title, Nav::Jobs, |h| {
        h.el("dl", &[("class", "details"), ("id", "job")], |h| {
            let row = |h: &mut Html, k: M, v: &str, id: &'static str| {
                h.el_text("dt", &[], t(lang, k));
                h.el_text("dd", &[("id", id)], v);
            };
            row(h, M::Id, &j.id, "job-id");
            row(h, M::Name, &j.name, "job-name");
            row(h, M::User, &j.user, "job-user");
            row(h, M::DeviceClass, &j.class, "job-class");
            row(h, M::Devices, &j.count.to_string(), "job-count");
            row(h, M::Image, &j.image, "job-image");
            row(h, M::State, state_name(j.state), "job-state");
            row(h, M::Reason, &j.reason, "job-reason");
            row(
                h,
                M::EstimatedStart,
                &layout::ts(j.estimated_start.as_ref()),
                "job-estimate",
            );
            row(h, M::Node, &j.node, "job-node");
            row(
                h,
                M::ExitCode,
                &j.exit_code
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                "job-exit",
            );
            row(
                h,
                M::BudgetHours,
                &layout::hours(j.charged_hours),
                "job-charged",
            );
        });
        if !is_final(j.state) {
            button_form(
                h,
                &ctx.session.csrf,
                &format!("/jobs/{}/cancel", j.id),
                t(lang, M::CancelJob),
                "danger",
            );
        }
        h.el_text("h2", &[("id", "log-title")], t(lang, M::Log));
        let src = format!("/jobs/{}/log", j.id);
        let cursors = cursors
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let live = if is_final(j.state) { "0" } else { "1" };
        h.el_text(
            "pre",
            &[
                ("id", "log"),
                ("class", "log"),
                ("tabindex", "0"),
                ("aria-labelledby", "log-title"),
                ("aria-live", "polite"),
                ("data-src", &src),
                ("data-cursors", &cursors),
                ("data-live", live),
            ],
            tail(&text),
        );
    }))
}

/// What a poll of the log returns (JSON field names are fixed, whatever the language).
#[derive(serde::Serialize)]
struct LogPoll {
    text: String,
    cursors: Vec<i64>,
    state: &'static str,
    reason: String,
    done: bool,
}

/// `GET /jobs/{id}/log?c=CURSORS`: new log text since the cursors, for the page's
/// script.
pub async fn log(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let view = match ctx.engine().get_job(ctx.caller(), &id).await {
        Ok(v) => v,
        Err(e) => return layout::failure_in(&ctx, &e),
    };
    let j = view.to_proto();
    let cursors: Vec<i64> = q
        .get("c")
        .map(|c| c.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    let parts = j.nodes.max(1) as usize;
    match read_parts(ctx.engine(), &j.id, parts, &cursors, CHUNKS_PER_POLL).await {
        Ok((text, cursors)) => Json(LogPoll {
            text,
            cursors,
            state: state_name(j.state),
            reason: j.reason,
            done: is_final(j.state),
        })
        .into_response(),
        Err(e) => layout::failure_in(&ctx, &e),
    }
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    ctx: Ctx,
    Path(id): Path<String>,
    PostForm(form): PostForm<Form>,
) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    layout::or_page(&ctx, ctx.engine().cancel_job(ctx.caller(), &id).await)?;
    Ok(see_other("/jobs?notice=cancelled"))
}
