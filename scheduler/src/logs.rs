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
pub const RANK_SEQ_SPAN: i64 = berth_proto::LOG_PART_SEQ_SPAN as i64;

/// Where a reader resumes a job's logs: after one seq, or after a seq per part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// After this seq: parts whose range lies below it are skipped whole (older clients).
    After(i64),
    /// After the seq at each part's index (0: from the part's start).
    Parts(Vec<i64>),
}

impl Resume {
    /// From a request's `after_seq` and `after_part_seqs`; the parts win when given.
    pub fn new(after_seq: u64, parts: &[u64]) -> Self {
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        if parts.is_empty() {
            Resume::After(clamp(after_seq))
        } else {
            Resume::Parts(parts.iter().copied().map(clamp).collect())
        }
    }

    /// The cursor of part `rank`: the last seq already seen, within the part's range.
    pub fn cursor(&self, rank: usize) -> i64 {
        let base = rank as i64 * RANK_SEQ_SPAN;
        let seen = match self {
            Resume::After(after) => *after,
            Resume::Parts(parts) => parts.get(rank).copied().unwrap_or(0),
        };
        seen.clamp(base, base + RANK_SEQ_SPAN)
    }
}

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

/// Forgets the follower's wake-up channel when it leaves (if nobody else follows).
struct Unsubscribe {
    engine: Arc<Engine>,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.engine.logs.sweep();
    }
}

/// Streams the job's chunks after `after` into a channel; with `follow`, keeps going
/// until the job ends. `place` is the follower's place (see `LogHub::admit`).
pub fn follow(
    engine: Arc<Engine>,
    caller: Caller,
    job: String,
    after: Resume,
    follow: bool,
    place: crate::engine::Follower,
) -> mpsc::Receiver<Result<v1::LogChunk, Status>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        // Held until this follower leaves, however it leaves.
        let _place = place;
        let _unsubscribe = Unsubscribe {
            engine: engine.clone(),
        };
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
                cursors.push(after.cursor(cursors.len()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_seq_skips_the_parts_below_it() {
        let r = Resume::new(RANK_SEQ_SPAN as u64 + 7, &[]);
        assert_eq!(r.cursor(0), RANK_SEQ_SPAN, "part 0 is skipped whole");
        assert_eq!(r.cursor(1), RANK_SEQ_SPAN + 7);
        assert_eq!(r.cursor(2), 2 * RANK_SEQ_SPAN, "part 2 from its start");
        assert_eq!(Resume::new(0, &[]).cursor(0), 0);
    }

    #[test]
    fn parts_resume_each_on_its_own() {
        let span = RANK_SEQ_SPAN as u64;
        let r = Resume::new(span + 9, &[3, span + 9]);
        assert_eq!(r.cursor(0), 3, "part 0 resumes after its own chunk 3");
        assert_eq!(r.cursor(1), RANK_SEQ_SPAN + 9);
        assert_eq!(
            r.cursor(2),
            2 * RANK_SEQ_SPAN,
            "a part not listed starts over"
        );
        // A seq outside its part's range is held inside it.
        let odd = Resume::new(0, &[span + 5, 1]);
        assert_eq!(odd.cursor(0), RANK_SEQ_SPAN);
        assert_eq!(odd.cursor(1), RANK_SEQ_SPAN);
    }
}
