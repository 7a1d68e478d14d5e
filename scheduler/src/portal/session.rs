//! Who is asking: the session cookie, the language, and CSRF tokens.
//!
//! A signed-in browser holds one cookie, `berth_session` (`HttpOnly`, `SameSite=Strict`,
//! `Secure` under TLS), whose secret's hash names a row in `web_sessions`. Every form
//! carries the session's CSRF token in `_csrf`; a form posted without it, or with
//! another, is refused. Forms shown before signing in (the sign-in forms) carry the
//! secret of a short-lived `berth_pre` cookie instead (double submit).

use super::{Shared, layout};
use crate::engine::WebSession;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use berth_i18n::Lang;
use std::collections::HashMap;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "berth_session";
/// The pre-sign-in CSRF cookie's name.
pub const PRE_COOKIE: &str = "berth_pre";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// A form as posted: field name to value.
pub type Form = HashMap<String, String>;

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` under TLS;
/// `max_age_s` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// The language of a request without a user setting: `Accept-Language`, then English.
pub fn browser_lang(headers: &HeaderMap) -> Option<Lang> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in request.
pub struct Ctx {
    /// The portal.
    pub portal: Shared,
    /// The session.
    pub session: WebSession,
    /// The language pages are shown in.
    pub lang: Lang,
}

impl Ctx {
    /// The signed-in caller.
    pub fn caller(&self) -> &crate::auth::Caller {
        &self.session.caller
    }

    /// The engine.
    pub fn engine(&self) -> &crate::engine::Engine {
        &self.portal.engine
    }

    /// Refuses a form that does not carry this session's CSRF token.
    pub fn check_csrf(&self, form: &Form) -> Result<(), Response> {
        match form.get(CSRF_FIELD) {
            Some(t) if same_secret(t, &self.session.csrf) => Ok(()),
            _ => Err(layout::csrf_refused(self.lang)),
        }
    }
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Shared) -> Result<Self, Response> {
        let browser = browser_lang(&parts.headers);
        let found = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(secret) if !secret.is_empty() => portal
                .engine
                .web_session(secret)
                .await
                .map_err(|e| layout::failure(Lang::negotiate([browser]), &e))?,
            _ => None,
        };
        let Some(session) = found else {
            let next = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let to = if parts.method == axum::http::Method::GET && next != "/" {
                format!("/login?next={}", url_encode(&next))
            } else {
                "/login".to_owned()
            };
            return Err(Redirect::to(&to).into_response());
        };
        let lang = Lang::negotiate([session.lang, browser]);
        Ok(Ctx {
            portal: portal.clone(),
            session,
            lang,
        })
    }
}

/// A request before signing in: its language and its pre-sign-in CSRF secret.
pub struct Anon {
    /// The portal.
    pub portal: Shared,
    /// The language pages are shown in.
    pub lang: Lang,
    /// The `berth_pre` secret (new when the browser had none).
    pub pre: String,
    /// True when `pre` is new and must be set.
    pub fresh: bool,
}

impl Anon {
    /// Refuses a sign-in form without the browser's `berth_pre` secret.
    pub fn check_csrf(&self, form: &Form) -> Result<(), Response> {
        match form.get(CSRF_FIELD) {
            Some(t) if !self.fresh && same_secret(t, &self.pre) => Ok(()),
            _ => Err(layout::csrf_refused(self.lang)),
        }
    }

    /// The `Set-Cookie` for a fresh pre-sign-in secret (ten minutes).
    pub fn pre_cookie(&self) -> Option<String> {
        self.fresh
            .then(|| set_cookie(PRE_COOKIE, &self.pre, 600, self.portal.config.tls))
    }
}

impl FromRequestParts<Shared> for Anon {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Shared) -> Result<Self, Response> {
        let lang = Lang::negotiate([browser_lang(&parts.headers)]);
        let (pre, fresh) = match cookie(&parts.headers, PRE_COOKIE) {
            Some(p) if p.len() >= 32 && p.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (p.to_owned(), false)
            }
            _ => (crate::auth::random_secret(""), true),
        };
        Ok(Anon {
            portal: portal.clone(),
            lang,
            pre,
            fresh,
        })
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A local path to return to after signing in (anything else goes to `/`).
pub fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; berth_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn the_cookie_is_strict_and_secure_under_tls() {
        let c = set_cookie(SESSION_COOKIE, "s", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "s", 60, false).contains("Secure"));
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_next(Some(&"/jobs?x=1".to_owned())), "/jobs?x=1");
        assert_eq!(safe_next(Some(&"//evil.example/".to_owned())), "/");
        assert_eq!(safe_next(Some(&"https://evil.example/".to_owned())), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }
}
