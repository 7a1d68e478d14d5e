//! Tests of the exposition: names, help text, label sets and values read from a state.

use super::*;
use crate::core::{self, Period};
use crate::state::{DeviceEntry, NodeEntry, State};
use crate::store::testing::job;
use crate::store::{
    Charge, ClassRow, DeviceRow, Health, NodeRow, NodeState, OwnerKind, ReservationRow,
    ReservationState,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOUR: i64 = 3_600_000;

/// The value of the sample `series` (`name{labels}` as the encoder writes it).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

fn node(name: &str, site: &str, state: NodeState) -> NodeEntry {
    NodeEntry::new(NodeRow {
        name: name.into(),
        site: site.into(),
        state,
        hostname: name.into(),
        agent_version: "test".into(),
        runtime: "process".into(),
        last_heartbeat_ms: None,
        generation: 0,
        created_ms: 0,
        rejoin_until_ms: None,
    })
}

fn device(uuid: &str, node: &str, class: &str, health: Health) -> DeviceEntry {
    DeviceEntry {
        row: DeviceRow {
            uuid: uuid.into(),
            node: node.into(),
            class: class.into(),
            vendor: "sim".into(),
            model: "sim".into(),
            memory_bytes: 0,
            pci_bus_id: String::new(),
            index: 0,
            health,
            health_reason: String::new(),
            updated_ms: 0,
        },
    }
}

fn reservation(id: &str, class: &str, start: i64, end: i64) -> ReservationRow {
    ReservationRow {
        id: id.into(),
        org: "acme".into(),
        user_id: "u".into(),
        user_name: "alice".into(),
        class: class.into(),
        count: 1,
        site: None,
        start_ms: start,
        end_ms: end,
        state: ReservationState::Confirmed,
        reason: String::new(),
        devices: vec![],
        created_ms: 0,
        charge: Charge::default(),
        idle_since_ms: None,
        idle_warned_ms: None,
        project: None,
    }
}

/// Nothing observed: no agent has called, no pass has run.
fn nothing_seen() -> Observations<'static> {
    Observations {
        last_seen: &|_| None,
        pending_kind: &|_| "other",
    }
}

/// When n1's agent last called: 5 s before the first use, fixed from then on.
static N1_SEEN: std::sync::LazyLock<Option<Instant>> =
    std::sync::LazyLock::new(|| Instant::now().checked_sub(Duration::from_secs(5)));

/// n1's agent called 5 s ago (n2's not since the start); j2 waits for devices and j3 for
/// its booking.
fn seen_n1() -> Observations<'static> {
    std::sync::LazyLock::force(&N1_SEEN);
    Observations {
        last_seen: &|n| (n == "n1").then(|| *N1_SEEN).flatten(),
        pending_kind: &|j| match j {
            "j2" => "capacity",
            "j3" => "reservation",
            _ => "other",
        },
    }
}

/// Two sites, a failed device, an unreachable node, a started idle booking holding one
/// device, a future booking, a running job, a queued job, a job waiting for its
/// booking, and a budget with charges, a refund and a top-up.
fn centre(now: i64) -> State {
    let mut s = State::default();
    for class in ["gpu", "npu"] {
        s.classes.insert(
            class.into(),
            ClassRow {
                name: class.into(),
                description: String::new(),
                vendor: "sim".into(),
                created_ms: 0,
                rate: 1.0,
            },
        );
    }
    for n in [
        node("n1", "busan", NodeState::Ready),
        node("n2", "daegu", NodeState::Unreachable),
    ] {
        s.apply(&Mutation::UpsertNode(n.row));
    }
    for d in [
        device("d1", "n1", "gpu", Health::Healthy),
        device("d2", "n1", "gpu", Health::Healthy),
        device("d3", "n1", "gpu", Health::Failed),
        device("d4", "n2", "gpu", Health::Healthy),
    ] {
        s.apply(&Mutation::UpsertDevice(d.row));
    }
    let mut started = reservation("r1", "gpu", now - HOUR, now + HOUR);
    started.state = ReservationState::Active;
    started.idle_since_ms = Some(now - 600_000);
    started.idle_warned_ms = Some(now - 60_000);
    s.cluster
        .add_claim("r1", &["d1".into()], started.start_ms, started.end_ms)
        .unwrap();
    s.apply(&Mutation::UpsertReservation(started.into()));
    s.apply(&Mutation::UpsertReservation(
        reservation("r2", "gpu", now + HOUR, now + 2 * HOUR).into(),
    ));
    let mut running = job("j1", "gpu", JobState::Running, now - 200_000);
    running.started_ms = Some(now - 100_000);
    running.count = 2;
    running.reservation_id = Some("r1".into());
    s.apply(&Mutation::UpsertJob(running.into()));
    let queued = job("j2", "gpu", JobState::Pending, now - 120_000);
    s.apply(&Mutation::UpsertJob(queued.into()));
    let mut later = job("j3", "gpu", JobState::Pending, now - 900_000);
    later.reservation_id = Some("r2".into());
    s.apply(&Mutation::UpsertJob(later.into()));
    let budget = core::Budget {
        period: Period::Month,
        allowance_ms: Some(10 * HOUR),
        max_devices: None,
        max_booking_ms: None,
        horizon_ms: None,
        expires_ms: None,
    };
    s.accounts.set_budget("acme", "gpu", budget);
    let (period, _) = Period::Month.bounds(now);
    s.accounts.add_charged("acme", "gpu", period, 10 * HOUR);
    s.accounts.add_refunded("acme", "gpu", period, HOUR);
    s.accounts.add_topped_up("acme", "gpu", period, 2 * HOUR);
    s
}

#[test]
fn grpc_codes_have_their_specification_names() {
    assert_eq!(grpc_code_name(tonic::Code::Ok), "OK");
    assert_eq!(
        grpc_code_name(tonic::Code::InvalidArgument),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        grpc_code_name(tonic::Code::Unauthenticated),
        "UNAUTHENTICATED"
    );
    assert_eq!(grpc_code_name(tonic::Code::DataLoss), "DATA_LOSS");
}

#[test]
fn event_metrics_are_exposed() {
    let m = Metrics::new().unwrap();
    m.preemption();
    m.reclaimed(5_400_000);
    m.ledger(LedgerKind::TopUp, 7_200_000);
    m.job_started("gpu", 90_000);
    m.rpc(
        &m.methods.label("/berth.v1.Jobs/SubmitJob"),
        tonic::Code::Ok,
        Duration::from_millis(3),
    );
    m.rpc(
        &m.methods.label("/made.up/Path"),
        tonic::Code::Unimplemented,
        Duration::from_millis(1),
    );
    m.observe_state(&State::default(), &nothing_seen());
    let text = m.render();
    for needle in [
        "berth_preemptions_total 1",
        "berth_reservations_reclaimed_total 1",
        "berth_reclaimed_device_hours_total 1.5",
        "berth_ledger_entries_total{kind=\"top-up\"} 1",
        "berth_ledger_entries_total{kind=\"charge\"} 0",
        "berth_ledger_hours_total{kind=\"top-up\"} 2",
        "berth_jobs_pending{reason=\"budget\"} 0",
        "berth_reservations_idle_warned 0",
        "berth_job_wait_seconds_bucket{class=\"gpu\",le=\"60\"} 0",
        "berth_job_wait_seconds_bucket{class=\"gpu\",le=\"300\"} 1",
        "berth_rpc_requests_total{code=\"OK\",method=\"berth.v1.Jobs/SubmitJob\"} 1",
        "berth_rpc_requests_total{code=\"UNIMPLEMENTED\",method=\"other\"} 1",
        "berth_rpc_duration_seconds_count{method=\"berth.v1.Jobs/SubmitJob\"} 1",
        "berth_ready 0",
        "berth_leader 0",
        "berth_failovers_total 0",
        "berth_leader_lease_age_seconds 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    m.set_ready(true);
    m.set_leader(true);
    m.failover();
    m.set_leader_lease_age(Duration::from_millis(1500));
    let text = m.render();
    for needle in [
        "berth_ready 1",
        "berth_leader 1",
        "berth_failovers_total 1",
        "berth_leader_lease_age_seconds 1.5",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn gauges_are_read_from_the_state() {
    let m = Metrics::new().unwrap();
    let now = berth_proto::time::now_ms();
    m.observe_state(&centre(now), &seen_n1());
    let text = m.render();
    let v = |s: &str| value(&text, s);
    let dev = |class: &str, site: &str, state: &str| {
        v(&format!(
            "berth_devices{{class=\"{class}\",site=\"{site}\",state=\"{state}\"}}"
        ))
    };
    assert_eq!(dev("gpu", "busan", "busy"), 1.0);
    assert_eq!(dev("gpu", "busan", "free"), 1.0);
    assert_eq!(dev("gpu", "busan", "failed"), 1.0);
    assert_eq!(dev("gpu", "busan", "unschedulable"), 0.0);
    assert_eq!(dev("gpu", "daegu", "unschedulable"), 1.0);
    assert_eq!(dev("gpu", "daegu", "free"), 0.0);

    assert_eq!(v("berth_nodes{site=\"daegu\",state=\"unreachable\"}"), 1.0);
    assert_eq!(v("berth_nodes{site=\"daegu\",state=\"ready\"}"), 0.0);
    assert_eq!(
        v("berth_node_state{node=\"n2\",site=\"daegu\",state=\"unreachable\"}"),
        1.0
    );
    assert_eq!(
        v("berth_node_state{node=\"n2\",site=\"daegu\",state=\"ready\"}"),
        0.0
    );
    let age = v("berth_node_heartbeat_age_seconds{node=\"n1\",site=\"busan\"}");
    assert!((5.0..60.0).contains(&age), "heartbeat age {age}");
    assert!(
        !text.contains("berth_node_heartbeat_age_seconds{node=\"n2\""),
        "a node not heard from since the start has no age"
    );

    assert_eq!(v("berth_reservations{state=\"active\"}"), 1.0);
    assert_eq!(v("berth_reservations{state=\"confirmed\"}"), 1.0);
    assert_eq!(v("berth_reservations{state=\"requested\"}"), 0.0);
    assert_eq!(v("berth_devices_booked_now{class=\"gpu\"}"), 1.0);
    assert_eq!(v("berth_devices_booked_now{class=\"npu\"}"), 0.0);
    assert_eq!(v("berth_devices_used_now{class=\"gpu\"}"), 2.0);
    assert_eq!(v("berth_reservations_idle_warned"), 1.0);
    let idle = v("berth_reservation_idle_seconds_max{class=\"gpu\"}");
    assert!((600.0..700.0).contains(&idle), "idle {idle}");

    // j3 waits for a booking that has not started: pending, but not in the queue.
    assert_eq!(v("berth_jobs{state=\"pending\"}"), 2.0);
    assert_eq!(v("berth_queue_length{class=\"gpu\"}"), 1.0);
    assert_eq!(v("berth_queue_length{class=\"npu\"}"), 0.0);
    let oldest = v("berth_queue_oldest_wait_seconds{class=\"gpu\"}");
    assert!((120.0..180.0).contains(&oldest), "oldest wait {oldest}");
    assert_eq!(v("berth_queue_oldest_wait_seconds{class=\"npu\"}"), 0.0);
    assert_eq!(v("berth_jobs_pending{reason=\"capacity\"}"), 1.0);
    assert_eq!(v("berth_jobs_pending{reason=\"reservation\"}"), 1.0);
    assert_eq!(v("berth_job_wait_seconds_count{class=\"npu\"}"), 0.0);

    let budget = |name: &str| v(&format!("{name}{{class=\"gpu\",org=\"acme\"}}"));
    assert_eq!(budget("berth_budget_used_hours"), 9.0);
    assert_eq!(budget("berth_budget_limit_hours"), 12.0);
    assert_eq!(budget("berth_budget_allowance_hours"), 10.0);
    assert_eq!(budget("berth_budget_charged_hours"), 10.0);
    assert_eq!(budget("berth_budget_left_hours"), 3.0);
}

#[test]
fn booked_and_used_device_hours_accrue_and_end_exactly() {
    let m = Metrics::new().unwrap();
    let now = berth_proto::time::now_ms();
    let state = centre(now);
    m.observe_state(&state, &seen_n1());
    // Everything started before this scheduler did: only the time since counts.
    let text = m.render();
    assert!(value(&text, "berth_booked_device_hours_total{class=\"gpu\"}") < 0.01);
    assert_eq!(
        value(&text, "berth_used_device_hours_total{class=\"npu\"}"),
        0.0
    );

    // A job that starts and ends between two scrapes is counted in full at its end.
    let t = berth_proto::time::now_ms() + HOUR;
    m.usage_recorded(&UsageRow {
        org: "acme".into(),
        user_id: "u".into(),
        kind: OwnerKind::Job,
        subject_id: "short".into(),
        class: "npu".into(),
        devices: 2,
        start_ms: t,
        end_ms: t + HOUR * 3 / 4,
        device_ms: 2 * HOUR * 3 / 4,
        evidence: None,
    });
    m.batch_committed(&[Mutation::InsertUsage(UsageRow {
        org: "acme".into(),
        user_id: "u".into(),
        kind: OwnerKind::Reservation,
        subject_id: "booking".into(),
        class: "npu".into(),
        devices: 4,
        start_ms: t,
        end_ms: t + HOUR,
        device_ms: 4 * HOUR,
        evidence: None,
    })]);
    m.observe_state(&state, &seen_n1());
    let text = m.render();
    assert_eq!(
        value(&text, "berth_used_device_hours_total{class=\"npu\"}"),
        1.5
    );
    assert_eq!(
        value(&text, "berth_booked_device_hours_total{class=\"npu\"}"),
        4.0
    );
}

/// Every sample's family has HELP and TYPE, names are Prometheus names, and the base
/// units are in the names (no milliseconds).
#[test]
fn the_exposition_is_well_formed() {
    let m = Metrics::new().unwrap();
    m.observe_state(&centre(berth_proto::time::now_ms()), &seen_n1());
    let text = m.render();
    let mut help = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, h) = rest.split_once(' ').unwrap();
            assert!(h.len() > 10, "{name}: help text too short: {h:?}");
            help.insert(name.to_owned(), h.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), t.to_owned());
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(name);
            assert!(help.contains_key(family), "{family} has no HELP");
            assert!(types.contains_key(family), "{family} has no TYPE");
        }
    }
    for (name, t) in &types {
        assert!(name.starts_with("berth_"), "{name}");
        assert!(
            !name.contains("_ms") && !name.contains("millis"),
            "{name}: use base units"
        );
        if t == "counter" {
            assert!(
                name.ends_with("_total"),
                "counter {name} must end in _total"
            );
        }
    }
    for wanted in [
        "berth_devices",
        "berth_reservations",
        "berth_booked_device_hours_total",
        "berth_used_device_hours_total",
        "berth_devices_booked_now",
        "berth_devices_used_now",
        "berth_queue_length",
        "berth_queue_oldest_wait_seconds",
        "berth_scheduling_pass_seconds",
        "berth_budget_used_hours",
        "berth_budget_limit_hours",
        "berth_nodes",
        "berth_node_heartbeat_age_seconds",
        "berth_ready",
        "berth_leader",
        "berth_failovers_total",
        "berth_leader_lease_age_seconds",
    ] {
        assert!(types.contains_key(wanted), "{wanted} is not exposed");
    }
}
