//! The live jobs by id, each id held once: in its row.
//!
//! A `HashMap<String, LiveJob>` keeps a second copy of every id as its key (24 bytes in
//! the table and a 48-byte allocation for a UUID), in each of the engine's three copies of
//! the state: about 200 bytes a pending job. This table finds a job by the id in its row.

use super::LiveJob;
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

/// Job ids are made by the scheduler, never chosen by callers: the fast variant, seeded
/// at random per process.
type Hasher = foldhash::fast::RandomState;

/// Live jobs by id (the id of each one's row).
#[derive(Clone, Default)]
pub struct Jobs {
    table: HashTable<LiveJob>,
    hasher: Hasher,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.table.iter().map(|j| (&j.row.id, j)))
            .finish()
    }
}

impl Jobs {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The job with this id.
    pub fn get(&self, id: &str) -> Option<&LiveJob> {
        self.table.find(self.hash(id), |j| j.row.id == id)
    }

    /// The job with this id, to change in place (never its id).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut LiveJob> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |j| j.row.id == id)
    }

    /// Whether a job with this id is live.
    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Adds `job` under its row's id, and returns the job that had that id (one probe of
    /// the table: it is on every change of every job, in each copy of the state).
    pub fn insert(&mut self, job: LiveJob) -> Option<LiveJob> {
        let hash = self.hash(&job.row.id);
        let hasher = &self.hasher;
        let entry = self.table.entry(
            hash,
            |j| j.row.id == job.row.id,
            |j| hasher.hash_one(j.row.id.as_str()),
        );
        match entry {
            Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), job)),
            Entry::Vacant(e) => {
                e.insert(job);
                None
            }
        }
    }

    /// Takes out the job with this id.
    pub fn remove(&mut self, id: &str) -> Option<LiveJob> {
        let hash = self.hash(id);
        match self.table.find_entry(hash, |j| j.row.id == id) {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        }
    }

    /// Every live job, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &LiveJob> {
        self.table.iter()
    }

    /// How many jobs are live.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no job is live.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{JobRow, JobState, testing};
    use std::sync::Arc;

    fn job(id: &str, priority: i32) -> LiveJob {
        LiveJob::new(Arc::new(JobRow {
            priority,
            ..testing::job(id, "gpu", JobState::Pending, 0)
        }))
    }

    #[test]
    fn finds_replaces_and_removes_jobs_by_the_id_in_their_row() {
        let mut jobs = Jobs::default();
        assert!(jobs.is_empty());
        assert!(jobs.insert(job("a", 1)).is_none());
        assert!(jobs.insert(job("b", 2)).is_none());
        let replaced = jobs.insert(job("a", 3)).expect("a was there");
        assert_eq!(replaced.row.priority, 1);
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs.get("a").map(|j| j.row.priority), Some(3));
        assert!(jobs.contains_key("b") && !jobs.contains_key("c"));

        jobs.get_mut("b").expect("b").ranks = Some(Box::default());
        let copy = jobs.clone();
        assert!(copy.get("b").expect("b in the copy").ranks.is_some());

        assert_eq!(jobs.remove("a").map(|j| j.row.priority), Some(3));
        assert!(jobs.remove("a").is_none());
        let left: Vec<&str> = jobs.values().map(|j| j.row.id.as_str()).collect();
        assert_eq!(left, ["b"]);
        assert_eq!(copy.len(), 2, "a copy is its own");
    }
}
