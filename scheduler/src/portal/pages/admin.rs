//! Centre admin pages: nodes and devices (health, drain, clear), orgs, users and
//! budgets, and the audit log. Every operation checks the admin role itself.

use super::reservations::state_badge;
use super::see_other;
use crate::error::Error;
use crate::portal::html::Html;
use crate::portal::layout::{self, FormErrors, Nav, attrs, button_form, csrf_field, field, notice};
use crate::portal::session::{Ctx, Form, url_encode};
use crate::store::{Health, NodeState};
use axum::extract::{Form as PostForm, Path, Query};
use axum::response::Response;
use berth_i18n::portal::Msg as M;
use berth_i18n::{Lang, t, tf};
use berth_proto::v1;
use std::collections::HashMap;

/// Audit events per page.
const AUDIT_PAGE: u32 = 100;

fn admin_only(ctx: &Ctx) -> Result<(), Response> {
    ctx.caller()
        .require_admin()
        .map_err(|e| layout::failure_in(ctx, &e))
}

fn node_state(s: i32) -> &'static str {
    [
        NodeState::Ready,
        NodeState::Draining,
        NodeState::Drained,
        NodeState::Unreachable,
        NodeState::Down,
    ]
    .into_iter()
    .find(|n| n.to_proto() as i32 == s)
    .map_or("unknown", NodeState::as_str)
}

fn health(s: i32) -> &'static str {
    [Health::Healthy, Health::Degraded, Health::Failed]
        .into_iter()
        .find(|n| n.to_proto() as i32 == s)
        .map_or("unknown", Health::as_str)
}

/// `GET /admin/nodes`.
pub async fn nodes(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    admin_only(&ctx)?;
    let lang = ctx.lang;
    let nodes = layout::or_page(&ctx, ctx.engine().list_nodes(ctx.caller(), ""))?;
    let csrf = ctx.session.csrf.as_str();
    Ok(layout::page(
        &(&ctx).into(),
        t(lang, M::NodesTitle),
        Nav::Nodes,
        |h| {
            if q.contains_key("notice") {
                notice(h, t(lang, M::NoticeDone));
            }
            if nodes.is_empty() {
                h.el_text("p", &[("class", "empty")], t(lang, M::NoNodes));
            }
            for n in &nodes {
                h.el(
                    "section",
                    &[
                        ("class", "card node"),
                        ("aria-labelledby", &format!("node-{}", n.name)),
                    ],
                    |h| {
                        h.el("h2", &[("id", &format!("node-{}", n.name))], |h| {
                            h.text(&n.name).text(" ");
                            state_badge(h, node_state(n.state));
                        });
                        h.el_text(
                            "p",
                            &[],
                            &tf(
                                lang,
                                M::NodeSummary,
                                &[
                                    ("site", &n.site),
                                    ("host", &n.hostname),
                                    ("seen", &layout::ts(n.last_heartbeat.as_ref())),
                                    ("runtime", &n.runtime),
                                ],
                            ),
                        );
                        h.el("div", &[("class", "row")], |h| {
                            let action = |h: &mut Html, a: &str, label: M| {
                                button_form(
                                    h,
                                    csrf,
                                    &format!("/admin/nodes/{}/{a}", url_encode(&n.name)),
                                    t(lang, label),
                                    "",
                                );
                            };
                            match node_state(n.state) {
                                "ready" => action(h, "drain", M::Drain),
                                "down" | "unreachable" => action(h, "undrain", M::Undrain),
                                _ => action(h, "undrain", M::Undrain),
                            }
                            if node_state(n.state) != "down" {
                                action(h, "down", M::MarkDown);
                            }
                        });
                        devices(h, lang, csrf, &n.devices);
                    },
                );
            }
        },
    ))
}

fn devices(h: &mut Html, lang: Lang, csrf: &str, devices: &[v1::Device]) {
    h.el("div", &[("class", "scroll")], |h| {
        h.el("table", &[], |h| {
            h.el("thead", &[], |h| {
                h.el("tr", &[], |h| {
                    for c in [
                        M::Index,
                        M::Uuid,
                        M::DeviceClass,
                        M::Model,
                        M::Health,
                        M::Reason,
                        M::Actions,
                    ] {
                        h.el_text("th", &[("scope", "col")], t(lang, c));
                    }
                });
            });
            h.el("tbody", &[], |h| {
                for d in devices {
                    h.el("tr", &[], |h| {
                        h.el_text("td", &[("class", "num")], &d.index.to_string());
                        h.el_text("td", &[("class", "mono")], &d.uuid);
                        h.el_text("td", &[], &d.class);
                        h.el_text("td", &[], &d.model);
                        h.el("td", &[], |h| state_badge(h, health(d.health)));
                        h.el_text("td", &[], &d.health_reason);
                        h.el("td", &[], |h| {
                            if health(d.health) == "failed" {
                                button_form(
                                    h,
                                    csrf,
                                    &format!("/admin/devices/{}/clear", url_encode(&d.uuid)),
                                    t(lang, M::ClearDevice),
                                    "",
                                );
                            }
                        });
                    });
                }
            });
        });
    });
}

/// `POST /admin/nodes/{name}/{drain|undrain|down}`.
pub async fn node_action(
    ctx: Ctx,
    Path((name, action)): Path<(String, String)>,
    PostForm(form): PostForm<Form>,
) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let (e, c) = (ctx.engine(), ctx.caller());
    let r = match action.as_str() {
        "drain" => e.set_drain(c, &name, true).await.map(drop),
        "undrain" => e.set_drain(c, &name, false).await.map(drop),
        "down" => e.mark_down(c, &name).await.map(drop),
        _ => Err(Error::NotFound(
            berth_i18n::text!(WhatAction, name = ?action),
        )),
    };
    layout::or_page(&ctx, r)?;
    Ok(see_other("/admin/nodes?notice=done"))
}

/// `POST /admin/devices/{uuid}/clear`.
pub async fn clear_device(
    ctx: Ctx,
    Path(uuid): Path<String>,
    PostForm(form): PostForm<Form>,
) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    layout::or_page(&ctx, ctx.engine().clear_device(ctx.caller(), &uuid).await)?;
    Ok(see_other("/admin/nodes?notice=done"))
}

/// A user made on this page and their first token, shown once.
struct NewUser {
    name: String,
    token: String,
}

/// `GET /admin/orgs`.
pub async fn orgs(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    admin_only(&ctx)?;
    let note = q.contains_key("notice").then_some(M::NoticeDone);
    render_orgs(&ctx, note, None, &FormErrors::new(), &HashMap::new()).await
}

async fn render_orgs(
    ctx: &Ctx,
    note: Option<M>,
    new_user: Option<&NewUser>,
    errors: &FormErrors,
    typed: &Form,
) -> Result<Response, Response> {
    let lang = ctx.lang;
    let orgs = layout::or_page(ctx, ctx.engine().list_orgs(ctx.caller()).await)?;
    let users = layout::or_page(ctx, ctx.engine().list_users(ctx.caller(), "").await)?;
    let budgets = layout::or_page(ctx, ctx.engine().list_budgets(ctx.caller(), "").await)?;
    let csrf = ctx.session.csrf.as_str();
    let value = |k: &str| typed.get(k).cloned().unwrap_or_default();
    let org_select = |h: &mut Html, a: &[(&'static str, &str)], name: &'static str| {
        let chosen = value(name);
        h.el("select", &attrs(a, &[("name", name)]), |h| {
            for o in &orgs {
                if o.name == chosen {
                    h.el_text("option", &[("value", &o.name), ("selected", "")], &o.name);
                } else {
                    h.el_text("option", &[("value", &o.name)], &o.name);
                }
            }
        });
    };
    let mut res = layout::page(&ctx.into(), t(lang, M::OrgsTitle), Nav::Orgs, |h| {
        if let Some(n) = note {
            notice(h, t(lang, n));
        }
        errors.summary(h, lang);
        if let Some(u) = new_user {
            h.el("div", &[("class", "alert ok"), ("role", "status")], |h| {
                h.el_text("p", &[], &tf(lang, M::UserCreated, &[("user", &u.name)]));
                h.el_text(
                    "code",
                    &[("class", "secret"), ("id", "new-token")],
                    &u.token,
                );
            });
        }
        h.el_text("h2", &[], t(lang, M::Orgs));
        h.el("div", &[("class", "scroll")], |h| {
            h.el("table", &[("id", "orgs")], |h| {
                h.el("thead", &[], |h| {
                    h.el("tr", &[], |h| {
                        for c in [M::Name, M::Description, M::Weight] {
                            h.el_text("th", &[("scope", "col")], t(lang, c));
                        }
                    });
                });
                h.el("tbody", &[], |h| {
                    for o in &orgs {
                        h.el("tr", &[], |h| {
                            h.el_text("td", &[], &o.name);
                            h.el_text("td", &[], &o.description);
                            h.el_text("td", &[("class", "num")], &layout::hours(o.weight));
                        });
                    }
                });
            });
        });
        h.el(
            "form",
            &[
                ("method", "post"),
                ("action", "/admin/orgs/create"),
                ("class", "card"),
            ],
            |h| {
                h.el_text("h3", &[], t(lang, M::NewOrg));
                csrf_field(h, csrf);
                field(h, "org_name", t(lang, M::Name), errors, |h, a| {
                    h.void(
                        "input",
                        &attrs(
                            a,
                            &[
                                ("name", "org_name"),
                                ("value", &value("org_name")),
                                ("autocomplete", "off"),
                            ],
                        ),
                    );
                });
                field(
                    h,
                    "org_description",
                    t(lang, M::Description),
                    errors,
                    |h, a| {
                        h.void(
                            "input",
                            &attrs(
                                a,
                                &[
                                    ("name", "org_description"),
                                    ("value", &value("org_description")),
                                ],
                            ),
                        );
                    },
                );
                h.el_text("button", &[("type", "submit")], t(lang, M::Create));
            },
        );

        h.el_text("h2", &[], t(lang, M::Users));
        h.el("div", &[("class", "scroll")], |h| {
            h.el("table", &[("id", "users")], |h| {
                h.el("thead", &[], |h| {
                    h.el("tr", &[], |h| {
                        for c in [M::Name, M::Org, M::Role, M::Created] {
                            h.el_text("th", &[("scope", "col")], t(lang, c));
                        }
                    });
                });
                h.el("tbody", &[], |h| {
                    for u in &users {
                        h.el("tr", &[], |h| {
                            h.el_text("td", &[], &u.name);
                            h.el_text("td", &[], &u.org);
                            h.el_text("td", &[], u.role.as_str());
                            h.el_text("td", &[], &layout::time(u.created_ms));
                        });
                    }
                });
            });
        });
        h.el(
            "form",
            &[
                ("method", "post"),
                ("action", "/admin/users/create"),
                ("class", "card"),
            ],
            |h| {
                h.el_text("h3", &[], t(lang, M::NewUser));
                csrf_field(h, csrf);
                field(h, "user_org", t(lang, M::Org), errors, |h, a| {
                    org_select(h, a, "user_org")
                });
                field(h, "user_name", t(lang, M::Name), errors, |h, a| {
                    h.void(
                        "input",
                        &attrs(
                            a,
                            &[
                                ("name", "user_name"),
                                ("value", &value("user_name")),
                                ("autocomplete", "off"),
                            ],
                        ),
                    );
                });
                field(h, "user_role", t(lang, M::Role), errors, |h, a| {
                    h.el("select", &attrs(a, &[("name", "user_role")]), |h| {
                        for r in ["user", "org-admin", "admin"] {
                            h.el_text("option", &[("value", r)], r);
                        }
                    });
                });
                h.el_text("button", &[("type", "submit")], t(lang, M::Create));
            },
        );

        h.el_text("h2", &[], t(lang, M::Budgets));
        h.el("div", &[("class", "scroll")], |h| {
            h.el("table", &[("id", "admin-budgets")], |h| {
                h.el("thead", &[], |h| {
                    h.el("tr", &[], |h| {
                        for c in [
                            M::Org,
                            M::DeviceClass,
                            M::Period,
                            M::Allowance,
                            M::Left,
                            M::DevicesHeld,
                        ] {
                            h.el_text("th", &[("scope", "col")], t(lang, c));
                        }
                    });
                });
                h.el("tbody", &[], |h| {
                    let none = t(lang, M::NoHourLimit);
                    for b in &budgets {
                        h.el("tr", &[], |h| {
                            h.el_text("td", &[], &b.org);
                            h.el_text("td", &[], &b.class);
                            h.el_text("td", &[], &b.period);
                            h.el_text(
                                "td",
                                &[("class", "num")],
                                &b.hours.map_or_else(|| none.to_owned(), layout::hours),
                            );
                            h.el_text(
                                "td",
                                &[("class", "num")],
                                &b.left_hours.map_or_else(|| none.to_owned(), layout::hours),
                            );
                            h.el_text("td", &[("class", "num")], &b.devices_held.to_string());
                        });
                    }
                });
            });
        });
        h.el(
            "form",
            &[
                ("method", "post"),
                ("action", "/admin/budgets/set"),
                ("class", "card"),
            ],
            |h| {
                h.el_text("h3", &[], t(lang, M::SetBudget));
                csrf_field(h, csrf);
                field(h, "budget_org", t(lang, M::Org), errors, |h, a| {
                    org_select(h, a, "budget_org")
                });
                field(h, "budget_class", t(lang, M::ClassOrAll), errors, |h, a| {
                    h.void(
                        "input",
                        &attrs(
                            a,
                            &[("name", "budget_class"), ("value", &value("budget_class"))],
                        ),
                    );
                });
                field(
                    h,
                    "budget_hours",
                    t(lang, M::HoursPerPeriod),
                    errors,
                    |h, a| {
                        h.void(
                            "input",
                            &attrs(
                                a,
                                &[
                                    ("name", "budget_hours"),
                                    ("type", "number"),
                                    ("min", "0"),
                                    ("step", "any"),
                                    ("value", &value("budget_hours")),
                                ],
                            ),
                        );
                    },
                );
                field(h, "budget_period", t(lang, M::Period), errors, |h, a| {
                    h.el("select", &attrs(a, &[("name", "budget_period")]), |h| {
                        for p in ["month", "week", "day"] {
                            h.el_text("option", &[("value", p)], p);
                        }
                    });
                });
                h.el_text("button", &[("type", "submit")], t(lang, M::Save));
            },
        );
    });
    if !errors.is_empty() {
        *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

/// `POST /admin/orgs/create`.
pub async fn create_org(ctx: Ctx, PostForm(form): PostForm<Form>) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let get = |k: &str| form.get(k).map_or("", |v| v.trim());
    match ctx
        .engine()
        .create_org(ctx.caller(), get("org_name"), get("org_description"))
        .await
    {
        Ok(_) => Ok(see_other("/admin/orgs?notice=done")),
        Err(e) => {
            let errors =
                FormErrors::from_error(ctx.lang, &e, |f| if f == "name" { "org_name" } else { f });
            render_orgs(&ctx, None, None, &errors, &form).await
        }
    }
}

/// `POST /admin/users/create`: the new user's first token is shown once.
pub async fn create_user(ctx: Ctx, PostForm(form): PostForm<Form>) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let get = |k: &str| form.get(k).map_or("", |v| v.trim());
    let role = match get("user_role") {
        "admin" => v1::Role::Admin,
        "org-admin" => v1::Role::OrgAdmin,
        _ => v1::Role::User,
    } as i32;
    match ctx
        .engine()
        .create_user(ctx.caller(), get("user_org"), get("user_name"), role)
        .await
    {
        Ok((user, issued)) => {
            let new = NewUser {
                name: user.name,
                token: issued.token,
            };
            render_orgs(&ctx, None, Some(&new), &FormErrors::new(), &HashMap::new()).await
        }
        Err(e) => {
            let errors = FormErrors::from_error(ctx.lang, &e, |f| match f {
                "org" => "user_org",
                "name" => "user_name",
                "role" => "user_role",
                f => f,
            });
            render_orgs(&ctx, None, None, &errors, &form).await
        }
    }
}

/// `POST /admin/budgets/set`.
pub async fn set_budget(ctx: Ctx, PostForm(form): PostForm<Form>) -> Result<Response, Response> {
    ctx.check_csrf(&form)?;
    let lang = ctx.lang;
    let get = |k: &str| form.get(k).map_or("", |v| v.trim());
    let hours = match get("budget_hours") {
        "" => None,
        h => match h.parse::<f64>() {
            Ok(v) => Some(v),
            Err(_) => {
                let mut errors = FormErrors::new();
                errors.field(
                    "budget_hours",
                    tf(
                        lang,
                        M::InvalidField,
                        &[("field", &"hours"), ("reason", &t(lang, M::PositiveHours))],
                    ),
                );
                return render_orgs(&ctx, None, None, &errors, &form).await;
            }
        },
    };
    let req = v1::SetBudgetRequest {
        org: get("budget_org").to_owned(),
        class: get("budget_class").to_owned(),
        hours,
        period: get("budget_period").to_owned(),
        ..Default::default()
    };
    match ctx.engine().set_budget(ctx.caller(), &req).await {
        Ok(_) => Ok(see_other("/admin/orgs?notice=done")),
        Err(e) => {
            let errors = FormErrors::from_error(lang, &e, |f| match f {
                "org" => "budget_org",
                "class" => "budget_class",
                "hours" => "budget_hours",
                "period" => "budget_period",
                f => f,
            });
            render_orgs(&ctx, None, None, &errors, &form).await
        }
    }
}

/// `GET /admin/audit?action=&page=`.
pub async fn audit(
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    admin_only(&ctx)?;
    let lang = ctx.lang;
    let action = q.get("action").cloned().unwrap_or_default();
    let req = v1::ListAuditRequest {
        page_size: AUDIT_PAGE,
        page_token: q.get("page").cloned().unwrap_or_default(),
        action: action.clone(),
        ..Default::default()
    };
    let page = layout::or_page(&ctx, ctx.engine().list_audit(ctx.caller(), &req).await)?;
    Ok(layout::page(
        &(&ctx).into(),
        t(lang, M::AuditTitle),
        Nav::Audit,
        |h| {
            h.el(
                "form",
                &[
                    ("method", "get"),
                    ("action", "/admin/audit"),
                    ("class", "row"),
                ],
                |h| {
                    h.el_text(
                        "label",
                        &[("for", "f-action")],
                        t(lang, M::ActionStartsWith),
                    );
                    h.void(
                        "input",
                        &[
                            ("id", "f-action"),
                            ("name", "action"),
                            ("value", &action),
                            ("placeholder", "reservation."),
                        ],
                    );
                    h.el_text("button", &[("type", "submit")], t(lang, M::Show));
                },
            );
            h.el("div", &[("class", "scroll")], |h| {
                h.el("table", &[("id", "audit")], |h| {
                    h.el("thead", &[], |h| {
                        h.el("tr", &[], |h| {
                            for c in [M::Time, M::Actor, M::Action, M::Target, M::Outcome] {
                                h.el_text("th", &[("scope", "col")], t(lang, c));
                            }
                        });
                    });
                    h.el("tbody", &[], |h| {
                        for a in &page.items {
                            h.el("tr", &[], |h| {
                                h.el_text("td", &[], &layout::time(a.time_ms));
                                h.el_text("td", &[], &a.actor);
                                h.el_text("td", &[("class", "mono")], &a.action);
                                h.el_text("td", &[], &a.target);
                                h.el_text("td", &[], &a.outcome);
                            });
                        }
                    });
                });
            });
            let base = format!("/admin/audit?action={}&", url_encode(&action));
            layout::next_page(h, lang, &base, &page.next_page_token);
        },
    ))
}
