//! What a job did on its devices, as its agent reports it: shown while it runs, kept on
//! the job and its usage record when it ends, and back after a restart of the scheduler.

use berth_proto::v1;
use std::time::Duration;

mod common;

use common::{authed, heartbeat};

fn evidence(util: f64, energy: f64, samples: u32) -> v1::JobEvidence {
    v1::JobEvidence {
        mean_utilization_percent: util,
        peak_memory_bytes: 40 << 30,
        energy_wh: energy,
        mean_sm_active: Some(util / 100.0),
        mean_tensor_active: Some(0.25),
        samples,
        utilization_source: v1::UtilizationSource::SmActive as i32,
        energy_source: v1::EnergySource::Counter as i32,
        covered_seconds: 60.0,
        devices: 1,
    }
}

#[tokio::test]
async fn evidence_is_shown_while_running_and_kept_when_the_job_ends() {
    let c = common::centre(15_000).await;
    let (cred, devices) = c.join("n1", 1).await;
    let alice = c.user("acme", "alice").await;
    let (job, known) = c.queue_and_place(&alice, &cred, &devices).await;
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let mut jobs = v1::jobs_client::JobsClient::new(c.channel.clone());
    let get = async |jobs: &mut v1::jobs_client::JobsClient<_>| {
        jobs.get_job(authed(v1::GetJobRequest { id: job.id.clone() }, &alice))
            .await
            .unwrap()
            .into_inner()
    };
    assert_eq!(get(&mut jobs).await.evidence, None);

    // Running, with a report so far.
    let running = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Running as i32,
        generation: known,
        evidence: Some(evidence(55.0, 3.5, 4)),
        ..Default::default()
    };
    agent
        .heartbeat(authed(
            v1::HeartbeatRequest {
                wait: None,
                ..heartbeat("n1", known, &devices, vec![running.clone()])
            },
            &cred,
        ))
        .await
        .unwrap();
    let now = get(&mut jobs).await;
    assert_eq!(now.state, v1::JobState::Running as i32);
    assert_eq!(now.evidence, Some(evidence(55.0, 3.5, 4)), "{now:?}");

    // It ends with a final report.
    agent
        .report_job(authed(
            v1::ObservedJob {
                phase: v1::JobPhase::Exited as i32,
                exit_code: Some(0),
                evidence: Some(evidence(61.5, 4.25, 5)),
                ..running
            },
            &cred,
        ))
        .await
        .unwrap();
    let ended = get(&mut jobs).await;
    assert_eq!(ended.state, v1::JobState::Succeeded as i32);
    assert_eq!(ended.evidence, Some(evidence(61.5, 4.25, 5)));
    let usage = c
        .usage_client()
        .get_usage(authed(v1::GetUsageRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    let record = usage
        .records
        .iter()
        .find(|r| r.subject_id == job.id)
        .expect("a usage record of the job");
    assert_eq!(record.evidence, Some(evidence(61.5, 4.25, 5)));
    // A finished job is read from the database: the evidence is stored, not only held.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let listed = jobs
        .list_jobs(authed(
            v1::ListJobsRequest {
                all: true,
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    let row = listed.iter().find(|j| j.id == job.id).unwrap();
    assert_eq!(row.evidence, Some(evidence(61.5, 4.25, 5)));
}
