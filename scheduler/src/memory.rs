//! Resident memory that follows what the scheduler holds (see [`berth_heap`]).
//!
//! Each pass that plans the queue builds and drops buffers of a row per pending job (100k
//! rows at the benchmark's 100k pending jobs). Large ones are mapped on their own
//! ([`tune`]), and after a pass that planned a large queue the heap's free pages are given
//! back ([`Trimmer`]), at most once per interval and off the async runtime.

use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// Allocations of this size and more get their own mapping, returned when freed.
pub const MAPPED_FROM_BYTES: usize = 1024 * 1024;

/// A queue plan of at least this many jobs frees enough to be worth giving back.
pub const TRIM_AFTER_PLANNING: usize = 1_000;

/// Sets the allocator up for the scheduler (process-wide; idempotent).
pub fn tune() {
    if !berth_heap::keep_large_blocks_mapped(MAPPED_FROM_BYTES) {
        tracing::debug!("the allocator keeps its own mmap threshold");
    }
}

/// Gives freed heap pages back after large passes, at most once per `every`: a large
/// pass that comes too soon after the last trim leaves one owed, given at the first pass
/// once the interval is over (a queue that stops changing still gets its trim).
#[derive(Debug)]
pub struct Trimmer {
    every: Duration,
    last: Option<Instant>,
    owed: bool,
}

impl Trimmer {
    /// At most one trim per `every`.
    pub fn new(every: Duration) -> Self {
        Trimmer {
            every,
            last: None,
            owed: false,
        }
    }

    /// Notes a pass that planned `planned` jobs; whether freed pages should be given back
    /// now.
    fn due(&mut self, planned: usize, now: Instant) -> bool {
        self.owed |= planned >= TRIM_AFTER_PLANNING;
        let due = self.owed
            && self
                .last
                .is_none_or(|l| now.duration_since(l) >= self.every);
        if due {
            self.owed = false;
            self.last = Some(now);
        }
        due
    }

    /// After a pass that planned `planned` jobs (0: none): gives freed pages back if due.
    pub async fn after_pass(&mut self, planned: usize, metrics: &Metrics) {
        if !self.due(planned, Instant::now()) {
            return;
        }
        let took = tokio::task::spawn_blocking(|| {
            let started = Instant::now();
            berth_heap::give_back_free_pages();
            started.elapsed()
        })
        .await;
        match took {
            Ok(d) => metrics.heap_trimmed(d),
            Err(e) => tracing::warn!(error = %e, "giving freed memory back failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_plans_trim_at_most_once_per_interval_and_none_is_forgotten() {
        let s = Duration::from_secs;
        let mut t = Trimmer::new(s(5));
        let t0 = Instant::now();
        assert!(!t.due(TRIM_AFTER_PLANNING - 1, t0));
        assert!(!t.due(0, t0 + s(60)), "small passes owe nothing");
        assert!(t.due(TRIM_AFTER_PLANNING, t0 + s(60)));
        // A large pass too soon after: owed, given at the first pass once it is due,
        // even one that planned nothing.
        assert!(!t.due(100_000, t0 + s(61)));
        assert!(!t.due(0, t0 + s(64)));
        assert!(t.due(0, t0 + s(65)));
        assert!(!t.due(0, t0 + s(100)), "paid once");
    }
}
