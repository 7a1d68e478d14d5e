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

/// Gives freed heap pages back after large passes, at most once per `every`.
#[derive(Debug)]
pub struct Trimmer {
    every: Duration,
    last: Option<Instant>,
}

impl Trimmer {
    /// At most one trim per `every`.
    pub fn new(every: Duration) -> Self {
        Trimmer { every, last: None }
    }

    /// Whether a pass that planned `planned` jobs should be followed by a trim now.
    pub fn due(&self, planned: usize, now: Instant) -> bool {
        planned >= TRIM_AFTER_PLANNING
            && self
                .last
                .is_none_or(|l| now.duration_since(l) >= self.every)
    }

    /// After a pass that planned `planned` jobs: gives freed pages back if due.
    pub async fn after_pass(&mut self, planned: usize, metrics: &Metrics) {
        let now = Instant::now();
        if !self.due(planned, now) {
            return;
        }
        self.last = Some(now);
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
    fn only_large_plans_trim_and_at_most_once_per_interval() {
        let mut t = Trimmer::new(Duration::from_secs(5));
        let now = Instant::now();
        assert!(!t.due(TRIM_AFTER_PLANNING - 1, now));
        assert!(t.due(TRIM_AFTER_PLANNING, now));
        t.last = Some(now);
        assert!(!t.due(100_000, now + Duration::from_secs(4)));
        assert!(t.due(100_000, now + Duration::from_secs(5)));
    }
}
