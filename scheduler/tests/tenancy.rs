//! Holes a hostile tenant found, each closed and kept closed: join tokens that took over
//! nodes, heartbeat replies jammed by huge specs, datasets open to every org, unbounded
//! log followers, user names probed across orgs, and one tenant's flood slowing others.

mod common;

use berth_proto::v1;
use common::*;
use std::collections::HashMap;
use tonic::Code;

fn agent(c: &Centre) -> v1::agent_client::AgentClient<tonic::transport::Channel> {
    v1::agent_client::AgentClient::new(c.channel.clone())
}

fn jobs(c: &Centre) -> v1::jobs_client::JobsClient<tonic::transport::Channel> {
    v1::jobs_client::JobsClient::new(c.channel.clone())
}

async fn join_token(c: &Centre, node: &str) -> String {
    c.admin_client()
        .create_join_token(authed(
            v1::CreateJoinTokenRequest {
                node: node.into(),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .token
}

fn join_request(node: &str, token: &str, devices: &[String]) -> v1::JoinRequest {
    v1::JoinRequest {
        join_token: token.into(),
        node: node.into(),
        site: "s1".into(),
        hostname: node.into(),
        devices: reports(devices),
        agent_version: "test".into(),
        runtime: "process".into(),
    }
}

/// The node's credential works (a heartbeat is answered) or is refused.
async fn heartbeat_code(c: &Centre, node: &str, cred: &str, devices: &[String]) -> Code {
    let mut hb = heartbeat(node, 0, devices, vec![]);
    hb.wait = None;
    match agent(c).heartbeat(authed(hb, cred)).await {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn a_join_token_joins_once_and_never_takes_over_an_existing_node() {
    let c = centre(30_000).await;
    let devices = vec!["GPU-n1-0".to_owned()];
    let token = join_token(&c, "").await;
    let first = agent(&c)
        .join(join_request("n1", &token, &devices))
        .await
        .unwrap()
        .into_inner()
        .credential;

    // The same token again, for a new name and for the existing one: refused.
    for name in ["n2", "n1"] {
        let err = agent(&c)
            .join(join_request(name, &token, &[format!("GPU-{name}-x")]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        assert!(err.message().contains("already used"), "{err:?}");
    }

    // A fresh token cannot take over the existing node either.
    let fresh = join_token(&c, "").await;
    let err = agent(&c)
        .join(join_request("n1", &fresh, &devices))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("berth admin nodes rejoin n1"),
        "{err:?}"
    );
    assert_eq!(heartbeat_code(&c, "n1", &first, &devices).await, Code::Ok);

    // A token bound to a name joins only that name.
    let bound = join_token(&c, "n3").await;
    let err = agent(&c)
        .join(join_request("n4", &bound, &["GPU-n4-0".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("\"n3\""), "{err:?}");
    agent(&c)
        .join(join_request("n3", &bound, &["GPU-n3-0".into()]))
        .await
        .unwrap();

    // The node itself may join again with its own credential; the old one is revoked.
    let again = agent(&c)
        .join(authed(join_request("n1", "", &devices), &first))
        .await
        .unwrap()
        .into_inner()
        .credential;
    assert_eq!(
        heartbeat_code(&c, "n1", &first, &devices).await,
        Code::Unauthenticated
    );
    assert_eq!(heartbeat_code(&c, "n1", &again, &devices).await, Code::Ok);

    // Or an admin gives leave; the unused fresh token then joins it, revoking `again`.
    c.rejoin_node("n1").await;
    let third = agent(&c)
        .join(join_request("n1", &fresh, &devices))
        .await
        .unwrap()
        .into_inner()
        .credential;
    assert_eq!(
        heartbeat_code(&c, "n1", &again, &devices).await,
        Code::Unauthenticated
    );
    assert_eq!(heartbeat_code(&c, "n1", &third, &devices).await, Code::Ok);
    // The leave was used up: another token cannot take the node over again.
    let other = join_token(&c, "").await;
    let err = agent(&c)
        .join(join_request("n1", &other, &devices))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Only admins give leave.
    let user = c.user("acme", "alice").await;
    let err = c
        .admin_client()
        .rejoin_node(authed(
            v1::RejoinNodeRequest {
                node: "n1".into(),
                ttl: None,
            },
            &user,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
}

#[tokio::test]
async fn a_token_for_several_nodes_joins_only_new_ones_and_no_more_than_asked() {
    let c = centre(30_000).await;
    let (_, _) = c.join("old", 1).await;
    let token = c
        .admin_client()
        .create_join_token(authed(
            v1::CreateJoinTokenRequest {
                uses: 3,
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.uses, 3);
    // An existing node is never taken over, and the attempt uses nothing up.
    let err = agent(&c)
        .join(join_request("old", &token.token, &["GPU-old-0".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    for name in ["a", "b", "c"] {
        agent(&c)
            .join(join_request(name, &token.token, &[format!("GPU-{name}-0")]))
            .await
            .unwrap();
    }
    let err = agent(&c)
        .join(join_request("d", &token.token, &["GPU-d-0".into()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    // Bound tokens join once; absurd counts are refused with the field named.
    for (node, uses) in [("n9", 2), ("", 1001)] {
        let err = c
            .admin_client()
            .create_join_token(authed(
                v1::CreateJoinTokenRequest {
                    node: node.into(),
                    uses,
                    ..Default::default()
                },
                &c.admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("uses"), "{err:?}");
    }
}

#[tokio::test]
async fn node_credentials_are_listed_and_a_revoked_one_is_refused() {
    let c = centre(30_000).await;
    let (cred, devices) = c.join("n1", 1).await;
    let listed = c
        .admin_client()
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                node: "n1".into(),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .credentials;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].kind, "node");
    assert_eq!(listed[0].node, "n1");
    assert!(!listed[0].revoked);

    // Users see their own credentials only: no node's, no other user's.
    let user = c.user("acme", "alice").await;
    c.user("globex", "gina").await;
    let own = c
        .admin_client()
        .list_credentials(authed(v1::ListCredentialsRequest::default(), &user))
        .await
        .unwrap()
        .into_inner()
        .credentials;
    assert!(!own.is_empty());
    assert!(
        own.iter()
            .all(|k| k.kind == "user" && k.user == "alice" && k.org == "acme"),
        "{own:?}"
    );
    let err = c
        .admin_client()
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                node: "n1".into(),
                ..Default::default()
            },
            &user,
        ))
        .await;
    match err {
        Err(e) => assert_eq!(e.code(), Code::PermissionDenied, "{e:?}"),
        Ok(r) => assert!(
            r.into_inner().credentials.is_empty(),
            "a user saw a node's credential"
        ),
    }

    c.admin_client()
        .revoke_token(authed(
            v1::RevokeTokenRequest {
                token_id: listed[0].id.clone(),
            },
            &c.admin,
        ))
        .await
        .unwrap();
    assert_eq!(
        heartbeat_code(&c, "n1", &cred, &devices).await,
        Code::Unauthenticated
    );
    let all = c
        .admin_client()
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                node: "n1".into(),
                all: true,
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .credentials;
    assert!(
        all.iter().any(|k| k.id == listed[0].id && k.revoked),
        "{all:?}"
    );
}

#[tokio::test]
async fn user_names_are_per_org_and_org_admins_revoke_only_their_own_users_tokens() {
    let c = centre(30_000).await;
    let acme_admin = c.member("acme", "boss", v1::Role::OrgAdmin).await;
    let _ = c.member("globex", "gboss", v1::Role::OrgAdmin).await;
    // The same name in two orgs: both exist, so creating one reveals nothing of the other.
    c.user("acme", "alice").await;
    c.user("globex", "alice").await;
    let err = c
        .admin_client()
        .create_user(authed(
            v1::CreateUserRequest {
                org: "acme".into(),
                name: "alice".into(),
                role: 0,
            },
            &acme_admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    // An org-admin may create a user whose name exists only in another org.
    c.user("globex", "carol").await;
    c.admin_client()
        .create_user(authed(
            v1::CreateUserRequest {
                org: "acme".into(),
                name: "carol".into(),
                role: 0,
            },
            &acme_admin,
        ))
        .await
        .unwrap();

    // Tokens: the org-admin revokes its own user's, and cannot tell others' from none.
    let mine = c
        .admin_client()
        .create_token(authed(
            v1::CreateTokenRequest {
                user: "alice".into(),
                ..Default::default()
            },
            &acme_admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let theirs = c
        .admin_client()
        .create_token(authed(
            v1::CreateTokenRequest {
                user: "alice".into(),
                org: "globex".into(),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    c.admin_client()
        .revoke_token(authed(
            v1::RevokeTokenRequest {
                token_id: mine.token_id.clone(),
            },
            &acme_admin,
        ))
        .await
        .unwrap();
    let whoami = v1::identity_client::IdentityClient::new(c.channel.clone())
        .who_am_i(authed(v1::WhoAmIRequest {}, &mine.token))
        .await
        .unwrap_err();
    assert_eq!(whoami.code(), Code::Unauthenticated);

    let foreign = c
        .admin_client()
        .revoke_token(authed(
            v1::RevokeTokenRequest {
                token_id: theirs.token_id.clone(),
            },
            &acme_admin,
        ))
        .await
        .unwrap_err();
    let missing = c
        .admin_client()
        .revoke_token(authed(
            v1::RevokeTokenRequest {
                token_id: "00000000-0000-4000-8000-000000000000".into(),
            },
            &acme_admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), missing.code(), "{foreign:?} / {missing:?}");
    assert_eq!(
        foreign.message().replace(&theirs.token_id, "ID"),
        missing
            .message()
            .replace("00000000-0000-4000-8000-000000000000", "ID")
    );
    // globex's alice still works.
    v1::identity_client::IdentityClient::new(c.channel.clone())
        .who_am_i(authed(v1::WhoAmIRequest {}, &theirs.token))
        .await
        .unwrap();
}

fn with_dataset(name: &str, rw: bool) -> v1::SubmitJobRequest {
    v1::SubmitJobRequest {
        class: "gpu".into(),
        count: 1,
        image: "busybox".into(),
        command: vec!["sleep".into(), "600".into()],
        datasets: vec![v1::DatasetMount {
            name: name.into(),
            read_write: rw,
        }],
        ..Default::default()
    }
}

async fn grant(c: &Centre, org: &str, name: &str, rw: bool) {
    c.admin_client()
        .grant_dataset(authed(
            v1::GrantDatasetRequest {
                org: org.into(),
                name: name.into(),
                read_write: rw,
            },
            &c.admin,
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn datasets_are_mounted_only_by_orgs_granted_them() {
    let c = centre(30_000).await;
    let acme = c.user("acme", "alice").await;
    let globex = c.user("globex", "gina").await;
    grant(&c, "acme", "acmedata", true).await;
    grant(&c, "globex", "shared", false).await;

    let err = jobs(&c)
        .submit_job(authed(with_dataset("acmedata", false), &globex))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("\"acmedata\"") && err.message().contains("not granted"),
        "{err:?}"
    );
    let err = jobs(&c)
        .submit_job(authed(with_dataset("shared", true), &globex))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("read-only"), "{err:?}");

    // Listing grants: each org sees its own only.
    let seen = c
        .admin_client()
        .list_dataset_grants(authed(v1::ListDatasetGrantsRequest::default(), &globex))
        .await
        .unwrap()
        .into_inner()
        .grants;
    assert_eq!(
        seen.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["shared"]
    );

    // Granted: it reaches the node. Revoked: the job is stopped, and the name never again
    // reaches a node.
    let (cred, devices) = c.join("n1", 1).await;
    let (job, known) = c
        .queue_and_place_with(&acme, &cred, &devices, with_dataset("acmedata", true))
        .await;
    let r = agent(&c)
        .heartbeat(authed(heartbeat("n1", 0, &devices, vec![]), &cred))
        .await
        .unwrap()
        .into_inner();
    let d = r.jobs.iter().find(|d| d.job_id == job.id).unwrap();
    assert_eq!(d.datasets.len(), 1);
    assert!(d.datasets[0].read_write);
    c.admin_client()
        .revoke_dataset(authed(
            v1::RevokeDatasetRequest {
                org: "acme".into(),
                name: "acmedata".into(),
            },
            &c.admin,
        ))
        .await
        .unwrap();
    let mut known = known;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // The node runs the job until it is told to stop it.
        let running = vec![v1::ObservedJob {
            job_id: job.id.clone(),
            phase: v1::JobPhase::Running as i32,
            generation: known,
            ..Default::default()
        }];
        let r = agent(&c)
            .heartbeat(authed(heartbeat("n1", known, &devices, running), &cred))
            .await
            .unwrap()
            .into_inner();
        known = r.generation;
        if !r.jobs.iter().any(|d| d.job_id == job.id) {
            break;
        }
        for d in &r.jobs {
            assert!(
                d.datasets.is_empty(),
                "a revoked grant reached the node: {d:?}"
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was not stopped"
        );
    }
    let got = jobs(&c)
        .get_job(authed(v1::GetJobRequest { id: job.id.clone() }, &acme))
        .await
        .unwrap()
        .into_inner();
    assert!(
        got.reason.contains("no longer granted"),
        "the job says why: {got:?}"
    );
}

#[tokio::test]
async fn huge_specs_are_refused_and_never_jam_a_nodes_heartbeat() {
    let c = centre(30_000).await;
    let alice = c.user("acme", "alice").await;
    let gina = c.user("globex", "gina").await;
    let big = |kib: usize| v1::SubmitJobRequest {
        class: "gpu".into(),
        count: 1,
        image: "busybox".into(),
        command: vec!["sleep".into(), "600".into()],
        env: HashMap::from([("BLOB".to_owned(), "x".repeat(kib * 1024))]),
        ..Default::default()
    };
    let err = jobs(&c)
        .submit_job(authed(big(70), &alice))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("65536 bytes"), "{err:?}");

    // The admin allows 1 MiB specs; five of them would be over 4 MiB in one reply.
    c.admin_client()
        .set_policy(authed(
            v1::SetPolicyRequest {
                policy: Some(v1::SchedulingPolicy {
                    max_job_spec_bytes: 1024 * 1024,
                    ..Default::default()
                }),
                fields: vec!["max_job_spec_bytes".into()],
            },
            &c.admin,
        ))
        .await
        .unwrap();
    let (cred, devices) = c.join("n1", 6).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let j = jobs(&c)
            .submit_job(authed(big(1000), &alice))
            .await
            .unwrap()
            .into_inner();
        ids.push(j.id);
    }
    let small = jobs(&c)
        .submit_job(authed(big(1), &gina))
        .await
        .unwrap()
        .into_inner();
    ids.push(small.id.clone());

    // The agent takes the specs a few at a time, reporting what it started; every reply
    // fits, and every job arrives whole exactly once.
    let mut running: HashMap<String, v1::DesiredJob> = HashMap::new();
    let mut known = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while running.len() < ids.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} specs arrived",
            running.len(),
            ids.len()
        );
        let observed = running
            .keys()
            .map(|id| v1::ObservedJob {
                job_id: id.clone(),
                phase: v1::JobPhase::Running as i32,
                generation: known,
                ..Default::default()
            })
            .collect();
        let r = agent(&c)
            .heartbeat(authed(heartbeat("n1", known, &devices, observed), &cred))
            .await
            .expect("every heartbeat reply fits in a message")
            .into_inner();
        for d in &r.jobs {
            if d.spec_omitted {
                continue;
            }
            assert!(
                !running.contains_key(&d.job_id),
                "{} sent twice in full",
                d.job_id
            );
            assert_eq!(d.image, "busybox");
            running.insert(d.job_id.clone(), d.clone());
        }
        if !r.more {
            known = r.generation;
        }
    }
    assert_eq!(running[&small.id].env["BLOB"].len(), 1024);
    for id in &ids[..5] {
        assert_eq!(running[id].env["BLOB"].len(), 1000 * 1024);
    }
}

#[tokio::test]
async fn log_followers_are_capped_per_user_and_their_places_are_given_back() {
    let c = centre(30_000).await;
    let alice = c.user("acme", "alice").await;
    let gina = c.user("globex", "gina").await;
    // Jobs not started yet (the node never heartbeats): followers wait for their output.
    c.join("n1", 2).await;
    let submit = |token: &str| {
        let mut client = jobs(&c);
        let req = authed(
            v1::SubmitJobRequest {
                class: "gpu".into(),
                count: 1,
                image: "busybox".into(),
                command: vec!["true".into()],
                ..Default::default()
            },
            token,
        );
        async move { client.submit_job(req).await.unwrap().into_inner() }
    };
    let mine = submit(&alice).await;
    let theirs = submit(&gina).await;
    let follow = |token: &str, job: &str| {
        let mut client = jobs(&c);
        let req = authed(
            v1::StreamLogsRequest {
                job_id: job.into(),
                follow: true,
                ..Default::default()
            },
            token,
        );
        async move { client.stream_logs(req).await }
    };
    let mut streams = Vec::new();
    for _ in 0..berth_scheduler::engine::MAX_FOLLOWERS_PER_USER {
        streams.push(follow(&alice, &mine.id).await.unwrap());
    }
    let err = follow(&alice, &mine.id).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.metadata().contains_key("retry-after-ms"));
    // Another tenant is not affected.
    let _gina = follow(&gina, &theirs.id).await.unwrap();

    // Leaving gives the places back.
    drop(streams);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match follow(&alice, &mine.id).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "places were not given back"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn one_orgs_flood_is_refused_while_another_org_is_served() {
    let c = centre_with(30_000, |config| {
        config.limits.per_org = berth_scheduler::ratelimit::Rate {
            per_second: 20.0,
            burst: 20.0,
        };
    })
    .await;
    let alice = c.user("acme", "alice").await;
    let gina = c.user("globex", "gina").await;
    let list = |token: &str| {
        let mut client = jobs(&c);
        let req = authed(v1::ListJobsRequest::default(), token);
        async move { client.list_jobs(req).await }
    };
    let mut refused = 0;
    let mut hint = None;
    for _ in 0..100 {
        if let Err(e) = list(&alice).await {
            assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
            hint = e.metadata().get("retry-after-ms").cloned();
            refused += 1;
        }
    }
    assert!(refused >= 50, "only {refused} of 100 refused");
    assert!(hint.is_some(), "a refusal carries a retry hint");
    // globex is served in full, during and after acme's flood.
    for _ in 0..15 {
        list(&gina).await.expect("the other org is not limited");
    }
    // Admins are not limited by orgs' buckets.
    for _ in 0..30 {
        list(&c.admin).await.expect("admins are not rate-limited");
    }
}

/// A listing is charged by its size: an org pulling megabytes a call runs out of calls
/// correspondingly sooner, while small listings cost one call each.
#[tokio::test]
async fn large_listings_are_charged_by_their_size() {
    let c = centre_with(30_000, |config| {
        config.limits.per_org = berth_scheduler::ratelimit::Rate {
            per_second: 0.5,
            burst: 20.0,
        };
    })
    .await;
    let alice = c.user("acme", "alice").await;
    let gina = c.user("globex", "gina").await;
    c.join("n1", 1).await;
    // Eight jobs with 60 KiB environments (8 of acme's 20 calls): one page of them is
    // about 480 KiB, the price of seven more calls.
    for i in 0..8 {
        jobs(&c)
            .submit_job(authed(
                v1::SubmitJobRequest {
                    class: "gpu".into(),
                    count: 1,
                    image: "busybox".into(),
                    command: vec!["true".into()],
                    name: format!("big-{i}"),
                    env: HashMap::from([("BLOB".to_owned(), "x".repeat(60 * 1024))]),
                    ..Default::default()
                },
                &alice,
            ))
            .await
            .expect("submitted");
    }
    let list = |token: &str| {
        let mut client = jobs(&c);
        let req = authed(v1::ListJobsRequest::default(), token);
        async move { client.list_jobs(req).await }
    };
    // 12 calls left: the first page leaves 4, the second is let in on them and leaves a
    // debt, the third is refused (counted by calls alone, 12 pages would pass).
    for _ in 0..2 {
        let page = list(&alice).await.expect("within the burst").into_inner();
        assert_eq!(page.jobs.len(), 8);
    }
    let err = list(&alice)
        .await
        .expect_err("the third large page is over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Small pages cost one call each: globex's 15 all pass within its burst.
    for _ in 0..15 {
        list(&gina).await.expect("small listings cost a call each");
    }
}

async fn node_state(c: &Centre, node: &str) -> v1::NodeState {
    let nodes = v1::capacity_client::CapacityClient::new(c.channel.clone())
        .list_nodes(authed(v1::ListNodesRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .nodes;
    let n = nodes.iter().find(|n| n.name == node).unwrap();
    v1::NodeState::try_from(n.state).unwrap()
}

#[tokio::test]
async fn a_node_that_never_takes_its_desired_work_does_not_look_healthy() {
    let lease_ms = 1_000;
    let c = centre(lease_ms).await;
    let alice = c.user("acme", "alice").await;
    let (cred, devices) = c.join("n1", 1).await;
    let (job, current) = c.queue_and_place(&alice, &cred, &devices).await;
    assert!(current > 0);
    // The agent answers its lease but never gets past generation 0 (its replies fail to
    // apply): within two leases the node is unreachable, and not ready.
    let started = tokio::time::Instant::now();
    loop {
        let mut hb = heartbeat("n1", 0, &devices, vec![]);
        hb.wait = None;
        agent(&c).heartbeat(authed(hb, &cred)).await.unwrap();
        if node_state(&c, "n1").await == v1::NodeState::Unreachable {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "a node stuck behind its desired work still looks {:?}",
            node_state(&c, "n1").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(2 * lease_ms as u64 - 200));
    // Once it takes its work (reporting the job running), it is ready again.
    let observed = vec![v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Running as i32,
        generation: current,
        ..Default::default()
    }];
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut known = current;
    loop {
        let mut hb = heartbeat("n1", known, &devices, observed.clone());
        hb.wait = None;
        known = agent(&c)
            .heartbeat(authed(hb, &cred))
            .await
            .unwrap()
            .into_inner()
            .generation;
        if node_state(&c, "n1").await == v1::NodeState::Ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node did not come back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
