//! Per-job state files shared by the runtimes: one JSON record per job in a directory.

use super::RuntimeError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Maps an I/O error on `path` to a runtime error.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads every `*.json` record in `dir` (none if it does not exist); unreadable ones are
/// logged and skipped so one bad file cannot stop an agent from starting.
pub(crate) async fn read_json_dir<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>, RuntimeError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut records = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io_err(dir))? {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let parsed = tokio::fs::read(&path)
            .await
            .map_err(|e| e.to_string())
            .and_then(|data| serde_json::from_slice::<T>(&data).map_err(|e| e.to_string()));
        match parsed {
            Ok(record) => records.push(record),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping unreadable job record")
            }
        }
    }
    Ok(records)
}

/// Writes `value` as JSON to `path` atomically: to a temporary file beside it, then
/// renamed over it, so a reader sees the old record or the new one, never a part.
///
/// Each write has its own temporary file, so two writers of one record (an agent's
/// exit watcher and its successor's recovery, say) cannot clobber or steal each
/// other's; the last rename wins.
pub(crate) async fn write_json_atomic<T: Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), RuntimeError> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let data = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
    }
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(name);
    if let Err(e) = tokio::fs::write(&tmp, data).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(&tmp)(e));
    }
    tokio::fs::rename(&tmp, path).await.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writers_of_one_record_all_succeed_and_leave_one_whole_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("j1.json");
        let writes = (0..32u32).map(|i| {
            let path = path.clone();
            tokio::spawn(async move {
                let value: Vec<u32> = vec![i; 1 + i as usize * 100];
                write_json_atomic(&path, &value).await
            })
        });
        for write in writes.collect::<Vec<_>>() {
            write.await.unwrap().unwrap();
        }
        let data = std::fs::read(&path).unwrap();
        let value: Vec<u32> = serde_json::from_slice(&data).unwrap();
        assert_eq!(value.len(), 1 + value[0] as usize * 100);
        assert!(value.iter().all(|v| *v == value[0]));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["j1.json"], "no temporary file is left behind");
    }
}
