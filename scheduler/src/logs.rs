//! Following a job's logs: stored chunks first, then new ones as they arrive, until
//! the job has ended and every chunk has been sent.

use crate::auth::Caller;
use crate::engine::Engine;
use crate::store::{Store, StoreError};
use berth_proto::time::ms_to_ts;
use berth_proto::v1;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::Status;

const PAGE: u32 = 500;

/// Logs of part (rank) `r` of a multi-node job are stored from `r * RANK_SEQ_SPAN + 1`
/// on, so each part keeps its own increasing sequence; single-node jobs use rank 0.
pub const RANK_SEQ_SPAN: i64 = 1 << 40;

/// The highest stored seq of a job at or above `from` and below `from + RANK_SEQ_SPAN`
/// (`from` when none).
pub async fn last_seq_in(store: &dyn Store, job: &str, from: i64) -> Result<i64, StoreError> {
    let mut top = from;
    loop {
        let rows = store.read_logs(job, top, PAGE).await?;
        let n = rows.len();
        match rows.iter().rev().find(|r| r.seq < from + RANK_SEQ_SPAN) {
            Some(r) => top = r.seq,
            None => return Ok(top),
        }
        if n < PAGE as usize || rows.last().is_some_and(|r| r.seq >= from + RANK_SEQ_SPAN) {
            return Ok(top);
        }
    }
}

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
        let after = after.min(i64::MAX as u64) as i64;
        // One cursor per part of the job (one for single-node jobs), each in its own range.
        let mut cursors: Vec<i64> = Vec::new();
        let mut changes = engine.logs.subscribe(&job);
        loop {
            // Read the job's state before the logs, so nothing stored before it ended is missed.
            let (ended, parts) = match engine.visible_job(&caller, &job).await {
                Ok(j) => (j.row.state.is_final(), j.row.nodes.max(1) as usize),
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            while cursors.len() < parts {
                let base = cursors.len() as i64 * RANK_SEQ_SPAN;
                cursors.push(after.clamp(base, base + RANK_SEQ_SPAN));
            }
            for (rank, seq) in cursors.iter_mut().enumerate() {
                let end = (rank as i64 + 1) * RANK_SEQ_SPAN;
                loop {
                    let rows = match engine.store.read_logs(&job, *seq, PAGE).await {
                        Ok(rows) => rows,
                        Err(e) => {
                            let _ = tx.send(Err(crate::error::Error::from(e).into())).await;
                            return;
                        }
                    };
                    let n = rows.len();
                    let mut done = n < PAGE as usize;
                    for r in rows {
                        if r.seq >= end {
                            done = true;
                            break;
                        }
                        *seq = r.seq;
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
                    if done {
                        break;
                    }
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
