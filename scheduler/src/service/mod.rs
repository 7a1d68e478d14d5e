//! Thin gRPC handlers: authenticate, call the engine, convert the answer.

mod admin;
mod agent;
mod user;

pub use admin::AdminService;
pub use agent::AgentService;
pub use user::{CapacityService, IdentityService, JobsService, ReservationsService, UsageService};

use crate::engine::Engine;
use std::sync::Arc;

/// The engine, shared by every service.
pub type Shared = Arc<Engine>;
