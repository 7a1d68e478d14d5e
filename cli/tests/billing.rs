//! Prices, discounts and invoices end to end with the real binaries: a month of ledger
//! written into the scheduler's database, invoices generated, issued and paid with
//! `berth admin invoices`, and `berth invoices show ID -o json|csv|html` as the org sees it.

// Seeding the database uses the scheduler's store, which the CLI links with `local`.
#![cfg(feature = "local")]

mod common;

use berth_scheduler::core::month_bounds;
use berth_scheduler::store::{self, LedgerKind, LedgerRow, Mutation, OwnerKind, Store};
use common::Centre;

const HOUR_MS: i64 = 3_600_000;

fn charge(id: &str, org: &str, hours: i64, time_ms: i64) -> LedgerRow {
    LedgerRow {
        id: id.into(),
        org: org.into(),
        budget_class: "gpu".into(),
        time_ms,
        kind: LedgerKind::Charge,
        amount_ms: hours * HOUR_MS,
        period_start_ms: month_bounds(2025, 3).0,
        subject_kind: Some(OwnerKind::Job),
        subject_id: format!("job-{id}"),
        device_class: "gpu".into(),
        device_ms: hours * HOUR_MS,
        note: String::new(),
        project_id: None,
    }
}

/// Writes March 2025's ledger into the stopped scheduler's SQLite database: acme 10
/// device-hours, beta 1.
fn seed(c: &Centre) {
    let url = format!(
        "sqlite://{}?mode=rwc",
        c.path("scheduler/berth.db").display()
    );
    let (from, _) = month_bounds(2025, 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let db = store::open(&url).await.expect("open the database");
        db.apply(vec![Mutation::InsertLedger(vec![
            charge("a1", "acme", 10, from + 5 * HOUR_MS),
            charge("b1", "beta", 1, from + 6 * HOUR_MS),
        ])])
        .await
        .expect("seed the ledger");
    });
}

#[test]
fn invoices_are_generated_issued_paid_and_shown_as_json_csv_and_html() {
    let mut c = Centre::start_sqlite();
    c.site_and_class("s1", "gpu");
    for org in ["acme", "beta"] {
        c.admin(&["admin", "orgs", "create", org]);
    }
    let alice = c.user("acme", "alice");
    let bob = c.user("beta", "bob");

    // Bad prices and discounts are refused naming the field.
    let bad = c
        .berth(
            &c.admin_token,
            &[
                "admin",
                "prices",
                "set",
                "--class",
                "gpu",
                "--krw-per-hour",
                "-1",
            ],
        )
        .failed();
    assert!(bad.stderr.contains("krw_per_hour"), "{}", bad.describe());
    let bad = c
        .berth(
            &c.admin_token,
            &[
                "admin",
                "prices",
                "set",
                "--class",
                "h100-80gb",
                "--krw-per-hour",
                "3500",
            ],
        )
        .failed();
    assert!(bad.stderr.contains("class"), "{}", bad.describe());
    c.admin(&[
        "admin",
        "prices",
        "set",
        "--class",
        "gpu",
        "--krw-per-hour",
        "3500",
    ]);
    let prices = c.json(&alice, &["prices"]);
    assert_eq!(prices[0]["class"], "gpu", "{prices}");
    assert_eq!(prices[0]["krw_per_hour"], 3500, "{prices}");
    let reason = "부산 소재 중소기업 <SME>";
    c.admin(&[
        "admin",
        "discounts",
        "set",
        "--org",
        "acme",
        "--percent",
        "50",
        "--reason",
        reason,
    ]);
    let discounts = c.json(&c.admin_token, &["admin", "discounts"]);
    assert_eq!(discounts[0]["percent"], 50, "{discounts}");

    // A month that has not ended is refused.
    c.berth(
        &c.admin_token,
        &["admin", "invoices", "generate", "--month", "2999-01"],
    )
    .failed();

    c.stop_scheduler();
    seed(&c);
    c.restart_scheduler();

    let made = c.json(
        &c.admin_token,
        &["admin", "invoices", "generate", "--month", "2025-03"],
    );
    let made = made.as_array().expect("a list of invoices");
    assert_eq!(made.len(), 2, "{made:?}");
    let acme = made.iter().find(|i| i["org"] == "acme").expect("acme's");
    let id = acme["id"].as_str().expect("id").to_owned();
    // Again without --replace-drafts: refused.
    let again = c
        .berth(
            &c.admin_token,
            &["admin", "invoices", "generate", "--month", "2025-03"],
        )
        .failed();
    assert!(
        again.stderr.contains("--replace-drafts"),
        "{}",
        again.describe()
    );

    c.admin(&["admin", "invoices", "issue", &id]);
    let paid = c.json(&c.admin_token, &["admin", "invoices", "pay", &id]);
    assert_eq!(paid["state"], "paid", "{paid}");

    // JSON: 10 h x 3,500 x 50 % = 17,500; VAT 1,750.
    let v = c.json(&alice, &["invoices", "show", &id]);
    assert_eq!(v["org"], "acme", "{v}");
    assert_eq!(v["month"], "2025-03");
    assert_eq!(v["time_zone"], "UTC");
    assert_eq!(v["lines"][0]["class"], "gpu");
    assert_eq!(v["lines"][0]["hours"], 10.0);
    assert_eq!(v["lines"][0]["billable_hours"], 10.0);
    assert_eq!(v["lines"][0]["amount_krw"], 17_500);
    assert_eq!(
        (&v["subtotal_krw"], &v["vat_krw"], &v["total_krw"]),
        (&17_500.into(), &1_750.into(), &19_250.into())
    );
    assert_eq!(v["discount_reason"], reason);
    assert!(
        v["rounding"]
            .as_str()
            .unwrap()
            .contains("half away from zero")
    );

    // CSV: a row per line, then subtotal, VAT and total.
    let csv = c
        .berth(&alice, &["invoices", "show", &id, "-o", "csv"])
        .ok();
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert!(
        rows[0].starts_with("invoice,org,month,state,line,project,class,kind,hours"),
        "{}",
        csv.stdout
    );
    assert!(
        rows[1].ends_with(",gpu,use,10.000,0.000,10.000,3500,50,17500"),
        "{}",
        csv.stdout
    );
    assert!(rows.last().unwrap().contains(",total,"), "{}", csv.stdout);
    assert!(rows.last().unwrap().ends_with(",19250"), "{}", csv.stdout);

    // HTML: a printable page, everything escaped.
    let html = c
        .berth(&alice, &["invoices", "show", &id, "-o", "html"])
        .ok();
    let page = &html.stdout;
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("₩19,250"), "{page}");
    assert!(page.contains("부산 소재 중소기업 &lt;SME&gt;"), "{page}");
    assert!(!page.contains("<SME>"), "{page}");
    assert!(page.contains("size:A4"), "{page}");

    // Another org's invoice is not found (exit code 3), and its list is its own.
    let foreign = c.berth(&bob, &["invoices", "show", &id]).failed();
    assert_eq!(foreign.code, 3, "{}", foreign.describe());
    let mine = c.json(&bob, &["invoices"]);
    let orgs: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["org"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["beta"]);

    // The monthly check: the amount due is the month's invoice.
    let report = c.json(&c.admin_token, &["admin", "report", "--month", "2025-03"]);
    assert_eq!(report["month"], "2025-03", "{report}");
    assert_eq!(report["low_util_percent"], 30.0, "{report}");
    assert_eq!(report["rows"][0]["org"], "acme", "{report}");
    assert_eq!(report["rows"][0]["amount_due_krw"], 19_250, "{report}");
    assert_eq!(report["rows"][0]["amount_source"], "invoice", "{report}");
    let csv = c
        .berth(
            &c.admin_token,
            &[
                "admin", "report", "--month", "2025-03", "--org", "beta", "-o", "csv",
            ],
        )
        .ok();
    let rows: Vec<&str> = csv.stdout.lines().collect();
    assert!(
        rows[0].starts_with("org,project,granted h,booked h"),
        "{}",
        csv.stdout
    );
    assert_eq!(rows.len(), 2, "{}", csv.stdout);
    assert!(
        rows[1].starts_with("beta,") && rows[1].contains(",3850,"),
        "{}",
        csv.stdout
    );
    let page = c
        .berth(
            &c.admin_token,
            &["admin", "report", "--month", "2025-03", "-o", "html"],
        )
        .ok()
        .stdout;
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("19,250"),
        "{page}"
    );
    c.berth(&bob, &["admin", "report", "--month", "2025-03"])
        .failed();
}
