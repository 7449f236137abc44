//! The engine's side of the store: step leases, checkpoints, execution
//! state changes, each written in one transaction with the events that
//! describe it. Part of the `Store` port (a supertrait), kept apart
//! because only the engine uses it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::budgets::Budgets;
use crate::error::StoreResult;
use crate::execution_meta::ExecutionMeta;
use crate::models::{
    Agent, Conversation, Execution, ExecutionStatus, NewCodeFile, NewConversation, NewMessage,
};
use crate::queue::{DatabaseId, StepMessage};
use crate::run_state::RunState;
use crate::steps::Step;

pub use crate::models::EventKind;

/// An event to append in the same transaction as a state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The event's type.
    pub kind: EventKind,
    /// The event's payload (see `WorkflowEvent::data`).
    pub data: Value,
}

impl NewEvent {
    /// An event of any shape, for tests and tools: what the service
    /// itself writes is a [`crate::WorkflowEvent`].
    pub fn new(kind: EventKind, data: Value) -> Self {
        Self { kind, data }
    }
}

/// What claiming a step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease expires; `attempt` counts claims of the step.
    Claimed {
        /// How many times the step has been claimed, this claim included.
        attempt: i64,
    },
    /// Finished before: nothing to run.
    Completed,
    /// Another worker holds an unexpired lease.
    Busy {
        /// When the other worker's lease expires.
        until: DateTime<Utc>,
    },
}

/// A checkpoint: the state after a step, from which the next one (or a
/// resume) continues.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The execution the checkpoint belongs to.
    pub execution_id: i64,
    /// The step it follows.
    pub step: Step,
    /// The engine's run state after the step (redacted), from which later
    /// steps continue; an error when the stored state is not one this
    /// version reads, which ends the run with a clear failure rather
    /// than retrying it.
    pub state: Result<RunState, UnreadableCheckpoint>,
    /// The budgets the execution ran the step under; `None` when the
    /// stored value is not budgets this version reads.
    pub budgets: Option<Budgets>,
    /// When the checkpoint was written.
    pub created_at: DateTime<Utc>,
}

impl Checkpoint {
    /// The step to run after this checkpoint's; `None` once the run is
    /// finished or when the state cannot be read.
    pub fn next_step(&self) -> Option<Step> {
        self.state.as_ref().ok().and_then(|s| s.next_step)
    }
}

/// A stored run state this version cannot read (written by another
/// version, or edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the checkpoint after {step} cannot be read: {reason}")]
pub struct UnreadableCheckpoint {
    /// The step the checkpoint follows.
    pub step: Step,
    /// What the decoder said.
    pub reason: String,
}

/// Everything a finished step writes, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCompletion {
    /// The workflow the execution belongs to.
    pub workflow_id: i64,
    /// The execution the step belongs to.
    pub execution_id: i64,
    /// The finished step.
    pub step: Step,
    /// The worker that holds the step's lease.
    pub owner: String,
    /// The step's conversation and its final output and details.
    pub conversation: Option<(i64, String, Value)>,
    /// The step's messages.
    pub messages: Vec<NewMessage>,
    /// The files the step produced.
    pub code_files: Vec<NewCodeFile>,
    /// The run state after the step (redacted), stored as the
    /// checkpoint's `summary`, with its files as the `artifact_index`.
    pub state: RunState,
    /// The budgets the step ran under.
    pub budgets: Budgets,
    /// The step's own result (call counts, sizes), stored with its lease.
    pub result: Value,
    /// Events appended in the same transaction.
    pub events: Vec<NewEvent>,
    /// Set by the last step: the execution's terminal status.
    pub finish: Option<ExecutionStatus>,
    /// The next step's message, queued in the same transaction while the
    /// execution is live; set only when the queue is a table of the
    /// store's database (`StepQueue::database`).
    pub next: Option<StepMessage>,
    /// The receipt of the local queue job that carried this step,
    /// acknowledged in the same transaction (set only by a worker polling
    /// the store's own queue).
    pub settles: Option<String>,
}

/// What `complete_step` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepCommit {
    /// Nothing: the lease is not the worker's any more, or the step was
    /// already completed.
    NotOwner,
    /// Written. The execution's status as the step committed (before
    /// `finish`): a cancelled execution keeps the step's work but its
    /// next step is not queued.
    Written(ExecutionStatus),
}

/// The engine's side of the store: step leases, checkpoints and execution state changes, each written with its events.
#[async_trait]
pub trait StepLedger: Send + Sync + 'static {
    /// The execution with this row id; `NotFound` when there is none.
    async fn execution_by_id(&self, execution_id: i64) -> StoreResult<Execution>;

    /// pending → running (started_at, heartbeat); the workflow follows.
    /// Events are written only when the status changed.
    async fn mark_running(&self, execution_id: i64, events: &[NewEvent]) -> StoreResult<Execution>;

    /// Claims `(execution_id, step)` for `owner` for `lease`: new, failed,
    /// pending or expired leases are taken; completed ones are reported.
    async fn claim_step(
        &self,
        execution_id: i64,
        step: Step,
        owner: &str,
        lease: Duration,
    ) -> StoreResult<Claim>;

    /// Extends the lease and beats the execution's heartbeat; false when
    /// the lease is no longer `owner`'s.
    async fn renew_lease(
        &self,
        execution_id: i64,
        step: Step,
        owner: &str,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// The step's conversation, created once whatever redelivery does.
    async fn ensure_conversation(&self, new: &NewConversation) -> StoreResult<Conversation>;

    /// Writes the step's records, checkpoint and events, marks the lease
    /// completed and queues `completion.next` when the execution is live;
    /// nothing when the lease is not `owner`'s any more or the step was
    /// already completed.
    async fn complete_step(&self, completion: &StepCompletion) -> StoreResult<StepCommit>;

    /// The database this store writes, when its queue can join its
    /// transactions (see `StepQueue::database`).
    fn database(&self) -> Option<DatabaseId> {
        None
    }

    /// Ends a live execution as failed or cancelled with `error`; the
    /// step's lease, when given, is marked failed. `Conflict` when the
    /// execution is not live.
    async fn end_execution(
        &self,
        execution_id: i64,
        step: Option<Step>,
        status: ExecutionStatus,
        error: Option<&str>,
        meta: &ExecutionMeta,
        events: &[NewEvent],
    ) -> StoreResult<Execution>;

    /// failed/cancelled → pending with new meta (the next run): `Conflict`
    /// when it is live or completed, or another execution of the workflow is.
    async fn reopen_execution(
        &self,
        execution_id: i64,
        meta: &ExecutionMeta,
        events: &[NewEvent],
    ) -> StoreResult<Execution>;

    /// Replaces the execution's `meta` column.
    async fn set_execution_meta(&self, execution_id: i64, meta: &ExecutionMeta) -> StoreResult<()>;

    /// The checkpoint written after `step`, if it has run.
    async fn checkpoint(&self, execution_id: i64, step: Step) -> StoreResult<Option<Checkpoint>>;
    /// The execution's most recent checkpoint, if any.
    async fn latest_checkpoint(&self, execution_id: i64) -> StoreResult<Option<Checkpoint>>;

    /// Tokens the agent's conversations of this execution have used.
    async fn agent_tokens(&self, execution_id: i64, agent: Agent) -> StoreResult<i64>;

    /// Running executions whose heartbeat is older than `before`.
    async fn stale_executions(&self, before: DateTime<Utc>) -> StoreResult<Vec<Execution>>;

    /// Pending executions created before `before` of which no step was
    /// ever claimed (of `workflow_id` only, when given): what a start that
    /// crashed between creating the execution and queueing its first step
    /// leaves behind.
    async fn unstarted_executions(
        &self,
        before: DateTime<Utc>,
        workflow_id: Option<i64>,
    ) -> StoreResult<Vec<Execution>>;

    /// Gives one claimed step back (it will be claimed again at once).
    async fn release_step(&self, execution_id: i64, step: Step, owner: &str) -> StoreResult<()>;

    /// Frees the running leases of `owner` (a restarted worker holds none).
    async fn release_leases(&self, owner: &str) -> StoreResult<u64>;

    /// Appends several events to one workflow's log in one transaction.
    async fn append_events(
        &self,
        workflow_id: i64,
        execution_id: Option<i64>,
        events: &[NewEvent],
    ) -> StoreResult<()>;
}
