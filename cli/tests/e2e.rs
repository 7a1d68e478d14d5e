//! End-to-end: the real scheduler and agent binaries, driven through `berth` as a user
//! would. See `common/mod.rs` for how the centre is started.

mod common;

use common::{Centre, Run, ids, string_set};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const SITE: &str = "site-1";
const CLASS: &str = "gpu";
const NODE: &str = "node-1";

/// A centre with one node of 4 simulated GPUs and two organisations with a user each.
struct World {
    centre: Centre,
    /// `alice` in `org-a`.
    alice: String,
    /// `bob` in `org-b`.
    bob: String,
}

impl World {
    fn new() -> Self {
        let mut centre = Centre::start();
        centre.site_and_class(SITE, CLASS);
        centre.admin(&["admin", "orgs", "create", "org-a", "--description", "A"]);
        centre.admin(&["admin", "orgs", "create", "org-b"]);
        let alice = centre.user("org-a", "alice");
        let bob = centre.user("org-b", "bob");
        centre.start_agent(NODE, SITE, CLASS, 4);
        Self { centre, alice, bob }
    }

    fn alice(&self, args: &[&str]) -> Run {
        self.centre.berth(&self.alice, args)
    }

    fn bob(&self, args: &[&str]) -> Run {
        self.centre.berth(&self.bob, args)
    }

    fn alice_json(&self, args: &[&str]) -> Value {
        self.centre.json(&self.alice, args)
    }

    fn bob_json(&self, args: &[&str]) -> Value {
        self.centre.json(&self.bob, args)
    }

    /// `berth reserve ... -o json` as alice, expecting success.
    fn reserve(&self, count: u32, start: &str, duration: &str) -> Value {
        let count = count.to_string();
        self.alice_json(&[
            "reserve",
            "--class",
            CLASS,
            "--count",
            &count,
            "--start",
            start,
            "--duration",
            duration,
        ])
    }

    /// Alice's reservations (all states), by id.
    fn alice_reservations(&self) -> Value {
        self.alice_json(&["reservations", "--all"])
    }

    /// The one job of alice's in `reservation`, or any job when `None`.
    fn alice_job(&self, reservation: Option<&str>) -> Value {
        let jobs = self.alice_json(&["jobs", "--all"]);
        let matching: Vec<&Value> = jobs
            .as_array()
            .expect("jobs: array")
            .iter()
            .filter(|j| reservation.is_none_or(|r| j["reservation_id"] == r))
            .collect();
        assert_eq!(matching.len(), 1, "expected one job, got {jobs}");
        matching[0].clone()
    }
}

fn devices_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn reserve_then_run_in_the_reservation_and_see_its_exit_code_logs_and_devices() {
    let w = World::new();
    let r = w.reserve(2, "now", "1h");
    let rid = r["id"].as_str().expect("reservation id").to_owned();
    assert_eq!(r["count"], 2, "{r}");
    assert_eq!(r["class"], CLASS, "{r}");
    assert!(
        r["state"] == "confirmed" || r["state"] == "active",
        "a booking starting now is confirmed or active: {r}"
    );
    let booked = string_set(&r["devices"]);
    assert_eq!(booked.len(), 2, "two distinct devices pinned: {r}");
    assert!(r["start"].is_string() && r["end"].is_string(), "{r}");

    let run = w.alice(&[
        "submit",
        "--reservation",
        &rid,
        "--count",
        "2",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo hello; echo $BERTH_DEVICES; exit 7",
    ]);
    assert_eq!(
        run.code,
        7,
        "submit --wait exits with the job's code:\n{}",
        run.describe()
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"hello"), "{}", run.describe());
    let seen = devices_in(lines.get(1).copied().unwrap_or(""));
    assert_eq!(
        seen,
        booked,
        "the job sees exactly the reservation's devices:\n{}",
        run.describe()
    );

    let job = w.alice_job(Some(&rid));
    let jid = job["id"].as_str().expect("job id").to_owned();
    let logs = w.alice(&["logs", &jid]).ok();
    assert_eq!(
        logs.stdout, run.stdout,
        "berth logs replays the same output"
    );

    let shown = w.alice_json(&["jobs", "show", &jid]);
    assert_eq!(shown["state"], "failed", "{shown}");
    assert_eq!(shown["exit_code"], 7, "{shown}");
    assert_eq!(shown["node"], NODE, "{shown}");
    assert_eq!(shown["reservation_id"], rid.as_str(), "{shown}");
    assert_eq!(string_set(&shown["devices"]), booked, "{shown}");
    assert!(shown["finished_at"].is_string(), "{shown}");
}

#[test]
fn bookings_beyond_capacity_or_overlapping_a_full_booking_are_refused() {
    let w = World::new();
    let before = w.alice_reservations();

    let run = w
        .alice(&[
            "reserve",
            "--class",
            CLASS,
            "--count",
            "5",
            "--start",
            "now",
            "--duration",
            "1h",
        ])
        .failed();
    let msg = run.err_lower();
    assert!(
        msg.contains('5') && msg.contains('4') && msg.contains("requested") && msg.contains("free"),
        "the refusal says how many were requested and how many are free:\n{}",
        run.describe()
    );
    assert_eq!(w.alice_reservations(), before, "nothing was booked");

    let full = w.reserve(4, "now", "1h");
    assert_eq!(string_set(&full["devices"]).len(), 4, "{full}");

    let run = w
        .alice(&[
            "reserve",
            "--class",
            CLASS,
            "--count",
            "1",
            "--start",
            "+30m",
            "--duration",
            "1h",
        ])
        .failed();
    assert!(
        run.err_lower().contains("free"),
        "the refusal says the devices are not free:\n{}",
        run.describe()
    );
    let bob = w
        .bob(&[
            "reserve",
            "--class",
            CLASS,
            "--count",
            "2",
            "--start",
            "now",
            "--duration",
            "10m",
        ])
        .failed();
    assert!(bob.err_lower().contains("free"), "{}", bob.describe());

    let after = w.alice_reservations();
    assert_eq!(
        ids(&after),
        BTreeSet::from([full["id"].as_str().unwrap().to_owned()]),
        "only the first full booking exists: {after}"
    );

    // After the full window, the devices are free again.
    let later = w.reserve(4, "+90m", "1h");
    assert_eq!(later["state"], "confirmed", "{later}");
}

#[test]
fn another_org_cannot_see_or_touch_a_reservation_or_a_job() {
    let w = World::new();
    let r = w.reserve(1, "now", "1h");
    let rid = r["id"].as_str().unwrap().to_owned();
    w.alice(&[
        "submit",
        "--reservation",
        &rid,
        "--wait",
        "--",
        "sh",
        "-c",
        "echo secret-of-a",
    ])
    .ok();
    let job = w.alice_job(Some(&rid));
    let jid = job["id"].as_str().unwrap().to_owned();
    let r_before = w.alice_json(&["reservations", "show", &rid]);
    let j_before = w.alice_json(&["jobs", "show", &jid]);
    assert_eq!(j_before["state"], "succeeded", "{j_before}");

    for all in [&["reservations"][..], &["reservations", "--all"]] {
        let seen = ids(&w.bob_json(all));
        assert!(
            !seen.contains(&rid),
            "bob lists alice's reservation: {seen:?}"
        );
    }
    for all in [&["jobs"][..], &["jobs", "--all"]] {
        let seen = ids(&w.bob_json(all));
        assert!(!seen.contains(&jid), "bob lists alice's job: {seen:?}");
    }

    let refused: [&[&str]; 6] = [
        &["reservations", "show", &rid],
        &["reservations", "cancel", &rid],
        &["jobs", "show", &jid],
        &["logs", &jid],
        &["cancel", &jid],
        &["submit", "--reservation", &rid, "--", "true"],
    ];
    for args in refused {
        let run = w.bob(args).failed();
        assert!(
            run.err_lower().contains("not found"),
            "bob gets NOT_FOUND, as if it did not exist:\n{}",
            run.describe()
        );
        assert!(!run.stdout.contains("secret-of-a"), "{}", run.describe());
    }

    // Unchanged by bob's attempts (the idle tracker may have noted, meanwhile, that the
    // booking sits idle: that is the scheduler's doing, not bob's).
    let without_idle = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("idle_since");
        }
        v
    };
    assert_eq!(
        without_idle(w.alice_json(&["reservations", "show", &rid])),
        without_idle(r_before)
    );
    assert_eq!(w.alice_json(&["jobs", "show", &jid]), j_before);
    let logs = w.alice(&["logs", &jid]).ok();
    assert!(logs.stdout.contains("secret-of-a"), "{}", logs.describe());
    let bob_jobs = w.bob_json(&["jobs", "--all"]);
    assert_eq!(
        bob_jobs,
        Value::Array(vec![]),
        "bob's failed submit created no job"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_changes_nothing() {
    let w = World::new();
    let kept = w.reserve(1, "+2h", "1h");
    let before = w.alice_reservations();
    assert_eq!(ids(&before).len(), 1, "{before}");
    let unknown_id = "7d1f2b44-0000-4000-8000-00000000beef";

    let cases: [(&[&str], &[&str]); 9] = [
        (
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "0",
                "--duration",
                "1h",
            ],
            &["count"],
        ),
        (
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "1",
                "--duration",
                "0s",
            ],
            &["--duration", "positive"],
        ),
        (
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "1",
                "--duration",
                "-1h",
            ],
            &["--duration", "positive"],
        ),
        (
            &[
                "reserve", "--class", CLASS, "--count", "1", "--start", "+2h", "--end", "+1h",
            ],
            &["--end", "after"],
        ),
        (
            &[
                "reserve",
                "--class",
                "no-such-class",
                "--count",
                "1",
                "--duration",
                "1h",
            ],
            &["no-such-class"],
        ),
        (
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "1",
                "--start",
                "tomorrowish",
                "--duration",
                "1h",
            ],
            &["invalid --start \"tomorrowish\"", "rfc 3339"],
        ),
        (&["reservations", "show", unknown_id], &["not found"]),
        (&["reservations", "cancel", unknown_id], &["not found"]),
        (
            &["submit", "--reservation", unknown_id, "--", "true"],
            &["not found"],
        ),
    ];
    for (args, needles) in cases {
        let run = w.alice(args).failed();
        let msg = run.err_lower();
        for needle in needles {
            assert!(
                msg.contains(&needle.to_lowercase()),
                "berth {args:?}: the message should mention {needle:?}:\n{}",
                run.describe()
            );
        }
        assert_eq!(
            w.alice_reservations(),
            before,
            "berth {args:?} changed the reservations"
        );
    }

    // A usage error from the argument parser exits 2.
    let run = w.alice(&[
        "reserve",
        "--class",
        CLASS,
        "--count",
        "-1",
        "--duration",
        "1h",
    ]);
    assert_eq!(run.code, 2, "{}", run.describe());
    assert_eq!(w.alice_reservations(), before);
    assert_eq!(
        w.alice_json(&["jobs", "--all"]),
        Value::Array(vec![]),
        "no job was created"
    );
    assert_eq!(kept["state"], "confirmed", "{kept}");
}

#[test]
fn a_queued_job_runs_on_free_devices_and_succeeds() {
    let w = World::new();
    let run = w
        .alice(&[
            "submit",
            "--class",
            CLASS,
            "--count",
            "1",
            "--name",
            "queued",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo queued-ok",
        ])
        .ok();
    assert!(run.stdout.contains("queued-ok"), "{}", run.describe());
    let job = w.alice_job(None);
    let jid = job["id"].as_str().unwrap().to_owned();
    let shown = w.alice_json(&["jobs", "show", &jid]);
    assert_eq!(shown["state"], "succeeded", "{shown}");
    assert_eq!(shown["exit_code"], 0, "{shown}");
    assert_eq!(shown["reservation_id"], Value::Null, "{shown}");
    assert_eq!(shown["node"], NODE, "{shown}");
    assert_eq!(shown["name"], "queued", "{shown}");
    assert_eq!(string_set(&shown["devices"]).len(), 1, "{shown}");

    // Without --wait, submit prints the id at once and the job gets there by itself.
    let id = w
        .alice(&["submit", "--class", CLASS, "--", "sh", "-c", "exit 0"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    w.centre.eventually(
        "the second queued job to succeed",
        Duration::from_secs(60),
        || {
            let j = w.alice_json(&["jobs", "show", &id]);
            (j["state"] == "succeeded").then_some(())
        },
    );
}

#[test]
fn login_checks_the_token_and_saves_it_privately() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let config = w.centre.path("login/config.json");
    let server = w.centre.server_url();

    let run = w
        .centre
        .berth_with_config(
            &config,
            &["login", "--server", &server, "--token", "not-a-token"],
        )
        .failed();
    assert!(
        !config.exists(),
        "a refused token is not saved:\n{}",
        run.describe()
    );

    w.centre
        .berth_with_config(
            &config,
            &["login", "--server", &server, "--token", &w.alice],
        )
        .ok();
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the config holds a token");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["server"], server.as_str());
    assert_eq!(saved["token"], w.alice.as_str());

    let me = w
        .centre
        .berth_with_config(&config, &["whoami", "-o", "json"])
        .ok()
        .json();
    assert_eq!(me["name"], "alice", "{me}");
    assert_eq!(me["org"], "org-a", "{me}");
    assert_eq!(me["role"], "user", "{me}");
    // Flags win over the saved config.
    let me = w
        .centre
        .berth_with_config(&config, &["whoami", "-o", "json", "--token", &w.bob])
        .ok()
        .json();
    assert_eq!(me["name"], "bob", "{me}");
}

#[test]
fn a_cancelled_job_stops_and_wait_reports_why() {
    let w = World::new();
    let waiting = w.centre.spawn_berth(
        &w.alice,
        &[
            "submit",
            "--class",
            CLASS,
            "--wait",
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ],
    );
    let jid = w
        .centre
        .eventually("the job to run", Duration::from_secs(60), || {
            let jobs = w.alice_json(&["jobs"]);
            jobs.as_array()?
                .iter()
                .find(|j| j["state"] == "running")
                .and_then(|j| j["id"].as_str().map(str::to_owned))
        });
    let cancelled = w.alice_json(&["cancel", &jid]);
    assert_eq!(cancelled["id"], jid.as_str(), "{cancelled}");

    let run = waiting.finish();
    assert_ne!(
        run.code,
        0,
        "a cancelled job does not exit 0:\n{}",
        run.describe()
    );
    assert!(run.stdout.contains("started"), "{}", run.describe());
    assert!(
        run.err_lower().contains("cancelled"),
        "--wait says the job was cancelled:\n{}",
        run.describe()
    );
    let shown = w.alice_json(&["jobs", "show", &jid]);
    assert_eq!(shown["state"], "cancelled", "{shown}");
    assert!(shown["finished_at"].is_string(), "{shown}");
    assert_eq!(
        ids(&w.alice_json(&["jobs"])),
        BTreeSet::new(),
        "no unfinished jobs left"
    );
}

#[test]
fn a_killed_scheduler_restarts_with_everything_it_acknowledged_and_running_work_finishes() {
    let mut w = World::new();
    let res = w.alice_json(&[
        "reserve",
        "--class",
        CLASS,
        "--count",
        "1",
        "--start",
        "+2h",
        "--duration",
        "1h",
    ]);
    let rid = res["id"].as_str().unwrap().to_owned();
    let id = w
        .alice(&[
            "submit",
            "--class",
            CLASS,
            "--",
            "sh",
            "-c",
            "echo before; while [ ! -e go ]; do sleep 0.1; done; echo after; exit 4",
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();
    w.centre
        .eventually("the job to run", Duration::from_secs(60), || {
            let j = w.alice_json(&["jobs", "show", &id]);
            (j["state"] == "running").then_some(())
        });
    w.centre.restart_scheduler();
    // Everything acknowledged before the kill is still there.
    let shown = w.alice_json(&["reservations", "show", &rid]);
    assert_eq!(shown["state"], "confirmed", "{shown}");
    assert_eq!(string_set(&shown["devices"]), string_set(&res["devices"]));
    let j = w.alice_json(&["jobs", "show", &id]);
    assert_eq!(j["state"], "running", "{j}");
    // The job kept running through the restart and finishes with its own exit code.
    let scratch = w
        .centre
        .agent_state_dir(NODE)
        .join("jobs")
        .join(&id)
        .join("go");
    std::fs::write(&scratch, b"").expect("release the job");
    let done = w
        .centre
        .eventually("the job to finish", Duration::from_secs(60), || {
            let j = w.alice_json(&["jobs", "show", &id]);
            (j["state"] == "failed").then_some(j)
        });
    assert_eq!(done["exit_code"], 4, "{done}");
    let logs = w.alice(&["logs", &id]).ok();
    assert_eq!(logs.stdout, "before\nafter\n", "{}", logs.describe());
}
