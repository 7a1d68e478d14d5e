//! Rows for unit tests.

use super::{JobRow, JobState};

/// A one-device job of `acme`'s alice, created at `created`.
pub(crate) fn job(id: &str, class: &str, state: JobState, created: i64) -> JobRow {
    JobRow {
        id: id.into(),
        name: String::new(),
        org: "acme".into(),
        user_id: "u".into(),
        user_name: "alice".into(),
        class: class.into(),
        count: 1,
        image: "i".into(),
        command: vec![],
        env: Default::default(),
        datasets: vec![],
        network: "bridge".into(),
        max_runtime_ms: 3_600_000,
        reservation_id: None,
        state,
        reason: String::new(),
        node: None,
        devices: vec![],
        exit_code: None,
        created_ms: created,
        started_ms: None,
        finished_ms: None,
        deadline_ms: None,
        generation: 0,
        priority: 0,
        preemptible: false,
        nodes: 1,
        charge: Default::default(),
        requeued_from: None,
        stop: None,
        project: None,
        evidence: None,
    }
}
