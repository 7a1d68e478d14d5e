//! The tenant isolation matrix. Every RPC of every service in `berth.proto` is tried by
//! each role that is not org A's own (org B's user and org-admin, another node's agent,
//! no one at all) against org A's objects, and by a centre admin; each answer is checked
//! for the expected outcome and for nothing of org A leaked: a refusal must read the same
//! as one about an object that does not exist, and neither an error nor an answer may
//! carry org A's names, ids, job names, env secrets, logs or ledger notes. Then the same
//! for org B's listings, the portal's pages and actions, and `/metrics`.

mod common;

use berth_proto::time::{ms_to_dur, ms_to_ts, now_ms};
use berth_proto::v1;
use common::*;
use prost::Message;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tonic::{Code, Request, Status};

/// Who makes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A user of org B.
    User,
    /// An org-admin of org B.
    OrgAdmin,
    /// A centre admin.
    Admin,
    /// The agent of node `n2` (org A's jobs run on `n1`).
    Agent,
    /// No credential at all.
    Anonymous,
}

const ROLES: [Role; 5] = [
    Role::User,
    Role::OrgAdmin,
    Role::Admin,
    Role::Agent,
    Role::Anonymous,
];

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::User => "org B's user",
            Role::OrgAdmin => "org B's org-admin",
            Role::Admin => "a centre admin",
            Role::Agent => "node n2's agent",
            Role::Anonymous => "no credential",
        }
    }
}

/// What a call should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An answer.
    Served,
    /// A refusal with this code.
    Refused(Code),
}

const OK: Expect = Expect::Served;
const PD: Expect = Expect::Refused(Code::PermissionDenied);
const NF: Expect = Expect::Refused(Code::NotFound);
const UA: Expect = Expect::Refused(Code::Unauthenticated);
const FP: Expect = Expect::Refused(Code::FailedPrecondition);
const IA: Expect = Expect::Refused(Code::InvalidArgument);

/// Every RPC of the API (`Service/Method`) and its outcome for each of [`ROLES`]:
/// org B's user, org B's org-admin, a centre admin, node `n2`'s agent, no credential.
/// Requests name org A's objects wherever a request names anything. The admin's column
/// runs last, in this order, on the same centre (its changes are allowed to stick).
const MATRIX: &[(&str, [Expect; 5])] = &[
    ("Identity/WhoAmI", [OK, OK, OK, OK, UA]),
    ("Identity/CreateWebLogin", [OK, OK, OK, PD, UA]),
    ("Capacity/ListSites", [OK, OK, OK, PD, UA]),
    ("Capacity/ListClasses", [OK, OK, OK, PD, UA]),
    ("Capacity/ListNodes", [OK, OK, OK, PD, UA]),
    ("Capacity/Availability", [OK, OK, OK, PD, UA]),
    ("Reservations/CreateReservation", [OK, OK, OK, PD, UA]),
    ("Reservations/ListReservations", [OK, OK, OK, PD, UA]),
    ("Reservations/GetReservation", [NF, NF, OK, PD, UA]),
    ("Jobs/SubmitJob", [NF, NF, PD, PD, UA]),
    ("Jobs/ListJobs", [OK, OK, OK, PD, UA]),
    ("Jobs/GetJob", [NF, NF, OK, PD, UA]),
    ("Jobs/StreamLogs", [NF, NF, OK, PD, UA]),
    ("Jobs/CancelJob", [NF, NF, OK, PD, UA]),
    ("Reservations/CancelReservation", [NF, NF, OK, PD, UA]),
    ("Usage/GetUsage", [NF, NF, OK, PD, UA]),
    ("Usage/ListBudgets", [NF, NF, OK, PD, UA]),
    ("Usage/ListLedger", [NF, NF, OK, PD, UA]),
    ("Admin/CreateSite", [PD, PD, OK, PD, UA]),
    ("Admin/CreateClass", [PD, PD, OK, PD, UA]),
    ("Admin/CreateOrg", [PD, PD, OK, PD, UA]),
    ("Admin/ListOrgs", [OK, OK, OK, PD, UA]),
    ("Admin/CreateUser", [PD, PD, OK, PD, UA]),
    ("Admin/ListUsers", [NF, NF, OK, PD, UA]),
    ("Admin/CreateToken", [NF, NF, OK, PD, UA]),
    ("Admin/RevokeToken", [NF, NF, OK, NF, UA]),
    ("Admin/CreateJoinToken", [PD, PD, OK, PD, UA]),
    ("Admin/RejoinNode", [PD, PD, OK, PD, UA]),
    ("Admin/ListCredentials", [NF, NF, OK, PD, UA]),
    ("Admin/GrantDataset", [PD, PD, OK, PD, UA]),
    ("Admin/RevokeDataset", [PD, PD, OK, PD, UA]),
    ("Admin/ListDatasetGrants", [NF, NF, OK, PD, UA]),
    ("Admin/ClearDevice", [PD, PD, FP, PD, UA]),
    ("Admin/DrainNode", [PD, PD, OK, PD, UA]),
    ("Admin/UndrainNode", [PD, PD, OK, PD, UA]),
    ("Admin/MarkNodeDown", [PD, PD, OK, PD, UA]),
    ("Admin/ListAudit", [PD, PD, OK, PD, UA]),
    ("Admin/SetBudget", [PD, PD, OK, PD, UA]),
    ("Admin/TopUpBudget", [PD, PD, OK, PD, UA]),
    ("Admin/DeleteBudget", [PD, PD, OK, PD, UA]),
    ("Admin/SetOrgWeight", [PD, PD, OK, PD, UA]),
    ("Admin/SetOrgOverage", [PD, PD, OK, PD, UA]),
    ("Projects/ListProjects", [OK, OK, OK, PD, UA]),
    ("Projects/GetProject", [NF, NF, OK, PD, UA]),
    ("Projects/RequestProject", [PD, OK, OK, PD, UA]),
    ("Projects/CreateProject", [PD, PD, OK, PD, UA]),
    // The admin's calls come after the others': approving an active project is refused,
    // revoking it works, and closing it then is refused.
    ("Projects/ApproveProject", [PD, PD, FP, PD, UA]),
    ("Projects/RevokeProject", [PD, PD, OK, PD, UA]),
    ("Projects/CloseProject", [PD, PD, FP, PD, UA]),
    // Another org's project (the admin's org is the centre's) is not known to the caller.
    ("Projects/SetDefaultProject", [IA, IA, IA, PD, UA]),
    ("Admin/SetClassRate", [PD, PD, OK, PD, UA]),
    ("Admin/GetPolicy", [OK, OK, OK, PD, UA]),
    ("Admin/SetPolicy", [PD, PD, OK, PD, UA]),
    ("Admin/GetRetention", [PD, PD, OK, PD, UA]),
    ("Admin/SetRetention", [PD, PD, OK, PD, UA]),
    ("Admin/GetStatus", [PD, PD, OK, PD, UA]),
    ("Billing/SetPrice", [PD, PD, OK, PD, UA]),
    ("Billing/ListPrices", [OK, OK, OK, PD, UA]),
    ("Billing/SetDiscount", [PD, PD, OK, PD, UA]),
    ("Billing/ListDiscounts", [NF, NF, OK, PD, UA]),
    ("Billing/GenerateInvoices", [PD, PD, OK, PD, UA]),
    ("Billing/ListInvoices", [NF, NF, OK, PD, UA]),
    ("Billing/GetInvoice", [NF, NF, OK, PD, UA]),
    ("Billing/SetInvoiceState", [PD, PD, OK, PD, UA]),
    ("Billing/MonthlyReport", [PD, PD, OK, PD, UA]),
    ("Agent/Join", [UA, UA, UA, UA, UA]),
    ("Agent/Heartbeat", [PD, PD, PD, PD, UA]),
    ("Agent/Heartbeats", [PD, PD, PD, PD, UA]),
    ("Agent/ReportJob", [PD, PD, PD, OK, UA]),
    ("Agent/PushLogs", [PD, PD, PD, NF, UA]),
    ("Identity/SetLanguage", [OK, OK, OK, PD, UA]),
    (
        "Notifications/GetNotificationSettings",
        [OK, OK, OK, PD, UA],
    ),
    (
        "Notifications/SetNotificationSettings",
        [OK, OK, OK, PD, UA],
    ),
    ("Notifications/ListNotifications", [OK, OK, OK, PD, UA]),
    ("Notifications/ListWebhooks", [PD, NF, OK, PD, UA]),
    ("Notifications/AddWebhook", [PD, PD, OK, PD, UA]),
    ("Notifications/RemoveWebhook", [PD, PD, OK, PD, UA]),
];

/// The objects a request names: org A's, or ones that do not exist.
#[derive(Debug, Clone)]
struct Targets {
    org: String,
    user: String,
    job: String,
    reservation: String,
    token_id: String,
    node: String,
    device: String,
    dataset: String,
    project: String,
    invoice: String,
    webhook: String,
}

impl Targets {
    /// Objects of the same kinds that do not exist.
    fn absent() -> Self {
        Targets {
            org: "nowhere".into(),
            user: "nobody".into(),
            job: "00000000-0000-4000-8000-000000000001".into(),
            reservation: "00000000-0000-4000-8000-000000000002".into(),
            token_id: "00000000-0000-4000-8000-000000000003".into(),
            node: "n9".into(),
            device: "GPU-n9-0".into(),
            dataset: "nodata".into(),
            project: "00000000-0000-4000-8000-000000000004".into(),
            invoice: "00000000-0000-4000-8000-000000000005".into(),
            webhook: "wh-000000000000".into(),
        }
    }

    /// The names and ids a request carries, longest first (so that a name inside
    /// another is replaced after it).
    fn values(&self) -> Vec<&str> {
        let mut v = vec![
            self.org.as_str(),
            &self.user,
            &self.job,
            &self.reservation,
            &self.token_id,
            &self.node,
            &self.device,
            &self.dataset,
            &self.project,
            &self.invoice,
            &self.webhook,
        ];
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v
    }

    /// `text` with every name and id of these targets replaced by `<target>`: what a
    /// refusal may echo of the caller's own request.
    fn blank(&self, text: &str) -> String {
        self.values()
            .into_iter()
            .fold(text.to_owned(), |t, v| t.replace(v, "<target>"))
    }
}

/// Org A's secrets: none may reach anyone outside org A but admins.
const JOB_NAME: &str = "lunar-lander-train";
const ENV_SECRET: &str = "s3cr3t-0f-the-first-0rg";
const LOG_LINE: &str = "first-org-log-line-2718";
const TOPUP_NOTE: &str = "first-org-topup-note";
const PROJECT_TITLE: &str = "acme-hydrogen-digital-twin";
const ORG_A: &str = "acme";
const ORG_B: &str = "globex";
const ALICE_EMAIL: &str = "alice-private@acme.test";
const HOOK_URL: &str = "http://127.0.0.1:9/acme-private-hook";

/// One centre with org A's objects in place and org B's callers.
struct World {
    c: Centre,
    /// Org A's user and org-admin.
    alice: String,
    /// Org B's callers: user, org-admin; node n2's agent.
    gina: String,
    gus: String,
    n2: String,
    /// Node n1's credential (org A's jobs run there).
    n1: String,
    /// Org A's objects.
    a: Targets,
    /// Org A's finished job (usage, ledger).
    done_job: String,
    /// Everything of org A that must not leak: names, ids, secrets.
    markers: Vec<String>,
    /// Hours from now where the next reservation starts (each its own window).
    next_start_h: AtomicI64,
}

/// A user with `role` in `org` (the org is created if needed); returns the token and id.
async fn member(c: &Centre, org: &str, name: &str, role: v1::Role) -> (String, String) {
    let mut adm = c.admin_client();
    let _ = adm
        .create_org(authed(
            v1::CreateOrgRequest {
                name: org.into(),
                description: String::new(),
            },
            &c.admin,
        ))
        .await;
    let r = adm
        .create_user(authed(
            v1::CreateUserRequest {
                org: org.into(),
                name: name.into(),
                role: role as i32,
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    (r.token, r.user.unwrap().id)
}

fn agent_client(c: &Centre) -> v1::agent_client::AgentClient<tonic::transport::Channel> {
    v1::agent_client::AgentClient::new(c.channel.clone())
}

fn jobs_client(c: &Centre) -> v1::jobs_client::JobsClient<tonic::transport::Channel> {
    v1::jobs_client::JobsClient::new(c.channel.clone())
}

fn observed(job: &str, phase: v1::JobPhase, exit: Option<i32>) -> v1::ObservedJob {
    v1::ObservedJob {
        job_id: job.into(),
        phase: phase as i32,
        exit_code: exit,
        started_at: Some(ms_to_ts(now_ms())),
        ..Default::default()
    }
}

/// The centre: org A (`acme`: alice, org-admin aurelio) with a future reservation, a
/// running job on `n1` with an env secret and logs, a finished job, a budget with a
/// top-up, a dataset grant and a spare token; org B (`globex`: gina, org-admin gus) with
/// a job of its own; node `n2` joined after org A's jobs were placed.
async fn world() -> World {
    let c = centre_with(30_000, |config| {
        config.web_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (alice, alice_id) = member(&c, ORG_A, "alice", v1::Role::User).await;
    let (_aurelio, aurelio_id) = member(&c, ORG_A, "aurelio", v1::Role::OrgAdmin).await;
    let (gina, _) = member(&c, ORG_B, "gina", v1::Role::User).await;
    let (gus, _) = member(&c, ORG_B, "gus", v1::Role::OrgAdmin).await;
    // Org A is told of its jobs' ends by mail and webhook (neither is reachable: the
    // deliveries stay in the outbox, for the listings to show or hide).
    let notify = v1::notifications_client::NotificationsClient::new(c.channel.clone());
    notify
        .clone()
        .set_notification_settings(authed(
            v1::SetNotificationSettingsRequest {
                email: ALICE_EMAIL.into(),
                events: vec!["job-end".into()],
                fields: vec!["email".into(), "events".into()],
                clear: false,
            },
            &alice,
        ))
        .await
        .unwrap();
    let hook = notify
        .clone()
        .add_webhook(authed(
            v1::AddWebhookRequest {
                org: ORG_A.into(),
                url: HOOK_URL.into(),
                events: vec![],
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut adm = c.admin_client();
    adm.set_budget(authed(
        v1::SetBudgetRequest {
            org: ORG_A.into(),
            class: "gpu".into(),
            hours: Some(1000.0),
            period: "month".into(),
            ..Default::default()
        },
        &c.admin,
    ))
    .await
    .unwrap();
    adm.top_up_budget(authed(
        v1::TopUpBudgetRequest {
            org: ORG_A.into(),
            class: "gpu".into(),
            hours: 5.0,
            note: TOPUP_NOTE.into(),
        },
        &c.admin,
    ))
    .await
    .unwrap();
    adm.grant_dataset(authed(
        v1::GrantDatasetRequest {
            org: ORG_A.into(),
            name: "acmedata".into(),
            read_write: true,
        },
        &c.admin,
    ))
    .await
    .unwrap();
    let spare = adm
        .create_token(authed(
            v1::CreateTokenRequest {
                user: "alice".into(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    let (n1, n1_devices) = c.join("n1", 2).await;
    let now = now_ms();
    let reservation = v1::reservations_client::ReservationsClient::new(c.channel.clone())
        .create_reservation(authed(
            v1::CreateReservationRequest {
                class: "gpu".into(),
                count: 1,
                start: Some(ms_to_ts(now + 3 * 3_600_000)),
                end: Some(ms_to_ts(now + 4 * 3_600_000)),
                site: String::new(),
                project: String::new(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();

    let spec = |name: &str| v1::SubmitJobRequest {
        name: name.into(),
        class: "gpu".into(),
        count: 1,
        image: "busybox".into(),
        command: vec!["sleep".into(), "600".into()],
        env: HashMap::from([("ACME_API_KEY".to_owned(), ENV_SECRET.to_owned())]),
        max_runtime: Some(ms_to_dur(600_000)),
        ..Default::default()
    };
    let mut jobs = jobs_client(&c);
    let job = jobs
        .submit_job(authed(spec(JOB_NAME), &alice))
        .await
        .unwrap()
        .into_inner();
    let done = jobs
        .submit_job(authed(spec("finished-run"), &alice))
        .await
        .unwrap()
        .into_inner();
    // n1 takes both, reporting each running as it comes (a job the node does not
    // report would be lost).
    let mut agent = agent_client(&c);
    let mut running: Vec<String> = Vec::new();
    let mut known = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while running.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "jobs not placed");
        let seen = running
            .iter()
            .map(|id| v1::ObservedJob {
                generation: known,
                ..observed(id, v1::JobPhase::Running, None)
            })
            .collect();
        let r = agent
            .heartbeat(authed(heartbeat("n1", known, &n1_devices, seen), &n1))
            .await
            .unwrap()
            .into_inner();
        known = r.generation;
        for d in r.jobs {
            if (d.job_id == job.id || d.job_id == done.id) && !running.contains(&d.job_id) {
                agent
                    .report_job(authed(
                        observed(&d.job_id, v1::JobPhase::Running, None),
                        &n1,
                    ))
                    .await
                    .unwrap();
                running.push(d.job_id);
            }
        }
    }
    agent
        .report_job(authed(
            observed(&done.id, v1::JobPhase::Exited, Some(0)),
            &n1,
        ))
        .await
        .unwrap();
    agent
        .push_logs(authed(
            v1::PushLogsRequest {
                job_id: job.id.clone(),
                chunks: vec![v1::LogChunk {
                    seq: 1,
                    stream: v1::log_chunk::Stream::Stdout as i32,
                    data: format!("{LOG_LINE}\n").into_bytes(),
                    time: None,
                }],
            },
            &n1,
        ))
        .await
        .unwrap();
    // Org A has a project.
    let project = v1::projects_client::ProjectsClient::new(c.channel.clone())
        .create_project(authed(
            v1::CreateProjectRequest {
                org: ORG_A.into(),
                title: PROJECT_TITLE.into(),
                programme: "NIPA HPC".into(),
                start: Some(ms_to_ts(now)),
                end: Some(ms_to_ts(now + 90 * 24 * 3_600_000)),
                grants: vec![v1::GrantSpec {
                    class: "gpu".into(),
                    hours: 500.0,
                }],
                contact: "alice".into(),
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    // Node n2 joins only now, so that org A's jobs are all on n1.
    let (n2, _) = c.join("n2", 1).await;
    // Org B has a job of its own.
    jobs_client(&c)
        .submit_job(authed(
            v1::SubmitJobRequest {
                name: "globex-own".into(),
                class: "gpu".into(),
                count: 1,
                image: "busybox".into(),
                command: vec!["true".into()],
                ..Default::default()
            },
            &gina,
        ))
        .await
        .unwrap();

    // Org A has an invoice (of a month long past, without activity).
    let invoice = v1::billing_client::BillingClient::new(c.channel.clone())
        .generate_invoices(authed(
            v1::GenerateInvoicesRequest {
                month: "2025-01".into(),
                org: ORG_A.into(),
                replace_drafts: false,
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .invoices
        .remove(0);
    let a = Targets {
        org: ORG_A.into(),
        user: "alice".into(),
        job: job.id.clone(),
        reservation: reservation.id.clone(),
        token_id: spare.token_id.clone(),
        node: "n1".into(),
        device: n1_devices[0].clone(),
        dataset: "acmedata".into(),
        project: project.id.clone(),
        invoice: invoice.id.clone(),
        webhook: hook.id.clone(),
    };
    let markers = vec![
        project.id.clone(),
        PROJECT_TITLE.into(),
        invoice.id.clone(),
        ALICE_EMAIL.into(),
        HOOK_URL.into(),
        hook.id.clone(),
        ORG_A.to_owned(),
        "alice".into(),
        "aurelio".into(),
        alice_id,
        aurelio_id,
        job.id.clone(),
        done.id.clone(),
        reservation.id.clone(),
        spare.token_id.clone(),
        "acmedata".into(),
        JOB_NAME.into(),
        "finished-run".into(),
        ENV_SECRET.into(),
        "ACME_API_KEY".into(),
        LOG_LINE.into(),
        TOPUP_NOTE.into(),
    ];
    World {
        c,
        alice,
        gina,
        gus,
        n2,
        n1,
        a,
        done_job: done.id,
        markers,
        next_start_h: AtomicI64::new(5),
    }
}

impl World {
    fn token(&self, role: Role) -> Option<&str> {
        match role {
            Role::User => Some(&self.gina),
            Role::OrgAdmin => Some(&self.gus),
            Role::Admin => Some(&self.c.admin),
            Role::Agent => Some(&self.n2),
            Role::Anonymous => None,
        }
    }

    /// The markers of org A found in `text`.
    fn leaked(&self, text: &str) -> Vec<String> {
        self.markers
            .iter()
            .filter(|m| text.contains(m.as_str()))
            .cloned()
            .collect()
    }
}

fn req<T>(msg: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(t) => authed(msg, t),
        None => Request::new(msg),
    }
}

fn text<T: Debug>(reply: tonic::Response<T>) -> String {
    format!("{:?}", reply.into_inner())
}

/// Calls `rpc` with `token`, naming the objects in `t`; the answer as text.
async fn call(w: &World, rpc: &str, token: Option<&str>, t: &Targets) -> Result<String, Status> {
    let ch = w.c.channel.clone();
    let identity = || v1::identity_client::IdentityClient::new(ch.clone());
    let capacity = || v1::capacity_client::CapacityClient::new(ch.clone());
    let reservations = || v1::reservations_client::ReservationsClient::new(ch.clone());
    let jobs = || v1::jobs_client::JobsClient::new(ch.clone());
    let usage = || v1::usage_client::UsageClient::new(ch.clone());
    let admin = || v1::admin_client::AdminClient::new(ch.clone());
    let agent = || v1::agent_client::AgentClient::new(ch.clone());
    let projects = || v1::projects_client::ProjectsClient::new(ch.clone());
    let action = |id: &str| v1::ProjectActionRequest {
        id: id.into(),
        reason: String::new(),
    };
    let billing = || v1::billing_client::BillingClient::new(ch.clone());
    let notifications = || v1::notifications_client::NotificationsClient::new(ch.clone());
    let now = now_ms();
    let hour = 3_600_000;
    Ok(match rpc {
        "Identity/WhoAmI" => text(
            identity()
                .who_am_i(req(v1::WhoAmIRequest {}, token))
                .await?,
        ),
        "Identity/CreateWebLogin" => text(
            identity()
                .create_web_login(req(v1::CreateWebLoginRequest {}, token))
                .await?,
        ),
        "Capacity/ListSites" => text(
            capacity()
                .list_sites(req(v1::ListSitesRequest {}, token))
                .await?,
        ),
        "Capacity/ListClasses" => text(
            capacity()
                .list_classes(req(v1::ListClassesRequest {}, token))
                .await?,
        ),
        "Capacity/ListNodes" => text(
            capacity()
                .list_nodes(req(v1::ListNodesRequest::default(), token))
                .await?,
        ),
        "Capacity/Availability" => text(
            capacity()
                .availability(req(
                    v1::AvailabilityRequest {
                        class: "gpu".into(),
                        from: Some(ms_to_ts(now)),
                        to: Some(ms_to_ts(now + 4 * hour)),
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Reservations/CreateReservation" => {
            let start = now + w.next_start_h.fetch_add(1, Ordering::SeqCst) * hour;
            text(
                reservations()
                    .create_reservation(req(
                        v1::CreateReservationRequest {
                            class: "gpu".into(),
                            count: 1,
                            start: Some(ms_to_ts(start)),
                            end: Some(ms_to_ts(start + hour / 2)),
                            site: String::new(),
                            project: String::new(),
                        },
                        token,
                    ))
                    .await?,
            )
        }
        "Reservations/ListReservations" => text(
            reservations()
                .list_reservations(req(
                    v1::ListReservationsRequest {
                        all: true,
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Reservations/GetReservation" => text(
            reservations()
                .get_reservation(req(
                    v1::GetReservationRequest {
                        id: t.reservation.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Reservations/CancelReservation" => text(
            reservations()
                .cancel_reservation(req(
                    v1::CancelReservationRequest {
                        id: t.reservation.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        // Into org A's reservation.
        "Jobs/SubmitJob" => text(
            jobs()
                .submit_job(req(
                    v1::SubmitJobRequest {
                        reservation_id: t.reservation.clone(),
                        count: 1,
                        image: "busybox".into(),
                        command: vec!["true".into()],
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Jobs/ListJobs" => text(
            jobs()
                .list_jobs(req(
                    v1::ListJobsRequest {
                        all: true,
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Jobs/GetJob" => text(
            jobs()
                .get_job(req(v1::GetJobRequest { id: t.job.clone() }, token))
                .await?,
        ),
        "Jobs/CancelJob" => text(
            jobs()
                .cancel_job(req(v1::CancelJobRequest { id: t.job.clone() }, token))
                .await?,
        ),
        "Jobs/StreamLogs" => {
            let mut stream = jobs()
                .stream_logs(req(
                    v1::StreamLogsRequest {
                        job_id: t.job.clone(),
                        follow: false,
                        ..Default::default()
                    },
                    token,
                ))
                .await?
                .into_inner();
            let mut out = String::new();
            let all = async {
                while let Some(chunk) = stream.message().await? {
                    out.push_str(&String::from_utf8_lossy(&chunk.data));
                }
                Ok::<_, Status>(())
            };
            tokio::time::timeout(Duration::from_secs(10), all)
                .await
                .map_err(|_| Status::deadline_exceeded("the log stream did not end"))??;
            out
        }
        "Usage/GetUsage" => text(
            usage()
                .get_usage(req(
                    v1::GetUsageRequest {
                        org: t.org.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Usage/ListBudgets" => text(
            usage()
                .list_budgets(req(v1::ListBudgetsRequest { org: t.org.clone() }, token))
                .await?,
        ),
        "Usage/ListLedger" => text(
            usage()
                .list_ledger(req(
                    v1::ListLedgerRequest {
                        org: t.org.clone(),
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/CreateSite" => text(
            admin()
                .create_site(req(
                    v1::CreateSiteRequest {
                        name: "s2".into(),
                        description: String::new(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/CreateClass" => text(
            admin()
                .create_class(req(
                    v1::CreateClassRequest {
                        name: "npu".into(),
                        description: String::new(),
                        vendor: "sim".into(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/CreateOrg" => text(
            admin()
                .create_org(req(
                    v1::CreateOrgRequest {
                        name: "initech".into(),
                        description: String::new(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/ListOrgs" => text(
            admin()
                .list_orgs(req(v1::ListOrgsRequest {}, token))
                .await?,
        ),
        "Admin/CreateUser" => text(
            admin()
                .create_user(req(
                    v1::CreateUserRequest {
                        org: t.org.clone(),
                        name: "mallory".into(),
                        role: v1::Role::OrgAdmin as i32,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/ListUsers" => text(
            admin()
                .list_users(req(v1::ListUsersRequest { org: t.org.clone() }, token))
                .await?,
        ),
        "Admin/CreateToken" => text(
            admin()
                .create_token(req(
                    v1::CreateTokenRequest {
                        user: t.user.clone(),
                        org: t.org.clone(),
                        ttl: None,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/RevokeToken" => text(
            admin()
                .revoke_token(req(
                    v1::RevokeTokenRequest {
                        token_id: t.token_id.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/CreateJoinToken" => text(
            admin()
                .create_join_token(req(v1::CreateJoinTokenRequest::default(), token))
                .await?,
        ),
        "Admin/RejoinNode" => text(
            admin()
                .rejoin_node(req(
                    v1::RejoinNodeRequest {
                        node: t.node.clone(),
                        ttl: None,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/ListCredentials" => text(
            admin()
                .list_credentials(req(
                    v1::ListCredentialsRequest {
                        org: t.org.clone(),
                        all: true,
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/GrantDataset" => text(
            admin()
                .grant_dataset(req(
                    v1::GrantDatasetRequest {
                        org: t.org.clone(),
                        name: t.dataset.clone(),
                        read_write: true,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/RevokeDataset" => text(
            admin()
                .revoke_dataset(req(
                    v1::RevokeDatasetRequest {
                        org: t.org.clone(),
                        name: t.dataset.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/ListDatasetGrants" => text(
            admin()
                .list_dataset_grants(req(
                    v1::ListDatasetGrantsRequest { org: t.org.clone() },
                    token,
                ))
                .await?,
        ),
        "Admin/ClearDevice" => text(
            admin()
                .clear_device(req(
                    v1::ClearDeviceRequest {
                        uuid: t.device.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/DrainNode" => text(
            admin()
                .drain_node(req(
                    v1::DrainNodeRequest {
                        node: t.node.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/UndrainNode" => text(
            admin()
                .undrain_node(req(
                    v1::UndrainNodeRequest {
                        node: t.node.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/MarkNodeDown" => text(
            admin()
                .mark_node_down(req(
                    v1::MarkNodeDownRequest {
                        node: t.node.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/ListAudit" => text(
            admin()
                .list_audit(req(v1::ListAuditRequest::default(), token))
                .await?,
        ),
        "Admin/SetBudget" => text(
            admin()
                .set_budget(req(
                    v1::SetBudgetRequest {
                        org: t.org.clone(),
                        class: "gpu".into(),
                        hours: Some(1.0),
                        period: "month".into(),
                        ..Default::default()
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/DeleteBudget" => text(
            admin()
                .delete_budget(req(
                    v1::DeleteBudgetRequest {
                        org: t.org.clone(),
                        class: "gpu".into(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/TopUpBudget" => text(
            admin()
                .top_up_budget(req(
                    v1::TopUpBudgetRequest {
                        org: t.org.clone(),
                        class: "gpu".into(),
                        hours: 1.0,
                        note: String::new(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/SetOrgWeight" => text(
            admin()
                .set_org_weight(req(
                    v1::SetOrgWeightRequest {
                        org: t.org.clone(),
                        weight: 0.5,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/SetOrgOverage" => text(
            admin()
                .set_org_overage(req(
                    v1::SetOrgOverageRequest {
                        org: t.org.clone(),
                        overage: v1::Overage::Deny as i32,
                    },
                    token,
                ))
                .await?,
        ),
        "Projects/ListProjects" => text(
            projects()
                .list_projects(req(v1::ListProjectsRequest { org: t.org.clone() }, token))
                .await?,
        ),
        "Projects/GetProject" => text(
            projects()
                .get_project(req(
                    v1::GetProjectRequest {
                        id: t.project.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        // Each call its own programme, so no two overlap.
        "Projects/RequestProject" => text(
            projects()
                .request_project(req(
                    v1::RequestProjectRequest {
                        title: "own project".into(),
                        programme: format!("p{}", w.next_start_h.fetch_add(1, Ordering::SeqCst)),
                        start: Some(ms_to_ts(now)),
                        end: Some(ms_to_ts(now + 24 * hour)),
                        grants: vec![v1::GrantSpec {
                            class: "gpu".into(),
                            hours: 1.0,
                        }],
                        contact: String::new(),
                    },
                    token,
                ))
                .await?,
        ),
        "Projects/CreateProject" => text(
            projects()
                .create_project(req(
                    v1::CreateProjectRequest {
                        org: t.org.clone(),
                        title: "another".into(),
                        programme: format!("p{}", w.next_start_h.fetch_add(1, Ordering::SeqCst)),
                        start: Some(ms_to_ts(now)),
                        end: Some(ms_to_ts(now + 24 * hour)),
                        grants: vec![v1::GrantSpec {
                            class: "gpu".into(),
                            hours: 1.0,
                        }],
                        contact: String::new(),
                    },
                    token,
                ))
                .await?,
        ),
        "Projects/ApproveProject" => text(
            projects()
                .approve_project(req(action(&t.project), token))
                .await?,
        ),
        "Projects/RevokeProject" => text(
            projects()
                .revoke_project(req(action(&t.project), token))
                .await?,
        ),
        "Projects/CloseProject" => text(
            projects()
                .close_project(req(action(&t.project), token))
                .await?,
        ),
        "Projects/SetDefaultProject" => text(
            projects()
                .set_default_project(req(
                    v1::SetDefaultProjectRequest {
                        project: t.project.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/SetClassRate" => text(
            admin()
                .set_class_rate(req(
                    v1::SetClassRateRequest {
                        class: "gpu".into(),
                        rate: 2.0,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/GetPolicy" => text(
            admin()
                .get_policy(req(v1::GetPolicyRequest {}, token))
                .await?,
        ),
        "Admin/SetPolicy" => text(
            admin()
                .set_policy(req(
                    v1::SetPolicyRequest {
                        policy: Some(v1::SchedulingPolicy {
                            reserve_depth: 3,
                            ..Default::default()
                        }),
                        fields: vec!["reserve_depth".into()],
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/GetRetention" => text(
            admin()
                .get_retention(req(v1::GetRetentionRequest {}, token))
                .await?,
        ),
        "Admin/SetRetention" => text(
            admin()
                .set_retention(req(
                    v1::SetRetentionRequest {
                        retention: Some(v1::Retention {
                            logs: Some(ms_to_dur(30 * 24 * hour)),
                            ..Default::default()
                        }),
                        fields: vec!["logs".into()],
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/SetPrice" => text(
            billing()
                .set_price(req(
                    v1::SetPriceRequest {
                        class: "gpu".into(),
                        krw_per_hour: 3500,
                        idle_krw_per_hour: None,
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/ListPrices" => text(
            billing()
                .list_prices(req(v1::ListPricesRequest {}, token))
                .await?,
        ),
        "Billing/SetDiscount" => text(
            billing()
                .set_discount(req(
                    v1::SetDiscountRequest {
                        org: t.org.clone(),
                        percent: 50,
                        reason: "SME".into(),
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/ListDiscounts" => text(
            billing()
                .list_discounts(req(v1::ListDiscountsRequest { org: t.org.clone() }, token))
                .await?,
        ),
        "Billing/GenerateInvoices" => text(
            billing()
                .generate_invoices(req(
                    v1::GenerateInvoicesRequest {
                        month: "2025-02".into(),
                        org: t.org.clone(),
                        replace_drafts: true,
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/ListInvoices" => text(
            billing()
                .list_invoices(req(
                    v1::ListInvoicesRequest {
                        org: t.org.clone(),
                        month: String::new(),
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/GetInvoice" => text(
            billing()
                .get_invoice(req(
                    v1::GetInvoiceRequest {
                        id: t.invoice.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/SetInvoiceState" => text(
            billing()
                .set_invoice_state(req(
                    v1::SetInvoiceStateRequest {
                        id: t.invoice.clone(),
                        state: v1::InvoiceState::Issued as i32,
                    },
                    token,
                ))
                .await?,
        ),
        "Billing/MonthlyReport" => text(
            billing()
                .monthly_report(req(
                    v1::MonthlyReportRequest {
                        month: "2025-01".into(),
                        org: t.org.clone(),
                        low_util_percent: None,
                    },
                    token,
                ))
                .await?,
        ),
        "Admin/GetStatus" => text(
            admin()
                .get_status(req(v1::GetStatusRequest {}, token))
                .await?,
        ),
        // Re-joining a node with the caller's own credential and no join token.
        "Agent/Join" => text(
            agent()
                .join(req(
                    v1::JoinRequest {
                        join_token: String::new(),
                        node: t.node.clone(),
                        site: "s1".into(),
                        hostname: t.node.clone(),
                        devices: reports(std::slice::from_ref(&t.device)),
                        agent_version: "test".into(),
                        runtime: "process".into(),
                    },
                    token,
                ))
                .await?,
        ),
        "Agent/Heartbeat" => {
            let mut hb = heartbeat(&t.node, 0, std::slice::from_ref(&t.device), vec![]);
            hb.wait = None;
            text(agent().heartbeat(req(hb, token)).await?)
        }
        // On a stream: opened (any credential opens one), then refused at the heartbeat.
        "Agent/Heartbeats" => {
            let mut hb = heartbeat(&t.node, 0, std::slice::from_ref(&t.device), vec![]);
            hb.wait = None;
            let mut replies = agent()
                .heartbeats(req(tokio_stream::iter([hb]), token))
                .await?
                .into_inner();
            let reply = tokio::time::timeout(Duration::from_secs(10), replies.message())
                .await
                .map_err(|_| Status::deadline_exceeded("the heartbeat was not answered"))??;
            format!("{reply:?}")
        }
        // Marks org A's running job failed, as the takeover in issue 12 did.
        "Agent/ReportJob" => text(
            agent()
                .report_job(req(
                    observed(&t.job, v1::JobPhase::Exited, Some(137)),
                    token,
                ))
                .await?,
        ),
        "Agent/PushLogs" => text(
            agent()
                .push_logs(req(
                    v1::PushLogsRequest {
                        job_id: t.job.clone(),
                        chunks: vec![v1::LogChunk {
                            seq: 99,
                            stream: v1::log_chunk::Stream::Stdout as i32,
                            data: b"forged line\n".to_vec(),
                            time: None,
                        }],
                    },
                    token,
                ))
                .await?,
        ),
        "Identity/SetLanguage" => text(
            identity()
                .set_language(req(
                    v1::SetLanguageRequest {
                        language: "ko".into(),
                    },
                    token,
                ))
                .await?,
        ),
        "Notifications/GetNotificationSettings" => text(
            notifications()
                .get_notification_settings(req(v1::GetNotificationSettingsRequest {}, token))
                .await?,
        ),
        "Notifications/SetNotificationSettings" => text(
            notifications()
                .set_notification_settings(req(
                    v1::SetNotificationSettingsRequest {
                        email: "someone@globex.test".into(),
                        events: vec!["job-end".into()],
                        fields: vec!["email".into(), "events".into()],
                        clear: false,
                    },
                    token,
                ))
                .await?,
        ),
        "Notifications/ListNotifications" => text(
            notifications()
                .list_notifications(req(v1::ListNotificationsRequest { limit: 0 }, token))
                .await?,
        ),
        "Notifications/ListWebhooks" => text(
            notifications()
                .list_webhooks(req(v1::ListWebhooksRequest { org: t.org.clone() }, token))
                .await?,
        ),
        "Notifications/AddWebhook" => text(
            notifications()
                .add_webhook(req(
                    v1::AddWebhookRequest {
                        org: t.org.clone(),
                        url: "https://hooks.example.kr/x".into(),
                        events: vec![],
                    },
                    token,
                ))
                .await?,
        ),
        "Notifications/RemoveWebhook" => text(
            notifications()
                .remove_webhook(req(
                    v1::RemoveWebhookRequest {
                        id: t.webhook.clone(),
                    },
                    token,
                ))
                .await?,
        ),
        other => panic!("the matrix lists {other}, which `call` does not know"),
    })
}

fn outcome(got: &Result<String, Status>) -> Expect {
    match got {
        Ok(_) => Expect::Served,
        Err(s) => Expect::Refused(s.code()),
    }
}

/// Runs one case; a failure says which RPC and role, and why.
async fn case(w: &World, rpc: &str, role: Role, expect: Expect) -> Result<(), String> {
    let name = format!("{rpc} as {}", role.label());
    let token = w.token(role);
    let got = call(w, rpc, token, &w.a).await;
    if outcome(&got) != expect {
        return Err(format!("{name}: expected {expect:?}, got {got:?}"));
    }
    if role == Role::Admin {
        return Ok(());
    }
    match &got {
        // An answer to someone outside org A carries nothing of org A.
        Ok(answer) => {
            let leaked = w.leaked(answer);
            if !leaked.is_empty() {
                return Err(format!("{name}: the answer leaks {leaked:?}: {answer}"));
            }
        }
        // A refusal echoes at most the request, and reads as one about nothing.
        Err(refusal) => {
            let leaked = w.leaked(&w.a.blank(refusal.message()));
            if !leaked.is_empty() {
                return Err(format!("{name}: the refusal leaks {leaked:?}: {refusal:?}"));
            }
            let absent = Targets::absent();
            let nothing = call(w, rpc, token, &absent).await;
            let same = match &nothing {
                Err(s) => {
                    s.code() == refusal.code()
                        && absent.blank(s.message()) == w.a.blank(refusal.message())
                }
                Ok(_) => false,
            };
            if !same {
                return Err(format!(
                    "{name}: org A's object can be told from a missing one: {refusal:?} / {nothing:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The RPCs of every service of `berth.v1`, from the compiled descriptor set.
fn rpcs_in_proto() -> BTreeSet<String> {
    let fds = prost_types::FileDescriptorSet::decode(berth_proto::FILE_DESCRIPTOR_SET).unwrap();
    fds.file
        .iter()
        .filter(|f| f.package() == "berth.v1")
        .flat_map(|f| f.service.iter())
        .flat_map(|s| {
            s.method
                .iter()
                .map(move |m| format!("{}/{}", s.name(), m.name()))
        })
        .collect()
}

#[test]
fn the_matrix_lists_every_rpc_of_the_api_once() {
    let listed: Vec<&str> = MATRIX.iter().map(|(rpc, _)| *rpc).collect();
    let unique: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
    assert_eq!(unique.len(), listed.len(), "an RPC is listed twice");
    let proto = rpcs_in_proto();
    let missing: Vec<_> = proto.difference(&unique).collect();
    let extra: Vec<_> = unique.difference(&proto).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "berth.proto and the matrix differ: not in the matrix {missing:?}, not in the proto {extra:?}"
    );
    assert!(MATRIX.len() * ROLES.len() >= 60);
}

/// Org A's objects are as they were: its job runs with its own logs only, its
/// reservation stands, its spare token works, n1 is ready, its budget, grant and weight
/// are unchanged.
async fn org_a_is_untouched(w: &World) -> Vec<String> {
    let mut wrong = Vec::new();
    let job = jobs_client(&w.c)
        .get_job(authed(
            v1::GetJobRequest {
                id: w.a.job.clone(),
            },
            &w.alice,
        ))
        .await
        .unwrap()
        .into_inner();
    if job.state != v1::JobState::Running as i32 {
        wrong.push(format!("org A's job is no longer running: {job:?}"));
    }
    let mut logs = jobs_client(&w.c)
        .stream_logs(authed(
            v1::StreamLogsRequest {
                job_id: w.a.job.clone(),
                ..Default::default()
            },
            &w.alice,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    while let Some(chunk) = logs.message().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk.data));
    }
    if text != format!("{LOG_LINE}\n") {
        wrong.push(format!("org A's logs changed: {text:?}"));
    }
    let res = v1::reservations_client::ReservationsClient::new(w.c.channel.clone())
        .get_reservation(authed(
            v1::GetReservationRequest {
                id: w.a.reservation.clone(),
            },
            &w.alice,
        ))
        .await
        .unwrap()
        .into_inner();
    if res.state != v1::ReservationState::Confirmed as i32 {
        wrong.push(format!("org A's reservation changed: {res:?}"));
    }
    let budgets =
        w.c.usage_client()
            .list_budgets(authed(v1::ListBudgetsRequest::default(), &w.alice))
            .await
            .unwrap()
            .into_inner()
            .budgets;
    if budgets.len() != 1 || budgets[0].hours != Some(1000.0) {
        wrong.push(format!("org A's budget changed: {budgets:?}"));
    }
    let grants =
        w.c.admin_client()
            .list_dataset_grants(authed(v1::ListDatasetGrantsRequest::default(), &w.alice))
            .await
            .unwrap()
            .into_inner()
            .grants;
    if grants.len() != 1 || grants[0].name != "acmedata" {
        wrong.push(format!("org A's grants changed: {grants:?}"));
    }
    let orgs =
        w.c.admin_client()
            .list_orgs(authed(v1::ListOrgsRequest {}, &w.alice))
            .await
            .unwrap()
            .into_inner()
            .orgs;
    if orgs.len() != 1 || orgs[0].weight != 1.0 {
        wrong.push(format!("org A's weight changed: {orgs:?}"));
    }
    let users =
        w.c.admin_client()
            .list_users(authed(v1::ListUsersRequest::default(), &w.alice))
            .await
            .unwrap()
            .into_inner()
            .users;
    if users.iter().any(|u| u.name == "mallory") {
        wrong.push(format!("a user was added to org A: {users:?}"));
    }
    let creds =
        w.c.admin_client()
            .list_credentials(authed(v1::ListCredentialsRequest::default(), &w.alice))
            .await
            .unwrap()
            .into_inner()
            .credentials;
    if !creds.iter().any(|k| k.id == w.a.token_id && !k.revoked) {
        wrong.push(format!("org A's spare token was revoked: {creds:?}"));
    }
    let nodes = v1::capacity_client::CapacityClient::new(w.c.channel.clone())
        .list_nodes(authed(v1::ListNodesRequest::default(), &w.alice))
        .await
        .unwrap()
        .into_inner()
        .nodes;
    match nodes.iter().find(|n| n.name == "n1") {
        Some(n) if n.state == v1::NodeState::Ready as i32 => {}
        other => wrong.push(format!("node n1 changed: {other:?}")),
    }
    // n1's own credential is still valid.
    let me = v1::identity_client::IdentityClient::new(w.c.channel.clone())
        .who_am_i(authed(v1::WhoAmIRequest {}, &w.n1))
        .await;
    if !matches!(&me, Ok(r) if r.get_ref().node == "n1") {
        wrong.push(format!("n1's credential no longer works: {me:?}"));
    }
    wrong
}

#[tokio::test]
async fn every_rpc_refuses_other_tenants_and_leaks_nothing_of_org_a() {
    let w = world().await;
    let mut failures = Vec::new();
    let mut cases = 0;
    // Everyone but the admin first: their calls must change nothing of org A.
    for role in ROLES.into_iter().filter(|r| *r != Role::Admin) {
        let column = ROLES.iter().position(|r| *r == role).unwrap();
        for (rpc, expect) in MATRIX {
            cases += 1;
            if let Err(e) = case(&w, rpc, role, expect[column]).await {
                failures.push(e);
            }
        }
    }
    failures.extend(org_a_is_untouched(&w).await);
    // Then the centre admin, whose calls succeed where the API says they do.
    let column = ROLES.iter().position(|r| *r == Role::Admin).unwrap();
    for (rpc, expect) in MATRIX {
        cases += 1;
        if let Err(e) = case(&w, rpc, Role::Admin, expect[column]).await {
            failures.push(e);
        }
    }
    assert!(cases >= 60, "only {cases} cases");
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Listing calls with no filter, as each of org B's roles: nothing of org A, while org
/// A's own user sees its objects (so the markers are really there to find).
#[tokio::test]
async fn org_bs_listings_hold_nothing_of_org_a() {
    let w = world().await;
    let listings = [
        "Reservations/ListReservations",
        "Jobs/ListJobs",
        "Capacity/ListNodes",
        "Capacity/Availability",
        "Admin/ListOrgs",
        "Admin/ListAudit",
    ];
    let own = Targets {
        org: String::new(),
        ..Targets::absent()
    };
    let mut failures = Vec::new();
    for rpc in listings
        .iter()
        .copied()
        .chain(["Usage/GetUsage", "Usage/ListBudgets", "Usage/ListLedger"])
        .chain(["Billing/ListInvoices", "Billing/ListDiscounts"])
        .chain([
            "Admin/ListUsers",
            "Admin/ListCredentials",
            "Admin/ListDatasetGrants",
        ])
        .chain([
            "Notifications/ListNotifications",
            "Notifications/ListWebhooks",
        ])
    {
        for role in [Role::User, Role::OrgAdmin] {
            match call(&w, rpc, w.token(role), &own).await {
                Ok(answer) => {
                    let leaked = w.leaked(&answer);
                    if !leaked.is_empty() {
                        failures.push(format!(
                            "{rpc} as {}: leaks {leaked:?}: {answer}",
                            role.label()
                        ));
                    }
                }
                Err(e) if e.code() == Code::PermissionDenied && rpc == "Admin/ListAudit" => {}
                Err(e)
                    if e.code() == Code::PermissionDenied
                        && role == Role::User
                        && rpc == "Notifications/ListWebhooks" => {}
                Err(e) => failures.push(format!("{rpc} as {}: {e:?}", role.label())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The same listings show org A its own objects.
    let jobs = call(&w, "Jobs/ListJobs", Some(&w.alice), &own)
        .await
        .unwrap();
    assert!(
        jobs.contains(JOB_NAME) && jobs.contains(&w.done_job),
        "{jobs}"
    );
    let ledger = call(&w, "Usage/ListLedger", Some(&w.alice), &own)
        .await
        .unwrap();
    assert!(ledger.contains(TOPUP_NOTE), "{ledger}");
    let mail = call(&w, "Notifications/ListNotifications", Some(&w.alice), &own)
        .await
        .unwrap();
    assert!(
        mail.contains(ALICE_EMAIL) && mail.contains(&w.done_job),
        "{mail}"
    );
}

/// Signs in to the portal with an API token; the session cookie, if one was given.
async fn portal_session(addr: std::net::SocketAddr, token: &str) -> Option<String> {
    let pre = "ab".repeat(32);
    let body = format!(
        "_csrf={pre}&next=%2F&token={}",
        token.replace('+', "%2B").replace('=', "%3D")
    );
    let (_, headers, _) = http(
        addr,
        "POST",
        "/login",
        &[
            ("Cookie", &format!("berth_pre={pre}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
    .await;
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.strip_prefix("berth_session="))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .find(|v| !v.is_empty())
}

/// The CSRF token on a portal page.
fn csrf_of(page: &str) -> Option<String> {
    let at = page.find("name=\"_csrf\"")?;
    let rest = &page[at..];
    let v = rest.find("value=\"")? + "value=\"".len();
    Some(rest[v..rest[v..].find('"')? + v].to_owned())
}

#[tokio::test]
async fn portal_pages_of_org_a_show_org_b_nothing() {
    let w = world().await;
    let web = w.c.server.web_addr.expect("the portal listens");
    let pages = [
        "/calendar".to_owned(),
        "/book".into(),
        "/reservations".into(),
        format!("/reservations/{}", w.a.reservation),
        "/jobs".into(),
        format!("/jobs/{}", w.a.job),
        format!("/jobs/{}/log", w.a.job),
        format!("/jobs/{}", w.done_job),
        "/usage".into(),
        "/usage.csv".into(),
        "/account".into(),
        "/admin/nodes".into(),
        "/admin/orgs".into(),
        "/admin/audit".into(),
        "/no-such-page".into(),
    ];
    // Org A's own session sees its job and secret-free page: the markers are there.
    let alice = portal_session(web, &w.alice).await.expect("alice signs in");
    let (status, _, page) = http(
        web,
        "GET",
        &format!("/jobs/{}", w.a.job),
        &[("Cookie", &format!("berth_session={alice}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(JOB_NAME), "{page}");
    let (status, _, usage) = http(
        web,
        "GET",
        "/usage",
        &[("Cookie", &format!("berth_session={alice}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{usage}");
    assert!(
        usage.contains(PROJECT_TITLE),
        "org A sees its grants: {usage}"
    );

    // A node's credential does not sign in.
    assert_eq!(portal_session(web, &w.n2).await, None);

    let mut failures = Vec::new();
    for role in [Role::User, Role::OrgAdmin] {
        let session = portal_session(web, w.token(role).unwrap())
            .await
            .unwrap_or_else(|| panic!("{} signs in", role.label()));
        let cookie = format!("berth_session={session}");
        let mut csrf = None;
        for path in &pages {
            let (status, _, body) = http(web, "GET", path, &[("Cookie", &cookie)], "").await;
            if status >= 500 {
                failures.push(format!("GET {path} as {}: {status}", role.label()));
            }
            // A page may echo the id in its own address, nothing else.
            let echoed = [&w.a.job, &w.a.reservation, &w.done_job].into_iter().fold(
                body.clone(),
                |b, id| {
                    if path.contains(id.as_str()) {
                        b.replace(id.as_str(), "<id>")
                    } else {
                        b
                    }
                },
            );
            let leaked = w.leaked(&echoed);
            if !leaked.is_empty() {
                failures.push(format!(
                    "GET {path} as {} ({status}) leaks {leaked:?}",
                    role.label()
                ));
            }
            if [&w.a.job, &w.done_job, &w.a.reservation]
                .iter()
                .any(|id| path.contains(id.as_str()))
            {
                if status != 404 {
                    failures.push(format!("GET {path} as {}: {status}, not 404", role.label()));
                }
                // Its id too stays unknown: a missing object's page reads the same.
                let (absent_status, _, _) = http(
                    web,
                    "GET",
                    &path
                        .replace(&w.a.job, &Targets::absent().job)
                        .replace(&w.done_job, &Targets::absent().job)
                        .replace(&w.a.reservation, &Targets::absent().reservation),
                    &[("Cookie", &cookie)],
                    "",
                )
                .await;
                if absent_status != status {
                    failures.push(format!(
                        "GET {path} as {}: {status}, a missing object's {absent_status}",
                        role.label()
                    ));
                }
            }
            if csrf.is_none() {
                csrf = csrf_of(&body);
            }
        }
        // Actions on org A's objects through the portal: refused, nothing changes. The
        // session's own CSRF token works (so the refusals are not CSRF refusals).
        let csrf = csrf.expect("a page with a form");
        let (status, _, _) = http(
            web,
            "POST",
            "/account/language",
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("_csrf={csrf}&lang=en"),
        )
        .await;
        assert_eq!(status, 303, "{} changes its own language", role.label());
        let actions = [
            (format!("/jobs/{}/cancel", w.a.job), String::new()),
            (
                format!("/reservations/{}/cancel", w.a.reservation),
                String::new(),
            ),
            (
                format!("/account/tokens/{}/revoke", w.a.token_id),
                String::new(),
            ),
            ("/admin/nodes/n1/drain".into(), String::new()),
            (
                format!("/admin/devices/{}/clear", w.a.device),
                String::new(),
            ),
            ("/admin/orgs/create".into(), "name=initech".into()),
            (
                "/admin/users/create".into(),
                format!("org={ORG_A}&name=mallory&role=org-admin"),
            ),
            (
                "/admin/budgets/set".into(),
                format!("org={ORG_A}&class=gpu&hours=1&period=month"),
            ),
        ];
        for (path, form) in &actions {
            let body = if form.is_empty() {
                format!("_csrf={csrf}")
            } else {
                format!("_csrf={csrf}&{form}")
            };
            let (status, _, page) = http(
                web,
                "POST",
                path,
                &[
                    ("Cookie", &cookie),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                &body,
            )
            .await;
            if !(400..500).contains(&status) {
                failures.push(format!(
                    "POST {path} as {}: {status}, not refused",
                    role.label()
                ));
            }
            let leaked = w.leaked(&w.a.blank(&page));
            if !leaked.is_empty() {
                failures.push(format!("POST {path} as {} leaks {leaked:?}", role.label()));
            }
        }
    }
    failures.extend(org_a_is_untouched(&w).await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The label names `/metrics` may carry, each with bounded values.
const METRIC_LABELS: &[&str] = &[
    "site", "state", "node", "class", "method", "code", "kind", "org", "outcome", "reason", "le",
    "quantile", "op", "path", "status", "role", "mode",
];

#[tokio::test]
async fn metrics_carry_no_tenant_data_beyond_org_names_of_budgets() {
    let w = world().await;
    // Traffic from every role first, refused and served.
    for role in ROLES {
        for (rpc, _) in MATRIX.iter().filter(|(rpc, _)| {
            rpc.starts_with("Jobs/") || rpc.starts_with("Usage/") || rpc.starts_with("Agent/")
        }) {
            if *rpc == "Jobs/CancelJob" && role == Role::Admin {
                continue;
            }
            let _ = call(&w, rpc, w.token(role), &w.a).await;
        }
    }
    let (status, _, body) = http(w.c.server.http_addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let methods = rpcs_in_proto();
    let mut failures = Vec::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let labels = rest.rsplit_once('}').map_or("", |(l, _)| l);
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once("=\"").unwrap_or((pair, ""));
            let value = value.trim_end_matches('"');
            if !METRIC_LABELS.contains(&key) {
                failures.push(format!("{name}: unexpected label {key}={value:?}"));
            }
            if key == "org" && ![ORG_A, ORG_B, "centre"].contains(&value) {
                failures.push(format!("{name}: org label {value:?}"));
            }
            if key == "method" && value != "other" {
                let known = methods.contains(value.trim_start_matches("berth.v1."))
                    || value.starts_with("grpc.");
                if !known {
                    failures.push(format!("{name}: method label {value:?}"));
                }
            }
        }
        // Org names appear only as the `org` label of budget metrics.
        let leaked: Vec<_> = w
            .leaked(line)
            .into_iter()
            .filter(|m| !(m == ORG_A && line.contains("org=\"acme\"")))
            .collect();
        if !leaked.is_empty() {
            failures.push(format!("{line}: leaks {leaked:?}"));
        }
        if line.contains("org=\"") && !name.starts_with("berth_budget_") {
            failures.push(format!("{line}: an org label outside budgets"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A portal session ends with the token that may have started it: revoking a user's
/// token signs them out of the portal (the session does not outlive the credential).
#[tokio::test]
async fn revoking_a_users_token_ends_their_portal_sessions() {
    let c = centre_with(30_000, |config| {
        config.web_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let web = c.server.web_addr.expect("the portal listens");
    let (first, _) = member(&c, ORG_A, "alice", v1::Role::User).await;
    let (other, _) = member(&c, ORG_A, "ada", v1::Role::User).await;
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
    let session = portal_session(web, &second.token)
        .await
        .expect("alice signs in");
    let kept = portal_session(web, &other).await.expect("ada signs in");
    let page = |cookie: String| async move {
        http(
            web,
            "GET",
            "/jobs",
            &[("Cookie", &format!("berth_session={cookie}"))],
            "",
        )
        .await
        .0
    };
    assert_eq!(page(session.clone()).await, 200, "signed in");
    c.admin_client()
        .revoke_token(authed(
            v1::RevokeTokenRequest {
                token_id: second.token_id,
            },
            &first,
        ))
        .await
        .unwrap();
    // Signed out: the portal sends the browser to sign in again.
    let status = page(session).await;
    assert!(
        status == 303 || status == 302 || status == 401,
        "a session of a revoked token still answers {status}"
    );
    assert_eq!(page(kept).await, 200, "another user's session is untouched");
}
