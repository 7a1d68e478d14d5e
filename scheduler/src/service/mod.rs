//! Thin gRPC handlers: authenticate, call the engine, convert the answer.

mod admin;
mod agent;
mod billing;
mod jobs_page;
mod jobs_route;
mod notify;
mod projects;
mod user;

pub use admin::AdminService;
pub use agent::AgentService;
pub use billing::BillingService;
pub use jobs_page::JobsPage;
pub use jobs_route::JobsRoutes;
pub use notify::NotificationsService;
pub use projects::ProjectsService;
pub use user::{CapacityService, IdentityService, JobsService, ReservationsService, UsageService};

use crate::auth::Charge;
use crate::engine::Engine;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The engine, shared by every service.
pub type Shared = Arc<Engine>;

/// A listing's answer, charged to the caller's rate limit by its size (see
/// [`crate::ratelimit::REPLY_BYTES_PER_CALL`]).
fn metered<T, R: prost::Message>(req: &Request<T>, reply: R) -> Result<Response<R>, Status> {
    if let Some(charge) = req.extensions().get::<Charge>() {
        charge.reply(reply.encoded_len());
    }
    Ok(Response::new(reply))
}
