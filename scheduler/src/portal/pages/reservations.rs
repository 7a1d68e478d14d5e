//! The org's bookings: a list, one booking, and cancelling.

use super::see_other;
use crate::portal::html::Html;
use crate::portal::layout::{self, Nav, button_form, notice};
use crate::portal::session::{Ctx, Form};
use crate::store::ReservationState;
use axum::extract::{Form as PostForm, Path, Query};
use axum::response::Response;
use berth_i18n::portal::Msg as M;
use berth_i18n::{Lang, t};
use berth_proto::v1;
use std::collections::HashMap;

/// Rows per page of the list.
const PAGE: u32 = 50;

fn state_name(s: i32) -> &'static str {
    v1::ReservationState::try_from(s).map_or("unknown", |s| match s {
        v1::ReservationState::Requested => ReservationState::Requested.as_str(),
        v1::ReservationState::Confirmed => ReservationState::Confirmed.as_str(),
        v1::ReservationState::Active => ReservationState::Active.as_str(),
        v1::ReservationState::Completed => ReservationState::Completed.as_str(),
        v1::ReservationState::Cancelled => ReservationState::Cancelled.as_str(),
        v1::ReservationState::Reclaimed => ReservationState::Reclaimed.as_str(),
        v1::ReservationState::Unspecified => "unknown",
    })
}

fn is_live(s: i32) -> bool {
    matches!(
        v1::ReservationState::try_from(s),
        Ok(v1::ReservationState::Requested
            | v1::ReservationState::Confirmed
            | v1::ReservationState::Active)
    )
}

fn notice_text(lang: Lang, q: &HashMap<String, String>) -> Option<&'static str> {
    match q.get("notice").map(String::as_str) {
        Some("booked") => Some(t(lang, M::NoticeBooked)),
        Some("cancelled") => Some(t(lang, M::NoticeBookingCancelled)),
        _ => None,
    }
}

/// `GET /reservations?all=1&page=TOKEN`.
pub async fn list(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let all = q.get("all").is_some_and(|v| v == "1");
    let req = v1::ListReservationsRequest {
        all,
        page_size: PAGE,
        page_token: q.get("page").cloned().unwrap_or_default(),
        ..Default::default()
    };
    let page = layout::or_page(
        &ctx,
        ctx.engine().list_reservations(ctx.caller(), &req).await,
    )?;
    let rows = ctx.engine().reservation_views(&page.items);
    let csrf = ctx.session.csrf.clone();
    Ok(layout::page(
        &(&ctx).into(),
        t(lang, M::BookingsTitle),
        Nav::Bookings,
        |h| {
            if let Some(n) = notice_text(lang, &q) {
                notice(h, n);
            }
            h.el("p", &[("class", "row")], |h| {
                let (href, label) = if all {
                    ("/reservations", M::ShowLiveOnly)
                } else {
                    ("/reservations?all=1", M::ShowFinishedToo)
                };
                h.el_text("a", &[("href", href)], t(lang, label));
                h.el_text(
                    "a",
                    &[("href", "/calendar"), ("class", "button")],
                    t(lang, M::NewBooking),
                );
            });
            if rows.is_empty() {
                h.el_text("p", &[("class", "empty")], t(lang, M::NoBookings));
                return;
            }
            h.el("div", &[("class", "scroll")], |h| {
                h.el("table", &[("id", "bookings")], |h| {
                    h.el("thead", &[], |h| {
                        h.el("tr", &[], |h| {
                            for c in [
                                M::Id,
                                M::DeviceClass,
                                M::Devices,
                                M::Start,
                                M::End,
                                M::State,
                                M::User,
                                M::Actions,
                            ] {
                                h.el_text("th", &[("scope", "col")], t(lang, c));
                            }
                        });
                    });
                    h.el("tbody", &[], |h| {
                        for r in &rows {
                            h.el("tr", &[("data-id", &r.id)], |h| {
                                h.el("td", &[], |h| {
                                    h.el_text(
                                        "a",
                                        &[("href", &format!("/reservations/{}", r.id))],
                                        short(&r.id),
                                    );
                                });
                                h.el_text("td", &[], &r.class);
                                h.el_text("td", &[("class", "num")], &r.count.to_string());
                                h.el_text("td", &[], &layout::ts(r.start.as_ref()));
                                h.el_text("td", &[], &layout::ts(r.end.as_ref()));
                                h.el("td", &[], |h| state_badge(h, state_name(r.state)));
                                h.el_text("td", &[], &r.user);
                                h.el("td", &[], |h| {
                                    if is_live(r.state) {
                                        button_form(
                                            h,
                                            &csrf,
                                            &format!("/reservations/{}/cancel", r.id),
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
            let base = if all {
                "/reservations?all=1&"
            } else {
                "/reservations?"
            };
            layout::next_page(h, lang, base, &page.next_page_token);
        },
    ))
}

/// The first part of an id, for tables (the whole id is in the link and the title).
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A state as a badge; the word is the API's enum value.
pub fn state_badge(h: &mut Html, state: &str) {
    h.el_text("span", &[("class", &format!("state s-{state}"))], state);
}

/// `GET /reservations/{id}`: another org's booking is "not found", whatever the URL.
pub async fn show(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let row = layout::or_page(&ctx, ctx.engine().get_reservation(ctx.caller(), &id).await)?;
    let r = ctx.engine().reservation_views([&*row]).remove(0);
    let title = format!("{} {}", t(lang, M::Booking), short(&r.id));
    Ok(layout::page(&(&ctx).into(), &title, Nav::Bookings, |h| {
        if let Some(n) = notice_text(lang, &q) {
            notice(h, n);
        }
        h.el("dl", &[("class", "details"), ("id", "booking")], |h| {
            let row = |h: &mut Html, k: M, v: &str| {
                h.el_text("dt", &[], t(lang, k));
                h.el_text("dd", &[], v);
            };
            row(h, M::Id, &r.id);
            row(h, M::Org, &r.org);
            row(h, M::User, &r.user);
            row(h, M::DeviceClass, &r.class);
            row(h, M::Devices, &r.count.to_string());
            row(h, M::Site, if r.site.is_empty() { "-" } else { &r.site });
            row(h, M::Start, &layout::ts(r.start.as_ref()));
            row(h, M::End, &layout::ts(r.end.as_ref()));
            row(h, M::State, state_name(r.state));
            row(h, M::BudgetHours, &layout::hours(r.charged_hours));
            if !r.reason.is_empty() {
                row(h, M::Reason, &r.reason);
            }
            if !r.warning.is_empty() {
                row(h, M::Warning, &r.warning);
            }
            row(h, M::DeviceIds, &r.devices.join(", "));
        });
        if is_live(r.state) {
            button_form(
                h,
                &ctx.session.csrf,
                &format!("/reservations/{}/cancel", r.id),
                t(lang, M::CancelBooking),
                "danger",
            );
        }
        h.el("p", &[], |h| {
            h.el_text("a", &[("href", "/reservations")], t(lang, M::AllBookings));
        });
    }))
}

/// `POST /reservations/{id}/cancel`.
pub async fn cancel(
    ctx: Ctx,
    Path(id): Path<String>,
    PostForm(form): PostForm<Form>,
) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    layout::or_page(
        &ctx,
        ctx.engine().cancel_reservation(ctx.caller(), &id).await,
    )?;
    Ok(see_other("/reservations?notice=cancelled"))
}
