//! What the scheduler holds in memory: the device calendar and the live objects.
//!
//! The database is the record; this is a cache of everything not yet final, rebuilt
//! from a [`Snapshot`] at start. It is only changed after the matching batch has been
//! committed, under the scheduler's one state lock.

use crate::core::Cluster;
use crate::store::{
    ClassRow, DeviceRow, Health, JobRow, JobState, JoinTokenRow, NodeRow, NodeState, OrgRow,
    ReservationRow, SiteRow, Snapshot, UserRow,
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
                    },
                )
            })
            .collect();
        s
    }

    /// The user with this id.
    pub fn user_by_id(&self, id: &str) -> Option<&UserRow> {
        self.users.values().find(|u| u.id == id)
    }

    /// Jobs placed on a node (scheduled, starting or running).
    pub fn placed_jobs_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a LiveJob> + 'a {
        self.jobs
            .values()
            .filter(move |j| j.row.state.is_placed() && j.row.node.as_deref() == Some(node))
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
        };
        assert_eq!(
            parse_stop_intent(&row),
            Some((JobState::Cancelled, "cancelled by alice".into()))
        );
    }
}
