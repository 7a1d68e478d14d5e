//! Sends job state changes (`ReportJob`) as they happen, in order, retrying until
//! the scheduler has them.
//!
//! Reports queue per job: when a newer report of a job arrives while an older one is
//! still waiting, the newer replaces it (only the latest state matters, and the
//! heartbeat carries it too).

use crate::client::{CallError, SchedulerClient};
use async_trait::async_trait;
use berth_proto::v1::ObservedJob;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where reports go.
#[async_trait]
pub trait ReportSink: Send + Sync + 'static {
    /// Delivers one report.
    async fn report(&self, job: ObservedJob) -> Result<(), CallError>;
}

#[async_trait]
impl ReportSink for SchedulerClient {
    async fn report(&self, job: ObservedJob) -> Result<(), CallError> {
        self.report_job(job).await
    }
}

/// Handle of the reporting task.
pub struct Reporter {
    tx: mpsc::UnboundedSender<ObservedJob>,
    task: JoinHandle<()>,
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Reporter {
    /// Starts the task.
    pub fn spawn(sink: Arc<dyn ReportSink>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(sink, rx));
        Self { tx, task }
    }

    /// Queues a report.
    pub fn report(&self, job: ObservedJob) {
        // The task only ends after `close`.
        let _ = self.tx.send(job);
    }

    /// Sends what is queued, for at most `timeout`; returns whether everything went.
    pub async fn close(self, timeout: Duration) -> bool {
        drop(self.tx);
        let abort = self.task.abort_handle();
        match tokio::time::timeout(timeout, self.task).await {
            Ok(_) => true,
            Err(_) => {
                abort.abort();
                false
            }
        }
    }
}

/// Adds a report, replacing a queued older one of the same job.
fn enqueue(queue: &mut VecDeque<ObservedJob>, job: ObservedJob) {
    match queue.iter_mut().find(|q| q.job_id == job.job_id) {
        Some(queued) => *queued = job,
        None => queue.push_back(job),
    }
}

async fn run(sink: Arc<dyn ReportSink>, mut rx: mpsc::UnboundedReceiver<ObservedJob>) {
    let mut queue = VecDeque::new();
    let mut open = true;
    let mut backoff = INITIAL_BACKOFF;
    loop {
        while let Ok(job) = rx.try_recv() {
            enqueue(&mut queue, job);
        }
        let Some(job) = queue.pop_front() else {
            if !open {
                return;
            }
            match rx.recv().await {
                Some(job) => enqueue(&mut queue, job),
                None => open = false,
            }
            continue;
        };
        match sink.report(job.clone()).await {
            Ok(()) => backoff = INITIAL_BACKOFF,
            Err(CallError::Rejected(status)) => {
                tracing::warn!(job_id = %job.job_id, code = ?status.code(), message = status.message(), "scheduler refused a job report; dropping it");
            }
            Err(error) => {
                tracing::debug!(job_id = %job.job_id, %error, "job report failed; will retry");
                // Back in front unless a newer report of the job arrived meanwhile.
                if !queue.iter().any(|q| q.job_id == job.job_id) {
                    queue.push_front(job);
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        msg = rx.recv(), if open => match msg {
                            Some(job) => enqueue(&mut queue, job),
                            None => open = false,
                        },
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::JobPhase;
    use std::sync::Mutex;
    use tonic::Status;

    fn obs(id: &str, phase: JobPhase) -> ObservedJob {
        ObservedJob {
            job_id: id.into(),
            phase: phase as i32,
            ..Default::default()
        }
    }

    #[test]
    fn newer_reports_replace_queued_ones() {
        let mut q = VecDeque::new();
        enqueue(&mut q, obs("a", JobPhase::Starting));
        enqueue(&mut q, obs("b", JobPhase::Starting));
        enqueue(&mut q, obs("a", JobPhase::Exited));
        let got: Vec<_> = q.iter().map(|o| (o.job_id.as_str(), o.phase)).collect();
        assert_eq!(
            got,
            [
                ("a", JobPhase::Exited as i32),
                ("b", JobPhase::Starting as i32)
            ]
        );
    }

    #[derive(Default)]
    struct Flaky {
        calls: Mutex<u32>,
        delivered: Mutex<Vec<(String, i32)>>,
    }

    #[async_trait]
    impl ReportSink for Flaky {
        async fn report(&self, job: ObservedJob) -> Result<(), CallError> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            if *calls <= 2 {
                return Err(CallError::Transient(Status::unavailable("down")));
            }
            if job.job_id == "refused" {
                return Err(CallError::Rejected(Status::not_found("no such job")));
            }
            self.delivered.lock().unwrap().push((job.job_id, job.phase));
            Ok(())
        }
    }

    #[tokio::test]
    async fn retries_in_order_and_flushes_on_close() {
        let sink = Arc::new(Flaky::default());
        let reporter = Reporter::spawn(sink.clone());
        reporter.report(obs("a", JobPhase::Starting));
        reporter.report(obs("refused", JobPhase::Running));
        reporter.report(obs("b", JobPhase::Running));
        assert!(reporter.close(Duration::from_secs(30)).await);
        let delivered = sink.delivered.lock().unwrap().clone();
        assert_eq!(
            delivered,
            [
                ("a".to_owned(), JobPhase::Starting as i32),
                ("b".to_owned(), JobPhase::Running as i32)
            ]
        );
    }

    #[tokio::test]
    async fn close_gives_up_after_its_timeout() {
        struct Down;
        #[async_trait]
        impl ReportSink for Down {
            async fn report(&self, _: ObservedJob) -> Result<(), CallError> {
                Err(CallError::Transient(Status::unavailable("down")))
            }
        }
        let reporter = Reporter::spawn(Arc::new(Down));
        reporter.report(obs("a", JobPhase::Exited));
        assert!(!reporter.close(Duration::from_millis(50)).await);
    }
}
