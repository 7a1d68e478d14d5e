//! What the scheduler holds in memory: the device calendar, the accounts and the live
//! objects.
//!
//! The state is a pure function of the mutations applied to it ([`State::apply`]): the
//! database is the record, and memory is rebuilt from it at start ([`State::from_snapshot`]).
//! The engine keeps two copies: the *live* state that requests decide on (the committed
//! state plus the batches still being written) and the *committed* state that readers see;
//! the planner's thread keeps a third, a replica of the committed state that the pass plans
//! from. All are driven by the same mutations, so they never disagree about what was
//! decided.

mod apply;
mod jobs;
mod load;

pub use jobs::Jobs;

use crate::core::{self, Accounts, Cluster, Period};
use crate::engine::SchedPolicy;
use crate::store::{
    BudgetRow, ClassRow, DeviceRow, DiscountRow, InvoiceRow, JobRow, JoinTokenRow, LedgerKind,
    LedgerRow, NodeRow, NodeState, OrgRow, PriceRow, ProjectRow, ReservationRow, SiteRow,
    SubscriptionRow, UsageRow, UserRow, WebhookRow,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Of one class: how many of its devices each node has, and how many nodes have each
/// count, so admission knows the largest node and how many nodes fit without a sweep of
/// every device.
#[derive(Debug, Default, Clone)]
struct NodeSizes {
    per_node: HashMap<String, u32>,
    /// Device count → nodes with exactly that many.
    by_size: BTreeMap<u32, u32>,
}

impl NodeSizes {
    /// Adds `delta` (±1) devices to `node`.
    fn add(&mut self, node: &str, delta: i32) {
        let old = self.per_node.get(node).copied().unwrap_or(0);
        let new = old.saturating_add_signed(delta);
        for (size, step) in [(old, -1), (new, 1)] {
            if size == 0 {
                continue;
            }
            let n = self.by_size.entry(size).or_default();
            *n = n.saturating_add_signed(step);
            if *n == 0 {
                self.by_size.remove(&size);
            }
        }
        if new == 0 {
            self.per_node.remove(node);
        } else {
            self.per_node.insert(node.to_owned(), new);
        }
    }
}

/// A node as the scheduler records it.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// Durable fields.
    pub row: NodeRow,
    /// Drawn afresh (never 0, never twice in the process) whenever this copy of the state
    /// records the node or changes one of its devices: while it stays the same, the
    /// node's device rows are as they were (a heartbeat need not compare them again).
    pub devices_stamp: u64,
}

impl NodeEntry {
    /// A node just recorded.
    pub fn new(row: NodeRow) -> NodeEntry {
        NodeEntry {
            row,
            devices_stamp: device_stamp(),
        }
    }
}

/// A fresh device stamp (see [`NodeEntry::devices_stamp`]).
fn device_stamp() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A device as the scheduler records it (telemetry is kept apart: it is observed, not
/// decided).
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// Durable fields.
    pub row: DeviceRow,
}

/// A job that has not ended.
#[derive(Debug, Clone)]
pub struct LiveJob {
    /// Durable fields, shared by both copies of the state.
    pub row: Arc<JobRow>,
    /// For multi-node jobs: the nodes whose part has run or ended, and how (in the live
    /// state only: the agents report again after a restart until the job is final);
    /// none until a first report, so the many single-node jobs carry 8 bytes for it.
    pub ranks: Option<Box<Ranks>>,
}

impl LiveJob {
    /// A job from its row, with no rank reports yet.
    pub fn new(row: Arc<JobRow>) -> Self {
        LiveJob { row, ranks: None }
    }
}

/// The parts of a multi-node job, by node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranks {
    /// Nodes whose part has been reported running.
    pub running: BTreeSet<String>,
    /// Nodes whose part has ended.
    pub ended: BTreeMap<String, RankEnd>,
}

/// How one node's part of a multi-node job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankEnd {
    /// Its process exited with this status.
    Exited(i32),
    /// It never started, or the node lost it; why.
    Failed(String),
}

/// A live job in the order listings show (newest first: by creation time, then id, both
/// descending), the order of the database's `(created_ms, id)` index read backwards.
#[derive(Debug, Clone)]
struct Newest(Arc<JobRow>);

/// The sort key of [`Newest`], so a range can start at a `(created_ms, id)` cursor without
/// a row to compare with.
trait NewestKey {
    fn key(&self) -> (i64, &str);
}

impl NewestKey for Newest {
    fn key(&self) -> (i64, &str) {
        (self.0.created_ms, &self.0.id)
    }
}

impl NewestKey for (i64, &str) {
    fn key(&self) -> (i64, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn NewestKey + 'a> for Newest {
    fn borrow(&self) -> &(dyn NewestKey + 'a) {
        self
    }
}

impl PartialEq for dyn NewestKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn NewestKey + '_ {}

impl PartialOrd for dyn NewestKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn NewestKey + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key().cmp(&self.key())
    }
}

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Newest {}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key().cmp(&self.key())
    }
}

/// The in-memory state.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// Devices and their calendars.
    pub cluster: Cluster,
    /// Sites by name.
    pub sites: BTreeMap<String, SiteRow>,
    /// Device classes by name.
    pub classes: BTreeMap<String, ClassRow>,
    /// Orgs by name.
    pub orgs: BTreeMap<String, OrgRow>,
    /// Users by (org, name): names are unique within an organisation.
    pub users: HashMap<(String, String), UserRow>,
    /// Users' (org, name) by id.
    user_names: HashMap<String, (String, String)>,
    /// Join tokens not yet used, that had not expired when the newest was made.
    pub join_tokens: Vec<JoinTokenRow>,
    /// Dataset grants: (org, dataset) → read-write allowed.
    pub dataset_grants: BTreeMap<(String, String), bool>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Devices by UUID.
    pub devices: BTreeMap<String, DeviceEntry>,
    /// How many devices of each class each node has (admission asks at every submit).
    node_sizes: HashMap<String, NodeSizes>,
    /// Reservations not yet final, by id.
    pub reservations: HashMap<String, Arc<ReservationRow>>,
    /// Jobs not yet final, by id.
    pub jobs: Jobs,
    /// The same jobs newest first (by creation, then id), for listings.
    by_created: BTreeSet<Newest>,
    /// The newest `(created_ms, id)` of any ended job: read from the database at load,
    /// raised as jobs end here, never lowered (a pruned job leaves it safely high). A
    /// listing whose live page is full of newer jobs needs nothing from the database.
    newest_ended: Option<(i64, String)>,
    /// Pending jobs in bookings, oldest first (by creation, then id), with their booking:
    /// each pass looks at them, and at none of the queue's.
    pending_in_bookings: BTreeMap<(i64, String), String>,
    /// Live jobs that mount datasets (each pass checks their grants).
    with_datasets: BTreeSet<String>,
    /// Ids of the placed jobs with a part on each node.
    placed_on: HashMap<String, BTreeSet<String>>,
    /// Ids of every placed job.
    placed: BTreeSet<String>,
    /// Budgets by (org, class key), as stored.
    pub budgets: BTreeMap<(String, String), BudgetRow>,
    /// Budgets, balances and holdings, as the core checks them.
    pub accounts: Accounts,
    /// Every project, by id.
    pub projects: BTreeMap<String, ProjectRow>,
    /// The scheduling policy.
    pub sched: SchedPolicy,
    /// Decayed usage per org, for fair share.
    pub fair: FairUsage,
    /// Prices by class.
    pub prices: BTreeMap<String, PriceRow>,
    /// Discounts by org.
    pub discounts: BTreeMap<String, DiscountRow>,
    /// Every invoice by id (a few per org and month).
    pub invoices: BTreeMap<String, Arc<InvoiceRow>>,
    /// Users' notification addresses and the events they want, by user id.
    pub subscriptions: HashMap<String, SubscriptionRow>,
    /// Webhooks by id.
    pub webhooks: BTreeMap<String, WebhookRow>,
    /// Dedupe keys of deliveries staged in the last [`NOTIFIED_KEEP_MS`], with when:
    /// a sweep stages each occurrence once (after a restart the outbox's unique key
    /// drops a repeat).
    pub notified: HashMap<String, i64>,
    /// Mutations applied so far: a pass planned on a copy knows whether anything changed.
    pub version: u64,
}

/// How long [`State::notified`] remembers a dedupe key.
pub const NOTIFIED_KEEP_MS: i64 = 2 * 24 * 3_600_000;

/// Each org's usage decayed with the fair-share half-life: `(value, as of)`.
#[derive(Debug, Clone, Default)]
pub struct FairUsage {
    by_org: BTreeMap<String, (f64, i64)>,
}

impl FairUsage {
    /// Adds `amount` budget-ms used up to `at`.
    pub fn add(&mut self, org: &str, amount: f64, at: i64, half_life_ms: i64) {
        let e = self.by_org.entry(org.to_owned()).or_insert((0.0, at));
        if at >= e.1 {
            *e = (core::decay(e.0, at - e.1, half_life_ms) + amount, at);
        } else {
            e.0 += core::decay(amount, e.1 - at, half_life_ms);
        }
    }

    /// Every org's usage decayed to `now`.
    pub fn at(&self, now: i64, half_life_ms: i64) -> core::Usage {
        let mut u = core::Usage::new(now, half_life_ms);
        for (org, &(v, as_of)) in &self.by_org {
            u.add(org, core::decay(v, now - as_of, half_life_ms), now);
        }
        u
    }
}

/// The core's view of a stored budget.
pub fn core_budget(row: &BudgetRow) -> core::Budget {
    core::Budget {
        period: Period::parse(&row.period).unwrap_or_default(),
        allowance_ms: row.allowance_ms,
        max_devices: row.max_devices.map(|n| n.max(0) as u32),
        max_booking_ms: row.max_booking_ms,
        horizon_ms: row.horizon_ms,
        expires_ms: row.expires_ms,
    }
}

/// The core's view of a project's grant.
pub fn core_grant(row: &ProjectRow) -> core::Grant {
    core::Grant {
        org: row.org.clone(),
        start: row.start_ms,
        end: row.end_ms,
        open: row.state.grants(),
        device_ms: row
            .grants
            .iter()
            .map(|g| (g.class.clone(), g.device_ms))
            .collect(),
    }
}

/// Applies a ledger entry to the accounts: to its project's grant, or to its budget.
pub fn apply_ledger(accounts: &mut Accounts, e: &LedgerRow) {
    if let Some(project) = &e.project_id {
        let delta = match e.kind {
            LedgerKind::Charge => e.amount_ms,
            LedgerKind::Refund => -e.amount_ms,
            LedgerKind::TopUp => return,
        };
        accounts.add_grant_used(project, &e.device_class, delta);
        return;
    }
    let (org, key, p, n) = (&e.org, &e.budget_class, e.period_start_ms, e.amount_ms);
    match e.kind {
        LedgerKind::Charge => accounts.add_charged(org, key, p, n),
        LedgerKind::Refund => accounts.add_refunded(org, key, p, n),
        LedgerKind::TopUp => accounts.add_topped_up(org, key, p, n),
    }
}

/// The budget-ms a usage record is worth for fair share.
pub fn usage_amount(u: &UsageRow, rate: f64) -> f64 {
    u.device_ms as f64 * rate
}

/// True when new work may be placed on a node in this state.
pub fn node_schedulable(state: NodeState) -> bool {
    state == NodeState::Ready
}

impl State {
    /// Budget units per device-hour of a class (1 if unknown).
    pub fn class_rate(&self, class: &str) -> f64 {
        self.classes.get(class).map_or(1.0, |c| c.rate)
    }

    /// The devices a job holds in all (`count` on each of `nodes` nodes).
    pub fn job_devices(row: &JobRow) -> u32 {
        (row.count.max(0) * row.nodes.max(1)) as u32
    }

    /// The user with this id.
    pub fn user_by_id(&self, id: &str) -> Option<&UserRow> {
        self.user_names.get(id).and_then(|k| self.users.get(k))
    }

    /// The user `name` of `org`.
    pub fn user(&self, org: &str, name: &str) -> Option<&UserRow> {
        self.users.get(&(org.to_owned(), name.to_owned()))
    }

    /// Every user called `name`, in any organisation.
    pub fn users_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a UserRow> + 'a {
        self.users.values().filter(move |u| u.name == name)
    }

    /// Ids of reservations with jobs waiting to run in them.
    pub fn reservations_with_waiting_jobs(&self) -> std::collections::HashSet<&str> {
        self.pending_in_bookings
            .values()
            .map(String::as_str)
            .collect()
    }

    /// Ids of the pending jobs in bookings, oldest first.
    pub fn pending_in_bookings(&self) -> impl Iterator<Item = &str> {
        self.pending_in_bookings.keys().map(|(_, id)| id.as_str())
    }

    /// Live jobs that mount datasets.
    pub fn jobs_with_datasets(&self) -> impl Iterator<Item = &LiveJob> {
        self.with_datasets.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Jobs placed on a node (scheduled, starting or running), multi-node jobs included.
    pub fn placed_jobs_on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a LiveJob> + 'a {
        self.placed_on
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|id| self.jobs.get(id))
    }

    /// Placed jobs of every node.
    pub fn placed_jobs(&self) -> impl Iterator<Item = &LiveJob> {
        self.placed.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Whether a placed job has a part on `node`.
    pub fn job_on(&self, row: &JobRow, node: &str) -> bool {
        if row.nodes <= 1 {
            return row.node.as_deref() == Some(node);
        }
        row.devices
            .iter()
            .any(|d| self.devices.get(d).is_some_and(|e| e.row.node == node))
    }

    /// The nodes of a placed job in rank order (the order of its devices).
    pub fn job_nodes(&self, row: &JobRow) -> Vec<String> {
        if row.nodes <= 1 {
            return row.node.iter().cloned().collect();
        }
        let mut out: Vec<String> = Vec::new();
        for d in &row.devices {
            if let Some(e) = self.devices.get(d)
                && !out.contains(&e.row.node)
            {
                out.push(e.row.node.clone());
            }
        }
        out
    }

    /// Notes that a job created at `created_ms` has ended (see [`State::may_hold_ended`]).
    pub fn note_ended(&mut self, created_ms: i64, id: &str) {
        if self
            .newest_ended
            .as_ref()
            .is_none_or(|(t, i)| (created_ms, id) > (*t, i.as_str()))
        {
            self.newest_ended = Some((created_ms, id.to_owned()));
        }
    }

    /// Whether the database may hold an ended job that comes before `(created_ms, id)`
    /// in a newest-first listing (`None`: before the end of the listing).
    pub fn may_hold_ended(&self, before: Option<(i64, &str)>) -> bool {
        match (&self.newest_ended, before) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((t, i)), Some(key)) => (*t, i.as_str()) > key,
        }
    }

    /// Live jobs newest first (by creation time, then id), starting after `after` (a
    /// `(created_ms, id)` from a previous page), without the database.
    pub fn live_jobs_newest(
        &self,
        after: Option<(i64, &str)>,
    ) -> impl Iterator<Item = &Arc<JobRow>> + '_ {
        use std::ops::Bound;
        let start = match &after {
            Some(key) => Bound::Excluded(key as &dyn NewestKey),
            None => Bound::Unbounded,
        };
        self.by_created
            .range::<dyn NewestKey, _>((start, Bound::Unbounded))
            .map(|n| &n.0)
    }

    /// The most devices of `class` any one node has.
    pub fn largest_node(&self, class: &str) -> u32 {
        self.node_sizes
            .get(class)
            .and_then(|s| s.by_size.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// How many nodes have at least `count` devices of `class`.
    pub fn nodes_with_at_least(&self, class: &str, count: u32) -> u32 {
        self.node_sizes
            .get(class)
            .map_or(0, |s| s.by_size.range(count..).map(|(_, n)| n).sum())
    }

    /// Devices used by placed jobs right now.
    pub fn busy_devices(&self) -> std::collections::HashSet<&str> {
        self.placed_jobs()
            .flat_map(|j| j.row.devices.iter().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Health, Mutation};

    fn device(uuid: &str, node: &str, class: &str) -> Mutation {
        Mutation::UpsertDevice(DeviceRow {
            uuid: uuid.into(),
            node: node.into(),
            class: class.into(),
            vendor: "sim".into(),
            model: "m".into(),
            memory_bytes: 0,
            pci_bus_id: String::new(),
            index: 0,
            health: Health::Healthy,
            health_reason: String::new(),
            updated_ms: 0,
        })
    }

    #[test]
    fn node_sizes_follow_devices_as_they_come_move_and_change_class() {
        let mut s = State::default();
        for (uuid, node) in [
            ("a", "n1"),
            ("b", "n1"),
            ("c", "n1"),
            ("d", "n2"),
            ("e", "n3"),
        ] {
            s.apply(&device(uuid, node, "gpu"));
        }
        assert_eq!(s.largest_node("gpu"), 3);
        assert_eq!(
            [1, 2, 3, 4].map(|k| s.nodes_with_at_least("gpu", k)),
            [3, 1, 1, 0]
        );
        // The same report again changes nothing.
        s.apply(&device("a", "n1", "gpu"));
        assert_eq!(s.nodes_with_at_least("gpu", 3), 1);
        // A device moves to n2, another becomes an NPU.
        s.apply(&device("a", "n2", "gpu"));
        s.apply(&device("b", "n1", "npu"));
        assert_eq!(s.largest_node("gpu"), 2);
        assert_eq!(
            [1, 2, 3].map(|k| s.nodes_with_at_least("gpu", k)),
            [3, 1, 0]
        );
        assert_eq!(
            (s.largest_node("npu"), s.nodes_with_at_least("npu", 1)),
            (1, 1)
        );
        assert_eq!(
            (s.largest_node("tpu"), s.nodes_with_at_least("tpu", 1)),
            (0, 0)
        );
    }
}
