//! Signing in (with an API token, or a link from `berth login --web`) and out.

use crate::engine::{SESSION_TTL_MS, WebSession};
use crate::error::Error;
use crate::portal::layout::{self, FormErrors, Nav, Viewer, attrs, csrf_field, field};
use crate::portal::session::{Anon, Ctx, Form, PRE_COOKIE, SESSION_COOKIE, safe_next, set_cookie};
use axum::extract::{Form as PostForm, Query};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use berth_i18n::portal::Msg as M;
use berth_i18n::t;
use std::collections::HashMap;

/// `GET /login`.
pub async fn form(anon: Anon, Query(q): Query<HashMap<String, String>>) -> Response {
    let next = safe_next(q.get("next"));
    sign_in_page(&anon, &next, &FormErrors::new())
}

fn sign_in_page(anon: &Anon, next: &str, errors: &FormErrors) -> Response {
    let lang = anon.lang;
    let viewer = Viewer { lang, user: None };
    let status = if errors.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::BAD_REQUEST
    };
    let mut res =
        layout::page_with_status(status, &viewer, t(lang, M::SignInTitle), Nav::None, |h| {
            h.el_text("p", &[], t(lang, M::SignInIntro));
            errors.summary(h, lang);
            h.el(
                "form",
                &[("method", "post"), ("action", "/login"), ("class", "card")],
                |h| {
                    csrf_field(h, &anon.pre);
                    h.void(
                        "input",
                        &[("type", "hidden"), ("name", "next"), ("value", next)],
                    );
                    field(h, "token", t(lang, M::ApiToken), errors, |h, a| {
                        h.void(
                            "input",
                            &attrs(
                                a,
                                &[
                                    ("name", "token"),
                                    ("type", "password"),
                                    ("autocomplete", "off"),
                                    ("required", ""),
                                ],
                            ),
                        );
                    });
                    h.el_text(
                        "button",
                        &[("type", "submit"), ("class", "primary")],
                        t(lang, M::SignIn),
                    );
                },
            );
            h.el_text("p", &[("class", "hint")], t(lang, M::SignInLinkHint));
        });
    with_pre_cookie(&mut res, anon);
    res
}

fn with_pre_cookie(res: &mut Response, anon: &Anon) {
    if let Some(c) = anon.pre_cookie()
        && let Ok(v) = c.parse()
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The answer to a successful sign-in: the session cookie, and on to `next`.
fn signed_in(anon: &Anon, secret: &str, _session: &WebSession, next: &str) -> Response {
    let tls = anon.portal.config.tls;
    let mut res = Redirect::to(next).into_response();
    let h = res.headers_mut();
    for c in [
        set_cookie(SESSION_COOKIE, secret, SESSION_TTL_MS / 1000, tls),
        set_cookie(PRE_COOKIE, "", 0, tls),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    res
}

/// `POST /login`: an API token.
pub async fn with_token(anon: Anon, PostForm(form): PostForm<Form>) -> Response {
    if let Err(r) = anon.check_csrf(&form) {
        return r;
    }
    let next = safe_next(form.get("next"));
    let token = form.get("token").map_or("", String::as_str);
    match anon.portal.engine.sign_in_with_token(token).await {
        Ok((secret, session)) => signed_in(&anon, &secret, &session, &next),
        Err(e) => sign_in_page(&anon, &next, &FormErrors::from_error(anon.lang, &e, |f| f)),
    }
}

/// `GET /login/link?t=SECRET`: asks before using the link, so a link previewer cannot
/// use it up.
pub async fn link_form(anon: Anon, Query(q): Query<HashMap<String, String>>) -> Response {
    let secret = q.get("t").cloned().unwrap_or_default();
    link_page(&anon, &secret, &FormErrors::new())
}

fn link_page(anon: &Anon, secret: &str, errors: &FormErrors) -> Response {
    let lang = anon.lang;
    let viewer = Viewer { lang, user: None };
    let mut res = layout::page(&viewer, t(lang, M::SignInTitle), Nav::None, |h| {
        errors.summary(h, lang);
        if let Some(e) = errors.of("link") {
            h.el_text("p", &[("class", "error")], e);
        }
        h.el_text("p", &[], t(lang, M::LinkIntro));
        h.el(
            "form",
            &[
                ("method", "post"),
                ("action", crate::engine::LOGIN_LINK_PATH),
                ("class", "card"),
            ],
            |h| {
                csrf_field(h, &anon.pre);
                h.void(
                    "input",
                    &[("type", "hidden"), ("name", "t"), ("value", secret)],
                );
                h.el_text(
                    "button",
                    &[("type", "submit"), ("class", "primary")],
                    t(lang, M::Continue),
                );
            },
        );
    });
    with_pre_cookie(&mut res, anon);
    res
}

/// `POST /login/link`: uses the link up and signs in.
pub async fn with_link(anon: Anon, PostForm(form): PostForm<Form>) -> Response {
    if let Err(r) = anon.check_csrf(&form) {
        return r;
    }
    let secret = form.get("t").map_or("", String::as_str);
    match anon.portal.engine.sign_in_with_link(secret).await {
        Ok((secret, session)) => signed_in(&anon, &secret, &session, "/"),
        Err(e @ Error::Invalid(_)) => {
            let mut res = link_page(&anon, "", &FormErrors::from_error(anon.lang, &e, |f| f));
            *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            res
        }
        Err(e) => layout::failure(anon.lang, &e),
    }
}

/// `POST /logout`.
pub async fn logout(ctx: Ctx, PostForm(form): PostForm<Form>) -> Response {
    if let Err(r) = ctx.check_csrf(&form) {
        return r;
    }
    if let Err(e) = ctx.engine().sign_out(&ctx.session).await {
        return layout::failure_in(&ctx, &e);
    }
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", 0, ctx.portal.config.tls).parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
