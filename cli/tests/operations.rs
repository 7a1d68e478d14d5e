//! The backup and restore commands of `docs/operations.md`, run as written (each block
//! marked `<!-- test: NAME -->`) against a real scheduler on SQLite and on PostgreSQL.
//! A change made after the backup must be gone once the backup is restored, and a
//! scheduler started on the restored database must serve the same objects.
//!
//! Needs `sqlite3`, and `pg_dump`/`pg_restore`/`psql` with `BERTH_TEST_POSTGRES_URL`
//! (`scripts/test.sh` sets it up); fails, never skips, without them.

mod common;

use common::Centre;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The shell block after `<!-- test: NAME -->` in docs/operations.md.
fn documented(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let marker = format!("<!-- test: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/operations.md has no {marker}"))
        .1;
    let block = after
        .trim_start()
        .strip_prefix("```sh\n")
        .unwrap_or_else(|| panic!("{marker} is not followed by a ```sh block"));
    let (code, _) = block
        .split_once("\n```")
        .unwrap_or_else(|| panic!("{marker}: unterminated block"));
    code.to_owned()
}

/// Runs a documented block with bash (errors fatal) and the variables `env`.
#[track_caller]
fn run_documented(name: &str, env: &[(&str, &str)]) {
    let code = documented(name);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &code])
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("bash: {e}"));
    assert!(
        out.status.success(),
        "the documented {name} commands failed ({}):\n{code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[track_caller]
fn require(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is not installed (apt-get install sqlite3 postgresql-client)"
    );
}

/// What a scheduler serves, as the admin and as alice see it: the objects a restore
/// must bring back.
fn objects(centre: &Centre, alice: &str) -> BTreeMap<&'static str, Value> {
    let strip = |mut v: Value, volatile: &[&str]| {
        for item in v.as_array_mut().into_iter().flatten() {
            for key in volatile {
                if let Some(o) = item.as_object_mut() {
                    o.remove(*key);
                }
            }
        }
        v
    };
    BTreeMap::from([
        (
            "sites",
            centre.json(&centre.admin_token, &["admin", "sites", "list"]),
        ),
        ("classes", centre.json(&centre.admin_token, &["classes"])),
        ("orgs", centre.json(&centre.admin_token, &["admin", "orgs"])),
        (
            "users",
            centre.json(&centre.admin_token, &["admin", "users", "list"]),
        ),
        (
            "budgets",
            centre.json(&centre.admin_token, &["admin", "budgets"]),
        ),
        // A node's state and heartbeat are live; its devices are what was stored.
        (
            "nodes",
            strip(
                centre.json(&centre.admin_token, &["nodes"]),
                &["state", "last_heartbeat", "agent_version", "devices"],
            ),
        ),
        ("reservations", centre.json(alice, &["reservations"])),
        ("jobs", centre.json(alice, &["jobs", "--all"])),
    ])
}

/// A centre with a site, a class, a node, an org with a budget, a user, a booking and
/// a finished job.
fn populate(centre: &mut Centre) -> String {
    centre.site_and_class("busan", "gpu");
    centre.start_agent("gpu-01", "busan", "gpu", 2);
    centre.admin(&["admin", "orgs", "create", "acme"]);
    let alice = centre.user("acme", "alice");
    centre.admin(&[
        "admin", "budgets", "set", "--org", "acme", "--class", "gpu", "--hours", "40",
    ]);
    centre.json(
        &alice,
        &[
            "reserve",
            "--class",
            "gpu",
            "--count",
            "1",
            "--start",
            "+1h",
            "--duration",
            "2h",
        ],
    );
    let job = centre
        .berth(
            &alice,
            &[
                "submit",
                "--class",
                "gpu",
                "--count",
                "1",
                "--max-runtime",
                "5m",
                "--",
                "true",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_owned();
    centre.eventually("the job to succeed", common::COMMAND_DEADLINE, || {
        (centre.json(&alice, &["jobs", "show", &job])["state"] == "succeeded").then_some(())
    });
    alice
}

/// After the backup: an org the restore must take away.
fn change_after_backup(centre: &Centre) {
    centre.admin(&["admin", "orgs", "create", "after-backup"]);
}

#[track_caller]
fn assert_restored(centre: &Centre, alice: &str, before: &BTreeMap<&'static str, Value>) {
    let after = objects(centre, alice);
    for (what, was) in before {
        assert_eq!(&after[what], was, "{what} differ after the restore");
    }
    let orgs = after["orgs"].to_string();
    assert!(
        orgs.contains("acme") && !orgs.contains("after-backup"),
        "{orgs}"
    );
}

#[test]
fn the_documented_sqlite_backup_restores_a_working_scheduler() {
    require("sqlite3");
    let mut centre = Centre::start_sqlite();
    let alice = populate(&mut centre);
    let before = objects(&centre, &alice);
    let db: PathBuf = centre.path("scheduler/berth.db");
    let backup = centre.path("berth-backup.db");
    let env = [
        ("BERTH_DB", db.to_str().expect("utf-8 path")),
        ("BACKUP", backup.to_str().expect("utf-8 path")),
    ];
    // Online, while the scheduler runs and writes.
    run_documented("sqlite-backup", &env);
    change_after_backup(&centre);
    centre.stop_scheduler();
    run_documented("sqlite-restore", &env);
    centre.restart_scheduler();
    assert_restored(&centre, &alice, &before);
}

#[test]
fn the_documented_postgres_backup_restores_a_working_scheduler() {
    for tool in ["pg_dump", "pg_restore", "psql"] {
        require(tool);
    }
    let mut centre = Centre::start_postgres();
    let alice = populate(&mut centre);
    let before = objects(&centre, &alice);
    let url = centre
        .database_url()
        .expect("a PostgreSQL centre")
        .to_owned();
    let admin_url = std::env::var("BERTH_TEST_POSTGRES_URL").expect("BERTH_TEST_POSTGRES_URL");
    let backup = centre.path("berth.dump");
    let restore_db = format!("berth_restored_{}", std::process::id());
    let restore_url = common::with_database(&url, &restore_db);
    let _drop = DropDatabase(admin_url.clone(), restore_db.clone());
    run_documented(
        "postgres-backup",
        &[
            ("BERTH_DATABASE_URL", &url),
            ("BACKUP", backup.to_str().expect("utf-8 path")),
        ],
    );
    change_after_backup(&centre);
    centre.stop_scheduler();
    run_documented(
        "postgres-restore",
        &[
            ("PG_ADMIN_URL", &admin_url),
            ("RESTORE_DB", &restore_db),
            ("RESTORE_URL", &restore_url),
            ("BACKUP", backup.to_str().expect("utf-8 path")),
        ],
    );
    centre.use_database(restore_url);
    centre.restart_scheduler();
    assert_restored(&centre, &alice, &before);
}

/// Drops the restored database when the test ends.
struct DropDatabase(String, String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(&self.0)
            .args(["-q", "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.1))
            .output();
    }
}
