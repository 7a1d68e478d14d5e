//! Only the leader decides. A standby relays each call of the Berth API to the leader it
//! knows, so a client that reaches any scheduler (e.g. through a Kubernetes Service in
//! front of all of them) is answered by the leader; the relayed call carries
//! `berth-forwarded` and is never relayed twice. When no leader is known, or the leader
//! cannot be reached, the call is answered `UNAVAILABLE` at once, with the leader's
//! address in the message and in the `berth-leader` metadata, so clients that know
//! several schedulers go to the leader themselves. Health, reflection and `GetStatus` are
//! answered by every scheduler.
//!
//! Agent calls are not relayed when agents must present client certificates: a relayed
//! call would reach the leader without the agent's certificate. They are answered
//! `UNAVAILABLE` with `berth-leader`, and the agent connects to the leader itself.

use crate::engine::Engine;
use berth_proto::tls::ClientTls;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codegen::http;
use tonic::transport::{Channel, Endpoint};

/// Calls every scheduler answers, leader or not.
const ALWAYS: &[&str] = &["/berth.v1.Admin/GetStatus"];

/// Marks a call a standby relayed.
pub const FORWARDED: &str = "berth-forwarded";

/// The Agent service's path prefix.
const AGENT: &str = "/berth.v1.Agent/";

/// Connections to leaders, by address (the leader changes rarely).
#[derive(Default)]
struct Relays {
    channels: Mutex<HashMap<String, Channel>>,
}

/// The gate, in front of every service.
#[derive(Clone)]
pub struct LeaderGateLayer {
    engine: Arc<Engine>,
    tls: ClientTls,
    relays: Arc<Relays>,
    relay_agents: bool,
}

impl LeaderGateLayer {
    /// A gate for `engine`'s scheduler; `tls` verifies an `https://` leader. With
    /// `agent_client_certificates`, agent calls are sent to the leader, not relayed.
    pub fn new(engine: Arc<Engine>, tls: ClientTls, agent_client_certificates: bool) -> Self {
        LeaderGateLayer {
            engine,
            tls,
            relays: Arc::default(),
            relay_agents: !agent_client_certificates,
        }
    }
}

impl<S> tower::Layer<S> for LeaderGateLayer {
    type Service = LeaderGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LeaderGate {
            inner,
            gate: self.clone(),
        }
    }
}

/// Lets calls through while this scheduler leads; relays or refuses them otherwise.
#[derive(Clone)]
pub struct LeaderGate<S> {
    inner: S,
    gate: LeaderGateLayer,
}

impl LeaderGateLayer {
    /// A (lazily connected) channel to the leader at `address`, or why there is none
    /// (logged: a relay that cannot be set up fails every call until it is fixed).
    fn relay(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self
            .relays
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| format!("the leader's address {address:?} is not a URL: {e}"))
            .and_then(|e| self.tls.apply(e).map_err(|e| e.to_string()));
        let endpoint = match endpoint {
            Ok(e) => e.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true),
            Err(why) => {
                tracing::warn!(leader = %address, %why, "cannot relay calls to the leader");
                return Err(format!("cannot relay to it: {why}"));
            }
        };
        let channel = endpoint.connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The answer of a standby that cannot relay.
    fn refusal<RB: From<tonic::body::Body>>(&self, why: Option<String>) -> http::Response<RB> {
        let leadership = self.engine.leadership();
        let lang = crate::lang::current();
        let message = match why {
            Some(w) => format!("{}; {w}", leadership.standby_message().render(lang)),
            None => leadership.standby_message().render(lang),
        };
        let mut status = tonic::Status::unavailable(message);
        if let Some(addr) = leadership.leader_address()
            && let Ok(v) = addr.parse()
        {
            status.metadata_mut().insert("berth-leader", v);
        }
        let (parts, body) = status.into_http::<tonic::body::Body>().into_parts();
        http::Response::from_parts(parts, RB::from(body))
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for LeaderGate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
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
        if !gated || self.gate.engine.leads() {
            return Box::pin(self.inner.call(req));
        }
        let gate = self.gate.clone();
        let leader = gate.engine.leadership().leader_address();
        let relayable = gate.relay_agents || !path.starts_with(AGENT);
        let relay = match (&leader, req.headers().contains_key(FORWARDED)) {
            (Some(addr), false) if relayable => gate.relay(addr).map_err(Some),
            _ => Err(None),
        };
        let mut channel = match relay {
            Ok(c) => c,
            Err(why) => {
                let answer = gate.refusal(why);
                return Box::pin(async move { Ok(answer) });
            }
        };
        let (mut parts, body) = req.into_parts();
        parts
            .headers
            .insert(FORWARDED, http::HeaderValue::from_static("1"));
        let req = http::Request::from_parts(parts, tonic::body::Body::new(body));
        Box::pin(async move {
            let relayed = match std::future::poll_fn(|cx| channel.poll_ready(cx)).await {
                Ok(()) => channel.call(req).await,
                Err(e) => Err(e),
            };
            match relayed {
                Ok(resp) => Ok(resp.map(RB::from)),
                Err(e) => Ok(gate.refusal(Some(format!("relaying to it failed: {e}")))),
            }
        })
    }
}
