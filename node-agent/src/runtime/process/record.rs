//! What the process runtime remembers of each job on disk, so that a restarted agent
//! can kill what its predecessor left running.
//!
//! One JSON file per job in `<state_dir>/process-runtime/`, written atomically. Before
//! killing a recorded process group the runtime checks that it is still the same one:
//! same boot, and the group leader (if still alive) started at the recorded time.
//! A pid is not reused while a process group of that id exists, so a living group
//! whose leader is gone is still ours.

use crate::runtime::records::{io_err, read_json_dir, write_json_atomic};
use crate::runtime::{Exit, JobSpec, RuntimeError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The spec it was started with.
    pub spec: JobSpec,
    /// Process id of the command; also the process group id.
    pub pgid: i32,
    /// Boot id of the machine when it started (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: Option<String>,
    /// Start time of the group leader in clock ticks since boot (`/proc/PID/stat`).
    pub leader_start_ticks: Option<u64>,
    /// When it started.
    pub started_at_ms: i64,
    /// How it ended, once it has.
    pub exit: Option<Exit>,
    /// Set when a restarted agent found the job running and could not re-adopt it: why.
    #[serde(default)]
    pub lost: Option<String>,
}

/// The records directory of a state directory.
pub fn records_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("process-runtime")
}

fn record_path(dir: &Path, job_id: &str) -> PathBuf {
    dir.join(format!("{job_id}.json"))
}

/// Writes (or replaces) the record of a job, atomically.
pub async fn write(dir: &Path, record: &JobRecord) -> Result<(), RuntimeError> {
    write_json_atomic(&record_path(dir, &record.spec.job_id), record).await
}

/// Deletes the record of a job; a missing record is fine.
pub async fn delete(dir: &Path, job_id: &str) -> Result<(), RuntimeError> {
    let path = record_path(dir, job_id);
    match tokio::fs::remove_file(&path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path)(e)),
        _ => Ok(()),
    }
}

/// Reads every record, ordered by job id; unreadable ones are logged and skipped.
pub async fn read_all(dir: &Path) -> Result<Vec<JobRecord>, RuntimeError> {
    let mut records: Vec<JobRecord> = read_json_dir(dir).await?;
    records.sort_by(|a, b| a.spec.job_id.cmp(&b.spec.job_id));
    Ok(records)
}

/// The machine's boot id, if readable.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Start time (clock ticks since boot) of process `pid`, if it exists.
pub fn start_ticks(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_start_ticks(&stat))
}

/// Field 22 (`starttime`) of a `/proc/PID/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process group of a record may still be the one the record describes.
pub fn may_be_ours(record: &JobRecord, boot_id: Option<&str>, leader_ticks: Option<u64>) -> bool {
    // Never 0 (our own group) or 1 (init's), whatever a damaged record says.
    if record.pgid <= 1 || record.boot_id.as_deref() != boot_id {
        return false;
    }
    match (leader_ticks, record.leader_start_ticks) {
        // The leader's pid now belongs to another process: our group has gone.
        (Some(now), Some(then)) => now == then,
        // Leader gone (or unknowable): a group of that id can only be ours.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::spec;

    #[test]
    fn parses_proc_stat() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("garbage"), None);
        assert!(start_ticks(std::process::id() as i32).is_some());
    }

    #[test]
    fn only_kills_groups_that_can_be_ours() {
        let record = JobRecord {
            spec: spec("j", &["true"], PathBuf::new()),
            pgid: 100,
            boot_id: Some("boot-a".into()),
            leader_start_ticks: Some(500),
            started_at_ms: 0,
            exit: None,
            lost: None,
        };
        assert!(may_be_ours(&record, Some("boot-a"), Some(500)));
        assert!(may_be_ours(&record, Some("boot-a"), None));
        assert!(
            !may_be_ours(&record, Some("boot-a"), Some(501)),
            "pid reused"
        );
        assert!(!may_be_ours(&record, Some("boot-b"), Some(500)), "rebooted");
        for pgid in [-5, 0, 1] {
            let bad = JobRecord {
                pgid,
                ..record.clone()
            };
            assert!(!may_be_ours(&bad, Some("boot-a"), None), "{pgid}");
        }
    }

    #[tokio::test]
    async fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let records = records_dir(dir.path());
        assert!(read_all(&records).await.unwrap().is_empty());
        let mut record = JobRecord {
            spec: spec("j1", &["sleep", "1"], dir.path().join("jobs/j1")),
            pgid: 7,
            boot_id: boot_id(),
            leader_start_ticks: Some(1),
            started_at_ms: 5,
            exit: None,
            lost: None,
        };
        write(&records, &record).await.unwrap();
        record.exit = Some(Exit {
            exit_code: 3,
            finished_at_ms: 9,
            message: String::new(),
        });
        write(&records, &record).await.unwrap();
        std::fs::write(records.join("junk.json"), b"{").unwrap();
        assert_eq!(read_all(&records).await.unwrap(), vec![record]);
        delete(&records, "j1").await.unwrap();
        delete(&records, "j1").await.unwrap();
        assert!(read_all(&records).await.unwrap().is_empty());
    }
}
