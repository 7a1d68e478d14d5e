//! Load shedding: at most so many requests in flight, answered `RESOURCE_EXHAUSTED` at once
//! beyond that, never queued into a hang.
//!
//! Two pools, so one kind of traffic cannot starve the other: ordinary calls, and agents'
//! heartbeats (long-polls that sit for seconds by design). A request takes a permit of its
//! pool when it arrives and gives it back when its response is ready; a stream of
//! heartbeats keeps it until the stream ends ([`Permit`]). Log streams, which
//! last as long as a job, are capped where they are followed (`logs`).

use berth_i18n::api::Msg;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;

/// How many requests of each kind may be in flight.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Ordinary calls.
    pub calls: usize,
    /// Agents' heartbeat long-polls and heartbeat streams.
    pub heartbeats: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            calls: 2048,
            heartbeats: 20_000,
        }
    }
}

/// The permit of a request whose reply outlasts its response's headers (a stream of
/// heartbeats), in its extensions: the handler keeps it for as long as the reply goes
/// on, and it is given back with the request if the handler never runs.
#[derive(Clone)]
pub struct Permit {
    _held: Arc<OwnedSemaphorePermit>,
}

/// The pools.
#[derive(Clone)]
pub struct OverloadLayer {
    calls: Arc<Semaphore>,
    heartbeats: Arc<Semaphore>,
}

impl OverloadLayer {
    /// Pools of the given sizes.
    pub fn new(limits: Limits) -> Self {
        OverloadLayer {
            calls: Arc::new(Semaphore::new(limits.calls)),
            heartbeats: Arc::new(Semaphore::new(limits.heartbeats)),
        }
    }

    fn pool(&self, path: &str) -> (&Arc<Semaphore>, Msg, Held) {
        match path {
            "/berth.v1.Agent/Heartbeat" => (
                &self.heartbeats,
                Msg::AtLimitHeartbeats,
                Held::UntilResponse,
            ),
            "/berth.v1.Agent/Heartbeats" => {
                (&self.heartbeats, Msg::AtLimitHeartbeats, Held::ByHandler)
            }
            _ => (&self.calls, Msg::AtLimitRequests, Held::UntilResponse),
        }
    }
}

/// Who holds a request's permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The layer, until the response is ready.
    UntilResponse,
    /// The handler, which finds it in the request's extensions ([`Permit`]) and keeps it
    /// as long as its reply goes on.
    ByHandler,
}

impl<S> tower::Layer<S> for OverloadLayer {
    type Service = Overload<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Overload {
            inner,
            pools: self.clone(),
        }
    }
}

/// Refuses a request at once when its pool is empty.
#[derive(Clone)]
pub struct Overload<S> {
    inner: S,
    pools: OverloadLayer,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Overload<S>
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let (pool, what, held) = self.pools.pool(req.uri().path());
        let permit: Option<OwnedSemaphorePermit> = pool.clone().try_acquire_owned().ok();
        let Some(permit) = permit else {
            let mut status =
                tonic::Status::resource_exhausted(berth_i18n::t(crate::lang::current(), what));
            if let Ok(v) = "100".parse() {
                status.metadata_mut().insert("retry-after-ms", v);
            }
            let (parts, body) = status.into_http::<tonic::body::Body>().into_parts();
            return Box::pin(async move { Ok(http::Response::from_parts(parts, RB::from(body))) });
        };
        let permit = match held {
            Held::UntilResponse => Some(permit),
            Held::ByHandler => {
                req.extensions_mut().insert(Permit {
                    _held: Arc::new(permit),
                });
                None
            }
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            drop(permit);
            res
        })
    }
}
