//! The Berth API.
//!
//! [`v1`] holds the types and gRPC stubs generated from `proto/berth/v1/berth.proto`;
//! [`model`] holds the hand-written validation layer that turns wire values into
//! checked domain values, and reports a bad field as `INVALID_ARGUMENT` naming it.

pub mod model;
pub mod time;

/// Generated code for package `berth.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}

/// Encoded `FileDescriptorSet` of the Berth API, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berth_descriptor");

/// The metadata key carrying the bearer token.
pub const AUTHORIZATION: &str = "authorization";
