//! Live events: one tail per watched workflow reads the store's log and
//! fans the events out to its subscribers. In one process the store's
//! signal wakes a tail the moment an event commits; events written by
//! other processes (several hosts on one database) arrive by polling.
//! Each subscriber replays from the log first, then follows the tail,
//! through a bounded buffer: a client that falls too far behind is cut
//! and resumes with `Last-Event-ID`, so slow clients never hold writers
//! or other clients back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_team_core::ledger::EventKind;
use ai_team_core::models::Event;
use ai_team_core::views::{StatusInfo, current_status};
use ai_team_core::{Store, StoreError};
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, watch};

use crate::error::ApiError;

/// Events a tail holds for slow subscribers before cutting them.
const TAIL_CAPACITY: usize = 1024;
/// Frames buffered per subscriber.
const SUBSCRIBER_BUFFER: usize = 64;
/// How long a full subscriber buffer may stay full before the client is cut.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
const PAGE: i64 = 500;
/// Store reads of subscribers (the connect check and each replay page) at
/// once: many clients connecting together queue here, not on the pool, so
/// the API keeps its connections (PostgreSQL's pool holds 10).
const STORE_READS_AT_ONCE: usize = 3;

/// How many streams may be open: per workflow, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub per_workflow: usize,
    pub total: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            per_workflow: 1000,
            total: 5000,
        }
    }
}

/// Why a stream was not opened.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Past `StreamLimits`, or the process is shutting down.
    #[error("{0}")]
    Refused(&'static str),
}

impl From<SubscribeError> for ApiError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::Store(s) => s.into(),
            SubscribeError::Refused(why) => ApiError::Unavailable {
                public: why,
                detail: why.to_owned(),
            },
        }
    }
}

/// Open streams, counted; a `Slot` gives its place back when dropped.
#[derive(Default)]
struct Open {
    per_workflow: HashMap<i64, usize>,
    total: usize,
}

struct Slot {
    open: Arc<Mutex<Open>>,
    workflow_id: i64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_workflow.get_mut(&self.workflow_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_workflow.remove(&self.workflow_id);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum TailMsg {
    /// An event, with the workflow's status when the tail read it.
    Event(Arc<Event>, Arc<StatusInfo>),
    /// The workflow was deleted: streams end.
    Closed,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Frame {
    /// An event, with the workflow's status as of its reading.
    Event(Arc<Event>, Arc<StatusInfo>),
    Heartbeat(DateTime<Utc>),
}

struct Tail {
    sender: broadcast::Sender<TailMsg>,
    wake: Arc<Notify>,
}

/// The fan-out of every watched workflow's log.
pub struct EventHub {
    store: Arc<dyn Store>,
    tails: Mutex<HashMap<i64, Tail>>,
    poll: Duration,
    heartbeat: Duration,
    heartbeat_timeout: Duration,
    limits: StreamLimits,
    open: Arc<Mutex<Open>>,
    reads: Semaphore,
    /// Turns true on shutdown: every stream ends, no new one opens.
    closing: watch::Sender<bool>,
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    /// Workflow and execution status changes only.
    Status,
}

impl Filter {
    fn wants(self, e: &Event) -> bool {
        match self {
            Filter::All => true,
            Filter::Status => matches!(e.kind(), Some(EventKind::Workflow | EventKind::Execution)),
        }
    }
}

impl EventHub {
    /// A hub over `store`; `poll` bounds the delay of events from other
    /// processes. Must be called inside a tokio runtime.
    pub fn new(
        store: Arc<dyn Store>,
        poll: Duration,
        heartbeat: Duration,
        heartbeat_timeout: Duration,
    ) -> Arc<Self> {
        Self::with_limits(
            store,
            poll,
            heartbeat,
            heartbeat_timeout,
            StreamLimits::default(),
        )
    }

    /// `new`, refusing streams past `limits`.
    pub fn with_limits(
        store: Arc<dyn Store>,
        poll: Duration,
        heartbeat: Duration,
        heartbeat_timeout: Duration,
        limits: StreamLimits,
    ) -> Arc<Self> {
        let hub = Arc::new(Self {
            store,
            tails: Mutex::default(),
            poll,
            heartbeat,
            heartbeat_timeout,
            limits,
            open: Arc::default(),
            reads: Semaphore::new(STORE_READS_AT_ONCE),
            closing: watch::channel(false).0,
        });
        if let Some(mut signal) = hub.store.event_signal() {
            let weak = Arc::downgrade(&hub);
            tokio::spawn(async move {
                loop {
                    let workflow_id = match signal.recv().await {
                        Ok(id) => Some(id),
                        Err(broadcast::error::RecvError::Lagged(_)) => None,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    let Some(hub) = weak.upgrade() else { return };
                    let tails = hub
                        .tails
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match workflow_id {
                        Some(id) => {
                            if let Some(t) = tails.get(&id) {
                                t.wake.notify_one();
                            }
                        }
                        None => tails.values().for_each(|t| t.wake.notify_one()),
                    }
                }
            });
        }
        hub
    }

    /// The tail of `workflow_id`, started on first use.
    fn follow(self: &Arc<Self>, workflow_id: i64, from: i64) -> broadcast::Receiver<TailMsg> {
        let mut tails = self
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = tails.get(&workflow_id) {
            return t.sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(TAIL_CAPACITY);
        let wake = Arc::new(Notify::new());
        tails.insert(
            workflow_id,
            Tail {
                sender: sender.clone(),
                wake: wake.clone(),
            },
        );
        let hub = self.clone();
        tokio::spawn(async move { hub.run_tail(workflow_id, from, sender, wake).await });
        receiver
    }

    async fn run_tail(
        self: Arc<Self>,
        workflow_id: i64,
        mut last: i64,
        sender: broadcast::Sender<TailMsg>,
        wake: Arc<Notify>,
    ) {
        let mut idle_ticks = 0u32;
        loop {
            let woken = tokio::select! {
                () = wake.notified() => true,
                () = tokio::time::sleep(self.poll) => false,
            };
            if sender.receiver_count() == 0 {
                let mut tails = self
                    .tails
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if sender.receiver_count() == 0 {
                    tails.remove(&workflow_id);
                    return;
                }
            }
            match self.store.events_after(workflow_id, last, PAGE).await {
                Ok(events) if !events.is_empty() => {
                    idle_ticks = 0;
                    let full = events.len() as i64 == PAGE;
                    let status = match self.status(workflow_id).await {
                        Some(s) => Arc::new(s),
                        // Read again on the next round.
                        None => continue,
                    };
                    for e in events {
                        last = e.id;
                        let _ = sender.send(TailMsg::Event(Arc::new(e), status.clone()));
                    }
                    if full {
                        wake.notify_one();
                    }
                }
                Ok(_) => {
                    idle_ticks += 1;
                    // A deleted workflow writes nothing more: check now and then.
                    if (woken || idle_ticks.is_multiple_of(4))
                        && matches!(
                            self.store.get_workflow(workflow_id).await,
                            Err(StoreError::NotFound(_))
                        )
                    {
                        let _ = sender.send(TailMsg::Closed);
                        self.tails
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(&workflow_id);
                        return;
                    }
                }
                Err(e) => tracing::warn!(workflow_id, error = %e, "event tail cannot read the log"),
            }
        }
    }

    /// Ends every open stream and refuses new ones (shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Open streams (for tests and metrics).
    pub fn open_streams(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }

    /// A place for one more stream of `workflow_id`, if the limits allow.
    fn take_slot(&self, workflow_id: i64) -> Result<Slot, SubscribeError> {
        if *self.closing.borrow() {
            return Err(SubscribeError::Refused("the server is shutting down"));
        }
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.total >= self.limits.total {
            return Err(SubscribeError::Refused(
                "too many open event streams; try again later",
            ));
        }
        let n = open.per_workflow.entry(workflow_id).or_default();
        if *n >= self.limits.per_workflow {
            return Err(SubscribeError::Refused(
                "too many open event streams on this workflow; try again later",
            ));
        }
        *n += 1;
        open.total += 1;
        Ok(Slot {
            open: self.open.clone(),
            workflow_id,
        })
    }

    /// Everything after `after`, then live events, then heartbeats between
    /// them, through a bounded buffer. `NotFound` for an unknown workflow;
    /// `Refused` past the stream limits or while shutting down.
    pub async fn subscribe(
        self: &Arc<Self>,
        workflow_id: i64,
        after: i64,
        filter: Filter,
    ) -> Result<mpsc::Receiver<Frame>, SubscribeError> {
        let slot = self.take_slot(workflow_id)?;
        let head = {
            let _read = self
                .reads
                .acquire()
                .await
                .map_err(|_| SubscribeError::Refused("the server is shutting down"))?;
            self.store.get_workflow(workflow_id).await?;
            self.store.last_event_id(workflow_id).await?
        };
        // Follow first, then replay: every event is either in the replay
        // or arrives on the tail (or both; duplicates are skipped by id).
        let mut live = self.follow(workflow_id, head);
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let hub = self.clone();
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            let _slot = slot;
            let mut sent = after;
            let send = |frame: Frame| {
                let tx = tx.clone();
                async move { tx.send_timeout(frame, SEND_TIMEOUT).await.is_ok() }
            };
            if !hub.replay(workflow_id, &mut sent, filter, &send).await {
                return;
            }
            let mut beat = tokio::time::interval(hub.heartbeat);
            beat.tick().await;
            loop {
                tokio::select! {
                    msg = live.recv() => match msg {
                        Ok(TailMsg::Event(e, status)) => {
                            if e.id <= sent {
                                continue;
                            }
                            if e.id > sent + 1 && !hub.replay(workflow_id, &mut sent, filter, &send).await {
                                return;
                            }
                            if e.id <= sent {
                                continue;
                            }
                            sent = e.id;
                            if filter.wants(&e) && !send(Frame::Event(e, status)).await {
                                return;
                            }
                        }
                        Ok(TailMsg::Closed) | Err(broadcast::error::RecvError::Closed) => return,
                        // Too far behind: cut; the client resumes with Last-Event-ID.
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                    },
                    _ = beat.tick() => {
                        if !send(Frame::Heartbeat(Utc::now())).await {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                    () = async { let _ = closing.wait_for(|c| *c).await; } => return,
                }
            }
        });
        Ok(rx)
    }

    /// Sends the log after `*sent` up to its head.
    async fn replay<F, Fut>(
        &self,
        workflow_id: i64,
        sent: &mut i64,
        filter: Filter,
        send: &F,
    ) -> bool
    where
        F: Fn(Frame) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            // One page at a time, read under the hub's read permits and
            // released before it is sent: a slow client never holds a
            // pool connection.
            let page = {
                let Ok(_read) = self.reads.acquire().await else {
                    return false;
                };
                self.store.events_after(workflow_id, *sent, PAGE).await
            };
            if *self.closing.borrow() {
                return false;
            }
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(workflow_id, error = %e, "replay failed; the client will reconnect");
                    return false;
                }
            };
            let n = page.len() as i64;
            if n == 0 {
                return true;
            }
            let Some(status) = self.status(workflow_id).await.map(Arc::new) else {
                return false;
            };
            for e in page {
                *sent = e.id;
                if filter.wants(&e) && !send(Frame::Event(Arc::new(e), status.clone())).await {
                    return false;
                }
            }
            if n < PAGE {
                return true;
            }
        }
    }

    /// The workflow's status now; `None` when it cannot be read (logged).
    pub async fn status(&self, workflow_id: i64) -> Option<StatusInfo> {
        match current_status(self.store.as_ref(), workflow_id, self.heartbeat_timeout).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(workflow_id, error = %e, "cannot read the workflow's status");
                None
            }
        }
    }

    /// Watched workflows (for tests and metrics).
    pub fn tails(&self) -> usize {
        self.tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}
