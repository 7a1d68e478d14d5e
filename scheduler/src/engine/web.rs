//! The web portal's operations: sessions (signed in with an API token or a single-use
//! link from `berth login --web`), a user's settings, their own tokens, and the cost of
//! a booking before it is made. Like every operation, each change is one batch with its
//! audit event.

use super::booking::{Admitted, admit_booking};
use super::{Engine, audit, now};
use crate::auth::{self, Caller};
use crate::error::{Error, Result};
use crate::store::{Mutation, TokenRow, UserSettingsRow, WebLoginRow, WebSessionRow};
use berth_i18n::api::Msg;
use berth_i18n::{Lang, text};
use berth_proto::model::ReservationSpec;
use berth_proto::time::HOUR_MS;
use berth_proto::v1;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// How long a portal session lasts after signing in.
pub const SESSION_TTL_MS: i64 = 12 * HOUR_MS;
/// How long a sign-in link from `berth login --web` stays valid.
pub const LOGIN_LINK_TTL_MS: i64 = 5 * 60 * 1000;
/// The portal's path that takes a sign-in link's secret (`?t=`).
pub const LOGIN_LINK_PATH: &str = "/login/link";

/// What the engine keeps for the portal.
#[derive(Debug, Default)]
pub struct Web {
    /// Where users reach the portal (`http://127.0.0.1:7072`), once it listens.
    base_url: OnceLock<String>,
    /// Sign-in links being used right now: a link is used once even when two requests
    /// race for it.
    using: Mutex<HashSet<String>>,
}

/// A signed-in portal session.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The SHA-256 of the cookie's secret.
    pub id: String,
    /// Who is signed in; `expires_ms` is the session's end.
    pub caller: Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// The user's language setting, if they chose one.
    pub lang: Option<Lang>,
}

/// Where a booking's cost is charged. Projects' grants (and prices in won) will come as
/// more kinds of line beside budgets.
#[derive(Debug, Clone, PartialEq)]
pub enum CostSource {
    /// The org's budget for a class (or `*`).
    Budget {
        /// The budget's class key.
        key: String,
        /// Budget hours left in the period before this booking; `None`: no hour limit.
        left_hours: Option<f64>,
    },
    /// A project's grant (device-hours, not rated).
    Project {
        /// The project.
        id: String,
        /// Its title.
        title: String,
        /// Device-hours of the class left before this booking.
        left_hours: f64,
    },
    /// No budget applies to the class: nothing is charged.
    Free,
}

/// What a booking would cost, checked exactly as the booking itself is.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// The window's start (now at the earliest) and end.
    pub start_ms: i64,
    /// The window's end.
    pub end_ms: i64,
    /// Device-hours booked.
    pub device_hours: f64,
    /// Budget units per device-hour of the class.
    pub rate: f64,
    /// Budget hours charged.
    pub charge_hours: f64,
    /// Where the charge goes.
    pub source: CostSource,
    /// Devices it would be pinned to now (another booking may take them first).
    pub devices: usize,
}

impl Engine {
    /// Records where the portal is reached, for sign-in links.
    pub fn set_web_url(&self, url: String) {
        let _ = self.web.base_url.set(url);
    }

    /// Where the portal is reached, once it listens.
    pub fn web_url(&self) -> Option<&str> {
        self.web.base_url.get().map(String::as_str)
    }

    /// Signs in to the portal with an API token; returns the cookie's secret and the
    /// session.
    pub async fn sign_in_with_token(&self, token: &str) -> Result<(String, WebSession)> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::field("token", Msg::IsRequired));
        }
        let caller = {
            let index = self.auth.read().unwrap_or_else(|e| e.into_inner());
            index.verify(&self.keys, token, now())
        }
        .map_err(|e| match e {
            Error::Unauthenticated(m) => Error::field("token", m),
            e => e,
        })?;
        if caller.require_user().is_err() {
            return Err(Error::field("token", Msg::NodeCredential));
        }
        self.start_session(&caller, "web sign-in with a token", None)
            .await
    }

    /// Issues a single-use sign-in link for the caller, valid for
    /// [`LOGIN_LINK_TTL_MS`]; returns its URL and expiry.
    pub async fn create_login_link(&self, caller: &Caller) -> Result<(String, i64)> {
        caller.require_user()?;
        let base = self
            .web_url()
            .ok_or_else(|| Error::FailedPrecondition(Msg::NoPortal.into()))?;
        let secret = auth::random_secret("");
        let t = now();
        let row = WebLoginRow {
            id: auth::hash_secret(&secret),
            user_id: caller.id.clone(),
            created_ms: t,
            expires_ms: t + LOGIN_LINK_TTL_MS,
        };
        let expires = row.expires_ms;
        self.commit(|tx| {
            tx.push(Mutation::PruneWeb { before_ms: t });
            tx.push(Mutation::InsertWebLogin(row));
            tx.push(Mutation::Audit(audit(
                caller,
                "web-login.create",
                &caller.name,
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok((format!("{base}{LOGIN_LINK_PATH}?t={secret}"), expires))
    }

    /// Signs in with a sign-in link's secret, using the link up.
    pub async fn sign_in_with_link(&self, secret: &str) -> Result<(String, WebSession)> {
        let gone = || Error::field("link", Msg::LinkGone);
        let id = auth::hash_secret(secret.trim());
        let row = self.store.get_web_login(&id).await?.ok_or_else(gone)?;
        if row.expires_ms <= now() {
            return Err(gone());
        }
        let caller = self
            .caller_of(&row.user_id, row.expires_ms)
            .ok_or_else(gone)?;
        if !self.web_using(&id, true) {
            return Err(gone());
        }
        let result = self
            .start_session(&caller, "web sign-in with a link", Some(id.clone()))
            .await;
        self.web_using(&id, false);
        result
    }

    /// Marks a link as being used (`true`: false when it already is) or not any more.
    fn web_using(&self, id: &str, start: bool) -> bool {
        let mut using = self.web.using.lock().unwrap_or_else(|e| e.into_inner());
        if start {
            using.insert(id.to_owned())
        } else {
            using.remove(id);
            true
        }
    }

    /// Starts a session for `caller`, using up the link `link` if one was used.
    async fn start_session(
        &self,
        caller: &Caller,
        how: &str,
        link: Option<String>,
    ) -> Result<(String, WebSession)> {
        let secret = auth::random_secret("");
        let t = now();
        let row = WebSessionRow {
            id: auth::hash_secret(&secret),
            user_id: caller.id.clone(),
            csrf: auth::random_secret(""),
            created_ms: t,
            expires_ms: t + SESSION_TTL_MS,
        };
        let lang = self.user_lang(&caller.id).await?;
        self.commit(|tx| {
            if let Some(link) = &link {
                tx.push(Mutation::DeleteWebLogin { id: link.clone() });
            }
            tx.push(Mutation::PruneWeb { before_ms: t });
            tx.push(Mutation::InsertWebSession(row.clone()));
            tx.push(Mutation::Audit(audit(
                caller,
                "session.create",
                how,
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        let mut caller = caller.clone();
        caller.expires_ms = row.expires_ms;
        Ok((
            secret,
            WebSession {
                id: row.id,
                caller,
                csrf: row.csrf,
                lang,
            },
        ))
    }

    /// The session a cookie's secret names, if it is live and its user still exists.
    pub async fn web_session(&self, secret: &str) -> Result<Option<WebSession>> {
        let id = auth::hash_secret(secret);
        let Some(row) = self.store.get_web_session(&id).await? else {
            return Ok(None);
        };
        if row.expires_ms <= now() {
            return Ok(None);
        }
        let Some(caller) = self.caller_of(&row.user_id, row.expires_ms) else {
            return Ok(None);
        };
        let lang = self.user_lang(&caller.id).await?;
        Ok(Some(WebSession {
            id: row.id,
            caller,
            csrf: row.csrf,
            lang,
        }))
    }

    /// Ends a session (signing out).
    pub async fn sign_out(&self, session: &WebSession) -> Result<()> {
        let t = now();
        self.commit(|tx| {
            tx.push(Mutation::DeleteWebSession {
                id: session.id.clone(),
            });
            tx.push(Mutation::Audit(audit(
                &session.caller,
                "session.delete",
                "web sign-out",
                t,
                "ok",
            )));
            Ok(())
        })
        .await
    }

    /// The caller a user id stands for, from the committed state.
    fn caller_of(&self, user_id: &str, expires_ms: i64) -> Option<Caller> {
        let state = self.view();
        let user = state.user_by_id(user_id)?;
        Some(Caller {
            id: user.id.clone(),
            name: user.name.clone(),
            org: user.org.clone(),
            role: user.role,
            node: None,
            expires_ms,
        })
    }

    /// A user's language setting, if they chose one.
    pub async fn user_lang(&self, user_id: &str) -> Result<Option<Lang>> {
        Ok(self
            .store
            .get_user_settings(user_id)
            .await?
            .and_then(|s| Lang::parse(&s.lang)))
    }

    /// Sets the caller's language (`en`, `ko`, or empty to follow the browser or locale).
    pub async fn set_language(&self, caller: &Caller, lang: &str) -> Result<Option<Lang>> {
        caller.require_user()?;
        let lang = lang.trim();
        let parsed = match lang {
            "" => None,
            code => Some(
                Lang::parse(code)
                    .ok_or_else(|| Error::field("lang", text!(NotALanguage, code = ?code)))?,
            ),
        };
        let t = now();
        let row = UserSettingsRow {
            user_id: caller.id.clone(),
            lang: parsed.map_or("", Lang::code).to_owned(),
            updated_ms: t,
        };
        self.commit(|tx| {
            let target = format!("{} lang={}", caller.name, row.lang);
            tx.push(Mutation::SetUserSettings(row));
            tx.push(Mutation::Audit(audit(
                caller,
                "settings.update",
                &target,
                t,
                "ok",
            )));
            Ok(())
        })
        .await?;
        Ok(parsed)
    }

    /// The caller's own API tokens that are still valid, newest first.
    pub fn own_tokens(&self, caller: &Caller) -> Result<Vec<TokenRow>> {
        caller.require_user()?;
        let t = now();
        let index = self.auth.read().unwrap_or_else(|e| e.into_inner());
        let mut tokens: Vec<TokenRow> = index
            .tokens_of(&caller.id)
            .filter(|r| !r.revoked && r.expires_ms > t)
            .cloned()
            .collect();
        tokens.sort_by(|a, b| (b.created_ms, &b.id).cmp(&(a.created_ms, &a.id)));
        Ok(tokens)
    }

    /// What booking `req` would cost the caller's org now, checked exactly as
    /// [`Engine::create_reservation`] checks it; changes nothing.
    pub fn quote_reservation(
        &self,
        caller: &Caller,
        req: &v1::CreateReservationRequest,
    ) -> Result<Quote> {
        caller.require_user()?;
        let t = now();
        let spec = ReservationSpec::from_request(req, t)?;
        let state = self.view();
        let Admitted {
            start,
            rate,
            plan,
            devices,
            ..
        } = admit_booking(&state, caller, &spec, t)?;
        let device_ms = (spec.end - start) * i64::from(spec.count);
        let hours = crate::convert::hours;
        let (charge_hours, source) = match plan {
            Some(p) if p.project.is_some() => {
                let id = p.project.unwrap_or_default();
                let granted = state
                    .accounts
                    .grant(&id)
                    .and_then(|g| g.device_ms.get(&spec.class).copied())
                    .unwrap_or(0);
                let left = granted - state.accounts.grant_used(&id, &spec.class);
                let title = state
                    .projects
                    .get(&id)
                    .map(|p| p.title.clone())
                    .unwrap_or_default();
                (
                    hours(p.amount_ms),
                    CostSource::Project {
                        id,
                        title,
                        left_hours: hours(left),
                    },
                )
            }
            Some(p) => (
                hours(p.amount_ms),
                CostSource::Budget {
                    left_hours: state.accounts.left(&caller.org, &p.key, start).map(hours),
                    key: p.key,
                },
            ),
            None => (0.0, CostSource::Free),
        };
        Ok(Quote {
            start_ms: start,
            end_ms: spec.end,
            device_hours: hours(device_ms),
            rate,
            charge_hours,
            source,
            devices: devices.len(),
        })
    }
}
