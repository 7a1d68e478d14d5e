//! `berth notifications`, `berth admin webhooks` and `berth account set --lang` against
//! the real binaries: settings, refusals naming the field, a budget event whose mail and
//! post fail (nothing listens) and show as retried failures, and tenants kept apart.

mod common;

use common::{Centre, CentreOptions};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Polls `berth notifications -o json` as `token` until `done` holds.
fn wait_deliveries(c: &Centre, token: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.json(token, &["notifications"]);
        let rows = v.as_array().expect("a list").clone();
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "deliveries never got there: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn notifications_and_webhooks_from_the_command_line() {
    let mut c = Centre::start_with(CentreOptions {
        scheduler_args: [
            "--smtp-url",
            "smtp://127.0.0.1:9",
            "--smtp-from",
            "berth@centre.test",
            "--notify-timeout",
            "2s",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    c.site_and_class("s1", "gpu");
    c.admin(&["admin", "orgs", "create", "acme"]);
    c.admin(&["admin", "orgs", "create", "other"]);
    let kim = c.user("acme", "kim");
    let park = c.user("other", "park");

    c.berth(&kim, &["account", "set", "--lang", "ko"]).ok();
    assert_eq!(c.json(&kim, &["whoami"])["name"], "kim");
    let s = c.json(
        &kim,
        &[
            "notifications",
            "set",
            "--email",
            "kim@acme.test",
            "--events",
            "job-end,budget",
        ],
    );
    assert_eq!(
        s,
        json!({"email": "kim@acme.test", "events": ["job-end", "budget"]})
    );
    let s = c.json(
        &park,
        &[
            "notifications",
            "set",
            "--email",
            "park@other.test",
            "--events",
            "budget",
        ],
    );
    assert_eq!(s["events"], json!(["budget"]));

    // Refusals name the field.
    let run = c
        .berth(&kim, &["notifications", "set", "--email", "kim"])
        .failed();
    assert!(run.err_lower().contains("email"), "{}", run.describe());
    let run = c
        .berth(
            &kim,
            &["notifications", "set", "--events", "job-end,jobs-end"],
        )
        .failed();
    assert!(run.err_lower().contains("events"), "{}", run.describe());
    let admin = c.admin_token.clone();
    let run = c
        .berth(
            &admin,
            &[
                "admin",
                "webhooks",
                "add",
                "--org",
                "acme",
                "--url",
                "ftp://x/y",
            ],
        )
        .failed();
    assert!(run.err_lower().contains("url"), "{}", run.describe());
    let run = c
        .berth(
            &kim,
            &[
                "admin",
                "webhooks",
                "add",
                "--org",
                "acme",
                "--url",
                "https://x.kr/y",
            ],
        )
        .failed();
    assert!(run.err_lower().contains("admin"), "{}", run.describe());

    let added = c.json(
        &admin,
        &[
            "admin",
            "webhooks",
            "add",
            "--org",
            "acme",
            "--url",
            "http://127.0.0.1:9/hook",
            "--events",
            "budget",
        ],
    );
    let id = added[0]["id"].as_str().expect("webhook id").to_owned();
    assert_eq!(added[0]["events"], json!(["budget"]));
    let listed = c.json(&admin, &["admin", "webhooks", "--org", "acme"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // A 40-minute booking against a 1-hour budget passes 50 %: Kim's mail and acme's
    // webhook are staged; nothing listens on port 9, so both are retried with the error.
    c.start_agent("n1", "s1", "gpu", 1);
    c.admin(&[
        "admin", "budgets", "set", "--org", "acme", "--class", "gpu", "--hours", "1",
    ]);
    c.berth(
        &kim,
        &[
            "reserve",
            "--class",
            "gpu",
            "--count",
            "1",
            "--start",
            "+1h",
            "--duration",
            "40m",
        ],
    )
    .ok();
    let mine = wait_deliveries(&c, &kim, |rows| {
        rows.iter()
            .any(|r| r["attempts"].as_u64().unwrap_or(0) >= 1)
    });
    assert_eq!(mine.len(), 1, "Kim sees her own mail only: {mine:?}");
    let row = &mine[0];
    assert_eq!(row["event"], "budget");
    assert_eq!(row["channel"], "email");
    assert_eq!(row["target"], "kim@acme.test");
    assert_eq!(row["org"], "acme");
    assert_eq!(row["state"], "pending");
    assert!(!row["last_error"].as_str().unwrap().is_empty(), "{row}");
    assert!(row["next_attempt_at"].is_string(), "{row}");
    let table = c.berth(&kim, &["notifications"]).ok();
    assert!(
        table.stdout.contains("budget") && table.stdout.contains("kim@acme.test"),
        "{}",
        table.describe()
    );

    // Another org sees none of it; admins see both deliveries.
    assert_eq!(c.json(&park, &["notifications"]), json!([]));
    let all = wait_deliveries(&c, &admin, |rows| rows.len() >= 2);
    let mut channels: Vec<&str> = all.iter().map(|r| r["channel"].as_str().unwrap()).collect();
    channels.sort();
    assert_eq!(channels, ["email", "webhook"]);

    c.berth(&admin, &["admin", "webhooks", "remove", &id]).ok();
    assert_eq!(c.json(&admin, &["admin", "webhooks"]), json!([]));
    c.berth(&kim, &["notifications", "clear"]).ok();
    let s = c.json(&kim, &["notifications", "settings"]);
    assert_eq!(s, json!({"email": null, "events": []}));
}
