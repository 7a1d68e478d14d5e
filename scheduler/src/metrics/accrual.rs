//! Device-time accrued per booking and job, so the booked and used device-hour
//! counters grow while the work runs instead of jumping when it ends.
//!
//! At each scrape the state says how much device-time every live booking and running
//! job has held so far; the counters get the difference from what was already counted.
//! When one ends, its usage record adds the rest. Time before this scheduler started is
//! never counted (the counters start at zero with the process, as counters do).

use std::collections::{HashMap, HashSet};

/// What has been counted, per booking or job id.
#[derive(Debug)]
pub(crate) struct Accrual {
    /// Instant (ms) from which device-time counts.
    since: i64,
    /// Device-ms counted so far, by id; `None` once it ended (until it leaves the
    /// state, so a scrape between the end's record and the state's update adds nothing).
    counted: HashMap<String, Option<i64>>,
}

impl Accrual {
    /// Counts device-time from `since` (ms) on.
    pub(crate) fn new(since: i64) -> Self {
        Self {
            since,
            counted: HashMap::new(),
        }
    }

    fn held(&self, devices: i64, start: i64, until: i64) -> i64 {
        devices.max(0) * (until - start.max(self.since)).max(0)
    }

    /// `id` has held `devices` from `start` until `until` (so far); returns the device-ms
    /// not yet counted, and counts them.
    pub(crate) fn observe(&mut self, id: &str, devices: i64, start: i64, until: i64) -> i64 {
        let total = self.held(devices, start, until);
        match self.counted.entry(id.to_owned()).or_insert(Some(0)) {
            Some(counted) => {
                let add = (total - *counted).max(0);
                *counted += add;
                add
            }
            None => 0,
        }
    }

    /// Forgets every id not in `live` (they ended; their rest was added by
    /// [`Accrual::ended`], or is lost if nobody reported it).
    pub(crate) fn retain(&mut self, live: &HashSet<&str>) {
        self.counted.retain(|id, _| live.contains(id.as_str()));
    }

    /// `id` ended after holding `devices` from `start` to `end`: returns the device-ms
    /// not yet counted, and counts nothing more for it.
    pub(crate) fn ended(&mut self, id: &str, devices: i64, start: i64, end: i64) -> i64 {
        let total = self.held(devices, start, end);
        match self.counted.insert(id.to_owned(), None) {
            Some(None) => 0,
            Some(Some(counted)) => (total - counted).max(0),
            None => total,
        }
    }

    /// How many ids are tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Accrual;
    use std::collections::HashSet;

    #[test]
    fn scrapes_and_the_end_add_up_to_the_whole_usage() {
        let mut a = Accrual::new(0);
        // Two devices from t=100: scrapes at 150 and 300, ends at 400.
        assert_eq!(a.observe("r", 2, 100, 150), 100);
        assert_eq!(a.observe("r", 2, 100, 300), 300);
        assert_eq!(
            a.observe("r", 2, 100, 300),
            0,
            "a second scrape adds nothing"
        );
        assert_eq!(a.ended("r", 2, 100, 400), 200);
        // A scrape that still sees it (the state is updated after the record) adds nothing,
        // and neither does a second record.
        assert_eq!(a.observe("r", 2, 100, 500), 0);
        assert_eq!(a.ended("r", 2, 100, 400), 0);
        a.retain(&HashSet::new());
        assert_eq!(a.len(), 0);
        // 100 + 300 + 200 = 2 devices x 300 ms.
    }

    #[test]
    fn work_shorter_than_a_scrape_interval_is_counted_at_its_end() {
        let mut a = Accrual::new(0);
        assert_eq!(a.ended("j", 4, 10, 20), 40);
    }

    #[test]
    fn time_before_the_scheduler_started_is_not_counted() {
        let mut a = Accrual::new(1_000);
        assert_eq!(a.observe("r", 1, 0, 1_500), 500);
        assert_eq!(a.ended("x", 3, 0, 1_100), 300);
        assert_eq!(a.observe("future", 1, 2_000, 1_500), 0);
    }

    #[test]
    fn ended_work_is_forgotten_and_never_counted_twice() {
        let mut a = Accrual::new(0);
        a.observe("a", 1, 0, 10);
        a.observe("b", 1, 0, 10);
        a.retain(&HashSet::from(["b"]));
        assert_eq!(a.len(), 1);
        // A shortened end (a cancelled booking) never makes the counter go back.
        assert_eq!(a.observe("b", 1, 0, 30), 20);
        assert_eq!(a.ended("b", 1, 0, 25), 0);
    }
}
