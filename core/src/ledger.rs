//! The engine's side of the store: step leases, checkpoints, execution
//! state changes, each written in one transaction with the events that
//! describe it. Part of the `Store` port (a supertrait), kept apart
//! because only the engine uses it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreResult;
use crate::models::{
    Conversation, Execution, ExecutionStatus, NewCodeFile, NewConversation, NewMessage,
};

/// What an event says happened: its `type` in the stream contract
/// (API.md, "Live progress"). One closed set, so a misspelt type is a
/// compile error, not a silent change of what clients receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The workflow's status and delivery (PR, checks, refreshes).
    Workflow,
    /// An execution's status, steps and checkpoints.
    Execution,
    /// An agent's conversation finished (its output, tokens, cost).
    Conversation,
    /// A message of a conversation.
    Message,
    /// One LLM call was recorded.
    LlmCall,
    /// A budget decision before a call (fits, shrunk, refused).
    Governance,
    /// A step needs the operator (budget, unparseable answer).
    Escalation,
    /// One agent handed work to another (rework, review).
    Collaboration,
    /// The repository's tests ran on the branch.
    Verification,
    /// Something failed.
    Error,
    /// A log line of the service (the log stream).
    Log,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Workflow,
        EventKind::Execution,
        EventKind::Conversation,
        EventKind::Message,
        EventKind::LlmCall,
        EventKind::Governance,
        EventKind::Escalation,
        EventKind::Collaboration,
        EventKind::Verification,
        EventKind::Error,
        EventKind::Log,
    ];

    /// The stored and streamed spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Workflow => "workflow",
            EventKind::Execution => "execution",
            EventKind::Conversation => "conversation",
            EventKind::Message => "message",
            EventKind::LlmCall => "llm_call",
            EventKind::Governance => "governance",
            EventKind::Escalation => "escalation",
            EventKind::Collaboration => "collaboration",
            EventKind::Verification => "verification",
            EventKind::Error => "error",
            EventKind::Log => "log",
        }
    }

    /// The kind of a stored `type`; `None` for one this build does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to append in the same transaction as a state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    pub data: Value,
}

impl NewEvent {
    pub fn new(kind: EventKind, data: Value) -> Self {
        Self { kind, data }
    }
}

#[cfg(test)]
mod event_kind_tests {
    use super::EventKind;

    #[test]
    fn every_kind_round_trips_through_its_spelling_and_serde_agrees() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(EventKind::parse("workflows"), None);
    }
}

/// What claiming a step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease expires; `attempt` counts claims of the step.
    Claimed { attempt: i64 },
    /// Finished before: nothing to run.
    Completed,
    /// Another worker holds an unexpired lease.
    Busy { until: DateTime<Utc> },
}

/// A checkpoint: the state after a step, from which the next one (or a
/// resume) continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub execution_id: i64,
    pub step: String,
    pub summary: Value,
    pub artifact_index: Value,
    pub budgets: Value,
    pub created_at: DateTime<Utc>,
}

/// Everything a finished step writes, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCompletion {
    pub workflow_id: i64,
    pub execution_id: i64,
    pub step: String,
    pub owner: String,
    /// The step's conversation and its final output and details.
    pub conversation: Option<(i64, String, Value)>,
    pub messages: Vec<NewMessage>,
    pub code_files: Vec<NewCodeFile>,
    pub summary: Value,
    pub artifact_index: Value,
    pub budgets: Value,
    pub result: Value,
    pub events: Vec<NewEvent>,
    /// Set by the last step: the execution's terminal status.
    pub finish: Option<ExecutionStatus>,
}

#[async_trait]
pub trait StepLedger: Send + Sync + 'static {
    async fn execution_by_id(&self, execution_id: i64) -> StoreResult<Execution>;

    /// pending → running (started_at, heartbeat); the workflow follows.
    /// Events are written only when the status changed.
    async fn mark_running(&self, execution_id: i64, events: &[NewEvent]) -> StoreResult<Execution>;

    /// Claims `(execution_id, step)` for `owner` for `lease`: new, failed,
    /// pending or expired leases are taken; completed ones are reported.
    async fn claim_step(
        &self,
        execution_id: i64,
        step: &str,
        owner: &str,
        lease: Duration,
    ) -> StoreResult<Claim>;

    /// Extends the lease and beats the execution's heartbeat; false when
    /// the lease is no longer `owner`'s.
    async fn renew_lease(
        &self,
        execution_id: i64,
        step: &str,
        owner: &str,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// The step's conversation, created once whatever redelivery does.
    async fn ensure_conversation(&self, new: &NewConversation) -> StoreResult<Conversation>;

    /// Writes the step's records, checkpoint and events and marks the
    /// lease completed; false (and nothing written) when the lease is not
    /// `owner`'s any more or the step was already completed.
    async fn complete_step(&self, completion: &StepCompletion) -> StoreResult<bool>;

    /// Ends a live execution as failed or cancelled with `error`; the
    /// step's lease, when given, is marked failed. `Conflict` when the
    /// execution is not live.
    async fn end_execution(
        &self,
        execution_id: i64,
        step: Option<&str>,
        status: ExecutionStatus,
        error: Option<&str>,
        meta: &Value,
        events: &[NewEvent],
    ) -> StoreResult<Execution>;

    /// failed/cancelled → pending with new meta (the next run): `Conflict`
    /// when it is live or completed, or another execution of the workflow is.
    async fn reopen_execution(
        &self,
        execution_id: i64,
        meta: &Value,
        events: &[NewEvent],
    ) -> StoreResult<Execution>;

    async fn set_execution_meta(&self, execution_id: i64, meta: &Value) -> StoreResult<()>;

    async fn checkpoint(&self, execution_id: i64, step: &str) -> StoreResult<Option<Checkpoint>>;
    async fn latest_checkpoint(&self, execution_id: i64) -> StoreResult<Option<Checkpoint>>;

    /// Tokens the agent's conversations of this execution have used.
    async fn agent_tokens(&self, execution_id: i64, agent: &str) -> StoreResult<i64>;

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
    async fn release_step(&self, execution_id: i64, step: &str, owner: &str) -> StoreResult<()>;

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
