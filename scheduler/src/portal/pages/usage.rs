//! Usage: device-hours by class, the budgets' balance, each project's grant, and the
//! records as CSV for settlement.

use crate::portal::html::Html;
use crate::portal::layout::{self, Nav};
use crate::portal::session::Ctx;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_i18n::portal::Msg as M;
use berth_i18n::t;
use berth_proto::v1;

/// Pages of records the CSV reads at most (5,000 records a page).
const CSV_MAX_PAGES: usize = 200;

/// `GET /usage`: the last 30 days (the API's default range).
pub async fn page(ctx: Ctx) -> Result<Response, Response> {
    let lang = ctx.lang;
    let req = v1::GetUsageRequest {
        page_size: 1,
        ..Default::default()
    };
    let usage = layout::or_page(&ctx, ctx.engine().usage(ctx.caller(), &req).await)?;
    let projects = layout::or_page(&ctx, ctx.engine().list_projects(ctx.caller(), ""))?;
    Ok(layout::page(
        &(&ctx).into(),
        t(lang, M::UsageTitle),
        Nav::Usage,
        |h| {
            h.el_text("p", &[], t(lang, M::UsageIntro));
            h.el("p", &[], |h| {
                h.el_text(
                    "a",
                    &[
                        ("href", "/usage.csv"),
                        ("class", "button"),
                        ("download", "berth-usage.csv"),
                    ],
                    t(lang, M::DownloadCsv),
                );
            });
            h.el_text("h2", &[], t(lang, M::Budgets));
            if usage.budgets.is_empty() {
                h.el_text("p", &[("class", "empty")], t(lang, M::NoBudgets));
            } else {
                h.el("div", &[("class", "scroll")], |h| {
                    h.el("table", &[("id", "budgets")], |h| {
                        h.el("thead", &[], |h| {
                            h.el("tr", &[], |h| {
                                for c in [
                                    M::Org,
                                    M::DeviceClass,
                                    M::Period,
                                    M::Allowance,
                                    M::Charged,
                                    M::Refunded,
                                    M::ToppedUp,
                                    M::Left,
                                    M::DevicesHeld,
                                ] {
                                    h.el_text("th", &[("scope", "col")], t(lang, c));
                                }
                            });
                        });
                        h.el("tbody", &[], |h| {
                            for b in &usage.budgets {
                                let none = t(lang, M::NoHourLimit);
                                h.el("tr", &[], |h| {
                                    h.el_text("td", &[], &b.org);
                                    h.el_text("td", &[], &b.class);
                                    h.el_text(
                                        "td",
                                        &[],
                                        &format!(
                                            "{} ({} – {})",
                                            b.period,
                                            layout::ts(b.period_start.as_ref()),
                                            layout::ts(b.period_end.as_ref())
                                        ),
                                    );
                                    h.el_text(
                                        "td",
                                        &[("class", "num")],
                                        &b.hours.map_or_else(|| none.to_owned(), layout::hours),
                                    );
                                    h.el_text(
                                        "td",
                                        &[("class", "num")],
                                        &layout::hours(b.charged_hours),
                                    );
                                    h.el_text(
                                        "td",
                                        &[("class", "num")],
                                        &layout::hours(b.refunded_hours),
                                    );
                                    h.el_text(
                                        "td",
                                        &[("class", "num")],
                                        &layout::hours(b.topped_up_hours),
                                    );
                                    h.el_text(
                                        "td",
                                        &[("class", "num")],
                                        &b.left_hours
                                            .map_or_else(|| none.to_owned(), layout::hours),
                                    );
                                    h.el_text(
                                        "td",
                                        &[("class", "num")],
                                        &b.devices_held.to_string(),
                                    );
                                });
                            }
                        });
                    });
                });
            }
            grants(h, lang, &projects);
            h.el_text("h2", &[], t(lang, M::DeviceHoursByClass));
            if usage.totals.is_empty() {
                h.el_text("p", &[("class", "empty")], t(lang, M::NoUsage));
                return;
            }
            h.el("div", &[("class", "scroll")], |h| {
                h.el("table", &[("id", "totals")], |h| {
                    h.el("thead", &[], |h| {
                        h.el("tr", &[], |h| {
                            for c in [M::Org, M::DeviceClass, M::ReservedHours, M::JobHours] {
                                h.el_text("th", &[("scope", "col")], t(lang, c));
                            }
                        });
                    });
                    h.el("tbody", &[], |h| {
                        for tot in &usage.totals {
                            h.el("tr", &[], |h| {
                                h.el_text("td", &[], &tot.org);
                                h.el_text("td", &[], &tot.class);
                                h.el_text(
                                    "td",
                                    &[("class", "num")],
                                    &layout::hours(tot.reserved_device_hours),
                                );
                                h.el_text(
                                    "td",
                                    &[("class", "num")],
                                    &layout::hours(tot.job_device_hours),
                                );
                            });
                        }
                    });
                });
            });
        },
    ))
}

/// RFC 3339 in UTC, as the CLI's CSV writes it.
fn rfc3339(ts: Option<&prost_types::Timestamp>) -> String {
    use chrono::TimeZone;
    ts.and_then(|t| {
        chrono::Utc
            .timestamp_millis_opt(berth_proto::time::ts_to_ms(t))
            .single()
    })
    .map_or_else(String::new, |t| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

/// A CSV cell (RFC 4180).
fn cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Each project's grants and what is left of them.
fn grants(h: &mut Html, lang: berth_i18n::Lang, projects: &[v1::Project]) {
    h.el_text("h2", &[], t(lang, M::Grants));
    if projects.is_empty() {
        h.el_text("p", &[("class", "empty")], t(lang, M::NoGrants));
        return;
    }
    h.el("div", &[("class", "scroll")], |h| {
        h.el("table", &[("id", "grants")], |h| {
            h.el("thead", &[], |h| {
                h.el("tr", &[], |h| {
                    for c in [
                        M::Org,
                        M::Project,
                        M::ProjectState,
                        M::ProjectPeriod,
                        M::DeviceClass,
                        M::Granted,
                        M::Used,
                        M::Left,
                    ] {
                        h.el_text("th", &[("scope", "col")], t(lang, c));
                    }
                });
            });
            h.el("tbody", &[], |h| {
                for p in projects {
                    let state = v1::ProjectState::try_from(p.state)
                        .map_or("", |s| s.as_str_name())
                        .trim_start_matches("PROJECT_STATE_")
                        .to_lowercase();
                    for g in &p.grants {
                        h.el("tr", &[], |h| {
                            h.el_text("td", &[], &p.org);
                            h.el_text("td", &[("title", &p.id)], &p.title);
                            h.el_text("td", &[], &state);
                            h.el_text(
                                "td",
                                &[],
                                &format!(
                                    "{} – {}",
                                    layout::ts(p.start.as_ref()),
                                    layout::ts(p.end.as_ref())
                                ),
                            );
                            h.el_text("td", &[], &g.class);
                            h.el_text("td", &[("class", "num")], &layout::hours(g.hours));
                            h.el_text("td", &[("class", "num")], &layout::hours(g.used_hours));
                            h.el_text("td", &[("class", "num")], &layout::hours(g.left_hours));
                        });
                    }
                }
            });
        });
    });
}

/// The CSV of usage records: the same columns as `berth usage -o csv` (column names are
/// data: they never change with the language).
pub fn csv(records: &[v1::UsageRecord]) -> String {
    let mut out = String::from(
        "org,user,kind,subject_id,class,devices,start,end,device_hours,\
         mean_utilization_percent,peak_memory_bytes,energy_wh\r\n",
    );
    for r in records {
        let [util, memory, energy] = match &r.evidence {
            Some(e) => [
                format!("{:.4}", e.mean_utilization_percent),
                e.peak_memory_bytes.to_string(),
                format!("{:.4}", e.energy_wh),
            ],
            None => Default::default(),
        };
        let cells = [
            cell(&r.org),
            cell(&r.user),
            cell(&r.kind),
            cell(&r.subject_id),
            cell(&r.class),
            r.devices.to_string(),
            rfc3339(r.start.as_ref()),
            rfc3339(r.end.as_ref()),
            format!("{:.4}", r.device_hours),
            util,
            memory,
            energy,
        ];
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// `GET /usage.csv`: every record of the range, a page at a time.
pub async fn csv_download(ctx: Ctx) -> Result<Response, Response> {
    let mut records = Vec::new();
    let mut token = String::new();
    for _ in 0..CSV_MAX_PAGES {
        let req = v1::GetUsageRequest {
            page_size: 5000,
            page_token: token,
            ..Default::default()
        };
        let page = layout::or_page(&ctx, ctx.engine().usage(ctx.caller(), &req).await)?;
        records.extend(page.records);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"berth-usage.csv\"",
            ),
        ],
        csv(&records),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_has_the_clis_columns_and_utc_times() {
        let r = v1::UsageRecord {
            org: "acme".into(),
            user: "alice".into(),
            kind: "job".into(),
            subject_id: "j1".into(),
            class: "h100".into(),
            devices: 2,
            start: Some(berth_proto::time::ms_to_ts(1_764_547_200_000)),
            end: Some(berth_proto::time::ms_to_ts(1_764_554_400_000)),
            device_hours: 4.0,
            evidence: None,
        };
        assert_eq!(
            csv(&[r]),
            "org,user,kind,subject_id,class,devices,start,end,device_hours,\
             mean_utilization_percent,peak_memory_bytes,energy_wh\r\n\
             acme,alice,job,j1,h100,2,2025-12-01T00:00:00Z,2025-12-01T02:00:00Z,4.0000,,,\r\n"
        );
    }
}
