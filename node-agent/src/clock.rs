//! The scheduler's clock, as this host sees it.
//!
//! Every time in the agent protocol is read in the scheduler's clock: the deadlines it
//! sends, and the starts, ends, device samples and log lines the agent reports. A host
//! whose clock is off (no NTP, a wrong time zone setting, a drifting RTC) would otherwise
//! kill jobs early or late and report times from the future or the past. Each heartbeat
//! reply carries the scheduler's time; the agent keeps the offset and translates at the
//! boundary ([`crate::client`]), so inside the agent every time is the host's own.
//!
//! Pure: the caller reads the clocks.

use berth_proto::time::{ms_to_ts, ts_to_ms};
use berth_proto::v1::{HeartbeatRequest, HeartbeatResponse, LogChunk, ObservedJob};
use prost_types::Timestamp;
use std::sync::atomic::{AtomicI64, Ordering};

/// An offset change at least this large is logged.
pub const NOTABLE_MS: i64 = 1_000;

/// The scheduler's clock minus this host's, in milliseconds, learnt from heartbeat
/// replies (0 until the first one that carries the scheduler's time).
#[derive(Debug, Default)]
pub struct ClockOffset {
    ms: AtomicI64,
}

impl ClockOffset {
    /// The current offset.
    pub fn get(&self) -> i64 {
        self.ms.load(Ordering::Relaxed)
    }

    /// Takes in a reply stamped `scheduler_ms` and received when this host's clock read
    /// `local_ms`; returns the offset before it.
    pub fn observe(&self, scheduler_ms: i64, local_ms: i64) -> i64 {
        self.ms
            .swap(scheduler_ms.saturating_sub(local_ms), Ordering::Relaxed)
    }
}

/// Moves a time by `ms`.
fn shift(ts: &mut Option<Timestamp>, ms: i64) {
    if ms != 0
        && let Some(t) = ts
    {
        *t = ms_to_ts(ts_to_ms(t).saturating_add(ms));
    }
}

/// A job's observed times, from this host's clock into the scheduler's.
pub fn job_to_scheduler(job: &mut ObservedJob, offset_ms: i64) {
    shift(&mut job.started_at, offset_ms);
    shift(&mut job.finished_at, offset_ms);
}

/// A heartbeat's times (its jobs', its device samples'), into the scheduler's clock.
pub fn request_to_scheduler(request: &mut HeartbeatRequest, offset_ms: i64) {
    for job in &mut request.jobs {
        job_to_scheduler(job, offset_ms);
    }
    let telemetry = request.devices.iter_mut().map(|d| &mut d.telemetry);
    let samples = request.samples.iter_mut().map(|s| &mut s.telemetry);
    for t in telemetry.chain(samples).flatten() {
        shift(&mut t.sampled_at, offset_ms);
    }
}

/// Log chunks' times, into the scheduler's clock.
pub fn chunks_to_scheduler(chunks: &mut [LogChunk], offset_ms: i64) {
    for chunk in chunks {
        shift(&mut chunk.time, offset_ms);
    }
}

/// A reply's deadlines, from the scheduler's clock into this host's.
pub fn reply_to_host(reply: &mut HeartbeatResponse, offset_ms: i64) {
    for job in &mut reply.jobs {
        shift(&mut job.deadline, offset_ms.saturating_neg());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::{DesiredJob, DeviceReport, Telemetry};

    const MIN: i64 = 60_000;

    #[test]
    fn the_offset_is_the_schedulers_clock_minus_the_hosts() {
        let clock = ClockOffset::default();
        assert_eq!(clock.get(), 0);
        // The host's clock is five minutes ahead.
        assert_eq!(clock.observe(1_000 * MIN, 1_005 * MIN), 0);
        assert_eq!(clock.get(), -5 * MIN);
        // ...then five minutes behind.
        assert_eq!(clock.observe(1_000 * MIN, 995 * MIN), -5 * MIN);
        assert_eq!(clock.get(), 5 * MIN);
    }

    #[test]
    fn times_cross_the_boundary_in_the_schedulers_clock() {
        let offset = -5 * MIN; // the host is five minutes ahead
        let host = |m: i64| Some(ms_to_ts(1_000 * MIN + m));
        let sched = |m: i64| Some(ms_to_ts(1_000 * MIN + m + offset));

        let mut reply = HeartbeatResponse {
            jobs: vec![
                DesiredJob {
                    deadline: sched(2 * MIN),
                    ..Default::default()
                },
                DesiredJob::default(),
            ],
            ..Default::default()
        };
        reply_to_host(&mut reply, offset);
        // Two minutes from the scheduler's now is two minutes from the host's now.
        assert_eq!(reply.jobs[0].deadline, host(2 * MIN));
        assert_eq!(reply.jobs[1].deadline, None, "no deadline stays none");

        let job = ObservedJob {
            started_at: host(0),
            finished_at: host(MIN),
            ..Default::default()
        };
        let mut request = HeartbeatRequest {
            jobs: vec![job.clone()],
            devices: vec![
                DeviceReport {
                    telemetry: Some(Telemetry {
                        sampled_at: host(3),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                DeviceReport::default(),
            ],
            ..Default::default()
        };
        request_to_scheduler(&mut request, offset);
        assert_eq!(request.jobs[0].started_at, sched(0));
        assert_eq!(request.jobs[0].finished_at, sched(MIN));
        let sampled = request.devices[0].telemetry.as_ref().unwrap().sampled_at;
        assert_eq!(sampled, sched(3));
        assert_eq!(request.devices[1].telemetry, None);

        let mut reported = job;
        job_to_scheduler(&mut reported, offset);
        assert_eq!(reported.started_at, sched(0));

        let mut chunks = vec![LogChunk {
            time: host(7),
            ..Default::default()
        }];
        chunks_to_scheduler(&mut chunks, offset);
        assert_eq!(chunks[0].time, sched(7));
    }

    #[test]
    fn no_offset_changes_nothing_and_extremes_do_not_overflow() {
        let mut reply = HeartbeatResponse {
            jobs: vec![DesiredJob {
                deadline: Some(ms_to_ts(1_234)),
                ..Default::default()
            }],
            ..Default::default()
        };
        reply_to_host(&mut reply, 0);
        assert_eq!(reply.jobs[0].deadline, Some(ms_to_ts(1_234)));
        reply_to_host(&mut reply, i64::MIN);
        reply_to_host(&mut reply, i64::MAX);
        let clock = ClockOffset::default();
        clock.observe(i64::MIN, i64::MAX);
        assert_eq!(clock.get(), i64::MIN);
    }
}
