//! Per-job state files shared by the runtimes: one JSON record per job in a directory.

use super::RuntimeError;
use serde::de::DeserializeOwned;
use std::path::Path;

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
