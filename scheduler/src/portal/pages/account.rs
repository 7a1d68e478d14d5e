//! The user's own account: language, API tokens, and (once notifications exist) what
//! they are told about.

use super::see_other;
use crate::auth::Issued;
use crate::portal::layout::{self, FormErrors, Nav, attrs, button_form, csrf_field, field, notice};
use crate::portal::session::{Ctx, Form};
use axum::extract::{Form as PostForm, Path, Query};
use axum::response::Response;
use berth_i18n::portal::Msg as M;
use berth_i18n::{Lang, t, tf};
use berth_proto::time::HOUR_MS;
use std::collections::HashMap;

/// `GET /account`.
pub async fn page(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    let notice = match q.get("notice").map(String::as_str) {
        Some("language") => Some(M::NoticeLanguage),
        Some("revoked") => Some(M::NoticeTokenRevoked),
        _ => None,
    };
    render(&ctx, notice, None, &FormErrors::new())
}

fn render(
    ctx: &Ctx,
    note: Option<M>,
    issued: Option<&Issued>,
    errors: &FormErrors,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let tokens = layout::or_page(ctx, ctx.engine().own_tokens(ctx.caller()))?;
    let csrf = ctx.session.csrf.as_str();
    let c = ctx.caller();
    let mut res = layout::page(&ctx.into(), t(lang, M::AccountTitle), Nav::Account, |h| {
        if let Some(n) = note {
            notice(h, t(lang, n));
        }
        errors.summary(h, lang);
        h.el("dl", &[("class", "details")], |h| {
            for (k, v) in [
                (M::User, c.name.as_str()),
                (M::Org, c.org.as_str()),
                (M::Role, c.role.as_str()),
            ] {
                h.el_text("dt", &[], t(lang, k));
                h.el_text("dd", &[], v);
            }
        });

        h.el_text("h2", &[("id", "language")], t(lang, M::Language));
        h.el(
            "form",
            &[
                ("method", "post"),
                ("action", "/account/language"),
                ("class", "card"),
            ],
            |h| {
                csrf_field(h, csrf);
                let chosen = ctx.session.lang.map_or("", Lang::code);
                field(h, "lang", t(lang, M::Language), errors, |h, a| {
                    h.el("select", &attrs(a, &[("name", "lang")]), |h| {
                        let options = [
                            ("", t(lang, M::LanguageAuto)),
                            ("en", Lang::En.native_name()),
                            ("ko", Lang::Ko.native_name()),
                        ];
                        for (code, label) in options {
                            if code == chosen {
                                h.el_text("option", &[("value", code), ("selected", "")], label);
                            } else {
                                h.el_text("option", &[("value", code)], label);
                            }
                        }
                    });
                });
                h.el_text("p", &[("class", "hint")], t(lang, M::LanguageHint));
                h.el_text("button", &[("type", "submit")], t(lang, M::Save));
            },
        );

        h.el_text("h2", &[("id", "tokens")], t(lang, M::ApiTokens));
        if let Some(i) = issued {
            h.el("div", &[("class", "alert ok"), ("role", "status")], |h| {
                h.el_text("p", &[], t(lang, M::TokenShownOnce));
                h.el_text(
                    "code",
                    &[("class", "secret"), ("id", "new-token")],
                    &i.token,
                );
            });
        }
        if tokens.is_empty() {
            h.el_text("p", &[("class", "empty")], t(lang, M::NoTokens));
        } else {
            h.el("div", &[("class", "scroll")], |h| {
                h.el("table", &[("id", "token-list")], |h| {
                    h.el("thead", &[], |h| {
                        h.el("tr", &[], |h| {
                            for col in [M::Id, M::Created, M::Expires, M::Actions] {
                                h.el_text("th", &[("scope", "col")], t(lang, col));
                            }
                        });
                    });
                    h.el("tbody", &[], |h| {
                        for tok in &tokens {
                            h.el("tr", &[], |h| {
                                h.el_text("td", &[], &tok.id);
                                h.el_text("td", &[], &layout::time(tok.created_ms));
                                h.el_text("td", &[], &layout::time(tok.expires_ms));
                                h.el("td", &[], |h| {
                                    button_form(
                                        h,
                                        csrf,
                                        &format!("/account/tokens/{}/revoke", tok.id),
                                        t(lang, M::Revoke),
                                        "danger",
                                    );
                                });
                            });
                        }
                    });
                });
            });
        }
        h.el(
            "form",
            &[
                ("method", "post"),
                ("action", "/account/tokens"),
                ("class", "card"),
            ],
            |h| {
                csrf_field(h, csrf);
                field(h, "ttl_days", t(lang, M::ValidForDays), errors, |h, a| {
                    h.void(
                        "input",
                        &attrs(
                            a,
                            &[
                                ("name", "ttl_days"),
                                ("type", "number"),
                                ("min", "1"),
                                ("max", "730"),
                                ("value", "90"),
                            ],
                        ),
                    );
                });
                h.el_text("button", &[("type", "submit")], t(lang, M::NewToken));
            },
        );

        // NOTIFICATIONS: once notifications exist (booking start and end, idle warnings,
        // reclaims, job ends, budget thresholds), the user's choices of what to be told
        // and how (email, webhook) are edited here, through the engine's operation for
        // them, with the same CSRF-checked form pattern as the language above.
        h.el_text("h2", &[("id", "notifications")], t(lang, M::Notifications));
        h.el_text("p", &[("class", "hint")], t(lang, M::NotificationsLater));
    });
    if !errors.is_empty() {
        *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

/// `POST /account/language`.
pub async fn language(ctx: Ctx, PostForm(form): PostForm<Form>) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let code = form.get("lang").map_or("", String::as_str);
    match ctx.engine().set_language(ctx.caller(), code).await {
        Ok(_) => Ok(see_other("/account?notice=language")),
        Err(e) => {
            let errors = FormErrors::from_error(ctx.lang, &e, |f| f);
            render(&ctx, None, None, &errors)
        }
    }
}

/// `POST /account/tokens`: a new token for the user, shown once.
pub async fn create_token(ctx: Ctx, PostForm(form): PostForm<Form>) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let lang = ctx.lang;
    let days = form.get("ttl_days").map_or("", |s| s.trim());
    let ttl_ms = match days.parse::<i64>() {
        Ok(d) if d > 0 => d * 24 * HOUR_MS,
        _ => {
            let mut errors = FormErrors::new();
            errors.field(
                "ttl_days",
                tf(
                    lang,
                    M::InvalidField,
                    &[
                        ("field", &"ttl_days"),
                        ("reason", &t(lang, M::WholeNumberAtLeastOne)),
                    ],
                ),
            );
            return render(&ctx, None, None, &errors);
        }
    };
    match ctx
        .engine()
        .create_token(
            ctx.caller(),
            &ctx.caller().name,
            &ctx.caller().org,
            Some(ttl_ms),
        )
        .await
    {
        Ok(issued) => render(&ctx, None, Some(&issued), &FormErrors::new()),
        Err(e) => render(
            &ctx,
            None,
            None,
            &FormErrors::from_error(lang, &e, |f| if f == "ttl" { "ttl_days" } else { f }),
        ),
    }
}

/// `POST /account/tokens/{id}/revoke`.
pub async fn revoke_token(
    ctx: Ctx,
    Path(id): Path<String>,
    PostForm(form): PostForm<Form>,
) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    layout::or_page(&ctx, ctx.engine().revoke_token(ctx.caller(), &id).await)?;
    Ok(see_other("/account?notice=revoked"))
}
