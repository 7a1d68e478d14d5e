//! End-to-end: budgets, the ledger, idle reclaim, preemption, multi-node jobs and "why is
//! my job pending", through `berth` against the real scheduler and agents.

mod common;

use common::Centre;
use serde_json::Value;
use std::time::Duration;

const SITE: &str = "site-1";
const CLASS: &str = "gpu";

/// A centre with `nodes` nodes of `per_node` simulated GPUs, and `alice` (org-a) and `bob`
/// (org-b).
struct World {
    centre: Centre,
    alice: String,
    bob: String,
}

impl World {
    fn new(nodes: usize, per_node: u32) -> Self {
        let mut centre = Centre::start();
        centre.site_and_class(SITE, CLASS);
        centre.admin(&["admin", "orgs", "create", "org-a"]);
        centre.admin(&["admin", "orgs", "create", "org-b"]);
        let alice = centre.user("org-a", "alice");
        let bob = centre.user("org-b", "bob");
        for n in 1..=nodes {
            centre.start_agent(&format!("node-{n}"), SITE, CLASS, per_node);
        }
        Self { centre, alice, bob }
    }

    fn alice_json(&self, args: &[&str]) -> Value {
        self.centre.json(&self.alice, args)
    }

    fn bob_json(&self, args: &[&str]) -> Value {
        self.centre.json(&self.bob, args)
    }

    fn reserve(&self, token: &str, count: &str, start: &str, duration: &str) -> Value {
        self.centre.json(
            token,
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                count,
                "--start",
                start,
                "--duration",
                duration,
            ],
        )
    }

    /// alice's budget for the class, from `berth usage`.
    fn alice_budget(&self) -> Value {
        let usage = self.alice_json(&["usage"]);
        let budgets = usage["budgets"].as_array().cloned().unwrap_or_default();
        budgets
            .into_iter()
            .find(|b| b["class"] == CLASS)
            .unwrap_or_else(|| panic!("no {CLASS} budget in {usage}"))
    }

    /// Submits a preemptible job of alice's running `script`; returns its id.
    fn submit_guest(&self, count: &str, script: &str) -> String {
        let args = [
            "submit",
            "--class",
            CLASS,
            "--count",
            count,
            "--preemptible",
            "--",
            "sh",
            "-c",
            script,
        ];
        let run = self.centre.berth(&self.alice, &args).ok();
        run.stdout.trim().to_owned()
    }

    fn eventually<T>(&self, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.centre.eventually(what, Duration::from_secs(60), f)
    }
}

fn hours(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn budgets_charge_bookings_refuse_overdrafts_and_refund_cancellations() {
    let w = World::new(1, 4);
    w.centre.admin(&[
        "admin", "budgets", "set", "--org", "org-a", "--class", CLASS, "--hours", "3",
    ]);
    let listed = w.centre.json(&w.centre.admin_token, &["admin", "budgets"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["org"], "org-a", "{listed}");
    assert_eq!(listed[0]["period"], "month", "{listed}");

    // 2 devices for 1 h: 2 h charged when confirmed.
    let r = w.reserve(&w.alice, "2", "+2h", "1h");
    let rid = r["id"].as_str().expect("id").to_owned();
    assert!((hours(&r["charged_hours"]) - 2.0).abs() < 1e-6, "{r}");
    let b = w.alice_budget();
    assert!((hours(&b["left_hours"]) - 1.0).abs() < 1e-6, "{b}");

    // Over the budget: refused, saying which limit and by how much; nothing booked.
    let run = w
        .centre
        .berth(
            &w.alice,
            &[
                "reserve",
                "--class",
                CLASS,
                "--count",
                "1",
                "--start",
                "+2h",
                "--duration",
                "2h",
            ],
        )
        .failed();
    assert!(
        run.stderr
            .contains("budget for gpu exhausted: 1 h left, 2 h requested"),
        "{}",
        run.describe()
    );
    let mine = w.alice_json(&["reservations"]);
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");

    // Bob has no budget: no limit.
    w.reserve(&w.bob, "2", "+2h", "1h");

    // Cancelling before the start refunds in full.
    w.centre
        .berth(&w.alice, &["reservations", "cancel", &rid])
        .ok();
    let b = w.alice_budget();
    assert!((hours(&b["left_hours"]) - 3.0).abs() < 1e-6, "{b}");
    let ledger = w.alice_json(&["ledger"]);
    let kinds: Vec<&str> = ledger
        .as_array()
        .expect("ledger array")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, vec!["charge", "refund"], "{ledger}");
    assert!(
        ledger
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["subject_id"] == rid.as_str())
    );
    // Another org sees none of it.
    let theirs = w.bob_json(&["ledger"]);
    assert_eq!(theirs.as_array().map(Vec::len), Some(0), "{theirs}");
}

#[test]
fn idle_bookings_are_warned_then_reclaimed_and_refunded() {
    let w = World::new(1, 4);
    w.centre.admin(&[
        "admin", "budgets", "set", "--org", "org-a", "--class", CLASS, "--hours", "10",
    ]);
    w.centre.admin(&[
        "admin",
        "policy",
        "set",
        "--idle-warn-after",
        "3s",
        "--idle-reclaim-after",
        "4s",
    ]);
    // Alice wants to hear of it (no SMTP server here: the mail is recorded as failed).
    w.centre
        .berth(
            &w.alice,
            &[
                "notifications",
                "set",
                "--email",
                "alice@org-a.test",
                "--events",
                "idle-warning,reclaimed",
            ],
        )
        .ok();
    let r = w.reserve(&w.alice, "2", "now", "2h");
    let rid = r["id"].as_str().expect("id").to_owned();
    let warned = w.eventually("an idle warning", || {
        let s = w.alice_json(&["reservations", "show", &rid]);
        s["warning"].is_string().then_some(s)
    });
    assert!(warned["idle_warned_at"].is_string(), "{warned}");
    let metrics = common::http_body(&w.centre.http, "/metrics");
    assert!(
        metrics.contains("berth_reservations_idle_warned 1"),
        "{metrics}"
    );
    let reclaimed = w.eventually("the booking to be reclaimed", || {
        let s = w.alice_json(&["reservations", "show", &rid]);
        (s["state"] == "reclaimed").then_some(s)
    });
    assert!(
        reclaimed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("utilisation"),
        "{reclaimed}"
    );
    // Charged 4 h; what was not used is refunded: well under a minute was used.
    assert!(hours(&reclaimed["charged_hours"]) < 0.1, "{reclaimed}");
    let ledger = w.alice_json(&["ledger"]);
    assert!(
        ledger
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "refund" && e["note"].as_str().unwrap_or("").contains("idle")),
        "{ledger}"
    );
    // The warning and the reclaim were each told once, about this booking.
    let told = w.eventually("both notifications", || {
        let v = w.alice_json(&["notifications"]);
        let mut events: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["object_id"] == rid.as_str() && n["kind"] == "reservation")
            .map(|n| n["event"].as_str().unwrap().to_owned())
            .collect();
        events.sort();
        (events.len() >= 2).then_some(events)
    });
    assert_eq!(told, ["idle-warning", "reclaimed"]);
    // The devices are back in the pool: all 4 can be booked now.
    w.reserve(&w.bob, "4", "now", "1h");
}

#[test]
fn pending_jobs_say_why_and_when_they_will_start() {
    let w = World::new(1, 4);
    let r = w.reserve(&w.bob, "4", "now", "1h");
    assert_eq!(r["count"], 4);
    let id = w
        .centre
        .berth(
            &w.alice,
            &[
                "submit", "--class", CLASS, "--count", "2", "--", "sh", "-c", "exit 0",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_owned();
    let shown = w.eventually("a reason with a start estimate", || {
        let j = w.alice_json(&["jobs", "show", &id]);
        j["estimated_start"].is_string().then_some(j)
    });
    assert_eq!(shown["state"], "pending", "{shown}");
    let reason = shown["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("waiting for 2 free gpu devices; next free at "),
        "{shown}"
    );

    // A budget that cannot pay for the job: the reason says so.
    w.centre.admin(&[
        "admin", "budgets", "set", "--org", "org-a", "--class", CLASS, "--hours", "0.5",
    ]);
    let shown = w.eventually("a budget reason", || {
        let j = w.alice_json(&["jobs", "show", &id]);
        j["reason"]
            .as_str()
            .is_some_and(|r| r.contains("budget"))
            .then_some(j)
    });
    assert!(
        shown["reason"]
            .as_str()
            .unwrap()
            .contains("budget for gpu exhausted: 0.5 h left, 2 h requested"),
        "{shown}"
    );
}

#[test]
fn preemptible_work_fills_an_idle_booking_and_yields_to_its_owner() {
    let w = World::new(1, 4);
    let r = w.reserve(&w.bob, "4", "now", "1h");
    let rid = r["id"].as_str().expect("id").to_owned();
    let guest = w.submit_guest("2", "echo started; sleep 300");
    w.eventually("the preemptible job to run in bob's idle booking", || {
        let j = w.alice_json(&["jobs", "show", &guest]);
        (j["state"] == "running").then_some(())
    });
    // Bob needs his devices: the guest gets SIGTERM and is requeued.
    let own = w
        .centre
        .berth(
            &w.bob,
            &[
                "submit",
                "--reservation",
                &rid,
                "--count",
                "4",
                "--",
                "sh",
                "-c",
                "echo mine",
            ],
        )
        .ok()
        .stdout
        .trim()
        .to_owned();
    let ended = w.eventually("the guest to be preempted", || {
        let j = w.alice_json(&["jobs", "show", &guest]);
        (j["state"] == "preempted").then_some(j)
    });
    assert!(
        ended["reason"]
            .as_str()
            .unwrap_or("")
            .contains("requeued as"),
        "{ended}"
    );
    w.eventually("bob's job to succeed", || {
        let j = w.bob_json(&["jobs", "show", &own]);
        (j["state"] == "succeeded").then_some(())
    });
    let jobs = w.alice_json(&["jobs"]);
    let requeued = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["requeued_from"] == guest.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no requeued job in {jobs}"));
    assert!(requeued["preemptible"] == true, "{requeued}");
    // Bob never sees alice's jobs.
    let bobs = w.bob_json(&["jobs", "--all"]);
    assert!(
        bobs.as_array().unwrap().iter().all(|j| j["org"] == "org-b"),
        "{bobs}"
    );
}

#[test]
fn a_guest_outlives_the_idle_booking_it_borrowed_from() {
    let w = World::new(1, 4);
    let r = w.reserve(&w.bob, "4", "now", "12s");
    let rid = r["id"].as_str().expect("id").to_owned();
    let guest = w.submit_guest("4", "echo started; sleep 300");
    let running = w.eventually("the preemptible job to run in bob's idle booking", || {
        let j = w.alice_json(&["jobs", "show", &guest]);
        (j["state"] == "running").then_some(j)
    });
    let b = w.bob_json(&["reservations", "show", &rid]);
    assert_eq!(
        b["state"], "active",
        "the guest borrows the booking's devices: {b}"
    );
    w.eventually("bob's booking to end", || {
        let b = w.bob_json(&["reservations", "show", &rid]);
        (b["state"] == "completed").then_some(())
    });
    // The booking's end does not cut the guest short: it keeps its devices, which nobody
    // else needs, for its max runtime. Three full scheduling passes after the end (counted
    // on the scheduler, not guessed from the clock) have had every chance to stop it.
    let ended_at = w.centre.passes();
    w.eventually("three more scheduling passes", || {
        (w.centre.passes() >= ended_at + 3).then_some(())
    });
    let j = w.alice_json(&["jobs", "show", &guest]);
    assert_eq!(j["state"], "running", "{j}");
    assert_eq!(j["devices"], running["devices"], "{j}");
    // A booking about to start on them (within the grace period) needs them: the guest is
    // preempted ahead of its start and requeued.
    w.reserve(&w.bob, "4", "+5s", "1h");
    let ended = w.eventually("the guest to be preempted", || {
        let j = w.alice_json(&["jobs", "show", &guest]);
        (j["state"] == "preempted").then_some(j)
    });
    let reason = ended["reason"].as_str().unwrap_or("");
    assert!(reason.contains("needed by reservation"), "{ended}");
    assert!(reason.contains("requeued as"), "{ended}");
}

#[test]
fn a_multi_node_job_starts_on_all_its_nodes_together() {
    let w = World::new(2, 2);
    let run = w
        .centre
        .berth(
            &w.alice,
            &[
                "submit",
                "--class",
                CLASS,
                "--count",
                "2",
                "--nodes",
                "2",
                "--wait",
                "--",
                "sh",
                "-c",
                "echo rank=$BERTH_NODE_RANK of $BERTH_NUM_NODES devices=$BERTH_DEVICES",
            ],
        )
        .ok();
    assert!(run.stdout.contains("rank=0 of 2"), "{}", run.describe());
    assert!(run.stdout.contains("rank=1 of 2"), "{}", run.describe());
    let jobs = w.alice_json(&["jobs", "--all"]);
    let job = &jobs[0];
    assert_eq!(job["state"], "succeeded", "{jobs}");
    assert_eq!(job["nodes"], 2, "{job}");
    let devices = job["devices"].as_array().map(Vec::len);
    assert_eq!(devices, Some(4), "{job}");
    // Both parts' logs, again, from the store.
    let id = job["id"].as_str().expect("id");
    let logs = w.centre.berth(&w.alice, &["logs", id]).ok();
    assert!(logs.stdout.contains("rank=0 of 2"), "{}", logs.describe());
    assert!(logs.stdout.contains("rank=1 of 2"), "{}", logs.describe());

    // More nodes than exist: refused at once, naming the field.
    let refused = w
        .centre
        .berth(
            &w.alice,
            &[
                "submit", "--class", CLASS, "--count", "2", "--nodes", "3", "--", "true",
            ],
        )
        .failed();
    assert!(refused.stderr.contains("nodes"), "{}", refused.describe());
}
