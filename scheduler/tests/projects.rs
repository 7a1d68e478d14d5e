//! Projects (과제) over real gRPC on a real socket: requested, approved, drawn on by
//! bookings and jobs, overflowing onto the paid budget only where an admin allowed it,
//! and ended (revoked) with their work; another org never sees or uses them.

use berth_proto::time::{HOUR_MS, ms_to_ts};
use berth_proto::v1;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;
use tonic::{Code, Status};

mod common;

use common::{Centre, authed, heartbeat};

const H: i64 = HOUR_MS;
const DAY: i64 = 24 * H;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn projects(c: &Centre) -> v1::projects_client::ProjectsClient<Channel> {
    v1::projects_client::ProjectsClient::new(c.channel.clone())
}

fn bookings(c: &Centre) -> v1::reservations_client::ReservationsClient<Channel> {
    v1::reservations_client::ReservationsClient::new(c.channel.clone())
}

fn jobs(c: &Centre) -> v1::jobs_client::JobsClient<Channel> {
    v1::jobs_client::JobsClient::new(c.channel.clone())
}

fn grant(class: &str, hours: f64) -> v1::GrantSpec {
    v1::GrantSpec {
        class: class.into(),
        hours,
    }
}

/// A project of `org` from now for 30 days granting `gpu_hours` of `gpu`.
fn create(org: &str, gpu_hours: f64) -> v1::CreateProjectRequest {
    let t = now_ms();
    v1::CreateProjectRequest {
        org: org.into(),
        title: "LLM fine-tuning for port logistics".into(),
        programme: "NIPA HPC 2027".into(),
        start: Some(ms_to_ts(t - 1_000)),
        end: Some(ms_to_ts(t + 30 * DAY)),
        grants: vec![grant("gpu", gpu_hours)],
        contact: String::new(),
    }
}

async fn create_project(c: &Centre, r: v1::CreateProjectRequest) -> v1::Project {
    projects(c)
        .create_project(authed(r, &c.admin))
        .await
        .unwrap()
        .into_inner()
}

async fn get(c: &Centre, token: &str, id: &str) -> Result<v1::Project, Status> {
    projects(c)
        .get_project(authed(v1::GetProjectRequest { id: id.into() }, token))
        .await
        .map(|r| r.into_inner())
}

/// A booking of `count` gpus for `[start, end)` under `project` (empty: none).
async fn book(
    c: &Centre,
    token: &str,
    count: u32,
    start: i64,
    end: i64,
    project: &str,
) -> Result<v1::Reservation, Status> {
    bookings(c)
        .create_reservation(authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count,
                start: Some(ms_to_ts(start)),
                end: Some(ms_to_ts(end)),
                site: String::new(),
                project: project.into(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn left(p: &v1::Project) -> f64 {
    p.grants[0].left_hours
}

/// Asserts an INVALID_ARGUMENT naming `field`.
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Status>, field: &str) {
    let e = r.expect_err("expected INVALID_ARGUMENT");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains(&format!("invalid {field}:")),
        "{field} not named in {:?}",
        e.message()
    );
}

#[tokio::test]
async fn org_admins_request_admins_approve_and_other_orgs_never_see_them() {
    let c = common::centre(15_000).await;
    c.join("n1", 4).await;
    let boss = c.member("acme", "boss", v1::Role::OrgAdmin).await;
    let alice = c.member("acme", "alice", v1::Role::User).await;
    let gina = c.member("globex", "gina", v1::Role::OrgAdmin).await;
    let t = now_ms();
    let ask = v1::RequestProjectRequest {
        title: "Vision QA".into(),
        programme: "Busan AI 2027".into(),
        start: Some(ms_to_ts(t)),
        end: Some(ms_to_ts(t + 60 * DAY)),
        grants: vec![grant("gpu", 100.0)],
        contact: String::new(),
    };
    let e = projects(&c)
        .request_project(authed(ask.clone(), &alice))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let p = projects(&c)
        .request_project(authed(ask, &boss))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.state, v1::ProjectState::Requested as i32);
    assert_eq!((p.org.as_str(), p.contact.as_str()), ("acme", "boss"));
    assert_eq!(p.grants.len(), 1);
    assert_eq!((p.grants[0].hours, p.grants[0].left_hours), (100.0, 100.0));

    // Requested: it grants nothing yet, and only an admin approves it.
    let e = book(&c, &alice, 1, t + H, t + 2 * H, &p.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains(&p.id), "{e:?}");
    let act = |id: &str| v1::ProjectActionRequest {
        id: id.into(),
        reason: String::new(),
    };
    let e = projects(&c)
        .approve_project(authed(act(&p.id), &boss))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let approved = projects(&c)
        .approve_project(authed(act(&p.id), &c.admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state, v1::ProjectState::Active as i32);
    let e = projects(&c)
        .approve_project(authed(act(&p.id), &c.admin))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("active"), "{e:?}");

    // Another org: not found, not listed, not usable, not settable as a default.
    let e = get(&c, &gina, &p.id).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let listed = projects(&c)
        .list_projects(authed(
            v1::ListProjectsRequest { org: "acme".into() },
            &gina,
        ))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert!(listed.is_empty(), "{listed:?}");
    assert_invalid(book(&c, &gina, 1, t + H, t + 2 * H, &p.id).await, "project");
    let e = projects(&c)
        .set_default_project(authed(
            v1::SetDefaultProjectRequest {
                project: p.id.clone(),
            },
            &gina,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let mine = projects(&c)
        .list_projects(authed(v1::ListProjectsRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(mine.len(), 1);
    let all = projects(&c)
        .list_projects(authed(v1::ListProjectsRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn bookings_draw_on_the_grant_and_overflow_only_where_allowed() {
    let c = common::centre(15_000).await;
    c.join("n1", 4).await;
    let alice = c.member("acme", "alice", v1::Role::User).await;
    let p = create_project(&c, create("acme", 10.0)).await;
    assert_eq!(p.state, v1::ProjectState::Active as i32);
    let t = now_ms() + H;

    // 2 devices x 3 h from the grant.
    let r = book(&c, &alice, 2, t, t + 3 * H, &p.id).await.unwrap();
    assert_eq!(r.project, p.id);
    assert_eq!(r.charged_project, p.id);
    assert_eq!(r.charged_hours, 6.0);
    let seen = get(&c, &alice, &p.id).await.unwrap();
    assert_eq!(seen.grants[0].used_hours, 6.0);
    assert_eq!(left(&seen), 4.0);

    // 6 more hours do not fit the 4 left: refused, naming the project, the hours left
    // and its end, and nothing is charged.
    let e = book(&c, &alice, 2, t, t + 3 * H, &p.id).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    for part in [
        p.id.as_str(),
        "has 4 h of gpu left",
        "6 h requested",
        "until 20",
    ] {
        assert!(
            e.message().contains(part),
            "{part:?} not in {:?}",
            e.message()
        );
    }
    assert_eq!(left(&get(&c, &alice, &p.id).await.unwrap()), 4.0);

    // Outside the project's period: refused naming the field, whatever the overage.
    let end = p.end.as_ref().map(berth_proto::time::ts_to_ms).unwrap();
    assert_invalid(book(&c, &alice, 1, end - H, end + H, &p.id).await, "end");

    // With overage allowed it goes to the org's paid budget instead.
    c.admin_client()
        .set_budget(authed(
            v1::SetBudgetRequest {
                org: "acme".into(),
                class: "gpu".into(),
                hours: Some(100.0),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap();
    let org = c
        .admin_client()
        .set_org_overage(authed(
            v1::SetOrgOverageRequest {
                org: "acme".into(),
                overage: v1::Overage::Allow as i32,
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(org.overage, v1::Overage::Allow as i32);
    let paid = book(&c, &alice, 2, t, t + 3 * H, &p.id).await.unwrap();
    assert_eq!(paid.project, p.id);
    assert_eq!(paid.charged_project, "");
    assert_eq!(paid.budget_class, "gpu");
    assert_eq!(left(&get(&c, &alice, &p.id).await.unwrap()), 4.0);

    // Cancelled before it starts: the grant gets its hours back.
    bookings(&c)
        .cancel_reservation(authed(
            v1::CancelReservationRequest { id: r.id.clone() },
            &alice,
        ))
        .await
        .unwrap();
    assert_eq!(left(&get(&c, &alice, &p.id).await.unwrap()), 10.0);

    // The ledger says which entries drew on the project.
    let ledger = c
        .usage_client()
        .list_ledger(authed(v1::ListLedgerRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let on_project: Vec<_> = ledger.iter().filter(|e| e.project == p.id).collect();
    assert_eq!(on_project.len(), 2, "{ledger:?}");
    assert!(on_project.iter().any(|e| e.kind == "charge"));
    assert!(on_project.iter().any(|e| e.kind == "refund"));
    assert!(
        ledger
            .iter()
            .any(|e| e.subject_id == paid.id && e.project.is_empty())
    );

    // A default project is used when a booking names none.
    projects(&c)
        .set_default_project(authed(
            v1::SetDefaultProjectRequest {
                project: p.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap();
    let by_default = book(&c, &alice, 1, t, t + H, "").await.unwrap();
    assert_eq!(by_default.charged_project, p.id);
}

#[tokio::test]
async fn bad_projects_are_refused_naming_the_field() {
    let c = common::centre(15_000).await;
    c.member("acme", "alice", v1::Role::User).await;
    let t = now_ms();
    let mut adm = projects(&c);
    let mut try_create = async |r: v1::CreateProjectRequest| {
        adm.create_project(authed(r, &c.admin))
            .await
            .map(|r| r.into_inner())
    };
    let backwards = v1::CreateProjectRequest {
        end: Some(ms_to_ts(t - DAY)),
        start: Some(ms_to_ts(t)),
        ..create("acme", 10.0)
    };
    assert_invalid(try_create(backwards).await, "end");
    let unknown = v1::CreateProjectRequest {
        grants: vec![grant("tpu", 10.0)],
        ..create("acme", 10.0)
    };
    assert_invalid(try_create(unknown).await, "grants");
    assert_invalid(try_create(create("acme", -5.0)).await, "grants");
    assert_invalid(
        try_create(v1::CreateProjectRequest {
            grants: vec![],
            ..create("acme", 1.0)
        })
        .await,
        "grants",
    );
    assert_invalid(
        try_create(v1::CreateProjectRequest {
            title: "  ".into(),
            ..create("acme", 1.0)
        })
        .await,
        "title",
    );
    assert_invalid(try_create(create("nobody", 1.0)).await, "org");
    try_create(create("acme", 10.0)).await.unwrap();
    // The same programme twice over overlapping periods.
    assert_invalid(try_create(create("acme", 10.0)).await, "start");
    // Only admins create.
    let boss = c.member("acme", "boss", v1::Role::OrgAdmin).await;
    let e = projects(&c)
        .create_project(authed(create("acme", 1.0), &boss))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}

#[tokio::test]
async fn revoking_a_project_ends_its_bookings_and_jobs_and_audits_it() {
    let c = common::centre(15_000).await;
    let (cred, devices) = c.join("n1", 2).await;
    let alice = c.member("acme", "alice", v1::Role::User).await;
    let p = create_project(&c, create("acme", 100.0)).await;
    projects(&c)
        .set_default_project(authed(
            v1::SetDefaultProjectRequest {
                project: p.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap();
    // A running job (charged to the project by default), a future booking, and a job
    // that waits (it asks for more devices than are free).
    let (running, known) = c.queue_and_place(&alice, &cred, &devices).await;
    let got = jobs(&c)
        .get_job(authed(
            v1::GetJobRequest {
                id: running.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.charged_project, p.id, "{got:?}");
    let t = now_ms();
    let future = book(&c, &alice, 1, t + 5 * DAY, t + 6 * DAY, &p.id)
        .await
        .unwrap();
    let waiting = jobs(&c)
        .submit_job(authed(
            v1::SubmitJobRequest {
                class: "gpu".into(),
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
    assert_eq!(waiting.project, p.id);
    let used = get(&c, &alice, &p.id).await.unwrap().grants[0].used_hours;
    assert!(
        used > 24.0,
        "the booking and the running job drew on it: {used}"
    );

    let revoked = projects(&c)
        .revoke_project(authed(
            v1::ProjectActionRequest {
                id: p.id.clone(),
                reason: "idle for a month".into(),
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.state, v1::ProjectState::Revoked as i32);
    assert!(revoked.reason.contains("idle for a month"), "{revoked:?}");

    let b = bookings(&c)
        .get_reservation(authed(
            v1::GetReservationRequest {
                id: future.id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.state, v1::ReservationState::Cancelled as i32, "{b:?}");
    let w = c.job(&alice, &waiting.id).await;
    assert_eq!(w.state, v1::JobState::Cancelled as i32, "{w:?}");
    // The booking's hours went back to the grant.
    let after = get(&c, &alice, &p.id).await.unwrap().grants[0].used_hours;
    assert!(after <= used - 24.0, "{used} -> {after}");

    // The running job is taken off its node (the node stops it with the grace signal).
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let mut known = known;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let observed = vec![v1::ObservedJob {
            job_id: running.id.clone(),
            phase: v1::JobPhase::Running as i32,
            generation: known,
            ..Default::default()
        }];
        let r = agent
            .heartbeat(authed(heartbeat("n1", known, &devices, observed), &cred))
            .await
            .unwrap()
            .into_inner();
        known = r.generation;
        if !r.jobs.iter().any(|d| d.job_id == running.id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was not stopped"
        );
    }

    // New work under it is refused; the user's default no longer applies.
    let e = book(&c, &alice, 1, t + H, t + 2 * H, &p.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let free = book(&c, &alice, 1, t + H, t + 2 * H, "").await.unwrap();
    assert_eq!(free.charged_project, "");

    let audit = c
        .admin_client()
        .list_audit(authed(v1::ListAuditRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .events;
    for action in [
        "project.create",
        "project.revoke",
        "reservation.end",
        "job.end",
    ] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "{action} not audited: {audit:?}"
        );
    }
}

#[tokio::test]
async fn approved_projects_start_and_end_with_their_period() {
    let c = common::centre(15_000).await;
    let alice = c.member("acme", "alice", v1::Role::User).await;
    let t = now_ms();
    let p = create_project(
        &c,
        v1::CreateProjectRequest {
            start: Some(ms_to_ts(t + 1_000)),
            end: Some(ms_to_ts(t + 2_500)),
            ..create("acme", 10.0)
        },
    )
    .await;
    assert_eq!(p.state, v1::ProjectState::Approved as i32);
    let state = async || get(&c, &alice, &p.id).await.unwrap().state;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = vec![p.state];
    while *seen.last().unwrap() != v1::ProjectState::Expired as i32 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "states seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s = state().await;
        if s != *seen.last().unwrap() {
            seen.push(s);
        }
    }
    assert_eq!(
        seen,
        [
            v1::ProjectState::Approved as i32,
            v1::ProjectState::Active as i32,
            v1::ProjectState::Expired as i32
        ]
    );
    let ended = get(&c, &alice, &p.id).await.unwrap();
    assert!(ended.reason.contains("period ended"), "{ended:?}");
    let audit = c
        .admin_client()
        .list_audit(authed(v1::ListAuditRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .events;
    for action in ["project.active", "project.expired"] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "{action}: {audit:?}"
        );
    }
}
