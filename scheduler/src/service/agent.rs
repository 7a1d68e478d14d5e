//! `berth.v1.Agent`: the node agents' protocol.

use super::Shared;
use crate::auth::{Authenticator, bearer, caller};
use crate::error::Error;
use berth_i18n::Lang;
use berth_i18n::text;
use berth_proto::v1;
use futures::Stream;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

type Reply<T> = Result<Response<T>, Status>;

/// The agent protocol.
pub struct AgentService {
    /// The engine.
    pub engine: Shared,
    /// Checks the credential of every message of a heartbeat stream.
    pub auth: Authenticator,
    /// Cancelled when the server stops: heartbeat streams end then, as they would
    /// otherwise hold the server's graceful shutdown open.
    pub stopping: CancellationToken,
}

/// The replies of a heartbeat stream.
type HeartbeatStream = Pin<Box<dyn Stream<Item = Result<v1::HeartbeatResponse, Status>> + Send>>;

#[tonic::async_trait]
impl v1::agent_server::Agent for AgentService {
    async fn join(&self, req: Request<v1::JoinRequest>) -> Reply<v1::JoinResponse> {
        // A node joins with a join token; re-joining may present its current credential.
        let presented = req.extensions().get::<crate::auth::Caller>().cloned();
        Ok(Response::new(
            self.engine.join(req.get_ref(), presented.as_ref()).await?,
        ))
    }

    async fn heartbeat(&self, req: Request<v1::HeartbeatRequest>) -> Reply<v1::HeartbeatResponse> {
        let c = caller(&req)?;
        let reply = self.engine.heartbeat(&c, req.into_inner()).await?;
        Ok(Response::new(reply.response))
    }

    type HeartbeatsStream = HeartbeatStream;

    async fn heartbeats(
        &self,
        req: Request<Streaming<v1::HeartbeatRequest>>,
    ) -> Reply<Self::HeartbeatsStream> {
        // The opening is checked like any call (the interceptor did); each request is
        // checked again below, the node among the rest.
        caller(&req)?;
        let token = match req.metadata().get(berth_proto::AUTHORIZATION) {
            Some(value) => bearer(value)?.to_owned(),
            None => return Err(Error::Unauthenticated(text!(MissingToken)).into()),
        };
        let beats = Beats {
            _permit: req.extensions().get::<crate::overload::Permit>().cloned(),
            engine: self.engine.clone(),
            auth: self.auth.clone(),
            token,
            lang: crate::lang::current(),
            stopping: self.stopping.clone(),
            inbound: req.into_inner(),
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            Some(beats),
            |beats| async move {
                let mut beats = beats?;
                // Errors are worded in the language the stream was opened in.
                match crate::lang::scoped(beats.lang, beats.next()).await? {
                    Ok(reply) => Some((Ok(reply), Some(beats))),
                    // An error ends the stream: the agent goes on with calls.
                    Err(status) => Some((Err(status), None)),
                }
            },
        ))))
    }

    async fn report_job(&self, req: Request<v1::ObservedJob>) -> Reply<v1::ReportJobResponse> {
        let c = caller(&req)?;
        self.engine.report_job(&c, req.get_ref()).await?;
        Ok(Response::new(v1::ReportJobResponse {}))
    }

    async fn push_logs(&self, req: Request<v1::PushLogsRequest>) -> Reply<v1::PushLogsResponse> {
        let c = caller(&req)?;
        let stored_seq = self.engine.push_logs(&c, req.into_inner()).await?;
        Ok(Response::new(v1::PushLogsResponse { stored_seq }))
    }
}

/// One agent's heartbeat stream: its requests, answered one at a time.
struct Beats {
    engine: Shared,
    auth: Authenticator,
    /// The credential the stream was opened with, checked again for every request.
    token: String,
    /// The language the stream was opened in.
    lang: Lang,
    stopping: CancellationToken,
    inbound: Streaming<v1::HeartbeatRequest>,
    /// The stream's place among the heartbeats in flight, held until it ends.
    _permit: Option<crate::overload::Permit>,
}

impl Beats {
    /// The reply to the next request; `None` once the agent closed its side.
    async fn next(&mut self) -> Option<Result<v1::HeartbeatResponse, Status>> {
        let next = tokio::select! {
            next = self.inbound.message() => next,
            () = self.stopping.cancelled() => {
                return Some(Err(Error::Unavailable(text!(Stopping)).into()));
            }
        };
        let req = match next {
            Ok(Some(req)) => req,
            Ok(None) => return None,
            Err(status) => return Some(Err(status)),
        };
        Some(self.answer(req).await)
    }

    async fn answer(&self, req: v1::HeartbeatRequest) -> Result<v1::HeartbeatResponse, Status> {
        // Revoked, expired or over its rate since the stream opened: refused as a call is.
        let (c, _charge) = self.auth.admit(&self.token)?;
        Ok(self.engine.heartbeat(&c, req).await?.response)
    }
}
