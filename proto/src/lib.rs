//! The Berth API.
//!
//! [`v1`] holds the types and gRPC stubs generated from `proto/berth/v1/berth.proto`;
//! [`model`] holds the hand-written validation layer that turns wire values into
//! checked domain values, and reports a bad field as `INVALID_ARGUMENT` naming it;
//! [`evidence`] holds the checked form of a job's evidence (utilisation, memory, energy).

pub mod evidence;
pub mod image;
pub mod inventory;
pub mod model;
pub mod time;
pub mod tls;

/// Generated code for package `berth.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}

/// Encoded `FileDescriptorSet` of the Berth API, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berth_descriptor");

/// The metadata key carrying the bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// Trailing metadata the scheduler sets on a refusal by policy (budget, grant, capacity,
/// concurrency cap), whatever its status code; its value is [`REFUSAL_POLICY`]. Clients
/// tell a policy refusal by this key, never by the message's words.
pub const REFUSAL: &str = "berth-refusal";

/// The value of [`REFUSAL`] for a refusal by policy.
pub const REFUSAL_POLICY: &str = "policy";
/// The metadata key carrying the language a client wants messages in (`en`, `ko`).
pub const ACCEPT_LANGUAGE: &str = "accept-language";

/// Log chunks of part (rank) `r` of a multi-node job carry seqs from `r * LOG_PART_SEQ_SPAN + 1`
/// on, so each part keeps its own increasing sequence; single-node jobs use part 0.
pub const LOG_PART_SEQ_SPAN: u64 = 1 << 40;
