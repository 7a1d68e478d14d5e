//! The week calendar: free devices of a class per hour, each free hour a link to book it.

use crate::portal::html::Html;
use crate::portal::layout::{self, Nav};
use crate::portal::session::{Ctx, url_encode};
use axum::extract::Query;
use axum::response::Response;
use berth_i18n::portal::Msg as M;
use berth_i18n::{Lang, t, tf};
use berth_proto::time::{HOUR_MS, ms_to_ts};
use berth_proto::v1;
use chrono::{Datelike, TimeZone};
use std::collections::HashMap;

/// How many weeks ahead the calendar goes.
const MAX_WEEKS_AHEAD: i64 = 26;

const DAYS: [M; 7] = [M::Mon, M::Tue, M::Wed, M::Thu, M::Fri, M::Sat, M::Sun];

/// Midnight starting the Monday of the week `offset` weeks from this one, in the
/// scheduler's zone.
fn week_start(offset: i64) -> i64 {
    let today = chrono::Local::now().date_naive();
    let monday = today - chrono::Days::new(u64::from(today.weekday().num_days_from_monday()));
    let monday = if offset >= 0 {
        monday + chrono::Days::new(7 * offset as u64)
    } else {
        monday - chrono::Days::new(7 * offset.unsigned_abs())
    };
    let midnight = monday.and_hms_opt(0, 0, 0).unwrap_or_default();
    chrono::Local
        .from_local_datetime(&midnight)
        .earliest()
        .map_or_else(
            || midnight.and_utc().timestamp_millis(),
            |t| t.timestamp_millis(),
        )
}

/// `Mon 12-07`.
fn day_label(lang: Lang, day: usize, ms: i64) -> String {
    let date = chrono::Local
        .timestamp_millis_opt(ms)
        .earliest()
        .map_or_else(String::new, |d| d.format("%m-%d").to_string());
    format!("{} {date}", t(lang, DAYS[day]))
}

/// `GET /calendar?class=&week=`.
pub async fn page(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let classes = layout::or_page(&ctx, ctx.engine().list_classes(ctx.caller()))?;
    let week: i64 = q
        .get("week")
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
        .clamp(0, MAX_WEEKS_AHEAD);
    let class = q
        .get("class")
        .filter(|c| classes.iter().any(|k| &k.name == *c))
        .cloned()
        .or_else(|| classes.first().map(|c| c.name.clone()));
    let from = week_start(week);
    let to = week_start(week + 1);
    let mut unavailable = None;
    let slots = match &class {
        Some(class) => {
            let req = v1::AvailabilityRequest {
                class: class.clone(),
                site: String::new(),
                from: Some(ms_to_ts(from)),
                to: Some(ms_to_ts(to)),
                step: Some(prost_types::Duration {
                    seconds: HOUR_MS / 1000,
                    nanos: 0,
                }),
            };
            match ctx.engine().availability(ctx.caller(), &req) {
                Ok(a) => a.slots,
                // No devices of the class yet: an empty week, said in words.
                Err(crate::error::Error::Capacity(m)) => {
                    unavailable = Some(m.render(lang));
                    Vec::new()
                }
                Err(e) => return Err(layout::failure_in(&ctx, &e)),
            }
        }
        None => Vec::new(),
    };
    let now = berth_proto::time::now_ms();
    Ok(layout::page(
        &(&ctx).into(),
        t(lang, M::CalendarTitle),
        Nav::Calendar,
        |h| {
            h.el_text("p", &[], t(lang, M::CalendarIntro));
            let Some(class) = &class else {
                h.el_text("p", &[("class", "alert")], t(lang, M::NoClasses));
                return;
            };
            h.el(
                "form",
                &[("method", "get"), ("action", "/calendar"), ("class", "row")],
                |h| {
                    h.el_text("label", &[("for", "f-class")], t(lang, M::DeviceClass));
                    h.el("select", &[("id", "f-class"), ("name", "class")], |h| {
                        for c in &classes {
                            let label = tf(
                                lang,
                                M::ClassOption,
                                &[("class", &c.name), ("n", &c.schedulable_devices)],
                            );
                            if &c.name == class {
                                h.el_text(
                                    "option",
                                    &[("value", &c.name), ("selected", "")],
                                    &label,
                                );
                            } else {
                                h.el_text("option", &[("value", &c.name)], &label);
                            }
                        }
                    });
                    h.void(
                        "input",
                        &[
                            ("type", "hidden"),
                            ("name", "week"),
                            ("value", &week.to_string()),
                        ],
                    );
                    h.el_text("button", &[("type", "submit")], t(lang, M::Show));
                },
            );
            h.el(
                "nav",
                &[("class", "weeks"), ("aria-label", t(lang, M::Weeks))],
                |h| {
                    let link = |h: &mut Html, w: i64, label: M| {
                        let href = format!("/calendar?class={}&week={w}", url_encode(class));
                        h.el_text("a", &[("href", &href)], t(lang, label));
                    };
                    if week > 0 {
                        link(h, week - 1, M::PreviousWeek);
                    }
                    h.el_text(
                        "span",
                        &[],
                        &tf(
                            lang,
                            M::WeekOf,
                            &[("from", &layout::time(from)[..10].to_owned())],
                        ),
                    );
                    if week < MAX_WEEKS_AHEAD {
                        link(h, week + 1, M::NextWeek);
                    }
                },
            );
            if let Some(m) = &unavailable {
                h.el_text("p", &[("class", "alert")], m);
            }
            grid(h, lang, class, &slots, from, now);
            h.el("p", &[], |h| {
                h.el_text(
                    "a",
                    &[
                        ("href", &format!("/book?class={}", url_encode(class))),
                        ("class", "button"),
                    ],
                    t(lang, M::BookOther),
                );
            });
        },
    ))
}

/// The week as a table: a column per day, a row per hour.
fn grid(
    h: &mut Html,
    lang: Lang,
    class: &str,
    slots: &[v1::AvailabilitySlot],
    from: i64,
    now: i64,
) {
    let by_start: HashMap<i64, &v1::AvailabilitySlot> = slots
        .iter()
        .filter_map(|s| {
            s.start
                .as_ref()
                .map(|t| (berth_proto::time::ts_to_ms(t), s))
        })
        .collect();
    h.el(
        "div",
        &[
            ("class", "scroll"),
            ("tabindex", "0"),
            ("aria-label", t(lang, M::CalendarTitle)),
        ],
        |h| {
            h.el("table", &[("class", "calendar")], |h| {
                h.el_text(
                    "caption",
                    &[],
                    &tf(lang, M::CalendarCaption, &[("class", &class)]),
                );
                h.el("thead", &[], |h| {
                    h.el("tr", &[], |h| {
                        h.el_text("th", &[("scope", "col")], t(lang, M::Hour));
                        for day in 0..7 {
                            let label = day_label(lang, day, from + day as i64 * 24 * HOUR_MS);
                            h.el_text("th", &[("scope", "col")], &label);
                        }
                    });
                });
                h.el("tbody", &[], |h| {
                    for hour in 0..24i64 {
                        h.el("tr", &[], |h| {
                            h.el_text("th", &[("scope", "row")], &format!("{hour:02}:00"));
                            for day in 0..7i64 {
                                let start = from + (day * 24 + hour) * HOUR_MS;
                                cell(h, lang, class, by_start.get(&start).copied(), start, now);
                            }
                        });
                    }
                });
            });
        },
    );
}

fn cell(
    h: &mut Html,
    lang: Lang,
    class: &str,
    slot: Option<&v1::AvailabilitySlot>,
    start: i64,
    now: i64,
) {
    let (free, total) = slot.map_or((0, 0), |s| (s.free, s.total));
    let text = free.to_string();
    if start + HOUR_MS <= now {
        h.el_text("td", &[("class", "past")], &text);
        return;
    }
    if free == 0 {
        h.el_text("td", &[("class", "full")], &text);
        return;
    }
    let level = if free * 2 >= total { "free" } else { "some" };
    let at = layout::time(start.max(now));
    let label = tf(
        lang,
        M::BookCellLabel,
        &[
            ("class", &class),
            ("at", &at),
            ("free", &free),
            ("total", &total),
        ],
    );
    let href = format!(
        "/book?class={}&start={}&count=1&hours=1",
        url_encode(class),
        start.max(now)
    );
    h.el("td", &[("class", level)], |h| {
        h.el_text(
            "a",
            &[("href", &href), ("aria-label", &label), ("title", &label)],
            &text,
        );
    });
}
