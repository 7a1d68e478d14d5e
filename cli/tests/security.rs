//! The admin's tools against hostile tenants and stolen tokens, through the real `berth`
//! and `berth-agent` binaries: dataset grants, bound single-use join tokens, node
//! credentials and re-joining a reinstalled server.

mod common;

use common::*;

const SITE: &str = "busan";
const CLASS: &str = "sim-gpu";

#[test]
fn datasets_are_granted_listed_and_revoked_per_org() {
    let c = Centre::start();
    c.site_and_class(SITE, CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    c.admin(&["admin", "orgs", "create", "globex"]);
    let acme = c.user("acme", "alice");
    let globex = c.user("globex", "gina");
    c.admin(&[
        "admin", "datasets", "grant", "--org", "acme", "acmedata", "--rw",
    ]);
    c.admin(&["admin", "datasets", "grant", "--org", "globex", "shared"]);
    let all = c.json(&c.admin_token, &["admin", "datasets", "list"]);
    assert_eq!(
        all,
        serde_json::json!([
            {"org": "acme", "name": "acmedata", "read_write": true},
            {"org": "globex", "name": "shared", "read_write": false},
        ])
    );
    // Each org sees its own grants only.
    let theirs = c.json(&globex, &["admin", "datasets", "list"]);
    assert_eq!(
        theirs,
        serde_json::json!([{"org": "globex", "name": "shared", "read_write": false}])
    );

    let submit = |token: &str, dataset: &str| {
        c.berth(
            token,
            &[
                "submit",
                "--class",
                CLASS,
                "--image",
                "busybox",
                "--dataset",
                dataset,
                "--",
                "true",
            ],
        )
    };
    let refused = submit(&globex, "acmedata").failed();
    assert!(
        refused
            .stderr
            .contains("\"acmedata\" is not granted to org \"globex\""),
        "{}",
        refused.describe()
    );
    let refused = submit(&globex, "shared:rw").failed();
    assert!(
        refused.stderr.contains("read-only"),
        "{}",
        refused.describe()
    );

    c.admin(&["admin", "datasets", "revoke", "--org", "acme", "acmedata"]);
    let refused = submit(&acme, "acmedata").failed();
    assert!(
        refused.stderr.contains("not granted"),
        "{}",
        refused.describe()
    );
}

#[test]
fn a_reinstalled_server_rejoins_only_with_an_admins_leave_and_revokes_its_old_credential() {
    let mut c = Centre::start();
    c.site_and_class(SITE, CLASS);
    // A token bound to a name joins that name only.
    let bound = c.json(&c.admin_token, &["admin", "join-token", "--node", "gpu-01"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    c.spawn_agent(
        "gpu-02",
        SITE,
        &format!("sim:1:{CLASS}"),
        &["--runtime", "process"],
        &bound,
    );
    let (code, log) = c.wait_agent_exit("gpu-02");
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("this join token is for node \"gpu-01\""),
        "{log}"
    );
    c.spawn_agent(
        "gpu-01",
        SITE,
        &format!("sim:1:{CLASS}"),
        &["--runtime", "process"],
        &bound,
    );
    c.wait_node_ready("gpu-01", 1);

    let creds = c.json(&c.admin_token, &["admin", "nodes", "credentials", "gpu-01"]);
    let creds = creds.as_array().unwrap();
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(creds[0]["kind"], "node");
    assert_eq!(creds[0]["node"], "gpu-01");
    let old_id = creds[0]["id"].as_str().unwrap().to_owned();

    // The server is reinstalled: its credential is gone. A fresh join token alone does not
    // let anyone take the node over.
    c.stop_agent("gpu-01");
    std::fs::remove_dir_all(c.agent_state_dir("gpu-01")).unwrap();
    let token = c.join_token();
    c.spawn_agent(
        "gpu-01",
        SITE,
        &format!("sim:1:{CLASS}"),
        &["--runtime", "process"],
        &token,
    );
    let (code, log) = c.wait_agent_exit("gpu-01");
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("berth admin nodes rejoin gpu-01"), "{log}");

    // With the admin's leave, a join token joins it, and the old credential is revoked.
    let leave = c.json(
        &c.admin_token,
        &["admin", "nodes", "rejoin", "gpu-01", "--ttl", "10m"],
    );
    assert_eq!(leave[0]["name"], "gpu-01", "{leave}");
    let token = c.join_token();
    c.spawn_agent(
        "gpu-01",
        SITE,
        &format!("sim:1:{CLASS}"),
        &["--runtime", "process"],
        &token,
    );
    // The node was ready all along (its lease has not run out): wait for the join itself.
    let all = c.eventually(
        "the node to join again",
        std::time::Duration::from_secs(30),
        || {
            let all = c.json(
                &c.admin_token,
                &["admin", "nodes", "credentials", "gpu-01", "--all"],
            );
            (all.as_array().unwrap().len() == 2).then_some(all)
        },
    );
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let old = all.iter().find(|k| k["id"] == old_id.as_str()).unwrap();
    assert_eq!(old["revoked"], true, "{all:?}");
    assert!(
        all.iter()
            .any(|k| k["id"] != old_id.as_str() && k["revoked"] == false),
        "{all:?}"
    );
    // The whole list, as the admin sees it, has the users' too; no secrets in it.
    let listed = c.berth(&c.admin_token, &["admin", "tokens", "list"]).ok();
    assert!(!listed.stdout.contains(&token), "{}", listed.stdout);
}
