//! Following a job's logs: stored chunks first, then new ones as they arrive, until
//! the job has ended and every chunk has been sent.

use crate::auth::Caller;
use crate::engine::Engine;
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::Status;

const PAGE: u32 = 500;

/// Streams the job's chunks with seq > `after` into a channel; with `follow`, keeps
/// going until the job ends.
pub fn follow(
    engine: Arc<Engine>,
    caller: Caller,
    job: String,
    after: u64,
    follow: bool,
) -> mpsc::Receiver<Result<v1::LogChunk, Status>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut seq = after.min(i64::MAX as u64) as i64;
        let mut changes = engine.logs.subscribe(&job);
        loop {
            // Read the job's state before the logs, so nothing stored before it ended is missed.
            let ended = match engine.visible_job(&caller, &job).await {
                Ok(j) => j.row.state.is_final(),
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            loop {
                let rows = match engine.store.read_logs(&job, seq, PAGE).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = tx.send(Err(crate::error::Error::from(e).into())).await;
                        return;
                    }
                };
                let n = rows.len();
                for r in rows {
                    seq = r.seq;
                    let chunk = v1::LogChunk {
                        seq: r.seq as u64,
                        stream: r.stream,
                        data: r.data,
                        time: Some(ms_to_ts(r.time_ms)),
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return; // the client went away
                    }
                }
                if n < PAGE as usize {
                    break;
                }
            }
            if !follow || ended {
                return;
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = tx.closed() => return,
            }
            if changes.has_changed().is_err() {
                changes = engine.logs.subscribe(&job);
            }
        }
    });
    rx
}
