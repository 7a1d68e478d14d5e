//! The scheduler over real gRPC on real sockets, with the agent side driven by hand so
//! every step of the protocol is checked: join, long-poll, reports, logs, leases.

use berth_proto::time::{ms_to_ts, now_ms};
use berth_proto::v1;
use berth_scheduler::server::{self, ServerConfig};
use std::time::Duration;
use tonic::Code;

mod common;

use common::{authed, centre, heartbeat};

#[tokio::test]
async fn a_job_in_a_reservation_runs_on_its_devices_and_reports_back() {
    let c = centre(15_000).await;
    let (cred, devices) = c.join("n1", 4).await;
    let alice = c.user("acme", "alice").await;
    let now = now_ms();
    let res = v1::reservations_client::ReservationsClient::new(c.channel.clone())
        .create_reservation(authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count: 2,
                start: Some(ms_to_ts(now)),
                end: Some(ms_to_ts(now + 3_600_000)),
                site: String::new(),
                project: String::new(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.devices.len(), 2);
    let mut jobs = v1::jobs_client::JobsClient::new(c.channel.clone());
    let job = jobs
        .submit_job(authed(
            v1::SubmitJobRequest {
                reservation_id: res.id.clone(),
                count: 2,
                image: "busybox".into(),
                command: vec!["true".into()],
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    // The long-poll returns the job once it is placed, on exactly the reserved devices.
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let mut known = 0;
    let desired = loop {
        let r = agent
            .heartbeat(authed(heartbeat("n1", known, &devices, vec![]), &cred))
            .await
            .unwrap()
            .into_inner();
        known = r.generation;
        if let Some(d) = r.jobs.into_iter().find(|d| d.job_id == job.id) {
            break d;
        }
    };
    let mut got = desired.devices.clone();
    got.sort();
    let mut want = res.devices.clone();
    want.sort();
    assert_eq!(got, want);

    // Running, then logs, then the exit.
    let running = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Running as i32,
        started_at: Some(ms_to_ts(now_ms())),
        ..Default::default()
    };
    agent.report_job(authed(running, &cred)).await.unwrap();
    let chunk = |seq, data: &str| v1::LogChunk {
        seq,
        stream: v1::log_chunk::Stream::Stdout as i32,
        data: data.as_bytes().to_vec(),
        time: None,
    };
    let push = v1::PushLogsRequest {
        job_id: job.id.clone(),
        chunks: vec![chunk(1, "hello\n"), chunk(2, "world\n")],
    };
    assert_eq!(
        agent
            .push_logs(authed(push.clone(), &cred))
            .await
            .unwrap()
            .into_inner()
            .stored_seq,
        2
    );
    // A retried batch is not stored twice.
    assert_eq!(
        agent
            .push_logs(authed(push, &cred))
            .await
            .unwrap()
            .into_inner()
            .stored_seq,
        2
    );
    let exited = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Exited as i32,
        exit_code: Some(7),
        ..Default::default()
    };
    agent
        .report_job(authed(exited.clone(), &cred))
        .await
        .unwrap();
    let done = jobs
        .get_job(authed(v1::GetJobRequest { id: job.id.clone() }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (done.state, done.exit_code),
        (v1::JobState::Failed as i32, Some(7))
    );
    assert_eq!(done.node, "n1");

    let mut stream = jobs
        .stream_logs(authed(
            v1::StreamLogsRequest {
                job_id: job.id.clone(),
                follow: true,
                after_seq: 0,
                after_part_seqs: Vec::new(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk.data));
    }
    assert_eq!(text, "hello\nworld\n");

    // The next heartbeat acknowledges the finished job and no longer wants it.
    let r = agent
        .heartbeat(authed(heartbeat("n1", 0, &devices, vec![exited]), &cred))
        .await
        .unwrap()
        .into_inner();
    assert!(r.acknowledged.contains(&job.id));
    assert!(r.jobs.is_empty());
    c.server.shutdown().await;
}

#[tokio::test]
async fn agents_speak_only_for_their_own_node_and_users_cannot_speak_for_agents() {
    let c = centre(15_000).await;
    let (cred1, devices1) = c.join("n1", 1).await;
    let (_cred2, _) = c.join("n2", 1).await;
    let alice = c.user("acme", "alice").await;
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let err = agent
        .heartbeat(authed(heartbeat("n2", 0, &devices1, vec![]), &cred1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = agent
        .heartbeat(authed(heartbeat("n1", 0, &devices1, vec![]), &alice))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Agents cannot use the user API.
    let err = v1::jobs_client::JobsClient::new(c.channel.clone())
        .list_jobs(authed(
            v1::ListJobsRequest {
                all: true,
                ..Default::default()
            },
            &cred1,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A bad join token is refused.
    let err = agent
        .join(v1::JoinRequest {
            join_token: "nope".into(),
            node: "n3".into(),
            site: "s1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // No token, or a forged one.
    let err = v1::jobs_client::JobsClient::new(c.channel.clone())
        .list_jobs(v1::ListJobsRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = v1::jobs_client::JobsClient::new(c.channel.clone())
        .list_jobs(authed(
            v1::ListJobsRequest {
                all: true,
                ..Default::default()
            },
            "eyJhbGciOiJIUzI1NiJ9.e30.x",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    c.server.shutdown().await;
}

/// One agent's heartbeat stream, opened in language `lang`: where its requests go, and
/// its replies.
async fn open_beats(
    c: &common::Centre,
    cred: &str,
    lang: &str,
) -> (
    tokio::sync::mpsc::Sender<v1::HeartbeatRequest>,
    tonic::Streaming<v1::HeartbeatResponse>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut open = authed(tokio_stream::wrappers::ReceiverStream::new(rx), cred);
    open.metadata_mut()
        .insert("accept-language", lang.parse().unwrap());
    let replies = v1::agent_client::AgentClient::new(c.channel.clone())
        .heartbeats(open)
        .await
        .unwrap()
        .into_inner();
    (tx, replies)
}

/// The next message of a heartbeat stream (failure guard only: each comes on an event).
async fn next_beat(
    replies: &mut tonic::Streaming<v1::HeartbeatResponse>,
) -> Result<Option<v1::HeartbeatResponse>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(30), replies.message())
        .await
        .expect("the stream answers")
}

#[tokio::test]
async fn heartbeats_on_a_stream_are_answered_in_turn_and_each_is_checked_again() {
    let c = centre(15_000).await;
    let (cred, devices) = c.join("n1", 2).await;
    let alice = c.user("acme", "alice").await;
    let (tx, mut replies) = open_beats(&c, &cred, "ko").await;

    // Answered as a call is: at once when the agent lacks the current generation...
    let mut first = heartbeat("n1", 0, &devices, vec![]);
    first.wait = None;
    first.inventory_digest = berth_proto::inventory::digest(&first.devices);
    tx.send(first.clone()).await.unwrap();
    let r = next_beat(&mut replies).await.unwrap().expect("a reply");
    assert_eq!(r.inventory_digest, first.inventory_digest);
    // ...and held while it has it, until work for the node changes: a job placed on it
    // comes back on the same stream, by the inventory's digest alone.
    let job = v1::jobs_client::JobsClient::new(c.channel.clone())
        .submit_job(authed(common::sleeper(), &alice))
        .await
        .unwrap()
        .into_inner();
    let mut known = r.generation;
    let placed = loop {
        let beat = v1::HeartbeatRequest {
            devices: Vec::new(),
            inventory_digest: first.inventory_digest,
            wait: Some(berth_proto::time::ms_to_dur(60_000)),
            ..heartbeat("n1", known, &devices, vec![])
        };
        tx.send(beat).await.unwrap();
        let r = next_beat(&mut replies).await.unwrap().expect("a reply");
        assert!(r.generation >= known, "replies come in turn");
        assert_eq!(r.inventory_digest, first.inventory_digest);
        known = r.generation;
        if let Some(d) = r.jobs.into_iter().find(|d| d.job_id == job.id) {
            break d;
        }
    };
    assert_eq!(placed.devices.len(), 1);

    // Every request is checked: another node's heartbeat ends the stream, refused in
    // the language the stream was opened in.
    let mut other = heartbeat("n2", known, &devices, vec![]);
    other.wait = None;
    tx.send(other).await.unwrap();
    let err = next_beat(&mut replies).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("대신할 수 없습니다"), "{err:?}");
    assert!(next_beat(&mut replies).await.unwrap().is_none(), "ended");

    // A credential revoked while its stream is open (the node joined again) is refused
    // at the stream's next request.
    let (tx, mut replies) = open_beats(&c, &cred, "en").await;
    let mut beat = heartbeat("n1", known, &devices, vec![]);
    beat.wait = None;
    tx.send(beat.clone()).await.unwrap();
    next_beat(&mut replies).await.unwrap().expect("a reply");
    c.rejoin_node("n1").await;
    let (fresh, _) = c.join("n1", 2).await;
    tx.send(beat.clone()).await.unwrap();
    let err = next_beat(&mut replies).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A stream open when the scheduler stops ends, answered UNAVAILABLE: it does not
    // hold the shutdown open.
    let (tx, mut replies) = open_beats(&c, &fresh, "en").await;
    tx.send(beat).await.unwrap();
    next_beat(&mut replies).await.unwrap().expect("a reply");
    let stopped = tokio::spawn(c.server.shutdown());
    let err = next_beat(&mut replies).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    tokio::time::timeout(Duration::from_secs(30), stopped)
        .await
        .expect("the scheduler stops with a heartbeat stream open")
        .unwrap();
    drop(tx);
}

#[tokio::test]
async fn a_silent_node_becomes_unreachable_and_its_devices_are_not_booked() {
    let c = centre(600).await;
    let (cred, devices) = c.join("n1", 2).await;
    let alice = c.user("acme", "alice").await;
    let nodes = v1::capacity_client::CapacityClient::new(c.channel.clone());
    let wait_for = |want: v1::NodeState| {
        let (mut nodes, alice) = (nodes.clone(), alice.clone());
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let r = nodes
                    .list_nodes(authed(v1::ListNodesRequest::default(), &alice))
                    .await
                    .unwrap()
                    .into_inner();
                if r.nodes[0].state == want as i32 {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "node never became {want:?}: {:?}",
                    r.nodes[0]
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(v1::NodeState::Unreachable).await;
    let now = now_ms();
    let err = v1::reservations_client::ReservationsClient::new(c.channel.clone())
        .create_reservation(authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count: 1,
                start: Some(ms_to_ts(now)),
                end: Some(ms_to_ts(now + 3_600_000)),
                site: String::new(),
                project: String::new(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    // The agent comes back, heartbeating as agents do (one beat alone may be followed by a
    // lapse of the short lease on a loaded machine): the node is ready again.
    let beats = {
        let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
        tokio::spawn(async move {
            loop {
                agent
                    .heartbeat(authed(heartbeat("n1", 0, &devices, vec![]), &cred))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    wait_for(v1::NodeState::Ready).await;
    beats.abort();
    c.server.shutdown().await;
}

#[tokio::test]
async fn the_scheduler_refuses_to_start_without_a_signing_key_unless_in_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev(dir.path().to_path_buf());
    config.dev = false;
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    let err = server::start(config.clone())
        .await
        .err()
        .expect("started without a key");
    assert!(err.to_string().contains("no signing key"), "{err}");
    config.signing_key = Some(b"too-short".to_vec());
    let err = server::start(config)
        .await
        .err()
        .expect("started with a weak key");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
}

#[tokio::test]
async fn a_failed_device_is_quarantined_its_job_stopped_until_an_admin_clears_it() {
    let c = centre(15_000).await;
    let (cred, devices) = c.join("n1", 1).await;
    let alice = c.user("acme", "alice").await;
    let (job, known) = c.queue_and_place(&alice, &cred, &devices).await;
    let mut jobs = v1::jobs_client::JobsClient::new(c.channel.clone());
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let running = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Running as i32,
        ..Default::default()
    };
    agent
        .report_job(authed(running.clone(), &cred))
        .await
        .unwrap();

    // The device reports XID 79: the job is no longer wanted on it.
    let mut failed = heartbeat("n1", known, &devices, vec![running]);
    failed.devices[0].health = v1::DeviceHealth::Failed as i32;
    failed.devices[0].health_reason = "XID 79 (GPU has fallen off the bus)".into();
    failed.wait = None;
    agent.heartbeat(authed(failed, &cred)).await.unwrap();
    let r = agent
        .heartbeat(authed(heartbeat("n1", 0, &devices, vec![]), &cred))
        .await;
    // The healthy report that follows does not lift the quarantine.
    assert!(r.unwrap().into_inner().jobs.is_empty());
    let exited = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Exited as i32,
        exit_code: Some(137),
        stopped_by_agent: true,
        ..Default::default()
    };
    agent.report_job(authed(exited, &cred)).await.unwrap();
    let done = jobs
        .get_job(authed(v1::GetJobRequest { id: job.id.clone() }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.state, v1::JobState::Failed as i32);
    assert!(done.reason.contains("XID 79"), "{}", done.reason);

    let book = |token: String| {
        let channel = c.channel.clone();
        async move {
            let now = now_ms();
            v1::reservations_client::ReservationsClient::new(channel)
                .create_reservation(authed(
                    v1::CreateReservationRequest {
                        class: "gpu".into(),
                        count: 1,
                        start: Some(ms_to_ts(now)),
                        end: Some(ms_to_ts(now + 3_600_000)),
                        site: String::new(),
                        project: String::new(),
                    },
                    &token,
                ))
                .await
        }
    };
    assert_eq!(
        book(alice.clone()).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    let err = c
        .admin_client()
        .clear_device(authed(
            v1::ClearDeviceRequest {
                uuid: devices[0].clone(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    c.clear_device(&devices[0]).await;
    assert!(book(alice).await.is_ok());
    c.server.shutdown().await;
}

#[tokio::test]
async fn a_heartbeat_by_inventory_digest_stands_for_the_inventory_last_listed() {
    let c = centre(15_000).await;
    let (cred, devices) = c.join("n1", 2).await;
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let mut capacity = v1::capacity_client::CapacityClient::new(c.channel.clone());
    let mut node = async || {
        capacity
            .list_nodes(authed(v1::ListNodesRequest::default(), &c.admin))
            .await
            .unwrap()
            .into_inner()
            .nodes
            .remove(0)
    };

    // Listed in full with its digest, device 0 failed: the scheduler answers the digest.
    let mut listed = heartbeat("n1", 0, &devices, vec![]);
    listed.devices[0].health = v1::DeviceHealth::Failed as i32;
    listed.devices[0].health_reason = "XID 79".into();
    listed.wait = None;
    let digest = berth_proto::inventory::digest(&listed.devices);
    listed.inventory_digest = digest;
    let r = agent.heartbeat(authed(listed, &cred)).await.unwrap();
    assert_eq!(r.into_inner().inventory_digest, digest);
    assert_eq!(
        node().await.devices[0].health,
        v1::DeviceHealth::Failed as i32
    );
    let bare = v1::HeartbeatRequest {
        devices: Vec::new(),
        inventory_digest: digest,
        wait: None,
        ..heartbeat("n1", 0, &devices, vec![])
    };
    // By its digest: the rows are found as the kept inventory has them.
    let r = agent.heartbeat(authed(bare, &cred)).await.unwrap();
    assert_eq!(r.into_inner().inventory_digest, digest);
    c.clear_device(&devices[0]).await;
    assert_eq!(
        node().await.devices[0].health,
        v1::DeviceHealth::Healthy as i32
    );

    // By its digest, with device 1's telemetry by index: the kept inventory is taken as
    // reported again (device 0 still failed: quarantined anew, as a full report would,
    // though the rows matched it at the last call), and the sample is device 1's.
    let sample = v1::Telemetry {
        utilization_pct: 77.0,
        ..Default::default()
    };
    let by_digest = v1::HeartbeatRequest {
        devices: Vec::new(),
        inventory_digest: digest,
        samples: vec![v1::DeviceSample {
            index: 1,
            telemetry: Some(sample),
        }],
        wait: None,
        ..heartbeat("n1", 0, &devices, vec![])
    };
    let r = agent.heartbeat(authed(by_digest.clone(), &cred)).await;
    assert_eq!(r.unwrap().into_inner().inventory_digest, digest);
    let seen = node().await;
    assert_eq!(seen.devices[0].health, v1::DeviceHealth::Failed as i32);
    assert_eq!(seen.devices[0].health_reason, "XID 79");
    let telemetry = |d: &v1::Device| d.telemetry.map(|t| t.utilization_pct);
    assert_eq!(
        seen.devices.iter().map(telemetry).collect::<Vec<_>>(),
        [None, Some(77.0)]
    );

    // A digest the scheduler holds no inventory of (as after a restart): answered at
    // once, long-poll or not, with no digest, so the agent lists its devices again;
    // nothing is taken from it about the devices.
    let unknown = v1::HeartbeatRequest {
        inventory_digest: digest ^ 1,
        samples: vec![v1::DeviceSample {
            index: 1,
            telemetry: Some(v1::Telemetry {
                utilization_pct: 5.0,
                ..Default::default()
            }),
        }],
        wait: Some(berth_proto::time::ms_to_dur(60_000)),
        ..by_digest
    };
    let asked = std::time::Instant::now();
    let r = agent.heartbeat(authed(unknown, &cred)).await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "held {:?}",
        asked.elapsed()
    );
    assert_eq!(r.into_inner().inventory_digest, 0);
    let seen = node().await;
    assert_eq!(seen.devices.len(), 2);
    assert_eq!(
        seen.devices.iter().map(telemetry).collect::<Vec<_>>(),
        [None, Some(77.0)]
    );
    c.server.shutdown().await;
}

#[tokio::test]
async fn an_admin_declares_a_silent_node_down_and_its_jobs_end_as_lost() {
    let c = centre(600).await;
    let (cred, devices) = c.join("n1", 1).await;
    let alice = c.user("acme", "alice").await;
    let (job, _) = c.queue_and_place(&alice, &cred, &devices).await;
    let mut jobs = v1::jobs_client::JobsClient::new(c.channel.clone());
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    // Only admins may declare a node down.
    let err = c
        .admin_client()
        .mark_node_down(authed(
            v1::MarkNodeDownRequest { node: "n1".into() },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let node = c
        .admin_client()
        .mark_node_down(authed(
            v1::MarkNodeDownRequest { node: "n1".into() },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(node.state, v1::NodeState::Down as i32);
    let lost = jobs
        .get_job(authed(v1::GetJobRequest { id: job.id.clone() }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lost.state, v1::JobState::Lost as i32);
    assert!(lost.reason.contains("declared down"), "{}", lost.reason);
    // A heartbeat from the node does not bring it back by itself, and wants nothing run.
    let r = agent
        .heartbeat(authed(heartbeat("n1", 0, &devices, vec![]), &cred))
        .await
        .unwrap()
        .into_inner();
    assert!(r.jobs.is_empty());
    assert_eq!(r.node_state, v1::NodeState::Down as i32);
    c.server.shutdown().await;
}

/// The services a reflection answer lists.
fn listed_services(names: impl IntoIterator<Item = String>) -> std::collections::BTreeSet<String> {
    names.into_iter().collect()
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_in_v1alpha() {
    use tonic_reflection::pb::{v1 as refl_v1, v1alpha as refl_v1alpha};
    let c = centre(15_000).await;
    let expected = [
        "berth.v1.Admin",
        "berth.v1.Agent",
        "berth.v1.Jobs",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ];

    // v1alpha: what Python's grpcio-reflection and older tools speak.
    let mut client =
        refl_v1alpha::server_reflection_client::ServerReflectionClient::new(c.channel.clone());
    let request = refl_v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            refl_v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(refl_v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1alpha: not a service list: {answer:?}");
    };
    let v1alpha = listed_services(list.service.into_iter().map(|s| s.name));
    for name in expected {
        assert!(v1alpha.contains(name), "v1alpha lists {name}: {v1alpha:?}");
    }

    // v1: what current tools (grpcurl) speak; the same services.
    let mut client =
        refl_v1::server_reflection_client::ServerReflectionClient::new(c.channel.clone());
    let request = refl_v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            refl_v1::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection answers")
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(refl_v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("v1: not a service list: {answer:?}");
    };
    let v1 = listed_services(list.service.into_iter().map(|s| s.name));
    assert_eq!(v1, v1alpha, "both versions list the same services");
    c.server.shutdown().await;
}

#[tokio::test]
async fn the_scheduler_refuses_plaintext_grpc_off_loopback_unless_told_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev(dir.path().to_path_buf());
    config.grpc_addr = "0.0.0.0:0".parse().unwrap();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    let err = server::start(config.clone())
        .await
        .err()
        .expect("served plaintext gRPC on 0.0.0.0");
    let text = err.to_string();
    assert!(
        text.contains("plaintext")
            && text.contains("--tls-cert")
            && text.contains("--insecure-plaintext"),
        "{text}"
    );
    assert!(
        !dir.path().join("berth.db").exists(),
        "refused before opening the database"
    );
    config.insecure_plaintext = true;
    let server = server::start(config)
        .await
        .expect("--insecure-plaintext starts");
    assert!(server.grpc_addr.ip().is_unspecified());
    server.shutdown().await;
}

/// Errors are worded in the language the client asks for (`accept-language`); codes and
/// field names do not change.
#[tokio::test]
async fn errors_come_in_the_clients_language() {
    let c = common::centre(15_000).await;
    let alice = c.user("acme", "alice").await;
    let mut rs = v1::reservations_client::ReservationsClient::new(c.channel.clone());
    let ask = |lang: &str| {
        let mut r = common::authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count: 1,
                start: None,
                end: None,
                site: String::new(),
                project: String::new(),
            },
            &alice,
        );
        r.metadata_mut()
            .insert("accept-language", lang.parse().unwrap());
        r
    };
    let en = rs.create_reservation(ask("en")).await.unwrap_err();
    assert_eq!(en.code(), tonic::Code::InvalidArgument);
    assert_eq!(en.message(), "invalid start: is required");
    let ko = rs
        .create_reservation(ask("ko-KR,ko;q=0.9"))
        .await
        .unwrap_err();
    assert_eq!(ko.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        ko.message(),
        "start 값이 올바르지 않습니다: 필수 항목입니다"
    );

    let mut anonymous = tonic::Request::new(v1::ListReservationsRequest::default());
    anonymous
        .metadata_mut()
        .insert("accept-language", "ko".parse().unwrap());
    let e = rs.list_reservations(anonymous).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(
        e.message().contains("베어러 토큰이 없습니다"),
        "{}",
        e.message()
    );

    let mut bad = tonic::Request::new(v1::ListReservationsRequest::default());
    bad.metadata_mut()
        .insert("authorization", "Basic x".parse().unwrap());
    bad.metadata_mut()
        .insert("accept-language", "ko".parse().unwrap());
    let e = rs.list_reservations(bad).await.unwrap_err();
    assert!(
        e.message().contains("Bearer <token>") && e.message().contains("형식"),
        "{}",
        e.message()
    );
}

/// A queue whose every job waits, on a state that does not change, is not planned again
/// at each tick: with 100k jobs waiting for busy devices, each pass would otherwise copy
/// and plan them all for nothing. Any change plans it again.
#[tokio::test]
async fn a_queue_that_only_waits_is_not_planned_again_until_something_changes() {
    let c = centre(60_000).await;
    let (cred, devices) = c.join("n1", 1).await;
    let alice = c.user("acme", "alice").await;
    let (_running, _) = c.queue_and_place(&alice, &cred, &devices).await;
    let mut jobs = v1::jobs_client::JobsClient::new(c.channel.clone());
    let submit = || v1::SubmitJobRequest {
        class: "gpu".into(),
        count: 1,
        image: "busybox".into(),
        command: vec!["true".into()],
        ..Default::default()
    };
    let waiting = jobs
        .submit_job(authed(submit(), &alice))
        .await
        .unwrap()
        .into_inner();
    // Planned once it was queued: a pass has said why it waits.
    let planned = |j: &v1::Job| j.reason != "waiting for the scheduler";
    loop {
        let j = c.job(&alice, &waiting.id).await;
        assert_eq!(j.state, v1::JobState::Pending as i32);
        if planned(&j) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let passes = |c| common::metric(c, "berth_scheduling_pass_seconds_count");
    let plans = |c| common::metric(c, "berth_queue_plans_total");
    let (passes0, plans0) = (passes(&c).await, plans(&c).await);
    while passes(&c).await < passes0 + 5.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // At most the plan that was under way when counting began.
    let replanned = plans(&c).await - plans0;
    assert!(replanned <= 1.0, "{replanned} plans in 5 passes");

    // A new job changes the state: the queue is planned again.
    let plans1 = plans(&c).await;
    jobs.submit_job(authed(submit(), &alice)).await.unwrap();
    while plans(&c).await <= plans1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Listing every job merges live jobs (from memory) with ended ones (from the database),
/// and skips the database for a page full of live jobs newer than every ended one. An
/// ended job newer than live ones is listed in its place, before a restart and after it
/// (when the scheduler has read the newest ended job back from the database).
#[tokio::test]
async fn an_ended_job_is_listed_in_its_place_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let c = common::centre_in(dir, 15_000, |_| {}).await;
    let alice = c.user("acme", "alice").await;
    let mut jobs = v1::jobs_client::JobsClient::new(c.channel.clone());
    let mut submit = async |name: &str| {
        jobs.submit_job(authed(
            v1::SubmitJobRequest {
                name: name.into(),
                class: "gpu".into(),
                count: 1,
                image: "busybox".into(),
                command: vec!["true".into()],
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .id
    };
    // One device: admission takes the jobs; which of them is placed does not matter
    // here, only the order of creation (a millisecond apart) and which has ended.
    let _node = c.join("n1", 1).await;
    let old = submit("old").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let ended = submit("ended").await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let newest = submit("newest").await;
    v1::jobs_client::JobsClient::new(c.channel.clone())
        .cancel_job(authed(v1::CancelJobRequest { id: ended.clone() }, &alice))
        .await
        .unwrap();
    let listed = async |channel: tonic::transport::Channel| {
        let mut jobs = v1::jobs_client::JobsClient::new(channel);
        let (mut out, mut token) = (Vec::new(), String::new());
        loop {
            let page = jobs
                .list_jobs(authed(
                    v1::ListJobsRequest {
                        all: true,
                        page_size: 1,
                        page_token: token,
                        ..Default::default()
                    },
                    &alice,
                ))
                .await
                .unwrap()
                .into_inner();
            let ended = |j: &v1::Job| j.state == v1::JobState::Cancelled as i32;
            out.extend(page.jobs.into_iter().map(|j| (ended(&j), j.id)));
            token = page.next_page_token;
            if token.is_empty() {
                return out;
            }
        }
    };
    let want = vec![(false, newest), (true, ended), (false, old)];
    assert_eq!(listed(c.channel.clone()).await, want);
    c.server.shutdown().await;

    let mut config = ServerConfig::dev(path);
    config.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.http_addr = "127.0.0.1:0".parse().unwrap();
    let again = server::start(config).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", again.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(listed(channel).await, want, "after a restart");
    again.shutdown().await;
}
