//! The `Store` port: every persistent record goes through it. The SQLite
//! and PostgreSQL adapters in `ai-team-providers` implement it and are run
//! by the same test suite.

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::models::{
    CodeFile, Conversation, Event, Execution, LlmCall, LlmCallPage, Message, NewCodeFile,
    NewConversation, NewLlmCall, NewMessage, Paged, Workflow, WorkflowDetail,
};
use crate::query::{LlmCallQuery, NewWorkflow, PageRequest};

/// What `create_workflow` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// A new record was written.
    New(T),
    /// A record with the same natural key already existed; nothing written.
    Existing(T),
}

impl<T> Created<T> {
    /// The record, whether new or existing.
    pub fn into_inner(self) -> T {
        match self {
            Created::New(t) | Created::Existing(t) => t,
        }
    }

    /// Whether a new record was written.
    pub fn is_new(&self) -> bool {
        matches!(self, Created::New(_))
    }
}

/// Every port of one database: what the HTTP layer and the engine are
/// given. Each supertrait is one cohesive part of the records.
#[async_trait]
pub trait Store:
    WorkflowStore
    + ExecutionStore
    + CallStore
    + EventStore
    + crate::ledger::StepLedger
    + crate::delivery::DeliveryStore
    + crate::push::PushConnections
    + Send
    + Sync
    + 'static
{
    /// Which database this is ("sqlite" or "postgres").
    fn backend(&self) -> &'static str;

    /// A round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// The secret named `name` that every instance shares: `candidate`
    /// (a fresh random value) if none was stored yet, else the stored one.
    async fn service_secret(&self, name: &str, candidate: &str) -> StoreResult<String>;
}

/// Workflows: the user's stories and what was delivered for them.
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Creates the workflow unless one with the same `jira_story_id`
    /// exists; race-safe (a unique constraint decides, not a prior read).
    async fn create_workflow(&self, new: &NewWorkflow) -> StoreResult<Created<Workflow>>;
    /// The workflow with this row id; `NotFound` when there is none.
    async fn get_workflow(&self, id: i64) -> StoreResult<Workflow>;
    /// The workflow of this story key, if any.
    async fn find_workflow_by_story(&self, jira_story_id: &str) -> StoreResult<Option<Workflow>>;
    /// Newest first; `None` lists all (the legacy plain array).
    async fn list_workflows(&self, page: Option<PageRequest>) -> StoreResult<Paged<Workflow>>;
    /// The workflow with its conversations (oldest first, each with its
    /// files, message count and latest calls) and the flat list of files.
    async fn workflow_detail(&self, workflow_id: i64) -> StoreResult<WorkflowDetail>;
    /// Every file produced under the workflow.
    async fn workflow_code_files(&self, workflow_id: i64) -> StoreResult<Vec<CodeFile>>;
    /// Deletes the workflow and everything under it in one transaction;
    /// `Conflict` while an execution is pending or running.
    async fn delete_workflow(&self, id: i64) -> StoreResult<()>;
}

/// Executions as the API lists them (the engine's side is `StepLedger`).
#[async_trait]
pub trait ExecutionStore: Send + Sync + 'static {
    /// A new pending execution; `Conflict` if one is pending or running
    /// (a partial unique index decides).
    async fn create_execution(&self, workflow_id: i64) -> StoreResult<Execution>;
    /// The workflow's execution with this row id; `NotFound` when absent or of another workflow.
    async fn get_execution(&self, workflow_id: i64, execution_id: i64) -> StoreResult<Execution>;
    /// The workflow's executions, newest first; `None` lists all (the legacy plain array).
    async fn list_executions(
        &self,
        workflow_id: i64,
        page: Option<PageRequest>,
    ) -> StoreResult<Paged<Execution>>;

    /// The newest execution of each of the workflows that has one.
    async fn latest_executions(&self, workflow_ids: &[i64]) -> StoreResult<Vec<Execution>>;
}

/// Conversations, their messages, the LLM calls made in them and the
/// files they wrote.
#[async_trait]
pub trait CallStore: Send + Sync + 'static {
    /// Writes a conversation row.
    async fn create_conversation(&self, new: &NewConversation) -> StoreResult<Conversation>;
    /// The conversation with this row id; `NotFound` when there is none.
    async fn get_conversation(&self, id: i64) -> StoreResult<Conversation>;
    /// Writes a message row.
    async fn add_message(&self, new: &NewMessage) -> StoreResult<Message>;
    /// One page of the conversation's messages, oldest first.
    async fn list_messages(
        &self,
        conversation_id: i64,
        page: PageRequest,
    ) -> StoreResult<Paged<Message>>;
    /// Writes the call and adds it to the conversation's and execution's
    /// running totals in one transaction.
    async fn record_llm_calls(&self, calls: &[NewLlmCall]) -> StoreResult<Vec<i64>>;
    /// One page of the conversation's calls, with its totals (`GET /conversations/{id}/llm-calls`).
    async fn list_llm_calls(
        &self,
        conversation_id: i64,
        query: &LlmCallQuery,
    ) -> StoreResult<LlmCallPage>;
    /// The newest successful call of this execution with this prompt hash:
    /// a response already paid for, reused by a retried step.
    async fn find_cached_call(
        &self,
        execution_id: i64,
        prompt_hash: &str,
    ) -> StoreResult<Option<LlmCall>>;
    /// Writes a code file row.
    async fn add_code_file(&self, new: &NewCodeFile) -> StoreResult<CodeFile>;

    /// Every call of a workflow (`execution_id` None) or of one of its
    /// executions, reduced for comparison, oldest first.
    async fn call_facts(
        &self,
        workflow_id: i64,
        execution_id: Option<i64>,
    ) -> StoreResult<Vec<crate::compare::CallFact>>;
}

/// The per-workflow event log that progress is streamed from.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Wakes with a workflow id after events of it were committed by this
    /// process; `None` where the adapter cannot tell (poll instead).
    fn event_signal(&self) -> Option<tokio::sync::broadcast::Receiver<i64>> {
        None
    }

    /// Appends to the workflow's log; the id is the next of that workflow.
    async fn append_event(
        &self,
        workflow_id: i64,
        execution_id: Option<i64>,
        event_type: &str,
        data: &serde_json::Value,
    ) -> StoreResult<Event>;
    /// Up to `limit` of the workflow's events with an id above `after`, oldest first.
    async fn events_after(
        &self,
        workflow_id: i64,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Event>>;
    /// The id of the workflow's newest committed event (0 when none).
    async fn last_event_id(&self, workflow_id: i64) -> StoreResult<i64>;

    /// The workflow's events of the given types, oldest first, at most `limit`.
    async fn events_of_types(
        &self,
        workflow_id: i64,
        types: &[crate::models::EventKind],
        limit: i64,
    ) -> StoreResult<Vec<Event>>;
}

/// Every store port, for `use ai_team_core::store::ports::*` where their
/// methods are called on a `dyn Store`.
pub mod ports {
    pub use super::{CallStore, EventStore, ExecutionStore, Store, WorkflowStore};
    pub use crate::delivery::DeliveryStore;
    pub use crate::ledger::StepLedger;
    pub use crate::push::PushConnections;
}
