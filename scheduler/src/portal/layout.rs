//! The page shell (navigation, language, sign-out), forms with errors beside their
//! fields, error pages, and times.

use super::html::Html;
use super::session::{CSRF_FIELD, Ctx};
use crate::auth::Caller;
use crate::error::Error;
use axum::http::StatusCode;
use axum::response::{Html as HtmlBody, IntoResponse, Response};
use berth_i18n::portal::Msg as M;
use berth_i18n::{Lang, t, tf};
use std::collections::BTreeMap;

/// The areas of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The week calendar and booking.
    Calendar,
    /// The org's bookings.
    Bookings,
    /// Jobs.
    Jobs,
    /// Usage and budgets.
    Usage,
    /// The user's own account.
    Account,
    /// Admin: nodes and devices.
    Nodes,
    /// Admin: orgs, users, budgets.
    Orgs,
    /// Admin: audit.
    Audit,
    /// None (sign-in, errors).
    None,
}

/// Who a page is shown to.
pub struct Viewer<'a> {
    /// The language.
    pub lang: Lang,
    /// The signed-in caller and the session's CSRF token; `None` before signing in.
    pub user: Option<(&'a Caller, &'a str)>,
}

impl<'a> From<&'a Ctx> for Viewer<'a> {
    fn from(ctx: &'a Ctx) -> Self {
        Viewer {
            lang: ctx.lang,
            user: Some((ctx.caller(), ctx.session.csrf.as_str())),
        }
    }
}

/// A whole page.
pub fn page(
    viewer: &Viewer<'_>,
    title: &str,
    active: Nav,
    body: impl FnOnce(&mut Html),
) -> Response {
    page_with_status(StatusCode::OK, viewer, title, active, body)
}

/// A whole page with an HTTP status.
pub fn page_with_status(
    status: StatusCode,
    viewer: &Viewer<'_>,
    title: &str,
    active: Nav,
    body: impl FnOnce(&mut Html),
) -> Response {
    let lang = viewer.lang;
    let mut h = Html::new();
    h.doctype();
    h.el("html", &[("lang", lang.code())], |h| {
        h.el("head", &[], |h| {
            h.void("meta", &[("charset", "utf-8")]);
            h.void(
                "meta",
                &[
                    ("name", "viewport"),
                    ("content", "width=device-width, initial-scale=1"),
                ],
            );
            h.el("title", &[], |h| {
                h.text(title).text(" · ").text(t(lang, M::AppName));
            });
            h.void(
                "link",
                &[("rel", "stylesheet"), ("href", "/assets/portal.css")],
            );
            h.void(
                "link",
                &[
                    ("rel", "icon"),
                    ("href", "/assets/icon.svg"),
                    ("type", "image/svg+xml"),
                ],
            );
            h.el(
                "script",
                &[("src", "/assets/portal.js"), ("defer", "")],
                |_| {},
            );
        });
        h.el("body", &[], |h| {
            h.el_text(
                "a",
                &[("class", "skip"), ("href", "#main")],
                t(lang, M::SkipToContent),
            );
            header(h, viewer, active);
            h.el("main", &[("id", "main"), ("tabindex", "-1")], |h| {
                h.el_text("h1", &[], title);
                body(h);
            });
            h.el("footer", &[], |h| {
                h.text(&tf(lang, M::TimesIn, &[("zone", &zone_label())]));
            });
        });
    });
    (status, HtmlBody(h.finish())).into_response()
}

fn header(h: &mut Html, viewer: &Viewer<'_>, active: Nav) {
    let lang = viewer.lang;
    h.el("header", &[("class", "top")], |h| {
        h.el("a", &[("class", "brand"), ("href", "/")], |h| {
            h.text(t(lang, M::AppName));
        });
        let Some((caller, csrf)) = viewer.user else {
            return;
        };
        h.el("nav", &[("aria-label", t(lang, M::MainNavigation))], |h| {
            h.el("ul", &[], |h| {
                let item = |h: &mut Html, nav: Nav, href: &str, label: M| {
                    h.el("li", &[], |h| {
                        if nav == active {
                            h.el_text(
                                "a",
                                &[("href", href), ("aria-current", "page")],
                                t(lang, label),
                            );
                        } else {
                            h.el_text("a", &[("href", href)], t(lang, label));
                        }
                    });
                };
                item(h, Nav::Calendar, "/calendar", M::NavCalendar);
                item(h, Nav::Bookings, "/reservations", M::NavBookings);
                item(h, Nav::Jobs, "/jobs", M::NavJobs);
                item(h, Nav::Usage, "/usage", M::NavUsage);
                item(h, Nav::Account, "/account", M::NavAccount);
                if caller.is_admin() {
                    item(h, Nav::Nodes, "/admin/nodes", M::NavNodes);
                    item(h, Nav::Orgs, "/admin/orgs", M::NavOrgs);
                    item(h, Nav::Audit, "/admin/audit", M::NavAudit);
                }
            });
        });
        h.el("div", &[("class", "who")], |h| {
            h.el_text(
                "span",
                &[],
                &tf(
                    lang,
                    M::SignedInAs,
                    &[("user", &caller.name), ("org", &caller.org)],
                ),
            );
            h.el(
                "form",
                &[
                    ("method", "post"),
                    ("action", "/logout"),
                    ("class", "inline"),
                ],
                |h| {
                    csrf_field(h, csrf);
                    h.el_text("button", &[("type", "submit")], t(lang, M::SignOut));
                },
            );
        });
    });
}

/// The hidden CSRF field of a form.
pub fn csrf_field(h: &mut Html, token: &str) {
    h.void(
        "input",
        &[("type", "hidden"), ("name", CSRF_FIELD), ("value", token)],
    );
}

/// A small form that posts to `action` with one button (cancel, drain, revoke).
pub fn button_form(h: &mut Html, csrf: &str, action: &str, label: &str, class: &str) {
    h.el(
        "form",
        &[("method", "post"), ("action", action), ("class", "inline")],
        |h| {
            csrf_field(h, csrf);
            h.el_text("button", &[("type", "submit"), ("class", class)], label);
        },
    );
}

/// Errors of a form: beside each field, or for the whole form.
#[derive(Debug, Default)]
pub struct FormErrors {
    /// Field name to message.
    pub fields: BTreeMap<String, String>,
    /// Not about one field.
    pub general: Option<String>,
}

impl FormErrors {
    /// No errors yet.
    pub fn new() -> Self {
        FormErrors::default()
    }

    /// True when there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_none()
    }

    /// Adds an error for `field` (the first one stays).
    pub fn field(&mut self, field: &str, message: String) {
        self.fields.entry(field.to_owned()).or_insert(message);
    }

    /// An engine error: a field error beside its field (after `rename` maps the API's
    /// field name to the form's), anything else for the whole form.
    pub fn from_error(lang: Lang, e: &Error, rename: impl Fn(&str) -> &str) -> Self {
        let mut out = FormErrors::new();
        match e {
            Error::Invalid(fe) => {
                let field = rename(&fe.field).to_owned();
                out.field(&field, e.localized(lang));
            }
            e => out.general = Some(error_text(lang, e)),
        }
        out
    }

    /// The message of a field, if any.
    pub fn of(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// The summary at the top of a form (role=alert so it is read out).
    pub fn summary(&self, h: &mut Html, lang: Lang) {
        if self.is_empty() {
            return;
        }
        h.el(
            "div",
            &[("class", "alert error"), ("role", "alert")],
            |h| match &self.general {
                Some(g) => {
                    h.el_text("p", &[], g);
                }
                None => {
                    h.el_text("p", &[], t(lang, M::FixTheFields));
                }
            },
        );
    }
}

/// One labelled form field with its error beside it. `input` writes the control, given
/// its id and the attributes that tie it to its error.
pub fn field(
    h: &mut Html,
    name: &str,
    label: &str,
    errors: &FormErrors,
    input: impl FnOnce(&mut Html, &[(&'static str, &str)]),
) {
    let id = format!("f-{name}");
    let err_id = format!("e-{name}");
    let error = errors.of(name);
    let class = if error.is_some() {
        "field invalid"
    } else {
        "field"
    };
    h.el("div", &[("class", class)], |h| {
        h.el_text("label", &[("for", &id)], label);
        match error {
            Some(_) => input(
                h,
                &[
                    ("id", &id),
                    ("aria-invalid", "true"),
                    ("aria-describedby", &err_id),
                ],
            ),
            None => input(h, &[("id", &id)]),
        }
        if let Some(e) = error {
            h.el_text("p", &[("class", "error"), ("id", &err_id)], e);
        }
    });
}

/// Attributes joined: `base` then `extra`.
pub fn attrs<'a>(
    base: &[(&'static str, &'a str)],
    extra: &[(&'static str, &'a str)],
) -> Vec<(&'static str, &'a str)> {
    base.iter().chain(extra).copied().collect()
}

/// A notice at the top of a page.
pub fn notice(h: &mut Html, text: &str) {
    h.el_text("div", &[("class", "alert ok"), ("role", "status")], text);
}

/// What a user may read of an error: database and internal failures only as a reference
/// into the log, as the API does.
pub fn error_text(lang: Lang, e: &Error) -> String {
    match e {
        Error::Store(_) | Error::Internal(_) => {
            let status = e.clone().into_status(lang);
            format!("{} ({})", t(lang, M::SomethingFailed), status.message())
        }
        Error::Unavailable(_) => format!("{}: {}", t(lang, M::TryAgainLater), e.localized(lang)),
        e => e.localized(lang),
    }
}

/// The HTTP status of an engine error.
fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::AlreadyExists(_) | Error::Conflict(_) | Error::FailedPrecondition(_) => {
            StatusCode::CONFLICT
        }
        Error::Capacity(_) | Error::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error page for a request that failed as a whole.
pub fn failure(lang: Lang, e: &Error) -> Response {
    let viewer = Viewer { lang, user: None };
    let title = match e {
        Error::NotFound(_) => t(lang, M::NotFoundTitle),
        _ => t(lang, M::ErrorTitle),
    };
    page_with_status(status_of(e), &viewer, title, Nav::None, |h| {
        h.el_text(
            "p",
            &[("class", "alert error"), ("role", "alert")],
            &error_text(lang, e),
        );
        h.el("p", &[], |h| {
            h.el_text("a", &[("href", "/")], t(lang, M::BackHome));
        });
    })
}

/// An error page for a signed-in request, with the navigation.
pub fn failure_in(ctx: &Ctx, e: &Error) -> Response {
    let lang = ctx.lang;
    let title = match e {
        Error::NotFound(_) => t(lang, M::NotFoundTitle),
        _ => t(lang, M::ErrorTitle),
    };
    page_with_status(status_of(e), &ctx.into(), title, Nav::None, |h| {
        h.el_text(
            "p",
            &[("class", "alert error"), ("role", "alert")],
            &error_text(lang, e),
        );
    })
}

/// The answer to a form posted without its CSRF token.
pub fn csrf_refused(lang: Lang) -> Response {
    let viewer = Viewer { lang, user: None };
    page_with_status(
        StatusCode::FORBIDDEN,
        &viewer,
        t(lang, M::ErrorTitle),
        Nav::None,
        |h| {
            h.el_text(
                "p",
                &[("class", "alert error"), ("role", "alert")],
                t(lang, M::CsrfRefused),
            );
        },
    )
}

/// The "next page" link of a paged list: `base` is the list's URL with its query so far
/// (ending in `?` or `&`), to which the page token is added. Nothing on the last page.
pub fn next_page(h: &mut Html, lang: Lang, base: &str, token: &str) {
    if token.is_empty() {
        return;
    }
    let href = format!("{base}page={}", super::session::url_encode(token));
    h.el_text(
        "a",
        &[("href", &href), ("class", "more")],
        t(lang, M::NextPage),
    );
}

/// The page of a standby scheduler (see `leader_only` in the portal's router).
pub fn standing_by(lang: Lang) -> Response {
    let viewer = Viewer { lang, user: None };
    page_with_status(
        StatusCode::SERVICE_UNAVAILABLE,
        &viewer,
        t(lang, M::TryAgainLater),
        Nav::None,
        |h| {
            h.el_text(
                "p",
                &[("class", "alert"), ("role", "status")],
                t(lang, M::StandingBy),
            );
        },
    )
}

/// Any path the portal does not have.
pub async fn not_found(headers: axum::http::HeaderMap) -> Response {
    let lang = Lang::negotiate([super::session::browser_lang(&headers)]);
    failure(lang, &Error::NotFound(berth_i18n::text!(ThisPage)))
}

/// A time in the scheduler's zone: `2026-12-07 09:00`.
pub fn time(ms: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_millis_opt(ms) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%Y-%m-%d %H:%M").to_string()
        }
        chrono::LocalResult::None => "-".to_owned(),
    }
}

/// A wire timestamp as [`time`], `-` when unset.
pub fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| time(berth_proto::time::ts_to_ms(t)))
}

/// The scheduler's zone as `UTC+09:00`.
pub fn zone_label() -> String {
    let offset = chrono::Local::now().offset().local_minus_utc();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.abs();
    format!("UTC{sign}{:02}:{:02}", offset / 3600, offset % 3600 / 60)
}

/// Hours with at most two decimals, without trailing zeros.
pub fn hours(h: f64) -> String {
    let s = format!("{h:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// An engine result, or the error page.
pub fn or_page<T>(ctx: &Ctx, r: crate::error::Result<T>) -> Result<T, Response> {
    r.map_err(|e| failure_in(ctx, &e))
}
