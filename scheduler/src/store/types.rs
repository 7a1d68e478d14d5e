//! Plain rows the store reads and writes, and the mutations it applies atomically.
//!
//! These types are independent of sea-orm: the service layer builds them, the store
//! maps them to its entities. Every instant is milliseconds since the Unix epoch.

use berth_proto::v1;
use std::collections::BTreeMap;
use std::sync::Arc;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident => $proto:ty { $($(#[$vm:meta])* $var:ident = $s:literal => $p:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }
            /// Parses a stored name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)+ _ => None }
            }
            /// The wire value.
            pub fn to_proto(self) -> $proto {
                match self { $($name::$var => <$proto>::$p),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Lifecycle of a node as the scheduler sees it.
    NodeState => v1::NodeState {
        /// Accepting work.
        Ready = "ready" => Ready,
        /// No new work; running work continues.
        Draining = "draining" => Draining,
        /// Drained and empty.
        Drained = "drained" => Drained,
        /// The agent missed its lease; devices are held back until it reconciles.
        Unreachable = "unreachable" => Unreachable,
        /// Declared down by an admin.
        Down = "down" => Down,
    }
}

string_enum! {
    /// Health of one device.
    Health => v1::DeviceHealth {
        /// Fit for work.
        Healthy = "healthy" => Healthy,
        /// Working but flagged.
        Degraded = "degraded" => Degraded,
        /// Quarantined.
        Failed = "failed" => Failed,
    }
}

string_enum! {
    /// Lifecycle of a reservation.
    ReservationState => v1::ReservationState {
        /// Asked for, not yet admitted.
        Requested = "requested" => Requested,
        /// Admitted and pinned to devices; its window has not started.
        Confirmed = "confirmed" => Confirmed,
        /// Inside its window.
        Active = "active" => Active,
        /// Its window ended.
        Completed = "completed" => Completed,
        /// Cancelled by a user or an admin.
        Cancelled = "cancelled" => Cancelled,
        /// Ended early by the centre.
        Reclaimed = "reclaimed" => Reclaimed,
    }
}

impl ReservationState {
    /// True once the reservation can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Reclaimed)
    }
}

string_enum! {
    /// Lifecycle of a job.
    JobState => v1::JobState {
        /// Waiting for devices (the reason says why).
        Pending = "pending" => Pending,
        /// Placed on devices; sent to the node.
        Scheduled = "scheduled" => Scheduled,
        /// The node is starting it.
        Starting = "starting" => Starting,
        /// Running.
        Running = "running" => Running,
        /// Exited with status 0.
        Succeeded = "succeeded" => Succeeded,
        /// Exited non-zero or could not start.
        Failed = "failed" => Failed,
        /// Cancelled by a user or an admin.
        Cancelled = "cancelled" => Cancelled,
        /// Stopped to make room for its devices' owner.
        Preempted = "preempted" => Preempted,
        /// Ran past its maximum runtime or its reservation's end.
        TimedOut = "timed-out" => TimedOut,
        /// Its node or device was lost.
        Lost = "lost" => Lost,
    }
}

impl JobState {
    /// True once the job has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::Cancelled
                | Self::Preempted
                | Self::TimedOut
                | Self::Lost
        )
    }

    /// True while the job holds devices on a node.
    pub fn is_placed(self) -> bool {
        matches!(self, Self::Scheduled | Self::Starting | Self::Running)
    }
}

/// Why the scheduler asked a placed job's node to stop it: what it wants of the job, as
/// data. The final state it records once the node confirms follows from the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopCause {
    /// A user or an admin cancelled it.
    Cancelled,
    /// Its reservation was cancelled.
    ReservationCancelled,
    /// Its reservation was reclaimed for idleness.
    Reclaimed,
    /// Its reservation's window ended.
    ReservationEnded,
    /// It reached its deadline (max runtime).
    Deadline,
    /// A preemptible job made way for its devices' owner.
    Preempted,
    /// A device it holds failed.
    DeviceFault,
    /// One part of a multi-node job failed, so the others stop.
    PartFailed,
    /// A dataset it mounts is no longer granted to its org.
    GrantRevoked,
    /// Its project's period ended, or an admin closed it.
    ProjectEnded,
    /// An admin revoked its project.
    ProjectRevoked,
}

impl StopCause {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCause::Cancelled => "cancelled",
            StopCause::ReservationCancelled => "reservation-cancelled",
            StopCause::Reclaimed => "reclaimed",
            StopCause::ReservationEnded => "reservation-ended",
            StopCause::Deadline => "deadline",
            StopCause::Preempted => "preempted",
            StopCause::DeviceFault => "device-fault",
            StopCause::PartFailed => "part-failed",
            StopCause::GrantRevoked => "grant-revoked",
            StopCause::ProjectEnded => "project-ended",
            StopCause::ProjectRevoked => "project-revoked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            StopCause::Cancelled,
            StopCause::ReservationCancelled,
            StopCause::Reclaimed,
            StopCause::ReservationEnded,
            StopCause::Deadline,
            StopCause::Preempted,
            StopCause::DeviceFault,
            StopCause::PartFailed,
            StopCause::GrantRevoked,
            StopCause::ProjectEnded,
            StopCause::ProjectRevoked,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The state the job ends in once its node has stopped it.
    pub fn final_state(self) -> JobState {
        match self {
            StopCause::Cancelled
            | StopCause::ReservationCancelled
            | StopCause::Reclaimed
            | StopCause::ProjectRevoked => JobState::Cancelled,
            StopCause::ReservationEnded | StopCause::Deadline | StopCause::ProjectEnded => {
                JobState::TimedOut
            }
            StopCause::Preempted => JobState::Preempted,
            StopCause::DeviceFault | StopCause::PartFailed | StopCause::GrantRevoked => {
                JobState::Failed
            }
        }
    }
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scheduler's stop request for a placed job: the cause, and the words shown to people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// Why, as data.
    pub cause: StopCause,
    /// Why, in words (e.g. `cancelled by alice`).
    pub reason: String,
}

/// Whose claim on a device this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A reservation's window.
    Reservation,
    /// A queued job's window (start to start + max runtime).
    Job,
}

impl OwnerKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Reservation => "reservation",
            OwnerKind::Job => "job",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reservation" => Some(OwnerKind::Reservation),
            "job" => Some(OwnerKind::Job),
            _ => None,
        }
    }
}

/// A site (centre).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    pub name: String,
    pub description: String,
    pub created_ms: i64,
}

/// A device class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRow {
    pub name: String,
    pub description: String,
    pub vendor: String,
    pub created_ms: i64,
    /// Budget units one device-hour costs (1.0 by default).
    pub rate: f64,
}

/// An organisation (a company).
#[derive(Debug, Clone, PartialEq)]
pub struct OrgRow {
    pub name: String,
    pub description: String,
    pub created_ms: i64,
    /// Fair-share weight (1.0 by default).
    pub weight: f64,
    /// Whether work a project's grant cannot cover may go to the org's paid budget.
    pub overage: Overage,
}

string_enum! {
    /// What happens to work a project's grant cannot cover.
    #[derive(Default)]
    Overage => v1::Overage {
        /// Refused (the default).
        #[default]
        Deny = "deny" => Deny,
        /// Charged to the org's paid budget.
        Allow = "allow" => Allow,
    }
}

string_enum! {
    /// Lifecycle of a project.
    ProjectState => v1::ProjectState {
        /// Asked for by an org-admin.
        Requested = "requested" => Requested,
        /// Approved; its period has not started.
        Approved = "approved" => Approved,
        /// Inside its period.
        Active = "active" => Active,
        /// Ended by an admin.
        Closed = "closed" => Closed,
        /// Its period ended.
        Expired = "expired" => Expired,
        /// Taken back by an admin.
        Revoked = "revoked" => Revoked,
    }
}

impl ProjectState {
    /// True once the project can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Expired | Self::Revoked)
    }

    /// True when its grant may be drawn on (inside its period).
    pub fn grants(self) -> bool {
        matches!(self, Self::Approved | Self::Active)
    }
}

/// A project's grant for one class: device-milliseconds (not rated: a grant counts
/// device-hours of its class).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub class: String,
    pub device_ms: i64,
}

/// A project (과제): device-hours per class granted to an org for `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    pub id: String,
    pub org: String,
    pub title: String,
    pub programme: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// A user name of the org; empty when none was named.
    pub contact: String,
    pub state: ProjectState,
    /// Why it was revoked or closed.
    pub reason: String,
    /// When its members were told it ends within 7 days.
    pub expiry_warned_ms: Option<i64>,
    /// By class name.
    pub grants: Vec<GrantRow>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The budget class key that matches every class.
pub const ANY_CLASS: &str = "*";

/// An org's budget and limits for one class (or [`ANY_CLASS`]). Amounts are in budget
/// milliseconds: device-milliseconds times the class rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRow {
    pub org: String,
    /// A class name or [`ANY_CLASS`].
    pub class: String,
    /// `day`, `week` or `month`.
    pub period: String,
    /// Allowance per period; `None`: no hour limit.
    pub allowance_ms: Option<i64>,
    /// Cap on devices held at once; `None`: no cap.
    pub max_devices: Option<i32>,
    /// Longest booking or job runtime; `None`: no limit.
    pub max_booking_ms: Option<i64>,
    /// How far ahead a booking may start; `None`: no limit.
    pub horizon_ms: Option<i64>,
    /// After this the budget grants nothing; `None`: never.
    pub expires_ms: Option<i64>,
    pub updated_ms: i64,
}

/// What a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// Hours taken from the budget (a booking confirmed, a job placed).
    Charge,
    /// Hours given back (cancelled early, unused runtime, fault, idle reclaim).
    Refund,
    /// Hours added by an admin to one period.
    TopUp,
}

impl LedgerKind {
    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Charge => "charge",
            LedgerKind::Refund => "refund",
            LedgerKind::TopUp => "top-up",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "charge" => Some(LedgerKind::Charge),
            "refund" => Some(LedgerKind::Refund),
            "top-up" => Some(LedgerKind::TopUp),
            _ => None,
        }
    }
}

/// One charge, refund or top-up. `amount_ms` is always positive; the kind gives the sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub id: String,
    pub org: String,
    /// The budget's class key (a class or [`ANY_CLASS`]).
    pub budget_class: String,
    pub time_ms: i64,
    pub kind: LedgerKind,
    /// Budget milliseconds (device-ms x rate), > 0.
    pub amount_ms: i64,
    /// Start of the period the entry counts against.
    pub period_start_ms: i64,
    /// The reservation or job charged or refunded; `None` for top-ups.
    pub subject_kind: Option<OwnerKind>,
    pub subject_id: String,
    /// The device class used and the raw device-milliseconds.
    pub device_class: String,
    pub device_ms: i64,
    pub note: String,
    /// The project whose grant the entry draws on or gives back to; `None`: the budget.
    pub project_id: Option<String>,
}

/// The admin-tunable scheduling policy, stored as one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRow {
    /// The policy as JSON (the scheduler owns its shape).
    pub json: String,
    pub updated_ms: i64,
}

/// What a reservation or job was charged: the budget, the period and the net amount.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Charge {
    /// The budget's class key; empty when nothing was charged (no budget applies).
    pub budget_class: String,
    /// Start of the period charged.
    pub period_start_ms: i64,
    /// Net budget milliseconds charged (charges minus refunds); for a project, net
    /// device-milliseconds drawn on its grant.
    pub amount_ms: i64,
    /// The project whose grant paid; `None`: the org's budget (or nothing).
    pub project: Option<String>,
}

impl Charge {
    /// What `device_ms` of use is worth in this charge's units: budget milliseconds at
    /// the class `rate` for a budget, device-milliseconds for a project's grant.
    pub fn worth(&self, device_ms: i64, rate: f64) -> i64 {
        if self.project.is_some() {
            device_ms
        } else {
            crate::core::rated(device_ms, rate)
        }
    }
}

/// A user; `name` is unique across the centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub org: String,
    pub role: berth_proto::model::Role,
    pub created_ms: i64,
    /// The project charged when a booking or job names none.
    pub default_project: Option<String>,
}

/// An issued credential (user API token or node credential). Only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The token id (`jti` claim).
    pub id: String,
    /// Set for user tokens.
    pub user_id: Option<String>,
    /// Set for node credentials.
    pub node: Option<String>,
    /// Hex SHA-256 of the whole token.
    pub hash: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub revoked: bool,
}

/// A join token for agents; reusable until it expires. Only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRow {
    pub id: String,
    pub hash: String,
    pub created_by: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// Only this node may join with it; `None`: any node name.
    pub node: Option<String>,
    /// When it was last used.
    pub used_ms: Option<i64>,
    /// How many new nodes it may join (1 unless the admin asked for more).
    pub max_uses: i32,
    /// How many it has joined.
    pub uses: i32,
}

/// An organisation's grant of an admin-approved dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetGrantRow {
    pub org: String,
    /// The dataset's name, as nodes map it to a path (`--dataset NAME=PATH`).
    pub name: String,
    /// The org's jobs may mount it read-write (where the node allows it).
    pub read_write: bool,
    pub created_ms: i64,
}

/// A node (accelerator server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub name: String,
    pub site: String,
    pub state: NodeState,
    pub hostname: String,
    pub agent_version: String,
    pub runtime: String,
    pub last_heartbeat_ms: Option<i64>,
    /// Generation of the node's desired work; bumped on every change.
    pub generation: i64,
    pub created_ms: i64,
    /// Until then the node may join again under its name with a join token (an admin's
    /// `berth admin nodes rejoin`); otherwise re-joining needs its current credential.
    pub rejoin_until_ms: Option<i64>,
}

/// A device, keyed by UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub uuid: String,
    pub node: String,
    pub class: String,
    pub vendor: String,
    pub model: String,
    pub memory_bytes: i64,
    pub pci_bus_id: String,
    pub index: i32,
    pub health: Health,
    pub health_reason: String,
    pub updated_ms: i64,
}

/// A reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    pub id: String,
    pub org: String,
    pub user_id: String,
    pub user_name: String,
    pub class: String,
    pub count: i32,
    pub site: Option<String>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub state: ReservationState,
    pub reason: String,
    /// Pinned device UUIDs.
    pub devices: Vec<String>,
    pub created_ms: i64,
    /// What it was charged.
    pub charge: Charge,
    /// The project it was booked or submitted under.
    pub project: Option<String>,
    /// Since when all its devices have been idle (use it or lose it).
    pub idle_since_ms: Option<i64>,
    /// When the idle warning was given.
    pub idle_warned_ms: Option<i64>,
}

/// A job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub name: String,
    pub org: String,
    pub user_id: String,
    pub user_name: String,
    pub class: String,
    pub count: i32,
    pub image: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Admin-approved datasets: (name, read-write).
    pub datasets: Vec<(String, bool)>,
    /// Network mode: `bridge` or `none`.
    pub network: String,
    pub max_runtime_ms: i64,
    pub reservation_id: Option<String>,
    pub state: JobState,
    pub reason: String,
    pub node: Option<String>,
    pub devices: Vec<String>,
    pub exit_code: Option<i32>,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// When the node must stop it (start + max runtime, or the reservation's end).
    pub deadline_ms: Option<i64>,
    /// Generation of the node's desired work when it was placed.
    pub generation: i64,
    /// Priority within the org's queue (higher first).
    pub priority: i32,
    /// May be preempted (and is then requeued).
    pub preemptible: bool,
    /// Number of nodes; `count` devices on each.
    pub nodes: i32,
    /// What it was charged.
    pub charge: Charge,
    /// The project it was booked or submitted under.
    pub project: Option<String>,
    /// What it did on its devices, once it ended with a report (boxed: most rows held in
    /// memory are pending jobs without one).
    pub evidence: Option<Box<Evidence>>,
    /// The job it continues after a preemption.
    pub requeued_from: Option<String>,
    /// Set once the scheduler has asked its node to stop it (placed jobs), and kept on the
    /// final row of a job that ended that way.
    pub stop: Option<Stop>,
}

/// One device held for a window by a reservation or a queued job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub device_uuid: String,
    pub owner_kind: OwnerKind,
    pub owner_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Device time used or booked, for accounting.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub org: String,
    pub user_id: String,
    /// `job` or `reservation`.
    pub kind: OwnerKind,
    pub subject_id: String,
    pub class: String,
    pub devices: i32,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Device-milliseconds (devices × duration).
    pub device_ms: i64,
    /// For a job: what it did on its devices, when its agents reported it.
    pub evidence: Option<Evidence>,
}

/// An audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub time_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// `ok` or the error.
    pub outcome: String,
}

/// One stored log chunk of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub seq: i64,
    /// 1 stdout, 2 stderr (the `LogChunk.Stream` values).
    pub stream: i32,
    pub data: Vec<u8>,
    pub time_ms: i64,
}

/// A signed-in web portal session. `id` is the SHA-256 of the cookie's secret: the secret
/// itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRow {
    pub id: String,
    pub user_id: String,
    /// The session's CSRF token, embedded in every form it is shown.
    pub csrf: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A single-use sign-in link (`berth login --web`). `id` is the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebLoginRow {
    pub id: String,
    pub user_id: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// A user's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSettingsRow {
    pub user_id: String,
    /// Language code (`en`, `ko`); empty: follow the browser or the locale.
    pub lang: String,
    pub updated_ms: i64,
}

/// A class's price in whole won per device-hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    pub class: String,
    pub krw_per_hour: i64,
    /// For booked hours no job used; `None`: `krw_per_hour`.
    pub idle_krw_per_hour: Option<i64>,
    pub updated_ms: i64,
}

/// An org's discount on its invoices, with the reason (shown on each invoice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountRow {
    pub org: String,
    /// 0..=100.
    pub percent: i32,
    pub reason: String,
    pub updated_ms: i64,
}

/// Where an invoice is: draft -> issued -> paid, or void.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceState {
    /// Computed, not yet sent; may be replaced by a new generation.
    Draft,
    /// Sent to the org; never edited again.
    Issued,
    /// Paid.
    Paid,
    /// Withdrawn; a correction is a new invoice.
    Void,
}

impl InvoiceState {
    /// The name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceState::Draft => "draft",
            InvoiceState::Issued => "issued",
            InvoiceState::Paid => "paid",
            InvoiceState::Void => "void",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(InvoiceState::Draft),
            "issued" => Some(InvoiceState::Issued),
            "paid" => Some(InvoiceState::Paid),
            "void" => Some(InvoiceState::Void),
            _ => None,
        }
    }
}

/// A user's email address and the events they want mailed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub user_id: String,
    pub org: String,
    pub email: String,
    /// Event names ([`crate::engine::notify::EventKind`]), in order.
    pub events: Vec<String>,
    pub updated_ms: i64,
}

/// An org's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub org: String,
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Event names it wants; empty: every event.
    pub events: Vec<String>,
    pub created_ms: i64,
}

/// How a notification is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A mail to a user's address.
    Email,
    /// A JSON POST to an org's webhook.
    Webhook,
}

impl Channel {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    /// The channel of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            _ => None,
        }
    }
}

/// A monthly invoice of one org, in whole won. Its lines and amounts never change once
/// issued; only its state (and the time of each step) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    pub id: String,
    pub org: String,
    /// `YYYY-MM`.
    pub month: String,
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub state: InvoiceState,
    pub lines: Vec<crate::core::invoice::InvoiceLine>,
    pub subtotal_krw: i64,
    pub vat_krw: i64,
    pub total_krw: i64,
    /// The org's discount when it was generated.
    pub discount_percent: i32,
    pub discount_reason: String,
    pub created_ms: i64,
    pub issued_ms: Option<i64>,
    pub paid_ms: Option<i64>,
    pub voided_ms: Option<i64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not delivered yet; tried again at `next_ms`.
    Pending,
    /// Delivered.
    Sent,
    /// Given up on, with the last error.
    Failed,
}

impl DeliveryState {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "sent" => Some(DeliveryState::Sent),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One delivery of one event to one recipient: a row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    pub id: String,
    /// Makes a delivery unique per occurrence and recipient (sweeps stage it again after
    /// a restart); `None` for events that happen once by nature.
    pub dedupe: Option<String>,
    /// The event's name (`job-end`).
    pub event: String,
    pub org: String,
    /// The kind of object (`job`, `reservation`, `budget`, `project`, `invoice`) and its id.
    pub object_kind: String,
    pub object_id: String,
    pub channel: Channel,
    /// The address mailed, or the webhook's URL.
    pub target: String,
    /// The user mailed (empty for webhooks).
    pub user_id: String,
    /// The webhook posted to (empty for mail).
    pub webhook_id: String,
    /// The event as JSON, rendered into text when it is sent.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i32,
    /// When it is due (pending only).
    pub next_ms: i64,
    pub last_error: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub sent_ms: Option<i64>,
}

/// What an attempt to deliver came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    pub id: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_ms: i64,
    pub last_error: String,
    pub updated_ms: i64,
    pub sent_ms: Option<i64>,
}

/// Which deliveries a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    /// Only this org's.
    pub org: Option<String>,
    /// Only mail to this user, or (with `webhooks`) the org's webhook posts.
    pub user_id: Option<String>,
    /// With `user_id`: the org's webhook posts too.
    pub webhooks: bool,
}

/// One change to durable state. A batch of them is applied in one transaction:
/// all or nothing.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // built and consumed once per write; boxing buys nothing
pub enum Mutation {
    InsertSite(SiteRow),
    InsertClass(ClassRow),
    InsertOrg(OrgRow),
    InsertUser(UserRow),
    InsertToken(TokenRow),
    RevokeToken {
        id: String,
    },
    InsertJoinToken(JoinTokenRow),
    /// A join token was used (it joins once).
    UseJoinToken {
        id: String,
        used_ms: i64,
    },
    /// Revokes every credential of a node (it joined again).
    RevokeNodeCredentials {
        node: String,
    },
    /// Grants (or changes) an org's use of a dataset.
    UpsertDatasetGrant(DatasetGrantRow),
    /// Takes a dataset grant back.
    DeleteDatasetGrant {
        org: String,
        name: String,
    },
    UpsertNode(NodeRow),
    UpsertDevice(DeviceRow),
    UpsertReservation(Arc<ReservationRow>),
    UpsertJob(Arc<JobRow>),
    /// Fails the whole batch with [`super::StoreError::Conflict`] if any claim overlaps
    /// an existing claim on the same device.
    InsertClaims(Vec<ClaimRow>),
    /// Removes every claim of the owner.
    DeleteClaims {
        owner_id: String,
    },
    /// Ends the owner's claims at `end_ms`: claims starting at or after it are removed,
    /// longer ones are shortened.
    TruncateClaims {
        owner_id: String,
        end_ms: i64,
    },
    InsertUsage(UsageRow),
    Audit(AuditRow),
    /// Updates an org's description and weight.
    UpdateOrg(OrgRow),
    /// Updates a class's description, vendor and rate.
    UpdateClass(ClassRow),
    /// Inserts or replaces the budget of (org, class).
    UpsertBudget(BudgetRow),
    DeleteBudget {
        org: String,
        class: String,
    },
    InsertLedger(Vec<LedgerRow>),
    /// Inserts or replaces a project and its grants.
    UpsertProject(ProjectRow),
    /// Sets (or clears) a user's default project.
    SetDefaultProject {
        user_id: String,
        project: Option<String>,
    },
    /// Replaces the scheduling policy.
    SetPolicy(PolicyRow),
    /// Starts a web session.
    InsertWebSession(WebSessionRow),
    /// Ends a web session (logged out).
    DeleteWebSession {
        id: String,
    },
    /// Issues a single-use sign-in link.
    InsertWebLogin(WebLoginRow),
    /// Uses up a sign-in link.
    DeleteWebLogin {
        id: String,
    },
    /// Ends every web session and sign-in link of a user (one of their tokens was
    /// revoked, and a session may have been started with it).
    EndWebSessionsOf {
        user_id: String,
    },
    /// Forgets web sessions and sign-in links that expired before `before_ms`.
    PruneWeb {
        before_ms: i64,
    },
    /// Inserts or replaces a user's settings.
    SetUserSettings(UserSettingsRow),
    /// Inserts or replaces a class's price.
    UpsertPrice(PriceRow),
    /// Inserts or replaces an org's discount.
    UpsertDiscount(DiscountRow),
    /// Inserts an invoice or changes its state.
    UpsertInvoice(Arc<InvoiceRow>),
    /// Removes a draft invoice (replaced by a new generation).
    DeleteInvoice {
        id: String,
    },
    /// Sets (or, with no events, keeps) a user's notification address and events.
    SetSubscription(SubscriptionRow),
    /// Forgets a user's notification address and events.
    DeleteSubscription {
        user_id: String,
    },
    /// Adds an org's webhook.
    InsertWebhook(WebhookRow),
    /// Removes a webhook.
    DeleteWebhook {
        id: String,
    },
    /// Adds deliveries to the outbox; one whose `dedupe` key is taken is skipped.
    InsertNotifications(Vec<NotificationRow>),
    /// Records an attempt to deliver.
    UpdateNotification(DeliveryOutcome),
}

/// Everything the scheduler needs in memory at start.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub sites: Vec<SiteRow>,
    pub classes: Vec<ClassRow>,
    pub orgs: Vec<OrgRow>,
    pub users: Vec<UserRow>,
    /// Tokens not revoked and not expired.
    pub tokens: Vec<TokenRow>,
    pub join_tokens: Vec<JoinTokenRow>,
    pub nodes: Vec<NodeRow>,
    pub devices: Vec<DeviceRow>,
    /// Reservations not in a final state.
    pub reservations: Vec<ReservationRow>,
    /// Jobs not in a final state.
    pub jobs: Vec<JobRow>,
    /// Claims ending after the load time.
    pub claims: Vec<ClaimRow>,
    /// Every budget.
    pub budgets: Vec<BudgetRow>,
    /// Ledger entries of periods starting at or after `Store::load`'s `ledger_since_ms`.
    pub ledger: Vec<LedgerRow>,
    /// Usage records ending at or after `Store::load`'s `usage_since_ms` (for fair share).
    pub recent_usage: Vec<UsageRow>,
    /// The stored scheduling policy, if one was ever set.
    pub policy: Option<PolicyRow>,
    /// Every dataset grant.
    pub dataset_grants: Vec<DatasetGrantRow>,
    /// Every project.
    pub projects: Vec<ProjectRow>,
    /// Every class's price.
    pub prices: Vec<PriceRow>,
    /// Every org's discount.
    pub discounts: Vec<DiscountRow>,
    /// Every invoice (one per org and month, plus voided ones: few rows).
    pub invoices: Vec<InvoiceRow>,
    /// Every user's notification address and events.
    pub subscriptions: Vec<SubscriptionRow>,
    /// Every webhook.
    pub webhooks: Vec<WebhookRow>,
}

/// What a job did on its devices (checked from its agents' reports).
pub use berth_proto::evidence::Evidence;
