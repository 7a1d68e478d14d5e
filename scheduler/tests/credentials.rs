//! Credentials under attack over real gRPC: forged JWTs (alg `none`, other algorithms and
//! keys, tampered claims with and without the scheduler's own key, expiry, another
//! issuer), revoked user tokens and node credentials, and secrets used where another
//! kind belongs (a join token as a bearer token, a node credential as a join token).
//! A node credential on the user services and a user token on the agent service are in
//! the isolation matrix (`isolation.rs`).

mod common;

use berth_proto::time::{ms_to_ts, now_ms};
use berth_proto::v1;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

/// The scheduler's signing key in these tests, so that forgeries can use it too.
const KEY: &[u8] = b"isolation-tests-signing-key-0123456789abcdef";

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64url without padding, as JWTs use.
fn b64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn unb64(text: &str) -> Vec<u8> {
    let vals: Vec<u32> = text
        .bytes()
        .map(|c| B64.iter().position(|b| *b == c).expect("base64url") as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in vals.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn base64url_round_trips() {
    for s in ["", "a", "ab", "abc", "abcd", "{\"alg\":\"HS256\"}"] {
        assert_eq!(unb64(&b64(s.as_bytes())), s.as_bytes(), "{s}");
    }
    assert_eq!(b64(b"\xfb\xff"), "-_8");
}

/// A token's three parts, the claims decoded.
fn parts(token: &str) -> (String, Value, String) {
    let mut it = token.split('.');
    let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let claims = serde_json::from_slice(&unb64(p)).unwrap();
    (h.to_owned(), claims, s.to_owned())
}

fn signed(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// Calls a user service, the admin service and the agent service with `token`; the codes.
async fn codes(ch: &Channel, token: &str) -> Vec<(&'static str, Code)> {
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let who = v1::identity_client::IdentityClient::new(ch.clone())
        .who_am_i(authed(v1::WhoAmIRequest {}, token))
        .await
        .map(drop);
    let jobs = v1::jobs_client::JobsClient::new(ch.clone())
        .list_jobs(authed(v1::ListJobsRequest::default(), token))
        .await
        .map(drop);
    let orgs = v1::admin_client::AdminClient::new(ch.clone())
        .list_orgs(authed(v1::ListOrgsRequest {}, token))
        .await
        .map(drop);
    let mut hb = heartbeat("n1", 0, &["GPU-n1-0".into()], vec![]);
    hb.wait = None;
    let agent = v1::agent_client::AgentClient::new(ch.clone())
        .heartbeat(authed(hb, token))
        .await
        .map(drop);
    vec![
        ("Identity/WhoAmI", code(who)),
        ("Jobs/ListJobs", code(jobs)),
        ("Admin/ListOrgs", code(orgs)),
        ("Agent/Heartbeat", code(agent)),
    ]
}

#[tokio::test]
async fn forged_tokens_are_refused_by_every_service() {
    let c = centre_with(30_000, |config| config.signing_key = Some(KEY.to_vec())).await;
    c.join("n1", 1).await;
    let alice = c.user("acme", "alice").await;
    let (header, claims, signature) = parts(&alice);
    assert_eq!(claims["role"], "user", "{claims}");
    let (_, admin_claims, _) = parts(&c.admin);
    let as_admin = {
        let mut c = claims.clone();
        c["role"] = json!("admin");
        c
    };
    let as_other_user = {
        let mut c = claims.clone();
        c["sub"] = admin_claims["sub"].clone();
        c
    };
    let with = |field: &str, value: Value| {
        let mut c = claims.clone();
        c[field] = value;
        c
    };
    let now_s = now_ms() / 1000;
    let forgeries: Vec<(&str, String)> = vec![
        (
            "alg none, claims untouched",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &claims),
        ),
        (
            "alg none, role admin",
            unsigned(&json!({"alg": "none", "typ": "JWT"}), &as_admin),
        ),
        (
            "alg none with the original signature",
            format!(
                "{}.{}.{signature}",
                b64(br#"{"alg":"none"}"#),
                b64(claims.to_string().as_bytes())
            ),
        ),
        (
            "HS512 with the scheduler's key",
            signed(Algorithm::HS512, KEY, &claims),
        ),
        (
            "HS384 with the scheduler's key",
            signed(Algorithm::HS384, KEY, &claims),
        ),
        (
            "HS256 with another key",
            signed(
                Algorithm::HS256,
                b"another-key-another-key-another-key!",
                &claims,
            ),
        ),
        (
            "RS256 named, HS256 signature",
            format!(
                "{}.{}",
                b64(br#"{"alg":"RS256","typ":"JWT"}"#),
                alice.split_once('.').unwrap().1
            ),
        ),
        (
            "role admin, signature kept",
            format!(
                "{header}.{}.{signature}",
                b64(as_admin.to_string().as_bytes())
            ),
        ),
        (
            "role admin, re-signed with the scheduler's key",
            signed(Algorithm::HS256, KEY, &as_admin),
        ),
        (
            "the admin's subject on alice's token id, re-signed",
            signed(Algorithm::HS256, KEY, &as_other_user),
        ),
        (
            "expired, re-signed",
            signed(Algorithm::HS256, KEY, &with("exp", json!(now_s - 3600))),
        ),
        (
            "another issuer, re-signed",
            signed(Algorithm::HS256, KEY, &with("iss", json!("someone-else"))),
        ),
        (
            "a made-up token id, re-signed",
            signed(
                Algorithm::HS256,
                KEY,
                &with("jti", json!("00000000-0000-4000-8000-000000000009")),
            ),
        ),
        (
            "signature cut off",
            alice.rsplit_once('.').unwrap().0.into(),
        ),
        ("not a JWT", "eyJ.e30.x".into()),
    ];
    let mut failures = Vec::new();
    for (what, token) in &forgeries {
        for (rpc, code) in codes(&c.channel, token).await {
            if code != Code::Unauthenticated {
                failures.push(format!("{rpc} with {what}: {code:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Claims re-signed with the scheduler's own key pass the signature check and are
    // caught by the stored hash: a stolen key alone makes no credential.
    let err = v1::identity_client::IdentityClient::new(c.channel.clone())
        .who_am_i(authed(
            v1::WhoAmIRequest {},
            &signed(Algorithm::HS256, KEY, &as_admin),
        ))
        .await
        .unwrap_err();
    assert!(err.message().contains("revoked"), "{err:?}");
    // The genuine token still works (the forgeries were refused for what they are).
    let genuine = codes(&c.channel, &alice).await;
    assert_eq!(genuine[0].1, Code::Ok, "{genuine:?}");
}

#[tokio::test]
async fn a_revoked_user_token_is_refused_and_its_siblings_still_work() {
    let c = centre(30_000).await;
    let first = c.user("acme", "alice").await;
    let second = c
        .admin_client()
        .create_token(authed(
            v1::CreateTokenRequest {
                user: "alice".into(),
                ..Default::default()
            },
            &first,
        ))
        .await
        .unwrap()
        .into_inner();
    c.admin_client()
        .revoke_token(authed(
            v1::RevokeTokenRequest {
                token_id: second.token_id.clone(),
            },
            &first,
        ))
        .await
        .unwrap();
    for (rpc, code) in codes(&c.channel, &second.token).await {
        assert_eq!(code, Code::Unauthenticated, "{rpc}");
    }
    let err = v1::identity_client::IdentityClient::new(c.channel.clone())
        .who_am_i(authed(v1::WhoAmIRequest {}, &second.token))
        .await
        .unwrap_err();
    assert!(err.message().contains("revoked"), "{err:?}");
    assert_eq!(codes(&c.channel, &first).await[0].1, Code::Ok);
}

async fn node_credential_id(c: &Centre, node: &str) -> String {
    let listed = c
        .admin_client()
        .list_credentials(authed(
            v1::ListCredentialsRequest {
                node: node.into(),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .credentials;
    assert_eq!(listed.len(), 1, "{listed:?}");
    listed[0].id.clone()
}

#[tokio::test]
async fn a_revoked_node_credential_can_neither_report_nor_log_nor_rejoin() {
    let c = centre(30_000).await;
    let alice = c.user("acme", "alice").await;
    let (cred, devices) = c.join("n1", 1).await;
    let (job, known) = c.queue_and_place(&alice, &cred, &devices).await;
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    let running = v1::ObservedJob {
        job_id: job.id.clone(),
        phase: v1::JobPhase::Running as i32,
        generation: known,
        started_at: Some(ms_to_ts(now_ms())),
        ..Default::default()
    };
    agent
        .report_job(authed(running.clone(), &cred))
        .await
        .unwrap();
    let id = node_credential_id(&c, "n1").await;
    c.admin_client()
        .revoke_token(authed(v1::RevokeTokenRequest { token_id: id }, &c.admin))
        .await
        .unwrap();

    let exited = v1::ObservedJob {
        phase: v1::JobPhase::Exited as i32,
        exit_code: Some(137),
        ..running.clone()
    };
    let err = agent.report_job(authed(exited, &cred)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "ReportJob: {err:?}");
    let err = agent
        .push_logs(authed(
            v1::PushLogsRequest {
                job_id: job.id.clone(),
                chunks: vec![v1::LogChunk {
                    seq: 1,
                    stream: v1::log_chunk::Stream::Stdout as i32,
                    data: b"after revocation\n".to_vec(),
                    time: None,
                }],
            },
            &cred,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "PushLogs: {err:?}");
    let rejoin = v1::JoinRequest {
        join_token: String::new(),
        node: "n1".into(),
        site: "s1".into(),
        hostname: "n1".into(),
        devices: reports(&devices),
        agent_version: "test".into(),
        runtime: "process".into(),
    };
    let err = agent.join(authed(rejoin.clone(), &cred)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "Join: {err:?}");
    for (rpc, code) in codes(&c.channel, &cred).await {
        assert_eq!(code, Code::Unauthenticated, "{rpc}");
    }

    // Nothing it sent took effect: the job still runs, with no logs.
    let got = v1::jobs_client::JobsClient::new(c.channel.clone())
        .get_job(authed(v1::GetJobRequest { id: job.id.clone() }, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.state, v1::JobState::Running as i32, "{got:?}");
    let mut logs = v1::jobs_client::JobsClient::new(c.channel.clone())
        .stream_logs(authed(
            v1::StreamLogsRequest {
                job_id: job.id.clone(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(logs.message().await.unwrap().is_none(), "logs were stored");
}

#[tokio::test]
async fn secrets_of_one_kind_do_not_pass_for_another() {
    let c = centre(30_000).await;
    let alice = c.user("acme", "alice").await;
    let (cred, devices) = c.join("n1", 1).await;
    let join = c
        .admin_client()
        .create_join_token(authed(v1::CreateJoinTokenRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .token;
    // A join token is no bearer token, anywhere.
    for (rpc, code) in codes(&c.channel, &join).await {
        assert_eq!(code, Code::Unauthenticated, "{rpc} with a join token");
    }
    // Neither a node's credential nor a user's token is a join token.
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    for (what, secret) in [("a node credential", &cred), ("a user token", &alice)] {
        let err = agent
            .join(v1::JoinRequest {
                join_token: secret.clone(),
                node: "n2".into(),
                site: "s1".into(),
                hostname: "n2".into(),
                devices: reports(&["GPU-n2-0".into()]),
                agent_version: "test".into(),
                runtime: "process".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
    }
    // A user's token presented to re-join a node gets no credential for it.
    let err = agent
        .join(authed(
            v1::JoinRequest {
                join_token: String::new(),
                node: "n1".into(),
                site: "s1".into(),
                hostname: "n1".into(),
                devices: reports(&devices),
                agent_version: "test".into(),
                runtime: "process".into(),
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::Unauthenticated | Code::PermissionDenied),
        "{err:?}"
    );
    // The join token was not used up by any of that.
    agent
        .join(v1::JoinRequest {
            join_token: join,
            node: "n2".into(),
            site: "s1".into(),
            hostname: "n2".into(),
            devices: reports(&["GPU-n2-0".into()]),
            agent_version: "test".into(),
            runtime: "process".into(),
        })
        .await
        .unwrap();
}
