//! Standbys take no requests: while another scheduler leads (or none does), every call of
//! the Berth API is answered `UNAVAILABLE` at once, with the leader's address in the
//! message and in the `berth-leader` metadata, so clients and agents that know several
//! schedulers go to the leader. Health, reflection and `GetStatus` are answered by all.

use crate::engine::Engine;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::http;

/// Calls every scheduler answers, leader or not.
const ALWAYS: &[&str] = &["/berth.v1.Admin/GetStatus"];

/// The gate, in front of every service.
#[derive(Clone)]
pub struct LeaderGateLayer(pub Arc<Engine>);

impl<S> tower::Layer<S> for LeaderGateLayer {
    type Service = LeaderGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LeaderGate {
            inner,
            engine: self.0.clone(),
        }
    }
}

/// Lets calls through only while this scheduler leads.
#[derive(Clone)]
pub struct LeaderGate<S> {
    inner: S,
    engine: Arc<Engine>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for LeaderGate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    RB: From<tonic::body::Body> + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let gated = path.starts_with("/berth.v1.") && !ALWAYS.contains(&path);
        if gated && !self.engine.leads() {
            let leadership = self.engine.leadership();
            let mut status = tonic::Status::unavailable(leadership.standby_message());
            if let Some(addr) = leadership.leader_address()
                && let Ok(v) = addr.parse()
            {
                status.metadata_mut().insert("berth-leader", v);
            }
            let (parts, body) = status.into_http::<tonic::body::Body>().into_parts();
            return Box::pin(async move { Ok(http::Response::from_parts(parts, RB::from(body))) });
        }
        let fut = self.inner.call(req);
        Box::pin(fut)
    }
}
