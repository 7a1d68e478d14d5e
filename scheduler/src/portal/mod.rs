//! The web portal: server-rendered pages for the companies that do not live in a
//! terminal, and for centre admins. It is served on its own listener (`--web-addr`) and
//! calls the same engine operations as the gRPC API, so tenant checks, budgets,
//! validation and audit exist once.
//!
//! - [`html`]: the escaping builder every page is written with (no template engine).
//! - [`session`]: the session cookie, sign-in, CSRF tokens, the language.
//! - [`layout`]: the page shell, forms, errors, times.
//! - [`pages`]: one module per area (calendar and booking, bookings, jobs, usage,
//!   account, admin).
//!
//! Every asset is embedded in the binary; the page loads nothing from elsewhere, and the
//! Content-Security-Policy allows no inline script or style.

// Handlers answer with a page either way: `Result<Response, Response>` is axum's idiom
// (an early error page through `?`), and a response is as large as it is.
#![allow(clippy::result_large_err)]

pub mod html;
pub mod layout;
pub mod pages;
pub mod session;
pub mod tls;

use crate::engine::Engine;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The page's Content-Security-Policy: only this origin's own files, no inline code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/portal.css");
const JS: &str = include_str!("assets/portal.js");
const ICON: &[u8] = include_bytes!("assets/icon.svg");

/// How the portal is served.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortalConfig {
    /// The listener is TLS: cookies get `Secure`.
    pub tls: bool,
}

/// What every handler shares.
pub struct Portal {
    /// The scheduler's operations.
    pub engine: Arc<Engine>,
    /// How it is served.
    pub config: PortalConfig,
}

/// Shared portal state.
pub type Shared = Arc<Portal>;

/// Every route of the portal.
pub fn router(engine: Arc<Engine>, config: PortalConfig) -> Router {
    use pages::{account, admin, booking, calendar, jobs, login, reservations, usage};
    let portal = Arc::new(Portal { engine, config });
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/calendar") }),
        )
        .route(
            "/assets/portal.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/portal.js",
            get(|| async { asset(JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/icon.svg",
            get(|| async { asset(ICON, "image/svg+xml") }),
        )
        .route("/login", get(login::form).post(login::with_token))
        .route(
            crate::engine::LOGIN_LINK_PATH,
            get(login::link_form).post(login::with_link),
        )
        .route("/logout", post(login::logout))
        .route("/calendar", get(calendar::page))
        .route("/book", get(booking::form).post(booking::submit))
        .route("/reservations", get(reservations::list))
        .route("/reservations/{id}", get(reservations::show))
        .route("/reservations/{id}/cancel", post(reservations::cancel))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/log", get(jobs::log))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/usage", get(usage::page))
        .route("/usage.csv", get(usage::csv_download))
        .route("/account", get(account::page))
        .route("/account/language", post(account::language))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .route("/admin/nodes", get(admin::nodes))
        .route("/admin/nodes/{name}/{action}", post(admin::node_action))
        .route("/admin/devices/{uuid}/clear", post(admin::clear_device))
        .route("/admin/orgs", get(admin::orgs))
        .route("/admin/orgs/create", post(admin::create_org))
        .route("/admin/users/create", post(admin::create_user))
        .route("/admin/budgets/set", post(admin::set_budget))
        .route("/admin/audit", get(admin::audit))
        .fallback(layout::not_found)
        .layer(axum::middleware::from_fn_with_state(
            portal.clone(),
            leader_only,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(portal)
}

/// Pages come from the scheduler that leads: a standby's state is not the leader's, and
/// it cannot write. Behind a Service that spreads connections over every scheduler, a
/// standby answers 503 with `Connection: close` and asks the browser to reload in a
/// second, so the reload opens a new connection that soon reaches the leader.
async fn leader_only(
    axum::extract::State(portal): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if portal.engine.leads() {
        return next.run(req).await;
    }
    let lang = berth_i18n::Lang::negotiate([session::browser_lang(req.headers())]);
    let mut res = layout::standing_by(lang);
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert("refresh", HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn asset(body: impl IntoResponse, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Headers on every answer: the CSP, no sniffing, no framing, no referrer (a sign-in
/// link's secret never leaves in one), and pages never cached.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Serves the portal on `listener` (a TCP listener, or a [`tls::TlsListener`] when the
/// scheduler serves TLS) until `stop` is cancelled.
pub async fn serve<L>(listener: L, app: Router, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "web portal failed");
    }
}
