//! Prices, discounts and monthly invoices in won over real gRPC: the maths on a seeded
//! month, the states, bad input, tenant isolation, and a reconciliation of the month's
//! ledger, usage and invoices.

use berth_proto::time::{HOUR_MS, ms_to_ts};
use berth_proto::v1;
use berth_scheduler::core::month_bounds;
use berth_scheduler::store::{
    self, LedgerKind, LedgerRow, Mutation, OrgRow, OwnerKind, ReservationRow, ReservationState,
    Store, UsageRow,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use tonic::transport::Channel;
use tonic::{Code, Status};

mod common;

use common::{Centre, authed};

/// The seeded month.
const MONTH: &str = "2025-03";

fn ledger(
    id: &str,
    org: &str,
    kind: LedgerKind,
    subject: (OwnerKind, &str),
    device_ms: i64,
    time_ms: i64,
) -> LedgerRow {
    LedgerRow {
        id: id.into(),
        org: org.into(),
        budget_class: "gpu".into(),
        time_ms,
        kind,
        amount_ms: device_ms.max(1),
        period_start_ms: month_bounds(2025, 3).0,
        subject_kind: Some(subject.0),
        subject_id: subject.1.into(),
        device_class: "gpu".into(),
        device_ms,
        note: String::new(),
        project_id: None,
    }
}

fn usage(org: &str, kind: OwnerKind, id: &str, devices: i32, start: i64, hours: i64) -> UsageRow {
    UsageRow {
        org: org.into(),
        user_id: "seed".into(),
        kind,
        subject_id: id.into(),
        class: "gpu".into(),
        devices,
        start_ms: start,
        end_ms: start + hours * HOUR_MS,
        device_ms: i64::from(devices) * hours * HOUR_MS,
        evidence: None,
    }
}

/// A centre whose database already holds March 2025: for acme a queued job (10 h
/// charged, 3 h refunded, 7 h used), a booking (8 h charged, 2 h refunded by idle
/// reclaim, 6 h held) with a 2 h job inside it (not charged), a top-up, and entries just
/// outside the month; for beta a 1 h job.
async fn seeded() -> Centre {
    seeded_with(Vec::new()).await
}

/// As [`seeded`], with `extra` written after the rest.
async fn seeded_with(extra: Vec<Mutation>) -> Centre {
    let (from, to) = month_bounds(2025, 3);
    let day = 24 * HOUR_MS;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("berth.db").display()
    );
    let db = store::open(&url).await.unwrap();
    let mut batch: Vec<Mutation> = ["acme", "beta"]
        .into_iter()
        .map(|o| {
            Mutation::InsertOrg(OrgRow {
                name: o.into(),
                description: String::new(),
                created_ms: from - 30 * day,
                weight: 1.0,
                overage: Default::default(),
            })
        })
        .collect();
    let (job, booking) = ((OwnerKind::Job, "j1"), (OwnerKind::Reservation, "r1"));
    batch.push(Mutation::InsertLedger(vec![
        ledger(
            "l1",
            "acme",
            LedgerKind::Charge,
            job,
            10 * HOUR_MS,
            from + day,
        ),
        ledger(
            "l2",
            "acme",
            LedgerKind::Refund,
            job,
            3 * HOUR_MS,
            from + 2 * day,
        ),
        ledger("l3", "acme", LedgerKind::Charge, booking, 8 * HOUR_MS, from),
        ledger(
            "l4",
            "acme",
            LedgerKind::Refund,
            booking,
            2 * HOUR_MS,
            to - 1,
        ),
        ledger("l5", "acme", LedgerKind::TopUp, booking, 0, from + day),
        // Just outside the month on either side.
        ledger(
            "l6",
            "acme",
            LedgerKind::Charge,
            job,
            50 * HOUR_MS,
            from - 1,
        ),
        ledger("l7", "acme", LedgerKind::Refund, job, 40 * HOUR_MS, to),
        ledger(
            "l8",
            "beta",
            LedgerKind::Charge,
            (OwnerKind::Job, "j9"),
            HOUR_MS,
            from + day,
        ),
    ]));
    for u in [
        usage("acme", OwnerKind::Job, "j1", 1, from + day, 7),
        usage("acme", OwnerKind::Reservation, "r1", 2, from + 3 * day, 3),
        usage("acme", OwnerKind::Job, "j2", 1, from + 3 * day, 2),
        usage("acme", OwnerKind::Reservation, "r3", 1, from + 4 * day, 1),
        usage("beta", OwnerKind::Job, "j9", 1, from + day, 1),
    ] {
        batch.push(Mutation::InsertUsage(u));
    }
    // Both bookings were reclaimed for idleness: r1 2 h before its end (2 devices), r3 2 h
    // before its end (1 device).
    for (id, count, start, end) in [
        ("r1", 2, from + 3 * day, from + 3 * day + 5 * HOUR_MS),
        ("r3", 1, from + 4 * day, from + 4 * day + 3 * HOUR_MS),
    ] {
        batch.push(Mutation::UpsertReservation(Arc::new(ReservationRow {
            id: id.into(),
            org: "acme".into(),
            user_id: "seed".into(),
            user_name: "seed".into(),
            class: "gpu".into(),
            count,
            site: None,
            start_ms: start,
            end_ms: end,
            state: ReservationState::Reclaimed,
            reason: "reclaimed".into(),
            devices: vec![],
            created_ms: from - day,
            charge: Default::default(),
            idle_since_ms: None,
            idle_warned_ms: None,
            project: None,
        })));
    }
    batch.extend(extra);
    db.apply(batch).await.unwrap();
    drop(db);
    common::centre_in(dir, 15_000, |_| {}).await
}

/// A one-device job of acme's in booking `booking`, started at `started`: running
/// (`finished: None`) or ended.
fn job_in(id: &str, booking: &str, started: i64, finished: Option<i64>) -> Mutation {
    Mutation::UpsertJob(Arc::new(store::JobRow {
        id: id.into(),
        name: String::new(),
        org: "acme".into(),
        user_id: "seed".into(),
        user_name: "seed".into(),
        class: "gpu".into(),
        count: 1,
        image: "i".into(),
        command: vec![],
        env: Default::default(),
        datasets: vec![],
        network: "bridge".into(),
        max_runtime_ms: HOUR_MS,
        reservation_id: Some(booking.into()),
        state: match finished {
            Some(_) => store::JobState::Succeeded,
            None => store::JobState::Running,
        },
        reason: String::new(),
        node: Some("n1".into()),
        devices: vec!["GPU-1".into()],
        exit_code: finished.map(|_| 0),
        created_ms: started,
        started_ms: Some(started),
        finished_ms: finished,
        deadline_ms: None,
        generation: 1,
        priority: 0,
        preemptible: false,
        nodes: 1,
        charge: Default::default(),
        requeued_from: None,
        stop: None,
        project: None,
        evidence: None,
    }))
}

fn billing(c: &Centre) -> v1::billing_client::BillingClient<Channel> {
    v1::billing_client::BillingClient::new(c.channel.clone())
}

impl Centre {
    async fn set_price(
        &self,
        token: &str,
        class: &str,
        krw: i64,
        idle: Option<i64>,
    ) -> Result<v1::Price, Status> {
        let r = v1::SetPriceRequest {
            class: class.into(),
            krw_per_hour: krw,
            idle_krw_per_hour: idle,
        };
        billing(self)
            .set_price(authed(r, token))
            .await
            .map(|r| r.into_inner())
    }

    async fn set_discount(
        &self,
        token: &str,
        org: &str,
        percent: u32,
        reason: &str,
    ) -> Result<v1::Discount, Status> {
        let r = v1::SetDiscountRequest {
            org: org.into(),
            percent,
            reason: reason.into(),
        };
        billing(self)
            .set_discount(authed(r, token))
            .await
            .map(|r| r.into_inner())
    }

    async fn generate(
        &self,
        month: &str,
        org: &str,
        replace: bool,
    ) -> Result<v1::GenerateInvoicesResponse, Status> {
        let r = v1::GenerateInvoicesRequest {
            month: month.into(),
            org: org.into(),
            replace_drafts: replace,
        };
        billing(self)
            .generate_invoices(authed(r, &self.admin))
            .await
            .map(|r| r.into_inner())
    }

    async fn invoices(&self, token: &str, org: &str) -> Result<Vec<v1::Invoice>, Status> {
        let r = v1::ListInvoicesRequest {
            org: org.into(),
            month: String::new(),
        };
        billing(self)
            .list_invoices(authed(r, token))
            .await
            .map(|r| r.into_inner().invoices)
    }

    async fn invoice(&self, token: &str, id: &str) -> Result<v1::Invoice, Status> {
        billing(self)
            .get_invoice(authed(v1::GetInvoiceRequest { id: id.into() }, token))
            .await
            .map(|r| r.into_inner())
    }

    async fn set_state(
        &self,
        token: &str,
        id: &str,
        state: v1::InvoiceState,
    ) -> Result<v1::Invoice, Status> {
        let r = v1::SetInvoiceStateRequest {
            id: id.into(),
            state: state as i32,
        };
        billing(self)
            .set_invoice_state(authed(r, token))
            .await
            .map(|r| r.into_inner())
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

fn code<T: std::fmt::Debug>(r: Result<T, Status>) -> Code {
    r.expect_err("expected an error").code()
}

fn of_org<'a>(invoices: &'a [v1::Invoice], org: &str) -> &'a v1::Invoice {
    invoices
        .iter()
        .find(|i| i.org == org)
        .unwrap_or_else(|| panic!("no invoice of {org} in {invoices:?}"))
}

#[tokio::test]
async fn prices_and_discounts_refuse_bad_input_naming_the_field() {
    let c = seeded().await;
    let alice = c.user("acme", "alice").await;
    assert_invalid(c.set_price(&c.admin, "gpu", -1, None).await, "krw_per_hour");
    assert_invalid(
        c.set_price(&c.admin, "gpu", 3500, Some(-5)).await,
        "idle_krw_per_hour",
    );
    assert_invalid(
        c.set_price(&c.admin, "h100-80gb", 3500, None).await,
        "class",
    );
    assert_eq!(
        code(c.set_price(&alice, "gpu", 1, None).await),
        Code::PermissionDenied
    );
    let p = c
        .set_price(&c.admin, "gpu", 3500, Some(1000))
        .await
        .unwrap();
    assert_eq!((p.krw_per_hour, p.idle_krw_per_hour), (3500, Some(1000)));
    // Users see prices too.
    let prices = billing(&c)
        .list_prices(authed(v1::ListPricesRequest {}, &alice))
        .await
        .unwrap()
        .into_inner()
        .prices;
    assert_eq!(prices.len(), 1);
    assert_eq!(prices[0].class, "gpu");

    assert_invalid(c.set_discount(&c.admin, "acme", 101, "x").await, "percent");
    assert_invalid(c.set_discount(&c.admin, "acme", 50, "  ").await, "reason");
    assert_invalid(c.set_discount(&c.admin, "nobody", 50, "x").await, "org");
    assert_eq!(
        code(c.set_discount(&alice, "acme", 100, "me").await),
        Code::PermissionDenied
    );
    let d = c
        .set_discount(&c.admin, "acme", 50, "부산 소재 중소기업")
        .await
        .unwrap();
    assert_eq!((d.percent, d.reason.as_str()), (50, "부산 소재 중소기업"));
    c.set_discount(&c.admin, "beta", 0, "none").await.unwrap();
    let list = |token: String, org: &'static str| {
        let mut b = billing(&c);
        async move {
            b.list_discounts(authed(v1::ListDiscountsRequest { org: org.into() }, &token))
                .await
                .map(|r| r.into_inner().discounts)
        }
    };
    assert_eq!(list(c.admin.clone(), "").await.unwrap().len(), 2);
    let own = list(alice.clone(), "").await.unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].org, "acme");
    assert_eq!(code(list(alice, "beta").await), Code::NotFound);
}

#[tokio::test]
async fn a_months_invoices_reconcile_with_its_ledger_and_usage() {
    let c = seeded().await;
    // Billable hours without a price are refused, naming the class.
    let e = c.generate(MONTH, "", false).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("\"gpu\""), "{}", e.message());

    c.set_price(&c.admin, "gpu", 3500, None).await.unwrap();
    c.set_discount(&c.admin, "acme", 50, "부산 소재 중소기업")
        .await
        .unwrap();
    let out = c.generate(MONTH, "", false).await.unwrap();
    assert!(out.skipped.is_empty());
    assert_eq!(out.invoices.len(), 2, "acme and beta had activity");
    let acme = of_org(&out.invoices, "acme");
    assert_eq!(acme.state, v1::InvoiceState::Draft as i32);
    assert_eq!(acme.month, MONTH);
    assert_eq!(acme.discount_reason, "부산 소재 중소기업");
    // 10 - 3 + 8 - 2 = 13 h; the entries outside the month and the top-up do not count.
    assert_eq!(acme.lines.len(), 1);
    let line = &acme.lines[0];
    assert_eq!((line.class.as_str(), line.project.as_str()), ("gpu", ""));
    assert_eq!(line.device_ms, 13 * HOUR_MS);
    assert_eq!((line.billable_ms, line.covered_hours), (13 * HOUR_MS, 0.0));
    // 13 h x 3,500 x 50 % = 22,750; VAT 2,275.
    assert_eq!(line.amount_krw, 22_750);
    assert_eq!(
        (acme.subtotal_krw, acme.vat_krw, acme.total_krw),
        (22_750, 2_275, 25_025)
    );
    let beta = of_org(&out.invoices, "beta");
    assert_eq!(
        (beta.subtotal_krw, beta.vat_krw, beta.total_krw),
        (3_500, 350, 3_850)
    );

    // Reconciliation: the month's ledger and usage, read through the API, against the
    // invoices.
    let (from, to) = month_bounds(2025, 3);
    let entries = c
        .usage_client()
        .list_ledger(authed(
            v1::ListLedgerRequest {
                from: Some(ms_to_ts(from)),
                to: Some(ms_to_ts(to)),
                page_size: 1000,
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let records = c
        .usage_client()
        .get_usage(authed(
            v1::GetUsageRequest {
                from: Some(ms_to_ts(from)),
                to: Some(ms_to_ts(to)),
                page_size: 1000,
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .records;
    let invoices = c.invoices(&c.admin, "").await.unwrap();
    let price = 3500.0;
    for org in ["acme", "beta"] {
        let ledger_hours: f64 = entries
            .iter()
            .filter(|e| e.org == org)
            .map(|e| match e.kind.as_str() {
                "charge" => e.device_hours,
                "refund" => -e.device_hours,
                _ => 0.0,
            })
            .sum();
        // Usage of what the ledger charged: bookings, and jobs charged on their own
        // (a job inside a booking is paid by the booking).
        let charged: BTreeSet<&str> = entries
            .iter()
            .filter(|e| e.org == org && e.kind != "top-up")
            .map(|e| e.subject_id.as_str())
            .collect();
        let usage_hours: f64 = records
            .iter()
            .filter(|r| r.org == org && charged.contains(r.subject_id.as_str()))
            .map(|r| r.device_hours)
            .sum();
        let inv = of_org(&invoices, org);
        let invoice_hours: f64 = inv.lines.iter().map(|l| l.hours).sum();
        assert!(
            (invoice_hours - ledger_hours).abs() < 1e-9,
            "{org}: {invoice_hours} vs ledger {ledger_hours}"
        );
        assert!(
            (invoice_hours - usage_hours).abs() < 1e-9,
            "{org}: {invoice_hours} vs usage {usage_hours}"
        );
        let discount = f64::from(inv.discount_percent) / 100.0;
        let expected = (ledger_hours * price * (1.0 - discount)).round() as i64;
        assert_eq!(inv.subtotal_krw, expected, "{org}");
        assert_eq!(
            inv.total_krw,
            expected + (expected as f64 * 0.1).round() as i64,
            "{org}"
        );
        assert_eq!(
            inv.lines.iter().map(|l| l.amount_krw).sum::<i64>(),
            inv.subtotal_krw
        );
    }

    // With an idle price the booked hours no job used are their own line: the booking's
    // net 6 h less the 2 h job inside it; the hours still add up to the ledger's.
    c.set_price(&c.admin, "gpu", 3500, Some(1000))
        .await
        .unwrap();
    let out = c.generate(MONTH, "acme", true).await.unwrap();
    let acme = of_org(&out.invoices, "acme");
    let lines: Vec<(&str, i64, i64)> = acme
        .lines
        .iter()
        .map(|l| (l.kind.as_str(), l.device_ms / HOUR_MS, l.krw_per_hour))
        .collect();
    assert_eq!(lines, vec![("use", 9, 3500), ("idle", 4, 1000)]);
    // (9 x 3,500 + 4 x 1,000) x 50 % = 17,750; VAT 1,775.
    assert_eq!((acme.subtotal_krw, acme.total_krw), (17_750, 19_525));
}

#[tokio::test]
async fn invoices_move_draft_issued_paid_or_void_and_are_never_edited_once_issued() {
    let c = seeded().await;
    c.set_price(&c.admin, "gpu", 3500, None).await.unwrap();
    // Bad months, and months that have not ended.
    assert_invalid(c.generate("2025-13", "", false).await, "month");
    assert_invalid(c.generate("March", "", false).await, "month");
    assert_eq!(
        code(c.generate("2999-01", "", false).await),
        Code::FailedPrecondition
    );
    assert_invalid(c.generate(MONTH, "nobody", false).await, "org");

    let first = c.generate(MONTH, "", false).await.unwrap().invoices;
    // Again without --replace-drafts: refused.
    let e = c.generate(MONTH, "", false).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("--replace-drafts"), "{}", e.message());
    // With it: new drafts replace the old ones.
    let second = c.generate(MONTH, "", true).await.unwrap().invoices;
    assert_eq!(second.len(), 2);
    for old in &first {
        assert_eq!(code(c.invoice(&c.admin, &old.id).await), Code::NotFound);
    }
    let acme = of_org(&second, "acme").clone();
    let alice = c.user("acme", "alice").await;
    assert_eq!(
        code(
            c.set_state(&alice, &acme.id, v1::InvoiceState::Issued)
                .await
        ),
        Code::PermissionDenied
    );
    // Draft cannot be paid; issue it.
    assert_eq!(
        code(
            c.set_state(&c.admin, &acme.id, v1::InvoiceState::Paid)
                .await
        ),
        Code::FailedPrecondition
    );
    assert_invalid(
        c.set_state(&c.admin, &acme.id, v1::InvoiceState::Draft)
            .await,
        "state",
    );
    let issued = c
        .set_state(&c.admin, &acme.id, v1::InvoiceState::Issued)
        .await
        .unwrap();
    assert_eq!(issued.state, v1::InvoiceState::Issued as i32);
    assert!(issued.issued_at.is_some());
    assert_eq!(issued.lines, acme.lines);

    // Regenerating keeps the issued invoice and says so; beta's draft is replaced.
    c.set_price(&c.admin, "gpu", 9000, None).await.unwrap();
    let third = c.generate(MONTH, "", true).await.unwrap();
    assert_eq!(third.skipped.len(), 1);
    assert_eq!(
        (
            third.skipped[0].org.as_str(),
            third.skipped[0].invoice_id.as_str()
        ),
        ("acme", acme.id.as_str())
    );
    assert_eq!(third.invoices.len(), 1);
    assert_eq!(third.invoices[0].org, "beta");
    assert_eq!(third.invoices[0].subtotal_krw, 9_000);
    let still = c.invoice(&c.admin, &acme.id).await.unwrap();
    assert_eq!(
        (still.subtotal_krw, still.total_krw),
        (acme.subtotal_krw, acme.total_krw)
    );

    // A correction: void the issued one, then a new invoice is generated.
    let void = c
        .set_state(&c.admin, &acme.id, v1::InvoiceState::Void)
        .await
        .unwrap();
    assert!(void.voided_at.is_some());
    assert_eq!(
        code(
            c.set_state(&c.admin, &acme.id, v1::InvoiceState::Issued)
                .await
        ),
        Code::FailedPrecondition
    );
    let fourth = c.generate(MONTH, "acme", false).await.unwrap().invoices;
    assert_eq!(fourth.len(), 1);
    assert_ne!(fourth[0].id, acme.id);
    assert_eq!(fourth[0].subtotal_krw, 13 * 9_000);
    let listed = c.invoices(&c.admin, "acme").await.unwrap();
    assert_eq!(listed.len(), 2, "the void one is kept: {listed:?}");
    // Issued, then paid; paid is final.
    c.set_state(&c.admin, &fourth[0].id, v1::InvoiceState::Issued)
        .await
        .unwrap();
    let paid = c
        .set_state(&c.admin, &fourth[0].id, v1::InvoiceState::Paid)
        .await
        .unwrap();
    assert!(paid.paid_at.is_some());
    assert_eq!(
        code(
            c.set_state(&c.admin, &fourth[0].id, v1::InvoiceState::Void)
                .await
        ),
        Code::FailedPrecondition
    );

    // Every step is in the audit log.
    let events = c
        .admin_client()
        .list_audit(authed(
            v1::ListAuditRequest {
                page_size: 1000,
                action: "invoice.".into(),
                ..Default::default()
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: BTreeSet<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for a in [
        "invoice.generate",
        "invoice.replace",
        "invoice.issue",
        "invoice.pay",
        "invoice.void",
    ] {
        assert!(actions.contains(a), "{a} not in {actions:?}");
    }
}

#[tokio::test]
async fn an_org_sees_only_its_own_invoices() {
    let c = seeded().await;
    c.set_price(&c.admin, "gpu", 3500, None).await.unwrap();
    let out = c.generate(MONTH, "", false).await.unwrap().invoices;
    let acme = of_org(&out, "acme");
    let beta = of_org(&out, "beta");
    let alice = c.user("acme", "alice").await;
    let bob = c.user("beta", "bob").await;
    // Another org's invoice is NOT_FOUND, like a missing id.
    let foreign = c.invoice(&bob, &acme.id).await.unwrap_err();
    let missing = c
        .invoice(&bob, "0b7c1b1e-8d0c-4c57-9d67-2f5e3f0a9a11")
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(missing.code(), Code::NotFound);
    assert!(!foreign.message().contains("acme"), "{}", foreign.message());
    assert_eq!(c.invoice(&bob, &beta.id).await.unwrap().id, beta.id);
    let mine = c.invoices(&bob, "").await.unwrap();
    assert_eq!(
        mine.iter().map(|i| i.org.as_str()).collect::<Vec<_>>(),
        ["beta"]
    );
    assert_eq!(code(c.invoices(&bob, "acme").await), Code::NotFound);
    assert_eq!(c.invoices(&alice, "").await.unwrap().len(), 1);
    assert_eq!(c.invoices(&c.admin, "").await.unwrap().len(), 2);
    // Users neither generate nor change invoices.
    let e = billing(&c)
        .generate_invoices(authed(
            v1::GenerateInvoicesRequest {
                month: MONTH.into(),
                ..Default::default()
            },
            &alice,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(
        code(c.set_state(&bob, &acme.id, v1::InvoiceState::Void).await),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn the_monthly_report_has_figures_flags_and_the_amount_due() {
    let c = seeded().await;
    c.set_price(&c.admin, "gpu", 3500, None).await.unwrap();
    let report = |month: &'static str, low: Option<f64>, token: String| {
        let mut b = billing(&c);
        async move {
            b.monthly_report(authed(
                v1::MonthlyReportRequest {
                    month: month.into(),
                    org: String::new(),
                    low_util_percent: low,
                },
                &token,
            ))
            .await
            .map(|r| r.into_inner())
        }
    };
    assert_invalid(report("2025/03", None, c.admin.clone()).await, "month");
    assert_invalid(
        report(MONTH, Some(101.0), c.admin.clone()).await,
        "low_util_percent",
    );
    let alice = c.user("acme", "alice").await;
    assert_eq!(
        code(report(MONTH, None, alice).await),
        Code::PermissionDenied
    );

    let r = report(MONTH, None, c.admin.clone()).await.unwrap();
    assert_eq!((r.month.as_str(), r.low_util_percent), (MONTH, 30.0));
    assert_eq!(r.rows.len(), 2, "{r:?}");
    let acme = &r.rows[0];
    assert_eq!((acme.org.as_str(), acme.project.as_str()), ("acme", ""));
    assert_eq!(acme.granted_hours, None);
    // Bookings held 6 h + 1 h; jobs used 7 h + 2 h.
    assert_eq!((acme.booked_hours, acme.used_hours), (7.0, 9.0));
    // Reclaims took back 2 h x 2 devices and 2 h x 1.
    assert_eq!((acme.idle_reclaimed_hours, acme.idle_reclaims), (6.0, 2));
    assert_eq!(acme.refunded_hours, 5.0);
    assert_eq!(
        (acme.mean_utilization_percent, acme.energy_wh),
        (None, None)
    );
    // No invoice yet: computed as one would be, 13 h x 3,500 + 10 % VAT.
    assert_eq!(acme.amount_due_krw, Some(50_050));
    assert_eq!(acme.amount_source, "computed");
    let kinds: Vec<(&str, u32, f64)> = acme
        .flags
        .iter()
        .map(|f| (f.kind.as_str(), f.count, f.hours))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("repeated-idle-reclaim", 2, 0.0),
            ("bookings-unused", 2, 7.0)
        ]
    );
    let beta = &r.rows[1];
    assert_eq!((beta.used_hours, beta.amount_due_krw), (1.0, Some(3_850)));
    assert!(beta.flags.is_empty());

    // Once invoiced, the amount due is the invoice's.
    c.set_discount(&c.admin, "acme", 50, "SME").await.unwrap();
    c.generate(MONTH, "", false).await.unwrap();
    let r = report(MONTH, None, c.admin.clone()).await.unwrap();
    assert_eq!(r.rows[0].amount_due_krw, Some(25_025));
    assert_eq!(r.rows[0].amount_source, "invoice");
}

/// A booking a job ran in is not flagged unused, whether the job is still live (read from
/// the scheduler's memory) or has ended (read from the database's index of ended jobs).
#[tokio::test]
async fn the_monthly_report_sees_jobs_in_bookings_live_and_ended() {
    const LIVE: &str = "00000000-0000-4000-8000-00000000000a";
    let (from, _) = month_bounds(2025, 3);
    let day = 24 * HOUR_MS;
    let unused = |r: &v1::MonthlyReportResponse| {
        r.rows[0]
            .flags
            .iter()
            .find(|f| f.kind == "bookings-unused")
            .map(|f| (f.count, f.hours))
    };
    let ask = |c: &Centre| {
        let mut b = billing(c);
        let token = c.admin.clone();
        async move {
            b.monthly_report(authed(
                v1::MonthlyReportRequest {
                    month: MONTH.into(),
                    org: "acme".into(),
                    low_util_percent: None,
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
        }
    };
    // r1's job has ended; r3 has none: r3 alone is unused (1 h held).
    let ended = job_in(
        "j-ended",
        "r1",
        from + 3 * day,
        Some(from + 3 * day + HOUR_MS),
    );
    let c = seeded_with(vec![ended.clone()]).await;
    assert_eq!(unused(&ask(&c).await), Some((1, 1.0)));
    // r3's job still runs as the centre starts: neither booking is unused.
    let live = job_in(LIVE, "r3", from + 4 * day, None);
    let c = seeded_with(vec![ended, live]).await;
    assert_eq!(unused(&ask(&c).await), None);
    // It was live throughout, so the report found it in memory.
    let j = v1::jobs_client::JobsClient::new(c.channel.clone())
        .get_job(authed(v1::GetJobRequest { id: LIVE.into() }, &c.admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.state, v1::JobState::Running as i32);
}

/// A March 2025 where acme's project P1 (100 h of gpu) paid for a 4 h job that ran at
/// 12 % utilisation, and acme paid a 2 h job itself.
async fn seeded_with_a_project() -> Centre {
    let (from, _) = month_bounds(2025, 3);
    let day = 24 * HOUR_MS;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("berth.db").display()
    );
    let db = store::open(&url).await.unwrap();
    let mut batch = vec![
        Mutation::InsertOrg(OrgRow {
            name: "acme".into(),
            description: String::new(),
            created_ms: from - 30 * day,
            weight: 1.0,
            overage: Default::default(),
        }),
        Mutation::UpsertProject(store::ProjectRow {
            id: "p1".into(),
            org: "acme".into(),
            title: "port logistics".into(),
            programme: "NIPA HPC".into(),
            start_ms: from - 10 * day,
            end_ms: from + 60 * day,
            contact: String::new(),
            state: store::ProjectState::Active,
            reason: String::new(),
            grants: vec![store::GrantRow {
                class: "gpu".into(),
                device_ms: 100 * HOUR_MS,
            }],
            created_ms: from - 20 * day,
            updated_ms: from - 20 * day,
            expiry_warned_ms: None,
        }),
    ];
    let mut on_project = ledger(
        "g1",
        "acme",
        LedgerKind::Charge,
        (OwnerKind::Job, "jp"),
        4 * HOUR_MS,
        from + day,
    );
    on_project.project_id = Some("p1".into());
    batch.push(Mutation::InsertLedger(vec![
        on_project,
        ledger(
            "g2",
            "acme",
            LedgerKind::Charge,
            (OwnerKind::Job, "jo"),
            2 * HOUR_MS,
            from + day,
        ),
    ]));
    let mut ran = usage("acme", OwnerKind::Job, "jp", 1, from + day, 4);
    ran.evidence = Some(store::Evidence {
        mean_utilization_percent: 12.0,
        utilization_source: berth_proto::evidence::UtilizationSource::DeviceBusy,
        peak_memory_bytes: 1 << 30,
        energy_wh: 800.0,
        energy_source: Some(berth_proto::evidence::EnergySource::Counter),
        mean_sm_active: None,
        mean_tensor_active: None,
        samples: 40,
        covered_seconds: 14_400.0,
        devices: 1,
    });
    batch.push(Mutation::InsertUsage(ran));
    batch.push(Mutation::InsertUsage(usage(
        "acme",
        OwnerKind::Job,
        "jo",
        1,
        from + day,
        2,
    )));
    db.apply(batch).await.unwrap();
    drop(db);
    common::centre_in(dir, 15_000, |_| {}).await
}

#[tokio::test]
async fn grants_cover_their_projects_hours_and_the_report_checks_each_project() {
    let c = seeded_with_a_project().await;
    c.set_price(&c.admin, "gpu", 3500, None).await.unwrap();
    let invoices = c.generate(MONTH, "", false).await.unwrap();
    let acme = invoices
        .invoices
        .iter()
        .find(|i| i.org == "acme")
        .expect("acme's invoice");
    let covered: f64 = acme.lines.iter().map(|l| l.covered_hours).sum();
    let billable: f64 = acme.lines.iter().map(|l| l.billable_hours).sum();
    assert_eq!((covered, billable), (4.0, 2.0), "{acme:?}");
    assert!(
        acme.lines
            .iter()
            .any(|l| l.project == "p1" && l.covered_hours == 4.0 && l.amount_krw == 0),
        "{acme:?}"
    );
    // Only the 2 h the org paid: 7,000 + 10 % VAT.
    assert_eq!(acme.total_krw, 7_700, "{acme:?}");

    let r = billing(&c)
        .monthly_report(authed(
            v1::MonthlyReportRequest {
                month: MONTH.into(),
                org: "acme".into(),
                low_util_percent: Some(30.0),
            },
            &c.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let project = r
        .rows
        .iter()
        .find(|row| row.project == "p1")
        .unwrap_or_else(|| panic!("no row for the project: {r:?}"));
    assert_eq!(project.granted_hours, Some(100.0), "{project:?}");
    assert_eq!(project.used_hours, 4.0, "{project:?}");
    assert_eq!(project.mean_utilization_percent, Some(12.0), "{project:?}");
    assert_eq!(project.energy_wh, Some(800.0), "{project:?}");
    assert!(
        project.flags.iter().any(|f| f.kind == "low-utilization"),
        "{project:?}"
    );
}
