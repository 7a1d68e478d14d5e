//! What the Docker runtime remembers of each job on disk: the spec, its start and
//! exit, and how far its output has been read, so a restarted agent re-adopts the
//! job's container and goes on reading where its predecessor stopped.
//!
//! `<state_dir>/docker-runtime/<job_id>.json` (written before the container is
//! created, and again at its exit) and `<job_id>.logpos` (the log position), both
//! written atomically.

use super::logs::LogPosition;
use crate::runtime::records::{io_err, read_json_dir, write_json_atomic};
use crate::runtime::{Exit, JobSpec, RuntimeError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The spec it was started with.
    pub spec: JobSpec,
    /// When its container started, once it has.
    pub started_at_ms: Option<i64>,
    /// How it ended, once its output is collected.
    pub exit: Option<Exit>,
}

/// The records directory of a state directory.
pub fn records_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("docker-runtime")
}

async fn remove(path: &Path) -> Result<(), RuntimeError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Writes (or replaces) the record of a job.
pub async fn write(dir: &Path, record: &JobRecord) -> Result<(), RuntimeError> {
    let path = dir.join(format!("{}.json", record.spec.job_id));
    write_json_atomic(&path, record).await
}

/// Writes the log position of a job.
pub async fn write_position(
    dir: &Path,
    job_id: &str,
    pos: &LogPosition,
) -> Result<(), RuntimeError> {
    let path = dir.join(format!("{job_id}.logpos"));
    write_json_atomic(&path, pos).await
}

/// The log position of a job; the start when none was recorded (or it is unreadable).
pub async fn read_position(dir: &Path, job_id: &str) -> LogPosition {
    let path = dir.join(format!("{job_id}.logpos"));
    tokio::fs::read(&path)
        .await
        .ok()
        .and_then(|data| serde_json::from_slice(&data).ok())
        .unwrap_or_default()
}

/// Deletes everything recorded of a job; missing files are fine.
pub async fn delete(dir: &Path, job_id: &str) -> Result<(), RuntimeError> {
    remove(&dir.join(format!("{job_id}.logpos"))).await?;
    remove(&dir.join(format!("{job_id}.json"))).await
}

/// Reads every record, ordered by job id; unreadable ones are logged and skipped.
pub async fn read_all(dir: &Path) -> Result<Vec<JobRecord>, RuntimeError> {
    let mut records: Vec<JobRecord> = read_json_dir(dir).await?;
    records.sort_by(|a, b| a.spec.job_id.cmp(&b.spec.job_id));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::tests::spec;

    #[tokio::test]
    async fn records_and_positions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let dir = records_dir(dir.path());
        assert!(read_all(&dir).await.unwrap().is_empty());
        let mut rec = JobRecord {
            spec: spec("j1", &["true"], dir.join("jobs/j1")),
            started_at_ms: None,
            exit: None,
        };
        write(&dir, &rec).await.unwrap();
        rec.started_at_ms = Some(5);
        write(&dir, &rec).await.unwrap();
        assert_eq!(read_position(&dir, "j1").await, LogPosition::default());
        let pos = LogPosition {
            time_ns: 1_700_000_000_123_456_789,
            same_time: 2,
        };
        write_position(&dir, "j1", &pos).await.unwrap();
        assert_eq!(read_position(&dir, "j1").await, pos);
        std::fs::write(dir.join("junk.json"), b"{").unwrap();
        assert_eq!(read_all(&dir).await.unwrap(), vec![rec]);
        delete(&dir, "j1").await.unwrap();
        delete(&dir, "j1").await.unwrap();
        assert!(read_all(&dir).await.unwrap().is_empty());
        assert_eq!(read_position(&dir, "j1").await, LogPosition::default());
    }
}
