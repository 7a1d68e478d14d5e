//! Group commit: requests decide in order on the live state; one writer commits whatever
//! has gathered as one transaction; readers see only what is committed.
//!
//! A request takes the live lock (never across an `await`), decides, applies its batch of
//! mutations to the live state and hands the batch to the writer, all under the lock, so
//! batches reach the writer in the order they were decided. The writer commits a group of
//! batches in one database transaction, then applies them to the committed state (what
//! readers see), and only then answers each request. If the transaction fails, every
//! request of the group, and every request decided after it (which may depend on it), is
//! answered with an error, and the live state is reset to the committed state: memory is
//! never left ahead of the database. Committed batches also go, in commit order, to the
//! planner's own copy of the committed state (`planner.rs`), which the pass plans from.

use super::Engine;
use super::planner::Planner;
use crate::error::{Error, Result};
use crate::state::State;
use crate::store::Mutation;
use berth_i18n::api::Text;
use berth_i18n::text;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};
use tokio::sync::{mpsc, oneshot};

/// Most batches the writer commits in one transaction.
pub const MAX_GROUP: usize = 512;

/// A batch on its way to the database.
struct Entry {
    batch: Arc<Vec<Mutation>>,
    done: oneshot::Sender<Result<()>>,
}

/// The live state and what is between it and the committed state.
pub(crate) struct Live {
    /// Committed state plus every batch in flight.
    pub state: State,
    /// Batches handed to the writer and not yet committed, oldest first.
    inflight: VecDeque<Arc<Vec<Mutation>>>,
    /// Set while writes are refused (e.g. this scheduler is not the leader).
    pub refuse: Option<Text>,
}

/// The two states and the writer's queue.
pub(crate) struct Pipeline {
    live: Mutex<Live>,
    committed: RwLock<State>,
    queue: mpsc::UnboundedSender<Entry>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Entry>>>,
}

/// A decided change on its way to the database; resolves once it is durable.
#[must_use = "a change is not acknowledged until its ticket resolves"]
pub struct Ticket(Option<oneshot::Receiver<Result<()>>>);

impl Ticket {
    /// Waits until the change is durable (or failed).
    pub async fn durable(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err(Error::Unavailable(text!(Stopping)))),
        }
    }
}

/// A change being decided: reads see everything staged so far.
pub struct Tx<'a> {
    state: &'a mut State,
    batch: Vec<Mutation>,
}

impl Tx<'_> {
    /// The live state, with this change's mutations applied so far.
    pub fn state(&self) -> &State {
        self.state
    }

    /// Stages a mutation: applies it to the live state and adds it to the batch, with
    /// the notifications it causes (a job ending, a budget passing a threshold) right
    /// after it, so they are durable exactly when it is.
    pub fn push(&mut self, m: Mutation) {
        let notices = super::notify::derive(self.state, &m);
        self.state.apply(&m);
        self.batch.push(m);
        if let Some(n) = notices.and_then(|b| super::notify::derived(self.state, b)) {
            self.push(n);
        }
    }

    /// Stages several mutations in order.
    pub fn extend(&mut self, ms: impl IntoIterator<Item = Mutation>) {
        for m in ms {
            self.push(m);
        }
    }

    /// The in-memory rank reports of a live multi-node job (not durable: agents report
    /// again after a restart).
    pub fn ranks_mut(&mut self, job: &str) -> Option<&mut crate::state::Ranks> {
        self.state
            .jobs
            .get_mut(job)
            .map(|j| &mut **j.ranks.get_or_insert_with(Box::default))
    }

    /// Whether anything is staged.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

impl Pipeline {
    /// A pipeline over a state loaded from the store.
    pub fn new(state: State) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        Pipeline {
            live: Mutex::new(Live {
                state: state.clone(),
                inflight: VecDeque::new(),
                refuse: None,
            }),
            committed: RwLock::new(state),
            queue,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// The live state's lock (decisions). Never hold it across an `await`.
    pub fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The committed state (reads).
    pub fn committed(&self) -> RwLockReadGuard<'_, State> {
        self.committed.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides a change under the live lock with `f`, and hands what it staged to the
    /// writer. An error after something was staged resets the live state.
    pub fn decide<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<(T, Ticket)> {
        let mut live = self.live();
        if let Some(why) = &live.refuse {
            return Err(Error::Unavailable(why.clone()));
        }
        let mut tx = Tx {
            state: &mut live.state,
            batch: Vec::new(),
        };
        let out = f(&mut tx);
        let batch = std::mem::take(&mut tx.batch);
        match out {
            Ok(v) if batch.is_empty() => Ok((v, Ticket(None))),
            Ok(v) => {
                let batch = Arc::new(batch);
                let (done, rx) = oneshot::channel();
                live.inflight.push_back(batch.clone());
                if self.queue.send(Entry { batch, done }).is_err() {
                    // The writer has stopped: nothing of this will be recorded.
                    live.inflight.pop_back();
                    self.resync(&mut live);
                    return Err(Error::Unavailable(text!(Stopping)));
                }
                Ok((v, Ticket(Some(rx))))
            }
            Err(e) => {
                if !batch.is_empty() {
                    self.resync(&mut live);
                }
                Err(e)
            }
        }
    }

    /// Rebuilds the live state from the committed state and the batches in flight.
    fn resync(&self, live: &mut Live) {
        let mut state = self.committed().clone();
        for b in &live.inflight {
            state.apply_all(b);
        }
        live.state = state;
    }

    /// Batches handed to the writer and not yet committed.
    pub fn in_flight(&self) -> usize {
        self.live().inflight.len()
    }

    /// Replaces both states, and the planner's copy (after a reload). Call with nothing
    /// in flight.
    pub fn replace(&self, state: State, planner: &Planner) {
        let mut live = self.live();
        let mut committed = self.committed.write().unwrap_or_else(|e| e.into_inner());
        live.inflight.clear();
        live.state = state.clone();
        planner.replace(state.clone());
        *committed = state;
    }

    /// Sets or clears the refusal of writes (and answers `why` to writers meanwhile).
    pub fn set_refuse(&self, why: Option<Text>) {
        self.live().refuse = why;
    }
}

impl Engine {
    /// Starts the writer task; it ends when the engine is dropped.
    pub fn spawn_writer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let rx = self
            .pipeline
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Some(rx) = rx {
                writer(engine, rx).await;
            }
        })
    }
}

/// The writer: commits groups of batches in order until the engine is gone.
async fn writer(engine: Weak<Engine>, mut rx: mpsc::UnboundedReceiver<Entry>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(e) => group.push(e),
                Err(_) => break,
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let batches: Vec<&[Mutation]> = group.iter().map(|e| e.batch.as_slice()).collect();
        let started = std::time::Instant::now();
        let result = engine.store.apply_group(&batches).await;
        let fenced = matches!(result, Err(crate::store::StoreError::Fenced(_)));
        engine.metrics.commit_group(group.len(), started.elapsed());
        match result {
            Ok(()) => {
                let mut effects = Vec::new();
                {
                    let p = &engine.pipeline;
                    let mut live = p.live();
                    let mut committed = p.committed.write().unwrap_or_else(|e| e.into_inner());
                    for e in &group {
                        live.inflight.pop_front();
                        for m in e.batch.iter() {
                            super::effects::of(&committed, m, &mut effects);
                            committed.apply(m);
                        }
                    }
                    // Under the committed state's lock, so the planner's copy takes the
                    // batches in the same order (a reload replaces both under it too).
                    engine
                        .planner
                        .committed(group.iter().map(|e| e.batch.clone()).collect());
                }
                engine.run_effects(effects);
                for e in &group {
                    engine.metrics.batch_committed(&e.batch);
                }
                for e in group {
                    let _ = e.done.send(Ok(()));
                }
            }
            Err(err) => {
                let p = &engine.pipeline;
                let mut live = p.live();
                let err = Error::from(err);
                tracing::error!(error = %err, batches = group.len(), "a group commit failed; rolling memory back");
                for e in group {
                    let _ = e.done.send(Err(err.same()));
                }
                // Everything decided after the failed group may depend on it.
                while let Ok(e) = rx.try_recv() {
                    let _ = e
                        .done
                        .send(Err(Error::Unavailable(text!(EarlierCommitFailed))));
                }
                live.inflight.clear();
                live.state = p.committed().clone();
                if fenced {
                    // Another scheduler leads: nothing more may be decided here.
                    live.refuse = Some(engine.leadership().standby_message());
                }
            }
        }
    }
}
