//! The pure scheduling core: plain inputs in, a decision out. No clock, no I/O, no async.
//!
//! Time is `i64` milliseconds since the Unix epoch and every window is half-open, `[start, end)`.
//! A [`Cluster`] holds the inventory (sites, nodes, devices by class) and the claims that
//! reservations and jobs hold on devices; it answers which devices a request gets
//! ([`Cluster::find_devices`]), when a request could start ([`Cluster::earliest_start`]) and how much
//! of a class is free over time ([`Cluster::availability`]).
//!
//! Modules, one job each:
//! - `calendar`: one device's claims, a sorted set of non-overlapping intervals;
//! - `window_index`: one class's claims by time, to find the busy devices of a window fast;
//! - `chunked`: the sorted, chunked storage behind `window_index`;
//! - `owners`: interning of claim owners;
//! - `cluster`: inventory and claims;
//! - `admission`: device choice and packing policy;
//! - `availability`: capacity buckets and earliest start.

mod admission;
mod availability;
mod bitset;
mod calendar;
mod chunked;
mod cluster;
mod error;
mod owners;
mod window_index;

pub use admission::{Request, pick_within};
pub use availability::{MAX_BUCKETS, Slot};
pub use cluster::Cluster;
pub use error::{ClaimError, Refusal};
