//! The Berth scheduler: the control plane of a shared accelerator centre.
//!
//! - [`core`]: the pure scheduling core (calendars, admission, placement); no I/O.
//! - [`store`]: durable state (sea-orm on SQLite or PostgreSQL).
//! - [`engine`]: the operations, over the in-memory [`state`] and the store.
//! - [`service`]: thin gRPC handlers; [`auth`]: tokens and callers; [`error`]: the one
//!   error enum mapped to `tonic::Status`.
//! - [`server`]: wiring and start-up; [`http`]: metrics and health; [`tls`]: TLS on
//!   the gRPC listener and agents' client certificates.

pub mod auth;
pub mod convert;
pub mod core;
pub mod engine;
pub mod error;
pub mod gate;
pub mod http;
pub mod lang;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod overload;
pub mod paging;
pub mod portal;
pub mod ratelimit;
pub mod rpc_metrics;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod tls;
