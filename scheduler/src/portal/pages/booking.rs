//! Booking: pick a class, a count, a start and a length; see the cost against the budget,
//! or the project's grant it draws on; then confirm.

use super::see_other;
use crate::engine::{CostSource, Quote};
use crate::portal::html::Html;
use crate::portal::layout::{self, FormErrors, Nav, attrs, csrf_field, field};
use crate::portal::session::{Ctx, Form};
use axum::extract::{Form as PostForm, Query};
use axum::response::Response;
use berth_i18n::portal::Msg as M;
use berth_i18n::{Lang, t, tf};
use berth_proto::time::{HOUR_MS, ms_to_ts};
use berth_proto::v1;
use chrono::TimeZone;
use std::collections::HashMap;

/// The booking form's values, as typed.
#[derive(Debug, Default, Clone)]
struct Values {
    class: String,
    site: String,
    count: String,
    start: String,
    hours: String,
}

impl Values {
    fn from_form(f: &HashMap<String, String>) -> Self {
        let get = |k: &str| f.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        Values {
            class: get("class"),
            site: get("site"),
            count: get("count"),
            start: get("start"),
            hours: get("hours"),
        }
    }
}

/// `2026-12-07T09:00` (a `datetime-local` value) in the scheduler's zone.
fn local_input(ms: i64) -> String {
    chrono::Local
        .timestamp_millis_opt(ms)
        .earliest()
        .map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M").to_string())
}

/// Parses a `datetime-local` value in the scheduler's zone.
fn parse_local(s: &str) -> Option<i64> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
}

fn invalid(lang: Lang, field: &str, reason: M) -> String {
    tf(
        lang,
        M::InvalidField,
        &[("field", &field), ("reason", &t(lang, reason))],
    )
}

/// The request the form asks for, or the errors of every field that is wrong.
fn request(lang: Lang, v: &Values) -> Result<v1::CreateReservationRequest, FormErrors> {
    let mut errors = FormErrors::new();
    if v.class.is_empty() {
        errors.field("class", invalid(lang, "class", M::Required));
    }
    let count = match v.count.parse::<u32>() {
        Ok(n) if n >= 1 => n,
        _ if v.count.is_empty() => {
            errors.field("count", invalid(lang, "count", M::Required));
            0
        }
        _ => {
            errors.field("count", invalid(lang, "count", M::WholeNumberAtLeastOne));
            0
        }
    };
    let start = match parse_local(&v.start) {
        Some(ms) => ms,
        None if v.start.is_empty() => {
            errors.field("start", invalid(lang, "start", M::Required));
            0
        }
        None => {
            errors.field("start", invalid(lang, "start", M::DateAndTime));
            0
        }
    };
    let hours = match v.hours.parse::<f64>() {
        Ok(h) if h.is_finite() && h > 0.0 => h,
        _ if v.hours.is_empty() => {
            errors.field("hours", invalid(lang, "hours", M::Required));
            0.0
        }
        _ => {
            errors.field("hours", invalid(lang, "hours", M::PositiveHours));
            0.0
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let end = start.saturating_add((hours * HOUR_MS as f64).round() as i64);
    Ok(v1::CreateReservationRequest {
        class: v.class.clone(),
        count,
        start: Some(ms_to_ts(start)),
        end: Some(ms_to_ts(end)),
        site: v.site.clone(),
        project: String::new(),
    })
}

/// The API's field names as the form's.
fn form_field(api: &str) -> &str {
    match api {
        "end" => "hours",
        f => f,
    }
}

/// `GET /book?class=&start=MS&count=&hours=`.
pub async fn form(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let now = berth_proto::time::now_ms();
    let start = q
        .get("start")
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(now)
        .max(now);
    let values = Values {
        class: q.get("class").cloned().unwrap_or_default(),
        site: String::new(),
        count: q.get("count").cloned().unwrap_or_else(|| "1".into()),
        start: local_input(start),
        hours: q.get("hours").cloned().unwrap_or_else(|| "1".into()),
    };
    render(&ctx, &values, &FormErrors::new(), None)
}

/// `POST /book`: `step=quote` shows the cost, `step=confirm` books.
pub async fn submit(ctx: Ctx, PostForm(form): PostForm<Form>) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let lang = ctx.lang;
    let values = Values::from_form(&form);
    let req = match request(lang, &values) {
        Ok(r) => r,
        Err(errors) => return render(&ctx, &values, &errors, None),
    };
    if form.get("step").map(String::as_str) == Some("confirm") {
        return match ctx.engine().create_reservation(ctx.caller(), &req).await {
            Ok(r) => Ok(see_other(&format!("/reservations/{}?notice=booked", r.id))),
            Err(e) => render(
                &ctx,
                &values,
                &FormErrors::from_error(lang, &e, form_field),
                None,
            ),
        };
    }
    match ctx.engine().quote_reservation(ctx.caller(), &req) {
        Ok(q) => render(&ctx, &values, &FormErrors::new(), Some(&q)),
        Err(e) => render(
            &ctx,
            &values,
            &FormErrors::from_error(lang, &e, form_field),
            None,
        ),
    }
}

fn render(
    ctx: &Ctx,
    v: &Values,
    errors: &FormErrors,
    quote: Option<&Quote>,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let classes = layout::or_page(ctx, ctx.engine().list_classes(ctx.caller()))?;
    let sites = layout::or_page(ctx, ctx.engine().list_sites(ctx.caller()))?;
    let mut res = layout::page(&ctx.into(), t(lang, M::BookTitle), Nav::Calendar, |h| {
        errors.summary(h, lang);
        h.el("div", &[("class", "book-grid")], |h| {
            h.el(
                "form",
                &[
                    ("method", "post"),
                    ("action", "/book#cost"),
                    ("class", "card"),
                    ("novalidate", ""),
                ],
                |h| {
                    csrf_field(h, &ctx.session.csrf);
                    h.void(
                        "input",
                        &[("type", "hidden"), ("name", "step"), ("value", "quote")],
                    );
                    field(h, "class", t(lang, M::DeviceClass), errors, |h, a| {
                        h.el("select", &attrs(a, &[("name", "class")]), |h| {
                            h.el_text("option", &[("value", "")], t(lang, M::Choose));
                            for c in &classes {
                                if c.name == v.class {
                                    h.el_text(
                                        "option",
                                        &[("value", &c.name), ("selected", "")],
                                        &c.name,
                                    );
                                } else {
                                    h.el_text("option", &[("value", &c.name)], &c.name);
                                }
                            }
                        });
                    });
                    field(h, "count", t(lang, M::Devices), errors, |h, a| {
                        h.void(
                            "input",
                            &attrs(
                                a,
                                &[
                                    ("name", "count"),
                                    ("type", "number"),
                                    ("min", "1"),
                                    ("step", "1"),
                                    ("inputmode", "numeric"),
                                    ("value", &v.count),
                                ],
                            ),
                        );
                    });
                    field(h, "start", t(lang, M::Start), errors, |h, a| {
                        h.void(
                            "input",
                            &attrs(
                                a,
                                &[
                                    ("name", "start"),
                                    ("type", "datetime-local"),
                                    ("value", &v.start),
                                ],
                            ),
                        );
                    });
                    field(h, "hours", t(lang, M::LengthHours), errors, |h, a| {
                        h.void(
                            "input",
                            &attrs(
                                a,
                                &[
                                    ("name", "hours"),
                                    ("type", "number"),
                                    ("min", "0.25"),
                                    ("step", "0.25"),
                                    ("inputmode", "decimal"),
                                    ("value", &v.hours),
                                ],
                            ),
                        );
                    });
                    field(h, "site", t(lang, M::Site), errors, |h, a| {
                        h.el("select", &attrs(a, &[("name", "site")]), |h| {
                            h.el_text("option", &[("value", "")], t(lang, M::AnySite));
                            for s in &sites {
                                if s.name == v.site {
                                    h.el_text(
                                        "option",
                                        &[("value", &s.name), ("selected", "")],
                                        &s.name,
                                    );
                                } else {
                                    h.el_text("option", &[("value", &s.name)], &s.name);
                                }
                            }
                        });
                    });
                    h.el_text("button", &[("type", "submit")], t(lang, M::ShowCost));
                },
            );
            if let Some(q) = quote {
                cost(h, ctx, v, q);
            }
        });
    });
    if !errors.is_empty() {
        *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

/// The cost of the booking, and the button that confirms it.
fn cost(h: &mut Html, ctx: &Ctx, v: &Values, q: &Quote) {
    let lang = ctx.lang;
    h.el(
        "section",
        &[
            ("class", "card cost"),
            ("aria-labelledby", "cost-title"),
            ("id", "cost"),
        ],
        |h| {
            h.el_text("h2", &[("id", "cost-title")], t(lang, M::CostTitle));
            h.el("dl", &[], |h| {
                let row = |h: &mut Html, k: M, v: &str| {
                    h.el_text("dt", &[], t(lang, k));
                    h.el_text("dd", &[], v);
                };
                row(
                    h,
                    M::Window,
                    &format!("{} – {}", layout::time(q.start_ms), layout::time(q.end_ms)),
                );
                row(h, M::DeviceHours, &layout::hours(q.device_hours));
                row(
                    h,
                    M::Rate,
                    &tf(lang, M::RateValue, &[("rate", &layout::hours(q.rate))]),
                );
                // Lines per source: the org's budget, or a project's grant.
                match &q.source {
                    CostSource::Project {
                        id,
                        title,
                        left_hours,
                    } => {
                        row(
                            h,
                            M::ChargedTo,
                            &tf(lang, M::GrantOf, &[("project", id), ("title", title)]),
                        );
                        row(h, M::GrantHours, &layout::hours(q.charge_hours));
                        row(h, M::LeftBefore, &layout::hours(*left_hours));
                        row(h, M::LeftAfter, &layout::hours(left_hours - q.charge_hours));
                    }
                    CostSource::Budget { key, left_hours } => {
                        row(h, M::ChargedTo, &tf(lang, M::BudgetOf, &[("class", key)]));
                        row(h, M::BudgetHours, &layout::hours(q.charge_hours));
                        match left_hours {
                            Some(left) => {
                                row(h, M::LeftBefore, &layout::hours(*left));
                                row(h, M::LeftAfter, &layout::hours(left - q.charge_hours));
                            }
                            None => row(h, M::LeftBefore, t(lang, M::NoHourLimit)),
                        }
                    }
                    CostSource::Free => row(h, M::ChargedTo, t(lang, M::NoBudgetApplies)),
                }
            });
            h.el("form", &[("method", "post"), ("action", "/book")], |h| {
                csrf_field(h, &ctx.session.csrf);
                for (name, value) in [
                    ("step", "confirm"),
                    ("class", v.class.as_str()),
                    ("site", v.site.as_str()),
                    ("count", v.count.as_str()),
                    ("start", v.start.as_str()),
                    ("hours", v.hours.as_str()),
                ] {
                    h.void(
                        "input",
                        &[("type", "hidden"), ("name", name), ("value", value)],
                    );
                }
                h.el_text(
                    "button",
                    &[("type", "submit"), ("class", "primary"), ("id", "confirm")],
                    t(lang, M::ConfirmBooking),
                );
            });
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_form_names_every_missing_field() {
        let errors = request(Lang::En, &Values::default()).unwrap_err();
        let fields: Vec<&str> = errors.fields.keys().map(String::as_str).collect();
        assert_eq!(fields, ["class", "count", "hours", "start"]);
        assert_eq!(errors.of("count"), Some("invalid count: is required"));
    }

    #[test]
    fn a_filled_form_becomes_a_request() {
        let v = Values {
            class: "h100".into(),
            site: String::new(),
            count: "2".into(),
            start: "2030-01-02T09:00".into(),
            hours: "1.5".into(),
        };
        let r = request(Lang::En, &v).unwrap();
        let (s, e) = (
            berth_proto::time::ts_to_ms(r.start.as_ref().unwrap()),
            berth_proto::time::ts_to_ms(r.end.as_ref().unwrap()),
        );
        assert_eq!((r.count, e - s), (2, 90 * 60 * 1000));
        assert_eq!(local_input(s), "2030-01-02T09:00");
        let bad = Values {
            count: "two".into(),
            ..v
        };
        assert!(request(Lang::Ko, &bad).unwrap_err().of("count").is_some());
    }
}
