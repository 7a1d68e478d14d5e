//! The pass's heavy work (copying what it plans from, planning the queue, building and
//! freeing its hints) on a thread of its own, at a lower CPU priority than the threads
//! that answer requests, with a copy of the state of its own.
//!
//! Planning 100k pending jobs takes a core for a few hundred milliseconds. Off the async
//! runtime it never holds a request up directly, but on a small machine it still competes
//! with the runtime's workers for the cores: a heartbeat that arrives while a plan runs
//! waits for the kernel to hand it a core. Niced, the planner gives way at once, and
//! still has every cycle the requests leave.
//!
//! What a plan starts from (the device calendars, the budgets, the pending jobs) is
//! copied out of the planner's own replica of the committed state, which the writer
//! keeps up to date by handing it every committed batch, in commit order. Copying it
//! out of the live state instead held the live lock, and so every decision, for as
//! long as the copy took: 11 to 17 ms at 100k pending jobs and 10k bookings, at every
//! pass. The replica shares the job rows with the other two states (they are `Arc`s);
//! what it costs is its own maps, about 130 bytes a pending job.

use crate::error::{Error, Result};
use crate::state::State;
use crate::store::Mutation;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};

/// How much lower than the process the planner's thread runs (a nice increment: 10 gives
/// it about a tenth of the weight of a request's thread when both want a core).
const NICER_BY: i32 = 10;

/// Work on the replica (read only); given `None` once the replica is lost.
type OnReplica = Box<dyn FnOnce(Option<&State>) + Send>;

/// What the planner's thread is handed, done in order.
enum Work {
    /// Work on the replica.
    Run(OnReplica),
    /// Committed batches, in commit order, to apply to the replica.
    Committed(Vec<Arc<Vec<Mutation>>>),
    /// A state reloaded from the database, which replaces the replica.
    Replace(Box<State>),
}

/// The planner's thread: does what it is handed, one at a time, in order, on its replica
/// of the committed state. It ends when the planner is dropped.
pub(crate) struct Planner {
    work: mpsc::Sender<Work>,
}

impl Planner {
    /// Starts the thread with `committed`, the committed state as loaded, as its replica.
    pub(crate) fn start(committed: State) -> Result<Self> {
        let (work, queue) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("berth-planner".into())
            .spawn(move || {
                lower_priority();
                serve(committed, queue);
            })
            .map_err(|e| Error::Internal(format!("starting the planner's thread: {e}")))?;
        Ok(Planner { work })
    }

    /// Runs `work` on the planner's thread, on the replica as of every batch handed over
    /// before this call, and returns what it returns; a panic in it is an internal error
    /// (the thread goes on).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&State) -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let w = Work::Run(Box::new(move |state: Option<&State>| {
            let _ = done.send(state.map(|s| catch_unwind(AssertUnwindSafe(|| work(s)))));
        }));
        self.work
            .send(w)
            .map_err(|_| Error::Internal("the planner's thread has stopped".into()))?;
        match result.await {
            Ok(Some(Ok(v))) => Ok(v),
            Ok(Some(Err(_))) => Err(Error::Internal("the queue pass panicked".into())),
            Ok(None) => Err(Error::Internal(
                "the planner's copy of the state was lost; it is rebuilt at the next reload".into(),
            )),
            Err(_) => Err(Error::Internal("the planner's thread has stopped".into())),
        }
    }

    /// Drops `value` on the planner's thread (a large one, such as the last plan's hints),
    /// without waiting.
    pub(crate) fn drop_later<T: Send + 'static>(&self, value: T) {
        // Should the thread be gone, the value is dropped here instead.
        let _ = self.work.send(Work::Run(Box::new(move |_| drop(value))));
    }

    /// Hands over batches just committed, in commit order. The writer calls it while it
    /// applies them to the committed state, so the replica sees every batch once, in
    /// the same order.
    pub(crate) fn committed(&self, batches: Vec<Arc<Vec<Mutation>>>) {
        let _ = self.work.send(Work::Committed(batches));
    }

    /// Replaces the replica with a state reloaded from the database.
    pub(crate) fn replace(&self, state: State) {
        let _ = self.work.send(Work::Replace(Box::new(state)));
    }
}

/// The planner's loop. A panic while applying a batch leaves the replica unknown: every
/// later plan is refused (each pass fails with an internal error) until a reload
/// replaces it. Applying the same batch to the committed state has not panicked, or the
/// writer would not have handed it over, so this is a bug's last line of defence.
fn serve(mut replica: State, queue: mpsc::Receiver<Work>) {
    let mut lost = false;
    for w in queue {
        match w {
            Work::Run(f) => f((!lost).then_some(&replica)),
            Work::Committed(_) if lost => {}
            Work::Committed(batches) => {
                let applied = catch_unwind(AssertUnwindSafe(|| {
                    for b in &batches {
                        replica.apply_all(b);
                    }
                }));
                if applied.is_err() {
                    tracing::error!("applying a committed batch to the planner's copy panicked");
                    lost = true;
                }
            }
            Work::Replace(state) => {
                replica = *state;
                lost = false;
            }
        }
    }
}

/// Lowers the calling thread's priority by [`NICER_BY`]; where it cannot, the thread
/// runs at the process's priority, as the pass did before.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a thread id names the thread alone in setpriority(PRIO_PROCESS).
        let me = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(Some(me), now + NICER_BY) {
            tracing::warn!(error = %e, "the planner's thread runs at the scheduler's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_in_order_and_survives_a_panic() {
        let p = Planner::start(State::default()).unwrap();
        assert_eq!(p.run(|_| 1 + 1).await.unwrap(), 2);
        let e = p.run(|_| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        let name = p
            .run(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("berth-planner"));
    }

    fn site(name: &str) -> Arc<Vec<Mutation>> {
        Arc::new(vec![Mutation::InsertSite(crate::store::SiteRow {
            name: name.into(),
            description: String::new(),
            created_ms: 0,
        })])
    }

    fn sites(s: &State) -> (Vec<String>, u64) {
        (s.sites.keys().cloned().collect(), s.version)
    }

    #[tokio::test]
    async fn work_sees_every_batch_handed_over_before_it_in_order_and_a_reload_replaces_them() {
        let p = Planner::start(State::default()).unwrap();
        assert_eq!(p.run(sites).await.unwrap(), (vec![], 0));
        p.committed(vec![site("busan"), site("ulsan")]);
        p.committed(vec![site("gimhae")]);
        let seen = p.run(sites).await.unwrap();
        assert_eq!(
            seen,
            (vec!["busan".into(), "gimhae".into(), "ulsan".into()], 3)
        );

        let mut reloaded = State::default();
        reloaded.apply_all(&site("jeju"));
        p.replace(reloaded);
        assert_eq!(p.run(sites).await.unwrap(), (vec!["jeju".into()], 1));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_thread_is_nicer_than_the_process() {
        let p = Planner::start(State::default()).unwrap();
        let process = rustix::process::getpriority_process(None).unwrap();
        let planner = p
            .run(|_| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(planner, (process + NICER_BY).min(19));
    }
}
