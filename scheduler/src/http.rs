//! The HTTP side port: `/metrics`, `/healthz`, `/readyz`.

use crate::engine::Engine;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

/// The HTTP routes.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(engine)
}

/// How long `/metrics` and `/readyz` wait for the database before calling it down.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the database answers within [`READY_TIMEOUT`]; also sets `berth_ready`.
async fn check_ready(engine: &Engine) -> bool {
    let ready = tokio::time::timeout(READY_TIMEOUT, engine.ready())
        .await
        .unwrap_or(false);
    engine.metrics.set_ready(ready);
    ready
}

async fn metrics(State(engine): State<Arc<Engine>>) -> impl IntoResponse {
    check_ready(&engine).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        engine.render_metrics().await,
    )
}

/// Ready when this scheduler leads and its database answers; a standby says who leads.
/// With `?role=any`, a standby whose database answers is ready too (it relays calls to
/// the leader), as a Kubernetes readiness probe needs for rolling updates.
async fn ready(State(engine): State<Arc<Engine>>, uri: axum::http::Uri) -> impl IntoResponse {
    let any_role = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "role=any"));
    if !check_ready(&engine).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable\n".to_owned(),
        );
    }
    if !engine.leads() {
        let why = engine.leadership().standby_message();
        if any_role {
            return (StatusCode::OK, format!("ready to relay: {why}\n"));
        }
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    }
    (StatusCode::OK, "ready\n".to_owned())
}
