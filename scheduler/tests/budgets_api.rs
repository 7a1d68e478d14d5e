//! Budgets, the ledger, weights, rates and the scheduling policy over real gRPC on a
//! real socket: who may see and change what, and how bad requests are refused.

use berth_proto::time::ms_to_dur;
use berth_proto::v1;
use tonic::{Code, Status};

mod common;

use common::{Centre, authed};

/// A centre with classes `gpu` and `npu` and orgs `acme` and `beta`.
async fn centre() -> Centre {
    let c = common::centre(15_000).await;
    let mut adm = c.admin_client();
    adm.create_class(authed(
        v1::CreateClassRequest {
            name: "npu".into(),
            description: String::new(),
            vendor: "sim".into(),
        },
        &c.admin,
    ))
    .await
    .unwrap();
    for org in ["acme", "beta"] {
        adm.create_org(authed(
            v1::CreateOrgRequest {
                name: org.into(),
                description: String::new(),
            },
            &c.admin,
        ))
        .await
        .unwrap();
    }
    c
}

impl Centre {
    async fn set_budget(&self, r: v1::SetBudgetRequest) -> Result<v1::Budget, Status> {
        self.admin_client()
            .set_budget(authed(r, &self.admin))
            .await
            .map(|r| r.into_inner())
    }

    async fn budgets(&self, token: &str, org: &str) -> Result<Vec<v1::Budget>, Status> {
        self.usage_client()
            .list_budgets(authed(v1::ListBudgetsRequest { org: org.into() }, token))
            .await
            .map(|r| r.into_inner().budgets)
    }
}

fn budget(org: &str, class: &str, hours: Option<f64>) -> v1::SetBudgetRequest {
    v1::SetBudgetRequest {
        org: org.into(),
        class: class.into(),
        hours,
        ..Default::default()
    }
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
async fn admins_set_and_list_budgets_and_users_see_only_their_own() {
    let c = centre().await;
    let any = c
        .set_budget(v1::SetBudgetRequest {
            max_devices: Some(8),
            horizon: Some(ms_to_dur(14 * 24 * 3_600_000)),
            ..budget("acme", "*", Some(100.0))
        })
        .await
        .unwrap();
    assert_eq!((any.class.as_str(), any.period.as_str()), ("*", "month"));
    assert_eq!(any.hours, Some(100.0));
    assert_eq!(any.left_hours, Some(100.0));
    assert_eq!(any.max_devices, Some(8));
    assert!(any.period_start.is_some() && any.period_end.is_some());
    let gpu = c
        .set_budget(v1::SetBudgetRequest {
            period: "week".into(),
            ..budget("acme", "gpu", Some(10.0))
        })
        .await
        .unwrap();
    assert_eq!(gpu.period, "week");
    // A budget without an hour limit has no balance to show.
    let beta = c.set_budget(budget("beta", "npu", None)).await.unwrap();
    assert_eq!((beta.hours, beta.left_hours), (None, None));

    let all = c.budgets(&c.admin, "").await.unwrap();
    let keys: Vec<_> = all
        .iter()
        .map(|b| (b.org.as_str(), b.class.as_str()))
        .collect();
    assert_eq!(keys, [("acme", "*"), ("acme", "gpu"), ("beta", "npu")]);
    assert_eq!(c.budgets(&c.admin, "beta").await.unwrap().len(), 1);

    let alice = c.user("acme", "alice").await;
    let bob = c.user("beta", "bob").await;
    let mine = c.budgets(&alice, "").await.unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|b| b.org == "acme"));
    let e = c.budgets(&bob, "acme").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let theirs = c.budgets(&bob, "").await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].org, "beta");

    // GetUsage carries the same budgets, with the same scoping.
    let usage = c
        .usage_client()
        .get_usage(authed(v1::GetUsageRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.budgets, mine);
    let e = c
        .usage_client()
        .get_usage(authed(
            v1::GetUsageRequest {
                org: "acme".into(),
                ..Default::default()
            },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Only admins change budgets.
    let e = c
        .admin_client()
        .set_budget(authed(budget("acme", "gpu", Some(1e6)), &alice))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Deleting: gone from the list, and a second delete is NOT_FOUND.
    let del = v1::DeleteBudgetRequest {
        org: "acme".into(),
        class: "gpu".into(),
    };
    c.admin_client()
        .delete_budget(authed(del.clone(), &c.admin))
        .await
        .unwrap();
    assert_eq!(c.budgets(&alice, "").await.unwrap().len(), 1);
    let e = c
        .admin_client()
        .delete_budget(authed(del, &c.admin))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    c.server.shutdown().await;
}

#[tokio::test]
async fn bad_budget_fields_are_named_and_change_nothing() {
    let c = centre().await;
    assert_invalid(
        c.set_budget(budget("acme", "gpu", Some(-1.0))).await,
        "hours",
    );
    assert_invalid(
        c.set_budget(v1::SetBudgetRequest {
            period: "year".into(),
            ..budget("acme", "gpu", Some(1.0))
        })
        .await,
        "period",
    );
    assert_invalid(c.set_budget(budget("nope", "gpu", Some(1.0))).await, "org");
    let e = c.set_budget(budget("acme", "tpu", Some(1.0))).await;
    assert_invalid(e.clone(), "class");
    // The refusal lists the classes that exist.
    assert!(e.unwrap_err().message().contains("gpu, npu"));
    assert_invalid(
        c.set_budget(v1::SetBudgetRequest {
            max_booking: Some(ms_to_dur(0)),
            ..budget("acme", "gpu", Some(1.0))
        })
        .await,
        "max_booking",
    );
    assert!(c.budgets(&c.admin, "").await.unwrap().is_empty());
    c.server.shutdown().await;
}

#[tokio::test]
async fn top_ups_show_in_the_ledger_and_the_balance() {
    let c = centre().await;
    let top_up = |class: &str, hours: f64, note: &str| v1::TopUpBudgetRequest {
        org: "acme".into(),
        class: class.into(),
        hours,
        note: note.into(),
    };
    // No budget, or one without an hour limit: nothing to top up.
    let e = c
        .admin_client()
        .top_up_budget(authed(top_up("gpu", 5.0, ""), &c.admin))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    c.set_budget(budget("acme", "npu", None)).await.unwrap();
    let e = c
        .admin_client()
        .top_up_budget(authed(top_up("npu", 5.0, ""), &c.admin))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    c.set_budget(budget("acme", "gpu", Some(10.0)))
        .await
        .unwrap();
    for bad in [0.0, -2.0, f64::NAN] {
        let r = c
            .admin_client()
            .top_up_budget(authed(top_up("gpu", bad, ""), &c.admin))
            .await;
        assert_invalid(r, "hours");
    }
    let b = c
        .admin_client()
        .top_up_budget(authed(top_up("gpu", 5.5, "grant 42"), &c.admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.topped_up_hours, 5.5);
    assert_eq!(b.left_hours, Some(15.5));
    c.admin_client()
        .top_up_budget(authed(top_up("gpu", 0.5, ""), &c.admin))
        .await
        .unwrap();

    let alice = c.user("acme", "alice").await;
    let bob = c.user("beta", "bob").await;
    let listed = c.budgets(&alice, "").await.unwrap();
    let gpu = listed.iter().find(|b| b.class == "gpu").unwrap();
    assert_eq!(gpu.left_hours, Some(16.0));

    let ledger = |token: String, org: &str| {
        let mut u = c.usage_client();
        let org = org.to_owned();
        async move {
            u.list_ledger(authed(
                v1::ListLedgerRequest {
                    org,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .map(|r| r.into_inner().entries)
        }
    };
    let entries = ledger(alice.clone(), "").await.unwrap();
    assert_eq!(entries.len(), 2);
    let mut hours: Vec<f64> = entries.iter().map(|e| e.hours).collect();
    hours.sort_by(f64::total_cmp);
    assert_eq!(hours, [0.5, 5.5]);
    for e in &entries {
        assert_eq!((e.org.as_str(), e.budget_class.as_str()), ("acme", "gpu"));
        assert_eq!((e.kind.as_str(), e.subject_kind.as_str()), ("top-up", ""));
        assert_eq!(e.period_start, gpu.period_start);
    }
    assert!(entries.iter().any(|e| e.note == "grant 42"));
    assert!(entries.iter().any(|e| e.note == "top-up by admin"));
    // Another org's ledger is not found; its own is empty.
    assert_eq!(
        ledger(bob.clone(), "acme").await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(ledger(bob, "").await.unwrap().is_empty());
    assert_eq!(ledger(c.admin.clone(), "").await.unwrap().len(), 2);
    // An empty range is refused, naming `to`.
    let r = c
        .usage_client()
        .list_ledger(authed(
            v1::ListLedgerRequest {
                org: String::new(),
                from: Some(berth_proto::time::ms_to_ts(2_000)),
                to: Some(berth_proto::time::ms_to_ts(1_000)),
                ..Default::default()
            },
            &alice,
        ))
        .await;
    assert_invalid(r, "to");
    c.server.shutdown().await;
}

#[tokio::test]
async fn policy_changes_are_validated_and_all_or_nothing() {
    let c = centre().await;
    let alice = c.user("acme", "alice").await;
    // Any user may read the policy.
    let before = c
        .admin_client()
        .get_policy(authed(v1::GetPolicyRequest {}, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.backfill, "easy");

    let set = |policy: v1::SchedulingPolicy, fields: &[&str], token: &str| {
        let mut adm = c.admin_client();
        let req = authed(
            v1::SetPolicyRequest {
                policy: Some(policy),
                fields: fields.iter().map(|f| f.to_string()).collect(),
            },
            token,
        );
        async move { adm.set_policy(req).await.map(|r| r.into_inner()) }
    };
    let wanted = v1::SchedulingPolicy {
        backfill: "conservative".into(),
        refund_cancel_pct: 150.0,
        reserve_depth: 4,
        ..Default::default()
    };
    // An unknown field, or one bad value among good ones: nothing changes.
    assert_invalid(
        set(wanted.clone(), &["backfill", "colour"], &c.admin).await,
        "fields",
    );
    assert_invalid(
        set(wanted.clone(), &["backfill", "refund_cancel_pct"], &c.admin).await,
        "refund_cancel_pct",
    );
    assert_invalid(set(wanted.clone(), &[], &c.admin).await, "fields");
    let bad_mode = v1::SchedulingPolicy {
        backfill: "greedy".into(),
        ..Default::default()
    };
    assert_invalid(set(bad_mode, &["backfill"], &c.admin).await, "backfill");
    assert_eq!(
        set(wanted.clone(), &["backfill"], &alice)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let unchanged = c
        .admin_client()
        .get_policy(authed(v1::GetPolicyRequest {}, &c.admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged, before);

    let after = set(wanted, &["backfill", "reserve_depth"], &c.admin)
        .await
        .unwrap();
    assert_eq!(
        (after.backfill.as_str(), after.reserve_depth),
        ("conservative", 4)
    );
    assert_eq!(after.refund_cancel_pct, before.refund_cancel_pct);
    let read = c
        .admin_client()
        .get_policy(authed(v1::GetPolicyRequest {}, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, after);
    c.server.shutdown().await;
}

#[tokio::test]
async fn weights_and_rates_round_trip() {
    let c = centre().await;
    let mut adm = c.admin_client();
    let orgs = adm
        .list_orgs(authed(v1::ListOrgsRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .orgs;
    assert!(orgs.iter().all(|o| o.weight == 1.0), "{orgs:?}");

    let org = adm
        .set_org_weight(authed(
            v1::SetOrgWeightRequest {
                org: "acme".into(),
                weight: 2.5,
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((org.name.as_str(), org.weight), ("acme", 2.5));
    let orgs = adm
        .list_orgs(authed(v1::ListOrgsRequest::default(), &c.admin))
        .await
        .unwrap()
        .into_inner()
        .orgs;
    let acme = orgs.iter().find(|o| o.name == "acme").unwrap();
    assert_eq!(acme.weight, 2.5);
    for bad in [0.0, -1.0, 1001.0] {
        let r = adm
            .set_org_weight(authed(
                v1::SetOrgWeightRequest {
                    org: "acme".into(),
                    weight: bad,
                },
                &c.admin,
            ))
            .await;
        assert_invalid(r, "weight");
    }
    let e = adm
        .set_org_weight(authed(
            v1::SetOrgWeightRequest {
                org: "nope".into(),
                weight: 1.0,
            },
            &c.admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    let class = adm
        .set_class_rate(authed(
            v1::SetClassRateRequest {
                class: "npu".into(),
                rate: 0.5,
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((class.name.as_str(), class.rate), ("npu", 0.5));
    let alice = c.user("acme", "alice").await;
    let classes = v1::capacity_client::CapacityClient::new(c.channel.clone())
        .list_classes(authed(v1::ListClassesRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner()
        .classes;
    let rates: Vec<_> = classes.iter().map(|c| (c.name.as_str(), c.rate)).collect();
    assert_eq!(rates, [("gpu", 1.0), ("npu", 0.5)]);
    let r = adm
        .set_class_rate(authed(
            v1::SetClassRateRequest {
                class: "npu".into(),
                rate: 0.0,
            },
            &c.admin,
        ))
        .await;
    assert_invalid(r, "rate");
    let e = adm
        .set_class_rate(authed(
            v1::SetClassRateRequest {
                class: "gpu".into(),
                rate: 2.0,
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    c.server.shutdown().await;
}

/// A queued job pays for its max runtime up front, at its class's rate, and gets back what
/// it did not run: its ledger nets to exactly its usage record.
#[tokio::test]
async fn a_queued_job_is_charged_its_runtime_and_the_ledger_nets_to_its_usage() {
    use berth_proto::time::{ms_to_ts, now_ms};
    let c = centre().await;
    let token = c.user("acme", "alice").await;
    c.admin_client()
        .set_class_rate(authed(
            v1::SetClassRateRequest {
                class: "gpu".into(),
                rate: 2.0,
            },
            &c.admin,
        ))
        .await
        .unwrap();
    c.set_budget(budget("acme", "gpu", Some(10.0)))
        .await
        .unwrap();
    let (cred, devices) = c.join("n1", 2).await;
    let (job, known) = c.queue_and_place(&token, &cred, &devices).await;
    let ledger = |who: String| {
        let mut u = c.usage_client();
        async move {
            u.list_ledger(authed(v1::ListLedgerRequest::default(), &who))
                .await
                .unwrap()
                .into_inner()
                .entries
        }
    };
    let entries = ledger(token.clone()).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].kind, "charge");
    assert_eq!(entries[0].subject_id, job.id);
    // One device for the default hour at rate 2: 2 budget hours, 1 device-hour.
    assert!((entries[0].hours - 2.0).abs() < 1e-9, "{entries:?}");
    assert!((entries[0].device_hours - 1.0).abs() < 1e-9, "{entries:?}");

    // The job ran for about 15 minutes and exited.
    let started = now_ms() - 15 * 60_000;
    let observed = |phase: v1::JobPhase| v1::ObservedJob {
        job_id: job.id.clone(),
        phase: phase as i32,
        exit_code: (phase == v1::JobPhase::Exited).then_some(0),
        started_at: Some(ms_to_ts(started)),
        generation: known,
        ..Default::default()
    };
    let mut agent = v1::agent_client::AgentClient::new(c.channel.clone());
    for phase in [v1::JobPhase::Running, v1::JobPhase::Exited] {
        agent
            .report_job(authed(observed(phase), &cred))
            .await
            .unwrap();
    }
    let entries = ledger(token.clone()).await;
    assert_eq!(
        entries.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["charge", "refund"],
        "{entries:?}"
    );
    let net = entries[0].hours - entries[1].hours;
    let usage = c
        .usage_client()
        .get_usage(authed(v1::GetUsageRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    let used: Vec<_> = usage
        .records
        .iter()
        .filter(|r| r.subject_id == job.id)
        .collect();
    assert_eq!(used.len(), 1, "{usage:?}");
    assert!(
        used[0].device_hours > 0.24 && used[0].device_hours < 0.3,
        "{used:?}"
    );
    assert!(
        (net - 2.0 * used[0].device_hours).abs() < 1e-6,
        "charged {net} h net for {} device-hours at rate 2",
        used[0].device_hours
    );
    let b = &usage.budgets[0];
    assert!((b.left_hours.unwrap() - (10.0 - net)).abs() < 1e-6, "{b:?}");
}
