//! Projects through the `berth` command line, against a real scheduler and agent: an
//! admin creates one, a user books under it and sees its grant drawn, an org-admin asks
//! for another, and the JSON keeps the fields scripts read.

mod common;

use common::Centre;
use serde_json::Value;
use std::time::Duration;

const SITE: &str = "site-1";
const CLASS: &str = "gpu";

#[test]
fn projects_are_created_drawn_on_and_shown_as_json() {
    let mut c = Centre::start();
    c.site_and_class(SITE, CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    c.admin(&["admin", "orgs", "create", "globex"]);
    let alice = c.user("acme", "alice");
    let gina = c.user("globex", "gina");
    c.start_agent("node-1", SITE, CLASS, 4);

    let p = c.json(
        &c.admin_token,
        &[
            "admin",
            "projects",
            "create",
            "--org",
            "acme",
            "--title",
            "항만 물류 LLM",
            "--programme",
            "NIPA HPC 2027",
            "--end",
            "+30d",
            "--hours",
            "gpu=10",
            "--contact",
            "alice",
        ],
    );
    let id = p["id"].as_str().expect("id").to_owned();
    assert_eq!(p["state"], "active", "{p}");

    // 2 devices for 2 hours, under the project.
    let r = c.json(
        &alice,
        &[
            "reserve",
            "--class",
            CLASS,
            "--count",
            "2",
            "--start",
            "+1h",
            "--duration",
            "2h",
            "--project",
            &id,
        ],
    );
    assert_eq!(r["charged_project"], id.as_str(), "{r}");

    let shown: Value = c.json(&alice, &["projects", "show", &id]);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["org"], "acme");
    assert_eq!(shown["state"], "active");
    assert_eq!(shown["title"], "항만 물류 LLM");
    assert_eq!(
        shown["grants"],
        serde_json::json!([{"class": "gpu", "hours": 10.0, "used_hours": 4.0, "left_hours": 6.0}]),
        "{shown}"
    );
    let table = c.berth(&alice, &["projects"]).ok().stdout;
    assert!(table.contains("gpu 6.0/10.0 h"), "{table}");

    // A queued job under the project: its evidence (simulated devices) is shown and
    // kept as CSV columns for settlement.
    let submitted = c.berth(
        &alice,
        &[
            "submit",
            "--class",
            CLASS,
            "--project",
            &id,
            "--",
            "sh",
            "-c",
            "sleep 1",
        ],
    );
    let job_id = submitted.ok().stdout.trim().to_owned();
    let shown_job = c.eventually("the job to succeed", Duration::from_secs(60), || {
        let j = c.json(&alice, &["jobs", "show", &job_id]);
        (j["state"] == "succeeded").then_some(j)
    });
    assert_eq!(shown_job["charged_project"], id.as_str(), "{shown_job}");
    for field in ["mean_utilization_percent", "energy_wh"] {
        assert!(shown_job[field].is_f64(), "{field}: {shown_job}");
    }
    assert!(shown_job["peak_memory_bytes"].is_u64(), "{shown_job}");
    let csv = c.berth(&alice, &["usage", "-o", "csv"]).ok().stdout;
    let header = csv.lines().next().unwrap_or_default();
    assert!(
        header.ends_with("mean_utilization_percent,peak_memory_bytes,energy_wh"),
        "{csv}"
    );
    let line = csv
        .lines()
        .find(|l| l.contains(&job_id))
        .expect("the job's usage");
    assert!(!line.ends_with(",,,"), "evidence columns filled: {line}");

    // More than is left: refused, naming the project and what is left.
    let refused = c
        .berth(
            &alice,
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "4",
                "--start",
                "+4h",
                "--duration",
                "2h",
                "--project",
                &id,
            ],
        )
        .failed();
    let err = refused.stderr;
    assert!(
        err.contains(&id) && err.contains("6 h of gpu left"),
        "{err}"
    );

    // Another org neither sees it nor books under it.
    let e = c.berth(&gina, &["projects", "show", &id]).failed().stderr;
    assert!(e.contains("not found"), "{e}");
    let theirs: Value = c.json(&gina, &["projects"]);
    assert_eq!(theirs, serde_json::json!([]));

    // Revoked: the booking is cancelled and the grant gets its hours back.
    let revoked = c.json(
        &c.admin_token,
        &["admin", "projects", "revoke", &id, "--reason", "unused"],
    );
    assert_eq!(revoked["state"], "revoked", "{revoked}");
    // All but the seconds the job ran.
    let left = revoked["grants"][0]["left_hours"].as_f64().unwrap();
    assert!(left > 9.99 && left < 10.0, "{revoked}");
    let booking = c.json(&alice, &["reservations", "show", r["id"].as_str().unwrap()]);
    assert_eq!(booking["state"], "cancelled", "{booking}");
}

#[test]
fn org_admins_request_projects_and_orgs_allow_overage() {
    let c = Centre::start();
    c.site_and_class(SITE, CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    let boss = c.json(
        &c.admin_token,
        &[
            "admin",
            "users",
            "create",
            "--org",
            "acme",
            "--name",
            "boss",
            "--role",
            "org-admin",
        ],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = c.json(
        &boss,
        &[
            "projects",
            "request",
            "--title",
            "Vision QA",
            "--programme",
            "Busan AI",
            "--start",
            "+1d",
            "--end",
            "+60d",
            "--hours",
            "gpu=100",
        ],
    );
    assert_eq!(p["state"], "requested", "{p}");
    assert_eq!(p["contact"], "boss", "{p}");
    let id = p["id"].as_str().unwrap();
    let approved = c.json(&c.admin_token, &["admin", "projects", "approve", id]);
    assert_eq!(approved["state"], "approved", "{approved}");

    // Bad grants are refused before anything is sent, naming the flag.
    let bad = c
        .berth(
            &boss,
            &[
                "projects",
                "request",
                "--title",
                "x",
                "--programme",
                "y",
                "--end",
                "+1d",
                "--hours",
                "gpu",
            ],
        )
        .failed();
    assert!(bad.stderr.contains("--hours"), "{}", bad.stderr);

    let org = c.json(
        &c.admin_token,
        &["admin", "orgs", "set", "acme", "--overage", "allow"],
    );
    assert_eq!(org["overage"], "allow", "{org}");
    let use_it = c.json(&boss, &["projects", "use", id]);
    assert_eq!(use_it["default_project"], id, "{use_it}");
    let who = c.json(&boss, &["whoami"]);
    assert_eq!(who["default_project"], id, "{who}");
}
