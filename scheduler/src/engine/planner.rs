//! The pass's heavy work (planning the queue, building and freeing its hints) on a thread
//! of its own, at a lower CPU priority than the threads that answer requests.
//!
//! Planning 100k pending jobs takes a core for a few hundred milliseconds. Off the async
//! runtime it never holds a request up directly, but on a small machine it still competes
//! with the runtime's workers for the cores: a heartbeat that arrives while a plan runs
//! waits for the kernel to hand it a core. Niced, the planner gives way at once, and
//! still has every cycle the requests leave.

use crate::error::{Error, Result};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

/// How much lower than the process the planner's thread runs (a nice increment: 10 gives
/// it about a tenth of the weight of a request's thread when both want a core).
const NICER_BY: i32 = 10;

/// Work handed to the planner's thread.
type Work = Box<dyn FnOnce() + Send>;

/// The planner's thread: runs what it is handed, one at a time, in order. It ends when
/// the planner is dropped.
pub(crate) struct Planner {
    work: mpsc::Sender<Work>,
}

impl Planner {
    /// Starts the thread.
    pub(crate) fn start() -> Result<Self> {
        let (work, queue) = mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("berth-planner".into())
            .spawn(move || {
                lower_priority();
                for w in queue {
                    w();
                }
            })
            .map_err(|e| Error::Internal(format!("starting the planner's thread: {e}")))?;
        Ok(Planner { work })
    }

    /// Runs `work` on the planner's thread and returns what it returns; a panic in it is
    /// an internal error (the thread goes on).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let w: Work = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        self.work
            .send(w)
            .map_err(|_| Error::Internal("the planner's thread has stopped".into()))?;
        match result.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Error::Internal("the queue pass panicked".into())),
            Err(_) => Err(Error::Internal("the planner's thread has stopped".into())),
        }
    }

    /// Drops `value` on the planner's thread (a large one, such as the last plan's hints),
    /// without waiting.
    pub(crate) fn drop_later<T: Send + 'static>(&self, value: T) {
        // Should the thread be gone, the value is dropped here instead.
        let _ = self.work.send(Box::new(move || drop(value)));
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
        let p = Planner::start().unwrap();
        assert_eq!(p.run(|| 1 + 1).await.unwrap(), 2);
        let e = p.run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        let name = p
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("berth-planner"));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_thread_is_nicer_than_the_process() {
        let p = Planner::start().unwrap();
        let process = rustix::process::getpriority_process(None).unwrap();
        let planner = p
            .run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(planner, (process + NICER_BY).min(19));
    }
}
