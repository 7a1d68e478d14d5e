//! A container's output into a job's [`LogSink`], resumable across agent restarts.
//!
//! The runtime reads the container's logs with Docker's per-line timestamps and
//! records, in the state directory, how far the scheduler has stored them (the last
//! stored line's timestamp, and how many stored lines carried exactly that
//! timestamp; the sink says how many bytes are stored). A restarted agent asks Docker
//! for the logs since that second and skips what was stored, so no output is lost
//! across a restart, and only lines stored in the last moments before an agent was
//! killed (before their position was saved) can appear twice.

use super::record;
use crate::logs::{LogSink, LogStream};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// How often the log position is written while output flows...
const SAVE_EVERY: Duration = Duration::from_millis(250);
/// ...and how soon once it pauses.
const SAVE_WHEN_QUIET: Duration = Duration::from_millis(20);

/// How far a job's output has been read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    /// Docker's timestamp of the last line read, in nanoseconds since the epoch; 0: none.
    pub time_ns: i64,
    /// How many lines read carried exactly that timestamp.
    pub same_time: u32,
}

impl LogPosition {
    /// The whole seconds to ask Docker for logs `since` (inclusive).
    pub fn since_secs(&self) -> i32 {
        i32::try_from(self.time_ns.div_euclid(1_000_000_000)).unwrap_or(0)
    }

    /// Records that a line stamped `time_ns` was read.
    pub fn advance(&mut self, time_ns: i64) {
        if time_ns == self.time_ns {
            self.same_time = self.same_time.saturating_add(1);
        } else if time_ns > self.time_ns {
            self.time_ns = time_ns;
            self.same_time = 1;
        }
    }
}

/// Decides which lines of a re-read were already read before.
#[derive(Debug)]
pub struct Skipper {
    from: LogPosition,
    seen_at_from: u32,
}

impl Skipper {
    /// Skips what `from` says was read.
    pub fn new(from: LogPosition) -> Self {
        Self {
            from,
            seen_at_from: 0,
        }
    }

    /// Whether the next line, stamped `time_ns`, was already read.
    pub fn skip(&mut self, time_ns: i64) -> bool {
        if time_ns < self.from.time_ns {
            true
        } else if time_ns == self.from.time_ns && self.seen_at_from < self.from.same_time {
            self.seen_at_from += 1;
            true
        } else {
            false
        }
    }
}

/// Splits Docker's `RFC3339NANO ` prefix off a log line: its time in nanoseconds and
/// the line. `None` when the line has no readable timestamp.
pub fn split_timestamp(line: &[u8]) -> Option<(i64, &[u8])> {
    let space = line.iter().position(|b| *b == b' ')?;
    let stamp = std::str::from_utf8(&line[..space]).ok()?;
    let time = chrono::DateTime::parse_from_rfc3339(stamp).ok()?;
    Some((time.timestamp_nanos_opt()?, &line[space + 1..]))
}

/// Where a pump keeps its position.
#[derive(Debug, Clone)]
pub struct PositionFile {
    /// The records directory.
    pub dir: PathBuf,
    /// The job.
    pub job_id: String,
}

impl PositionFile {
    async fn save(&self, pos: &LogPosition) {
        if let Err(error) = record::write_position(&self.dir, &self.job_id, pos).await {
            tracing::warn!(job_id = %self.job_id, %error, "cannot record the log position");
        }
    }
}

/// Copies the output of `container` into `sink` from `from` on, following it until
/// the container stops. Records the position of what the scheduler has stored (as the
/// sink reports it; of what was read when it does not) as it goes. Returns an error
/// when the engine's stream broke off.
pub async fn pump(
    docker: Docker,
    container: String,
    sink: LogSink,
    from: LogPosition,
    file: PositionFile,
) -> Result<(), String> {
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .since(from.since_secs())
        .build();
    let mut stream = docker.logs(&container, Some(options));
    let mut skipper = Skipper::new(from);
    let mut acks = sink.stored_bytes();
    // Lines written but not yet stored: (end offset in bytes written, timestamp).
    let mut unstored: VecDeque<(u64, Option<i64>)> = VecDeque::new();
    let mut written: u64 = 0;
    // Position of what is safely stored, and of what was last saved to disk.
    let mut pos = from;
    let mut saved = pos;
    let mut save_at = Instant::now() + SAVE_EVERY;
    let mut open = true;
    let mut result = Ok(());
    loop {
        let quiet = (Instant::now() + SAVE_WHEN_QUIET).min(save_at);
        tokio::select! {
            biased;
            changed = async { acks.as_mut().expect("guarded").changed().await }, if acks.is_some() => {
                let Some(rx) = acks.as_mut().filter(|_| changed.is_ok()) else {
                    // The pipeline is gone (agent stopping): nothing more will be stored.
                    acks = None;
                    unstored.clear();
                    continue;
                };
                let stored = *rx.borrow_and_update();
                while unstored.front().is_some_and(|(end, _)| *end <= stored) {
                    if let Some((_, Some(time_ns))) = unstored.pop_front() {
                        pos.advance(time_ns);
                    }
                }
            }
            next = stream.next() => {
                let (which, message) = match next {
                    None => break,
                    Some(Ok(LogOutput::StdOut { message })) => (LogStream::Stdout, message),
                    Some(Ok(LogOutput::StdErr { message })) => (LogStream::Stderr, message),
                    Some(Ok(LogOutput::Console { message })) => (LogStream::Stdout, message),
                    Some(Ok(LogOutput::StdIn { .. })) => continue,
                    Some(Err(e)) => {
                        result = Err(e.to_string());
                        break;
                    }
                };
                let (time_ns, data) = match split_timestamp(&message) {
                    Some((time_ns, line)) => {
                        if skipper.skip(time_ns) {
                            continue;
                        }
                        (Some(time_ns), line)
                    }
                    None => (None, &message[..]),
                };
                // Keep draining after the pipeline closed (agent stopping), so the
                // engine never blocks on us.
                if open && sink.write(which, data.to_vec()).await.is_err() {
                    open = false;
                }
                if !open {
                    // Not stored, nor will it be: the position stays for the next agent.
                } else if acks.is_some() {
                    written += data.len() as u64;
                    unstored.push_back((written, time_ns));
                } else if let Some(time_ns) = time_ns {
                    pos.advance(time_ns);
                }
            }
            _ = tokio::time::sleep_until(quiet), if pos != saved => {
                file.save(&pos).await;
                saved = pos;
                save_at = Instant::now() + SAVE_EVERY;
            }
        }
    }
    if pos != saved {
        file.save(&pos).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_docker_timestamps() {
        let (t, line) = split_timestamp(b"2026-11-21T15:54:57.123456789Z hello world\n").unwrap();
        assert_eq!(line, b"hello world\n");
        let (t2, _) = split_timestamp(b"2026-11-21T15:54:57.1234Z x").unwrap();
        assert_eq!(t - t2, 56_789);
        assert_eq!(t % 1_000_000_000, 123_456_789);
        assert_eq!(split_timestamp(b"no timestamp here"), None);
        assert_eq!(split_timestamp(b"nospace"), None);
    }

    #[test]
    fn positions_advance_and_give_whole_seconds() {
        let mut p = LogPosition::default();
        assert_eq!(p.since_secs(), 0);
        p.advance(5_500_000_000);
        p.advance(5_500_000_000);
        assert_eq!(
            p,
            LogPosition {
                time_ns: 5_500_000_000,
                same_time: 2
            }
        );
        p.advance(4_000_000_000);
        assert_eq!(p.time_ns, 5_500_000_000, "never goes back");
        p.advance(6_000_000_001);
        assert_eq!(
            p,
            LogPosition {
                time_ns: 6_000_000_001,
                same_time: 1
            }
        );
        assert_eq!(p.since_secs(), 6);
    }

    #[test]
    fn a_re_read_skips_exactly_what_was_read() {
        // Lines stamped 10, 20, 20, 20, 30; the first agent read 10, 20, 20.
        let lines = [10, 20, 20, 20, 30];
        let mut pos = LogPosition::default();
        for t in &lines[..3] {
            pos.advance(*t);
        }
        let mut skipper = Skipper::new(pos);
        let kept: Vec<usize> = (0..lines.len())
            .filter(|i| !skipper.skip(lines[*i]))
            .collect();
        assert_eq!(kept, [3, 4]);
        let mut fresh = Skipper::new(LogPosition::default());
        assert!(lines.iter().all(|t| !fresh.skip(*t)));
    }
}
