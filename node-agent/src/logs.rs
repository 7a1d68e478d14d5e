//! Job output: cut into [`LogChunk`]s and shipped to the scheduler with `PushLogs`.
//!
//! Each job has one pipeline: the runtime writes raw stdout/stderr bytes into a
//! [`LogSink`]; a [`Chunker`] cuts them into chunks of at most [`MAX_CHUNK_BYTES`],
//! numbered from 1 per job and flushed about every [`LogOptions::flush_interval`]; a
//! task ships them in batches and retries until the scheduler has stored them (it
//! ignores duplicate seqs, so a retry after a lost reply is harmless). When the
//! runtime closes the sink and every chunk is stored, the pipeline reports
//! [`LogsDone`]: only then does the agent report the job as exited, so a user who sees
//! the job finished can read every line.
//!
//! A slow or unreachable scheduler applies back-pressure: the pipeline stops reading
//! once [`LogOptions::max_buffered_chunks`] are waiting, and the job blocks on its
//! next write instead of losing output.

use async_trait::async_trait;
use berth_proto::v1::{LogChunk, log_chunk};
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// Largest chunk payload.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// Which output stream bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// The wire enum.
    pub fn to_proto(self) -> log_chunk::Stream {
        match self {
            LogStream::Stdout => log_chunk::Stream::Stdout,
            LogStream::Stderr => log_chunk::Stream::Stderr,
        }
    }
}

/// Where a runtime writes a job's output. Cheap to clone; the pipeline ends when
/// every clone is dropped.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: mpsc::Sender<(LogStream, Vec<u8>)>,
    stored: Option<watch::Receiver<u64>>,
}

/// The pipeline behind a [`LogSink`] has gone (the agent is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("log pipeline closed")]
pub struct SinkClosed;

impl LogSink {
    /// Writes output; waits when the pipeline is full (back-pressure).
    pub async fn write(&self, stream: LogStream, data: Vec<u8>) -> Result<(), SinkClosed> {
        if data.is_empty() {
            return Ok(());
        }
        self.tx.send((stream, data)).await.map_err(|_| SinkClosed)
    }

    /// How many of the bytes written to this sink (in write order, both streams)
    /// the scheduler has stored or refused for good, as it grows; `None` when the
    /// sink does not say (a test channel). A runtime that can re-read output after a
    /// restart records its progress from this, so nothing stored is read twice and
    /// nothing unstored is skipped.
    pub fn stored_bytes(&self) -> Option<watch::Receiver<u64>> {
        self.stored.clone()
    }

    /// A sink whose output goes nowhere and its receiver, for tests of runtimes.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<(LogStream, Vec<u8>)>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, stored: None }, rx)
    }
}

/// Cuts a job's output into numbered chunks. Pure: no I/O, no clock.
#[derive(Debug)]
pub struct Chunker {
    next_seq: u64,
    pending: Option<(LogStream, Vec<u8>, i64)>,
}

impl Chunker {
    /// A chunker whose first chunk gets `first_seq` (1 for a new job).
    pub fn new(first_seq: u64) -> Self {
        Self {
            next_seq: first_seq.max(1),
            pending: None,
        }
    }

    /// Adds bytes written at `now_ms`; returns the chunks completed by them, in order.
    pub fn push(&mut self, stream: LogStream, mut data: &[u8], now_ms: i64) -> Vec<LogChunk> {
        let mut out = Vec::new();
        if self.pending.as_ref().is_some_and(|(s, _, _)| *s != stream) {
            out.extend(self.flush());
        }
        while !data.is_empty() {
            let (_, buf, _) = self
                .pending
                .get_or_insert_with(|| (stream, Vec::new(), now_ms));
            let take = (MAX_CHUNK_BYTES - buf.len()).min(data.len());
            buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buf.len() == MAX_CHUNK_BYTES {
                out.extend(self.flush());
            }
        }
        out
    }

    /// Whether bytes are waiting for a flush.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Completes the chunk being filled, if any.
    pub fn flush(&mut self) -> Option<LogChunk> {
        let (stream, data, time_ms) = self.pending.take()?;
        let seq = self.next_seq;
        self.next_seq += 1;
        Some(LogChunk {
            seq,
            stream: stream.to_proto() as i32,
            data,
            time: Some(berth_proto::time::ms_to_ts(time_ms)),
        })
    }
}

/// Why a push did not store the chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Worth retrying (scheduler unreachable, overloaded, credential being renewed).
    #[error("{0}")]
    Retry(String),
    /// The scheduler refused the chunks for good (e.g. it does not know the job).
    #[error("{0}")]
    Rejected(String),
}

/// Ships chunks of one job; returns the highest seq the scheduler has stored.
#[async_trait]
pub trait LogTransport: Send + Sync + 'static {
    /// Stores `chunks` (possibly none, to learn the stored seq) for `job_id`.
    async fn push(&self, job_id: &str, chunks: Vec<LogChunk>) -> Result<u64, PushError>;
}

/// A pipeline has finished: the sink was closed and every chunk shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsDone {
    /// The job.
    pub job_id: String,
    /// False when some chunks were refused by the scheduler or the agent gave up.
    pub complete: bool,
}

/// Tunables of a pipeline.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// How long bytes may wait in an unfilled chunk.
    pub flush_interval: Duration,
    /// Most chunks in one `PushLogs` call (keep under the 4 MiB gRPC message limit).
    pub max_batch_chunks: usize,
    /// Stop reading output while this many chunks wait to be shipped.
    pub max_buffered_chunks: usize,
    /// First retry delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(200),
            max_batch_chunks: 32,
            max_buffered_chunks: 256,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Starts the pipeline of `job_id` and returns its sink.
///
/// `first_seq` is 1 for a new job; `None` for a job adopted after an agent restart,
/// in which case the pipeline first asks the scheduler (an empty push) which seq it
/// has stored and continues after it. When done, the pipeline sends [`LogsDone`] on
/// `done`. Cancelling `cancel` abandons what is left (reported as incomplete).
pub fn spawn_job_logs(
    job_id: String,
    first_seq: Option<u64>,
    transport: Arc<dyn LogTransport>,
    options: LogOptions,
    done: mpsc::UnboundedSender<LogsDone>,
    cancel: CancellationToken,
) -> LogSink {
    let (tx, rx) = mpsc::channel(64);
    let (stored_tx, stored_rx) = watch::channel(0);
    let sink = LogSink {
        tx,
        stored: Some(stored_rx),
    };
    let pipeline = Pipeline {
        job_id,
        transport,
        options,
        rx,
        cancel,
        stored_tx,
        stored_bytes: 0,
    };
    tokio::spawn(async move {
        let job_id = pipeline.job_id.clone();
        let complete = pipeline.run(first_seq).await;
        // The agent may already be gone; nothing to do then.
        let _ = done.send(LogsDone { job_id, complete });
    });
    sink
}

struct Pipeline {
    job_id: String,
    transport: Arc<dyn LogTransport>,
    options: LogOptions,
    rx: mpsc::Receiver<(LogStream, Vec<u8>)>,
    cancel: CancellationToken,
    stored_tx: watch::Sender<u64>,
    stored_bytes: u64,
}

impl Pipeline {
    /// Counts chunks the scheduler is done with (stored, or refused for good).
    fn settled<'a>(&mut self, chunks: impl Iterator<Item = &'a LogChunk>) {
        self.stored_bytes += chunks.map(|c| c.data.len() as u64).sum::<u64>();
        self.stored_tx.send_replace(self.stored_bytes);
    }

    /// Runs to the end; returns whether every byte was stored.
    async fn run(mut self, first_seq: Option<u64>) -> bool {
        let first_seq = match first_seq {
            Some(seq) => seq,
            None => match self.resume_seq().await {
                Some(seq) => seq,
                None => return false,
            },
        };
        let mut chunker = Chunker::new(first_seq);
        let mut outbox: VecDeque<LogChunk> = VecDeque::new();
        let mut input_open = true;
        let mut complete = true;
        let mut flush_at = Instant::now();
        let mut in_flight: Option<(usize, BoxFuture<'static, Result<u64, PushError>>)> = None;
        let mut backoff = self.options.initial_backoff;
        let mut retry_at = Instant::now();

        loop {
            if !input_open && !chunker.has_pending() && outbox.is_empty() && in_flight.is_none() {
                return complete;
            }
            if in_flight.is_none() && !outbox.is_empty() && Instant::now() >= retry_at {
                let n = outbox.len().min(self.options.max_batch_chunks);
                let batch: Vec<LogChunk> = outbox.iter().take(n).cloned().collect();
                let transport = self.transport.clone();
                let job_id = self.job_id.clone();
                in_flight = Some((
                    n,
                    Box::pin(async move { transport.push(&job_id, batch).await }),
                ));
            }
            let can_read = input_open && outbox.len() < self.options.max_buffered_chunks;
            let waiting_to_retry = in_flight.is_none() && !outbox.is_empty();
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    tracing::warn!(job_id = %self.job_id, unshipped = outbox.len(), "log shipping abandoned at shutdown");
                    return false;
                }
                msg = self.rx.recv(), if can_read => match msg {
                    Some((stream, data)) => {
                        let was_pending = chunker.has_pending();
                        let full = chunker.push(stream, &data, berth_proto::time::now_ms());
                        // A new chunk started filling: it waits at most one interval.
                        if chunker.has_pending() && (!was_pending || !full.is_empty()) {
                            flush_at = Instant::now() + self.options.flush_interval;
                        }
                        outbox.extend(full);
                    }
                    None => {
                        input_open = false;
                        outbox.extend(chunker.flush());
                    }
                },
                _ = sleep_until(flush_at), if chunker.has_pending() => {
                    outbox.extend(chunker.flush());
                }
                result = async { in_flight.as_mut().expect("guarded").1.as_mut().await }, if in_flight.is_some() => {
                    let (n, _) = in_flight.take().expect("guarded");
                    match result {
                        Ok(stored) => {
                            let more = outbox.iter().skip(n).take_while(|c| c.seq <= stored).count();
                            self.settled(outbox.drain(..n + more).collect::<Vec<_>>().iter());
                            backoff = self.options.initial_backoff;
                        }
                        Err(PushError::Retry(why)) => {
                            tracing::debug!(job_id = %self.job_id, %why, "log push failed; will retry");
                            retry_at = Instant::now() + backoff;
                            backoff = (backoff * 2).min(self.options.max_backoff);
                        }
                        Err(PushError::Rejected(why)) => {
                            tracing::warn!(job_id = %self.job_id, %why, chunks = n, "scheduler refused log chunks; dropping them");
                            self.settled(outbox.drain(..n).collect::<Vec<_>>().iter());
                            complete = false;
                        }
                    }
                }
                _ = sleep_until(retry_at), if waiting_to_retry => {}
            }
        }
    }

    /// Asks the scheduler which seq it has stored; the next one to use follows it.
    async fn resume_seq(&mut self) -> Option<u64> {
        let mut backoff = self.options.initial_backoff;
        loop {
            match self.transport.push(&self.job_id, Vec::new()).await {
                Ok(stored) => return Some(stored + 1),
                Err(PushError::Rejected(why)) => {
                    tracing::warn!(job_id = %self.job_id, %why, "cannot resume log shipping");
                    return None;
                }
                Err(PushError::Retry(_)) => {}
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.options.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    fn stream_of(c: &LogChunk) -> LogStream {
        if c.stream == log_chunk::Stream::Stdout as i32 {
            LogStream::Stdout
        } else {
            LogStream::Stderr
        }
    }

    #[test]
    fn chunker_numbers_from_one_and_splits_at_64k() {
        let mut c = Chunker::new(1);
        let data = vec![b'x'; 150 * 1024];
        let chunks = c.push(LogStream::Stdout, &data, 5);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(chunks.iter().all(|c| c.data.len() == MAX_CHUNK_BYTES));
        assert!(c.has_pending());
        let last = c.flush().expect("rest");
        assert_eq!(last.seq, 3);
        assert_eq!(last.data.len(), 150 * 1024 - 2 * MAX_CHUNK_BYTES);
        assert_eq!(c.flush(), None);
        assert_eq!(c.push(LogStream::Stdout, b"", 6), []);
        assert!(!c.has_pending());
    }

    #[test]
    fn chunker_keeps_streams_apart_and_in_order() {
        let mut c = Chunker::new(1);
        assert!(c.push(LogStream::Stdout, b"a", 10).is_empty());
        assert!(c.push(LogStream::Stdout, b"b", 11).is_empty());
        let out = c.push(LogStream::Stderr, b"E", 12);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].seq, out[0].data.as_slice()), (1, &b"ab"[..]));
        assert_eq!(stream_of(&out[0]), LogStream::Stdout);
        // The chunk's time is that of its first byte.
        assert_eq!(out[0].time, Some(berth_proto::time::ms_to_ts(10)));
        let out = c.push(LogStream::Stdout, b"c", 13);
        assert_eq!((out[0].seq, out[0].data.as_slice()), (2, &b"E"[..]));
        assert_eq!(stream_of(&out[0]), LogStream::Stderr);
        assert_eq!(c.flush().map(|c| c.seq), Some(3));
    }

    #[test]
    fn chunker_resumes_after_a_stored_seq() {
        let mut c = Chunker::new(42);
        c.push(LogStream::Stderr, b"x", 0);
        assert_eq!(c.flush().map(|c| c.seq), Some(42));
        assert_eq!(Chunker::new(0).flush(), None);
    }

    /// A scheduler that dedups by seq, fails the first pushes, and sometimes loses
    /// its reply after storing.
    #[derive(Default)]
    struct FlakyScheduler {
        calls: Mutex<u32>,
        stored: Mutex<BTreeMap<u64, LogChunk>>,
    }

    #[async_trait]
    impl LogTransport for FlakyScheduler {
        async fn push(&self, _job: &str, chunks: Vec<LogChunk>) -> Result<u64, PushError> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            if call <= 2 {
                return Err(PushError::Retry("unavailable".into()));
            }
            let mut stored = self.stored.lock().unwrap();
            for c in chunks {
                stored.entry(c.seq).or_insert(c);
            }
            if call % 3 == 0 {
                return Err(PushError::Retry("reply lost".into()));
            }
            Ok(stored.keys().next_back().copied().unwrap_or(0))
        }
    }

    fn fast() -> LogOptions {
        LogOptions {
            flush_interval: Duration::from_millis(5),
            max_batch_chunks: 3,
            max_buffered_chunks: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    async fn done_within(rx: &mut mpsc::UnboundedReceiver<LogsDone>) -> LogsDone {
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("pipeline finished in time")
            .expect("done sent")
    }

    #[tokio::test]
    async fn ships_everything_exactly_once_despite_failures() {
        let sched = Arc::new(FlakyScheduler::default());
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let sink = spawn_job_logs(
            "job-1".into(),
            Some(1),
            sched.clone(),
            fast(),
            done_tx,
            CancellationToken::new(),
        );
        let stored_bytes = sink.stored_bytes().expect("a pipeline's sink says");
        let mut want_out = Vec::new();
        let mut want_err = Vec::new();
        for i in 0..200u32 {
            let line = format!("line {i} {}\n", "y".repeat((i as usize * 997) % 70_000));
            if i % 7 == 0 {
                want_err.extend_from_slice(line.as_bytes());
                sink.write(LogStream::Stderr, line.into_bytes())
                    .await
                    .unwrap();
            } else {
                want_out.extend_from_slice(line.as_bytes());
                sink.write(LogStream::Stdout, line.into_bytes())
                    .await
                    .unwrap();
            }
        }
        drop(sink);
        let done = done_within(&mut done_rx).await;
        assert_eq!(
            done,
            LogsDone {
                job_id: "job-1".into(),
                complete: true
            }
        );

        let stored = sched.stored.lock().unwrap();
        let seqs: Vec<u64> = stored.keys().copied().collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "contiguous from 1"
        );
        let (mut out, mut err) = (Vec::new(), Vec::new());
        for c in stored.values() {
            assert!(c.data.len() <= MAX_CHUNK_BYTES && !c.data.is_empty());
            match stream_of(c) {
                LogStream::Stdout => out.extend_from_slice(&c.data),
                LogStream::Stderr => err.extend_from_slice(&c.data),
            }
        }
        assert!(out == want_out, "stdout intact");
        assert!(err == want_err, "stderr intact");
        assert_eq!(
            *stored_bytes.borrow(),
            (want_out.len() + want_err.len()) as u64,
            "every byte counted as stored once"
        );
    }

    #[tokio::test]
    async fn an_empty_job_finishes_at_once_and_refusals_are_reported_incomplete() {
        struct Refuse;
        #[async_trait]
        impl LogTransport for Refuse {
            async fn push(&self, _: &str, _: Vec<LogChunk>) -> Result<u64, PushError> {
                Err(PushError::Rejected("no such job".into()))
            }
        }
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let sink = spawn_job_logs(
            "a".into(),
            Some(1),
            Arc::new(Refuse),
            fast(),
            done_tx.clone(),
            CancellationToken::new(),
        );
        drop(sink);
        assert!(
            done_within(&mut done_rx).await.complete,
            "nothing to ship is complete"
        );

        let sink = spawn_job_logs(
            "b".into(),
            Some(1),
            Arc::new(Refuse),
            fast(),
            done_tx,
            CancellationToken::new(),
        );
        sink.write(LogStream::Stdout, b"hello".to_vec())
            .await
            .unwrap();
        drop(sink);
        assert_eq!(
            done_within(&mut done_rx).await,
            LogsDone {
                job_id: "b".into(),
                complete: false
            }
        );
    }

    #[tokio::test]
    async fn adopted_jobs_continue_after_the_stored_seq() {
        #[derive(Default)]
        struct Resume(Mutex<Vec<u64>>);
        #[async_trait]
        impl LogTransport for Resume {
            async fn push(&self, _: &str, chunks: Vec<LogChunk>) -> Result<u64, PushError> {
                let mut seen = self.0.lock().unwrap();
                seen.extend(chunks.iter().map(|c| c.seq));
                Ok(seen.last().copied().unwrap_or(17))
            }
        }
        let t = Arc::new(Resume::default());
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let sink = spawn_job_logs(
            "c".into(),
            None,
            t.clone(),
            fast(),
            done_tx,
            CancellationToken::new(),
        );
        sink.write(LogStream::Stdout, b"again".to_vec())
            .await
            .unwrap();
        drop(sink);
        assert!(done_within(&mut done_rx).await.complete);
        assert_eq!(*t.0.lock().unwrap(), [18]);
    }

    #[tokio::test]
    async fn cancelling_abandons_unshipped_chunks() {
        struct Down;
        #[async_trait]
        impl LogTransport for Down {
            async fn push(&self, _: &str, _: Vec<LogChunk>) -> Result<u64, PushError> {
                Err(PushError::Retry("down".into()))
            }
        }
        let cancel = CancellationToken::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let sink = spawn_job_logs(
            "d".into(),
            Some(1),
            Arc::new(Down),
            fast(),
            done_tx,
            cancel.clone(),
        );
        sink.write(LogStream::Stdout, b"lost".to_vec())
            .await
            .unwrap();
        drop(sink);
        cancel.cancel();
        assert!(!done_within(&mut done_rx).await.complete);
    }
}
