//! Projects through the `berth` command line, against a real scheduler and agent: an
//! admin creates one, a user books under it and sees its grant drawn, an org-admin asks
//! for another, and the JSON keeps the fields scripts read.

mod common;

use common::Centre;
use serde_json::Value;

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
    assert_eq!(revoked["grants"][0]["left_hours"], 10.0, "{revoked}");
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
