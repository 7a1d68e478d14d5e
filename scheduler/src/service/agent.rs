//! `berth.v1.Agent`: the node agents' protocol.

use super::Shared;
use crate::auth::caller;
use berth_proto::v1;
use tonic::{Request, Response, Status};

type Reply<T> = Result<Response<T>, Status>;

/// The agent protocol.
pub struct AgentService(pub Shared);

#[tonic::async_trait]
impl v1::agent_server::Agent for AgentService {
    async fn join(&self, req: Request<v1::JoinRequest>) -> Reply<v1::JoinResponse> {
        // A node joins with a join token; re-joining may present its current credential.
        let presented = req.extensions().get::<crate::auth::Caller>().cloned();
        Ok(Response::new(
            self.0.join(req.get_ref(), presented.as_ref()).await?,
        ))
    }

    async fn heartbeat(&self, req: Request<v1::HeartbeatRequest>) -> Reply<v1::HeartbeatResponse> {
        let c = caller(&req)?;
        let reply = self.0.heartbeat(&c, req.into_inner()).await?;
        Ok(Response::new(reply.response))
    }

    async fn report_job(&self, req: Request<v1::ObservedJob>) -> Reply<v1::ReportJobResponse> {
        let c = caller(&req)?;
        self.0.report_job(&c, req.get_ref()).await?;
        Ok(Response::new(v1::ReportJobResponse {}))
    }

    async fn push_logs(&self, req: Request<v1::PushLogsRequest>) -> Reply<v1::PushLogsResponse> {
        let c = caller(&req)?;
        let stored_seq = self.0.push_logs(&c, req.into_inner()).await?;
        Ok(Response::new(v1::PushLogsResponse { stored_seq }))
    }
}
