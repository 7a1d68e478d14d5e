//! What the scheduler holds in memory: the device calendar and the live objects.
//!
//! The database is the record; this is a cache of everything not yet final, rebuilt
//! from a [`Snapshot`] at start. It is only changed after the matching batch has been
//! committed, under the scheduler's one state lock.

use crate::core::{self, Accounts, Cluster, Period};
use crate::engine::SchedPolicy;
use crate::store::{
    BudgetRow, ClassRow, DeviceRow, Health, JobRow, JobState, JoinTokenRow, LedgerKind, LedgerRow,
    NodeRow, NodeState, OrgRow, OwnerKind, ReservationRow, SiteRow, Snapshot, UsageRow, UserRow,
};
use berth_proto::v1;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;
use tokio::sync::watch;

/// A node and its agent session.
#[derive(Debug)]
pub struct NodeEntry {
    /// Durable fields.
    pub row: NodeRow,
    /// When its agent last called in (`None`: not since this scheduler started).
    pub last_seen: Option<Instant>,
    /// Publishes the generation of the node's desired work to waiting heartbeats.
    pub generation_tx: watch::Sender<i64>,
}

/// A device and its latest telemetry.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    /// Durable fields.
    pub row: DeviceRow,
    /// The latest sample, if any.
    pub telemetry: Option<v1::Telemetry>,
}

/// A job that has not ended.
#[derive(Debug, Clone)]
pub struct LiveJob {
    /// Durable fields.
    pub row: JobRow,
    /// Set when the scheduler asked the node to stop it: the final state and reason
    /// to record once the node confirms it stopped.
    pub stop: Option<(JobState, String)>,
    /// For pending jobs: when it is expected to start.
    pub estimated_start: Option<i64>,
    /// For multi-node jobs: the nodes whose part has ended, and how (in memory only: the
    /// agents report again after a scheduler restart until the job is final).
    pub ranks: Ranks,
}

/// The parts of a multi-node job, by node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranks {
    /// Nodes whose part has been reported running.
    pub running: std::collections::BTreeSet<String>,
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

/// The in-memory state.
#[derive(Debug, Default)]
pub struct State {
    /// Devices and their calendars.
    pub cluster: Cluster,
    /// Sites by name.
    pub sites: BTreeMap<String, SiteRow>,
    /// Device classes by name.
    pub classes: BTreeMap<String, ClassRow>,
    /// Orgs by name.
    pub orgs: BTreeMap<String, OrgRow>,
    /// Users by name.
    pub users: HashMap<String, UserRow>,
    /// Join tokens that have not expired.
    pub join_tokens: Vec<JoinTokenRow>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Devices by UUID.
    pub devices: BTreeMap<String, DeviceEntry>,
    /// Reservations not yet final, by id.
    pub reservations: HashMap<String, ReservationRow>,
    /// Jobs not yet final, by id.
    pub jobs: HashMap<String, LiveJob>,
    /// Budgets by (org, class key), as stored.
    pub budgets: BTreeMap<(String, String), BudgetRow>,
    /// Budgets, balances and holdings, as the core checks them.
    pub accounts: Accounts,
    /// The scheduling policy.
    pub sched: SchedPolicy,
    /// Decayed usage per org, for fair share.
    pub fair: FairUsage,
}

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

/// Applies a committed ledger entry to the accounts.
pub fn apply_ledger(accounts: &mut Accounts, e: &LedgerRow) {
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
    /// Rebuilds the state from a snapshot.
    pub fn from_snapshot(snap: Snapshot) -> Self {
        let mut s = State::default();
        let now = Instant::now();
        for row in snap.nodes {
            s.cluster
                .upsert_node(&row.name, &row.site, node_schedulable(row.state));
            let (generation_tx, _) = watch::channel(row.generation);
            // Give every agent a full lease to reconnect after a scheduler restart.
            s.nodes.insert(
                row.name.clone(),
                NodeEntry {
                    row,
                    last_seen: Some(now),
                    generation_tx,
                },
            );
        }
        for row in snap.devices {
            s.cluster.upsert_device(
                &row.uuid,
                &row.node,
                &row.class,
                row.health != Health::Failed,
            );
            s.devices.insert(
                row.uuid.clone(),
                DeviceEntry {
                    row,
                    telemetry: None,
                },
            );
        }
        let mut claims: BTreeMap<(String, i64, i64), Vec<String>> = BTreeMap::new();
        for c in snap.claims {
            claims
                .entry((c.owner_id, c.start_ms, c.end_ms))
                .or_default()
                .push(c.device_uuid);
        }
        for ((owner, start, end), devices) in claims {
            if let Err(e) = s.cluster.add_claim(&owner, &devices, start, end) {
                // The schema forbids overlaps, so this means the schema was bypassed.
                tracing::error!(%owner, error = %e, "stored claims overlap; keeping the first");
            }
        }
        s.sites = snap
            .sites
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        s.classes = snap
            .classes
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        s.orgs = snap.orgs.into_iter().map(|r| (r.name.clone(), r)).collect();
        s.users = snap
            .users
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        s.join_tokens = snap.join_tokens;
        s.reservations = snap
            .reservations
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        if let Some(p) = &snap.policy {
            match SchedPolicy::from_json(&p.json) {
                Ok(policy) => s.sched = policy,
                Err(e) => tracing::error!(error = %e, "keeping the default scheduling policy"),
            }
        }
        for b in snap.budgets {
            s.accounts.set_budget(&b.org, &b.class, core_budget(&b));
            s.budgets.insert((b.org.clone(), b.class.clone()), b);
        }
        for e in &snap.ledger {
            apply_ledger(&mut s.accounts, e);
        }
        let half_life = s.sched.fair_share_half_life_ms;
        for u in snap
            .recent_usage
            .iter()
            .filter(|u| u.kind == OwnerKind::Job)
        {
            let rate = s.class_rate(&u.class);
            s.fair
                .add(&u.org, usage_amount(u, rate), u.end_ms, half_life);
        }
        for r in &s.reservations {
            let r = r.1;
            s.accounts.hold(
                &r.org,
                &r.class,
                &r.id,
                r.start_ms,
                r.end_ms,
                r.count.max(0) as u32,
            );
        }
        s.jobs = snap
            .jobs
            .into_iter()
            .map(|row| {
                let stop = parse_stop_intent(&row);
                (
                    row.id.clone(),
                    LiveJob {
                        row,
                        stop,
                        estimated_start: None,
                        ranks: Default::default(),
                    },
                )
            })
            .collect();
        for j in s.jobs.values() {
            let r = &j.row;
            if r.state.is_placed() && r.reservation_id.is_none() && !r.preemptible {
                let end = r.deadline_ms.unwrap_or(r.created_ms);
                let start = end - r.max_runtime_ms;
                s.accounts
                    .hold(&r.org, &r.class, &r.id, start, end, Self::job_devices(r));
            }
        }
        s
    }

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
        self.users.values().find(|u| u.id == id)
    }

    /// Ids of reservations with jobs waiting to run in them.
    pub fn reservations_with_waiting_jobs(&self) -> std::collections::HashSet<&str> {
        self.jobs
            .values()
            .filter(|j| j.row.state == JobState::Pending)
            .filter_map(|j| j.row.reservation_id.as_deref())
            .collect()
    }

    /// Jobs placed on a node (scheduled, starting or running), multi-node jobs included.
    pub fn placed_jobs_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a LiveJob> + 'a {
        self.jobs
            .values()
            .filter(move |j| j.row.state.is_placed() && self.job_on(&j.row, node))
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
}

/// The reason prefix that marks a placed job the scheduler has asked to stop; it is
/// persisted so the intent survives a scheduler restart.
pub const STOP_PREFIX: &str = "stopping: ";

/// Encodes a stop intent into the persisted reason.
pub fn stop_reason(state: JobState, reason: &str) -> String {
    format!("{STOP_PREFIX}{}: {reason}", state.as_str())
}

fn parse_stop_intent(row: &JobRow) -> Option<(JobState, String)> {
    if !row.state.is_placed() {
        return None;
    }
    let rest = row.reason.strip_prefix(STOP_PREFIX)?;
    let (state, reason) = rest.split_once(": ")?;
    Some((JobState::parse(state)?, reason.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_intents_survive_the_reason_round_trip() {
        let row = JobRow {
            id: "j".into(),
            name: String::new(),
            org: "o".into(),
            user_id: "u".into(),
            user_name: "alice".into(),
            class: "c".into(),
            count: 1,
            image: "i".into(),
            command: vec![],
            env: Default::default(),
            datasets: vec![],
            network: "bridge".into(),
            max_runtime_ms: 1,
            reservation_id: None,
            state: JobState::Running,
            reason: stop_reason(JobState::Cancelled, "cancelled by alice"),
            node: None,
            devices: vec![],
            exit_code: None,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            deadline_ms: None,
            generation: 0,
            priority: 0,
            preemptible: false,
            nodes: 1,
            charge: Default::default(),
            requeued_from: None,
        };
        assert_eq!(
            parse_stop_intent(&row),
            Some((JobState::Cancelled, "cancelled by alice".into()))
        );
    }
}
