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
//! - `availability`: capacity buckets and earliest start;
//! - `gang`: single- and multi-node placement of queued jobs, and their earliest start;
//! - `period`, `accounts`: budget periods; budgets, balances, caps and charges;
//! - `fairshare`: decayed usage per org;
//! - `queue`: the queue pass (fair share, backfill, preemption, reasons, estimates);
//! - `idle`: use it or lose it.

mod accounts;
mod admission;
mod availability;
mod bitset;
mod calendar;
mod chunked;
mod cluster;
mod error;
mod fairshare;
mod gang;
mod idle;
pub mod invoice;
mod owners;
mod period;
mod queue;
pub mod report;
mod window_index;

pub use accounts::{
    ANY, Accounts, Ask, Budget, ChargePlan, Grant, Holdings, LimitRefusal, Totals, hours, rated,
};
pub use admission::{Request, pick_within};
pub use availability::{MAX_BUCKETS, Slot};
pub use cluster::Cluster;
pub use error::{ClaimError, Refusal};
pub use fairshare::{Usage, decay, share};
pub use idle::{IdleAction, IdlePolicy, IdleState};
pub use period::{Period, month_bounds, utc_label};
pub use queue::{
    Backfill, Decision, Guest, IdleBooked, Placement, PlanInput, PlanPolicy, QueuedJob, Wait, plan,
};
