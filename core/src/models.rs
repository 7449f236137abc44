//! The records of API.md. Field names are the wire names; money is held
//! in nano-dollars and serialised as dollars (see `money`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money::as_dollars;

/// Declares a string enum with its wire names, `as_str` and `parse`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and database) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The value with this wire name, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Where a workflow stands; it follows its latest execution.
    WorkflowStatus {
        /// Created, no execution has run yet (or the latest is queued).
        Pending => "pending",
        /// Its latest execution is running.
        Running => "running",
        /// Its latest execution completed.
        Completed => "completed",
        /// Its latest execution failed.
        Failed => "failed",
        /// Its latest execution was cancelled.
        Cancelled => "cancelled",
    }
);

wire_enum!(
    /// Where an execution stands.
    ExecutionStatus {
        /// Queued, not yet picked up by a worker.
        Pending => "pending",
        /// A worker is running its steps.
        Running => "running",
        /// Every step ran; terminal.
        Completed => "completed",
        /// A step failed or the run was abandoned; terminal.
        Failed => "failed",
        /// Cancelled by the operator; terminal.
        Cancelled => "cancelled",
    }
);

wire_enum!(
    /// The six roles of the team.
    Agent {
        /// The product manager: analyses the story.
        Pm => "pm",
        /// The architect: designs the change.
        Architect => "architect",
        /// The developer: writes the backend code.
        Developer => "developer",
        /// The frontend developer: writes the user interface code.
        Frontend => "frontend",
        /// The tester: writes the tests.
        Tester => "tester",
        /// The reviewer: reviews the change and may send it back.
        Reviewer => "reviewer",
    }
);

wire_enum!(
    /// Outcome of one LLM call attempt.
    LlmCallStatus {
        /// The model answered.
        Success => "success",
        /// The call failed; `error_code` says why.
        Failed => "failed",
        /// The model answered but stopped at `max_tokens`.
        Truncated => "truncated",
        /// The call was not made.
        Skipped => "skipped",
    }
);

wire_enum!(
    /// Who speaks in a message.
    Role {
        /// The system prompt.
        System => "system",
        /// The prompt sent to the agent.
        User => "user",
        /// The model's answer.
        Assistant => "assistant",
        /// Output of a tool.
        Tool => "tool",
    }
);

#[cfg(test)]
mod wire_name_tests {
    use super::*;

    fn snake(v: &impl std::fmt::Debug) -> String {
        let mut out = String::new();
        for (i, c) in format!("{v:?}").chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        }
        out
    }

    #[test]
    fn every_wire_name_is_its_variant_in_snake_case() {
        for v in WorkflowStatus::ALL {
            assert_eq!(v.as_str(), snake(v));
        }
        for v in ExecutionStatus::ALL {
            assert_eq!(v.as_str(), snake(v));
        }
        for v in Agent::ALL {
            assert_eq!(v.as_str(), snake(v));
        }
        for v in LlmCallStatus::ALL {
            assert_eq!(v.as_str(), snake(v));
        }
        for v in Role::ALL {
            assert_eq!(v.as_str(), snake(v));
        }
    }
}

/// A story being implemented by the team.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workflow {
    /// Row id, assigned by the store; the `{id}` of `/workflows/{id}`.
    pub id: i64,
    /// Display name, `KEY: title` when created from a story.
    pub name: String,
    /// The story's key in the ticket system (e.g. `PROJ-12`); unique per workflow.
    pub jira_story_id: String,
    /// Follows the latest execution's status.
    pub status: WorkflowStatus,
    /// The repository the team works on; `None` delivers to the configured default repository.
    pub repository_url: Option<String>,
    /// The story's description, as given at creation; `None` without one.
    pub description: Option<String>,
    /// The story's title as given; `None` falls back to the name (see `story_title`).
    pub jira_story_title: Option<String>,
    /// The branch the pull request targets; `None` uses the repository's default.
    pub target_branch: Option<String>,
    /// Command that runs the repository's tests; `None` when the workflow names none.
    pub test_command: Option<String>,
    /// When the workflow was created.
    pub created_at: DateTime<Utc>,
    /// When the workflow last changed (status, delivery).
    pub updated_at: DateTime<Utc>,
}

impl Workflow {
    /// The story's title: as given, else the name without its `KEY: `.
    pub fn story_title(&self) -> String {
        self.jira_story_title.clone().unwrap_or_else(|| {
            self.name
                .strip_prefix(&format!("{}: ", self.jira_story_id))
                .unwrap_or(&self.name)
                .to_owned()
        })
    }
}

/// One run of the agent team over a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    /// Row id, assigned by the store; the `{execution_id}` of `/workflows/{id}/executions/{execution_id}`.
    pub id: i64,
    /// The workflow this run belongs to.
    pub workflow_id: i64,
    /// Where the run stands.
    pub status: ExecutionStatus,
    /// When a worker started the run; `None` while pending.
    pub started_at: Option<DateTime<Utc>>,
    /// When the run reached a terminal status; `None` until then.
    pub finished_at: Option<DateTime<Utc>>,
    /// Number of LLM call rows (every attempt) under this execution.
    pub total_calls: i64,
    /// Prompt tokens summed over the execution's calls.
    pub prompt_tokens: i64,
    /// Completion tokens summed over the execution's calls.
    pub completion_tokens: i64,
    /// Prompt plus completion tokens over the execution's calls.
    pub total_tokens: i64,
    /// Cost of the execution's calls: nano-dollars in memory, dollars on the wire.
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
    /// Mean response time of the execution's calls, in ms.
    pub avg_latency_ms: f64,
    /// Distinct models the execution's calls used.
    pub models: Vec<String>,
    /// Why the run failed; `None` unless it did.
    pub error: Option<String>,
    /// Run bookkeeping (see `execution_meta`), the `meta` column.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub meta: crate::execution_meta::ExecutionMeta,
    /// When the execution was created (queued).
    pub created_at: DateTime<Utc>,
    /// The worker's last beat while the execution ran.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

impl ExecutionStatus {
    /// Whether nothing more happens to an execution in this state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }
}

/// One agent's turn at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    /// Row id, assigned by the store.
    pub id: i64,
    /// The workflow the conversation belongs to.
    pub workflow_id: i64,
    /// The execution that produced it, if any.
    pub execution_id: Option<i64>,
    /// The agent's wire name (`pm`, `developer`, ...).
    pub agent: String,
    /// The step's wire name (see `steps::Step`).
    pub step: String,
    /// The prompt sent to the agent.
    pub prompt: String,
    /// The agent's answer; `None` until it has one.
    pub output: Option<String>,
    /// Free-form step details (files, decisions), the `details` column.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    /// When the conversation was recorded.
    pub timestamp: DateTime<Utc>,
    /// Tokens used by the conversation's calls.
    pub total_tokens_used: i64,
    /// Cost of the conversation's calls: nano-dollars in memory, dollars on the wire.
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
    /// Number of LLM call rows (every attempt).
    pub llm_calls_count: i64,
}

/// The fields a conversation is created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewConversation {
    /// The workflow the conversation belongs to.
    pub workflow_id: i64,
    /// The execution that runs it, if any.
    pub execution_id: Option<i64>,
    /// The agent taking the turn.
    pub agent: Agent,
    /// The step's wire name.
    pub step: String,
    /// The prompt sent to the agent.
    pub prompt: String,
    /// The agent's answer, if already known.
    pub output: Option<String>,
    /// Free-form step details, stored in the `details` column.
    pub details: Value,
    /// When the turn happened.
    pub timestamp: DateTime<Utc>,
}

/// A compact view of one call, listed with its conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LlmCallSummary {
    /// Row id of the call.
    pub id: i64,
    /// The model that answered (as the provider reported it).
    pub model: String,
    /// Outcome of the attempt.
    pub status: LlmCallStatus,
    /// Tokens in the prompt, as reported by the provider.
    pub prompt_tokens: i64,
    /// Tokens in the answer, as reported by the provider.
    pub completion_tokens: i64,
    /// Prompt plus completion tokens.
    pub total_tokens: i64,
    /// Cost of the call: nano-dollars in memory, dollars on the wire.
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub cost: i64,
    /// Wall time of the call, in ms.
    pub response_time_ms: i64,
    /// When the call was made.
    pub timestamp: DateTime<Utc>,
}

/// A conversation as `GET /workflows/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDetail {
    /// The conversation's own fields, flattened into this object on the wire.
    #[serde(flatten)]
    pub conversation: Conversation,
    /// Files the conversation produced.
    pub code_files: Vec<CodeFile>,
    /// The conversation's messages, oldest first.
    pub messages: Vec<Message>,
    /// The most recent calls (at most `CALL_SUMMARY_LIMIT`); the full list
    /// is `GET /conversations/{id}/llm-calls`.
    pub llm_calls: Vec<LlmCallSummary>,
}

/// How many calls a conversation lists inline in `GET /workflows/{id}`.
pub const CALL_SUMMARY_LIMIT: i64 = 100;

/// A workflow with everything produced under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowDetail {
    /// The workflow's own fields, flattened into this object on the wire.
    #[serde(flatten)]
    pub workflow: Workflow,
    /// Its conversations, with their messages and calls.
    pub conversations: Vec<ConversationDetail>,
    /// Every file produced under the workflow.
    pub code_files: Vec<CodeFile>,
}

/// One LLM call attempt, with everything sent and spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LlmCall {
    /// Row id, assigned by the store.
    pub id: i64,
    /// The conversation the call was made for.
    pub conversation_id: i64,
    /// The execution it ran under, if any.
    pub execution_id: Option<i64>,
    /// The model that answered (the requested one when the call failed).
    pub model: String,
    /// Tokens in the prompt, as reported by the provider.
    pub prompt_tokens: i64,
    /// Tokens in the answer, as reported by the provider.
    pub completion_tokens: i64,
    /// Prompt plus completion tokens.
    pub total_tokens: i64,
    /// The `max_tokens` sent with the request; `None` when none was set.
    pub max_tokens: Option<i64>,
    /// Estimated prompt tokens plus `max_tokens`; `None` without an estimate.
    pub total_tokens_requested: Option<i64>,
    /// Wall time of the call, in ms.
    pub response_time_ms: i64,
    /// Outcome of the attempt.
    pub status: LlmCallStatus,
    /// The provider's or client's error code; `None` on success.
    pub error_code: Option<String>,
    /// Prompt sections cut to fit the context window.
    pub truncated_sections: Vec<String>,
    /// Hash of the request, used to find a stored answer to replay.
    pub prompt_hash: String,
    /// Hash of the answer; `None` when there was none.
    pub response_hash: Option<String>,
    /// The budgets and spend when the call was admitted.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub budget_snapshot: Value,
    /// Cost of the call: nano-dollars in memory, dollars on the wire.
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub cost: i64,
    /// When the call was made.
    pub timestamp: DateTime<Utc>,
    /// The request as sent (redacted when redaction is on); a large one is moved to the blob store, leaving its `blob_uri`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request_data: Value,
    /// The response as received (redacted when redaction is on); a large one is moved to the blob store, leaving its `blob_uri`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub response_data: Value,
}

/// The fields a call row is written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLlmCall {
    /// The conversation the call was made for.
    pub conversation_id: i64,
    /// The execution it ran under, if any.
    pub execution_id: Option<i64>,
    /// The model that answered (the requested one when the call failed).
    pub model: String,
    /// Tokens in the prompt, as reported by the provider.
    pub prompt_tokens: i64,
    /// Tokens in the answer, as reported by the provider.
    pub completion_tokens: i64,
    /// The `max_tokens` sent with the request, if any.
    pub max_tokens: Option<i64>,
    /// Estimated prompt tokens plus `max_tokens`; `None` without an estimate.
    pub total_tokens_requested: Option<i64>,
    /// Wall time of the call, in ms.
    pub response_time_ms: i64,
    /// Outcome of the attempt.
    pub status: LlmCallStatus,
    /// The provider's or client's error code; `None` on success.
    pub error_code: Option<String>,
    /// Prompt sections cut to fit the context window.
    pub truncated_sections: Vec<String>,
    /// Hash of the request, used to find a stored answer to replay.
    pub prompt_hash: String,
    /// Hash of the answer; `None` when there was none.
    pub response_hash: Option<String>,
    /// The budgets and spend when the call was admitted.
    pub budget_snapshot: Value,
    /// Nano-dollars.
    pub cost: i64,
    /// When the call was made.
    pub timestamp: DateTime<Utc>,
    /// The request as sent.
    pub request_data: Value,
    /// The response as received.
    pub response_data: Value,
}

/// A reference from a message to a stored artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactRef {
    /// What is referenced (`code_file`); `type` on the wire.
    #[serde(rename = "type")]
    pub kind: String,
    /// The artifact's id within its kind (a code file's path).
    pub id: String,
    /// Where the artifact is stored (`code_files://{execution}/{path}`).
    pub uri: String,
    /// Checksum of the artifact's content.
    pub checksum: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// Row id, assigned by the store.
    pub id: i64,
    /// The conversation the message belongs to.
    pub conversation_id: i64,
    /// Who speaks.
    pub role: Role,
    /// The message text.
    pub content: String,
    /// Stored artifacts the message refers to.
    pub artifacts: Vec<ArtifactRef>,
    /// Free-form metadata, the `message_metadata` column.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub message_metadata: Value,
    /// When the message was written.
    pub created_at: DateTime<Utc>,
}

/// The fields a message is written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// The conversation the message belongs to.
    pub conversation_id: i64,
    /// Who speaks.
    pub role: Role,
    /// The message text.
    pub content: String,
    /// Stored artifacts the message refers to.
    pub artifacts: Vec<ArtifactRef>,
    /// Free-form metadata, stored in `message_metadata`.
    pub message_metadata: Value,
    /// When the message was written.
    pub created_at: DateTime<Utc>,
}

/// A file produced by an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeFile {
    /// Row id, assigned by the store.
    pub id: i64,
    /// The workflow the file belongs to.
    pub workflow_id: i64,
    /// The conversation that produced it, if known.
    pub conversation_id: Option<i64>,
    /// The execution that produced it, if known.
    pub execution_id: Option<i64>,
    /// The base name of `path`, as the original client shows it.
    pub filename: String,
    /// The same as `path` (the original's name).
    pub file_path: String,
    /// Path of the file in the repository, relative to its root.
    pub path: String,
    /// Language of the file, if known.
    pub language: Option<String>,
    /// The file's full text.
    pub content: String,
    /// Checksum of `content`.
    pub checksum: String,
    /// When the file was stored.
    pub created_at: DateTime<Utc>,
}

/// The fields a code file is written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCodeFile {
    /// The workflow the file belongs to.
    pub workflow_id: i64,
    /// The conversation that produced it, if known.
    pub conversation_id: Option<i64>,
    /// The execution that produced it, if known.
    pub execution_id: Option<i64>,
    /// Path of the file in the repository, relative to its root.
    pub path: String,
    /// Language of the file, if known.
    pub language: Option<String>,
    /// The file's full text.
    pub content: String,
    /// Checksum of `content`.
    pub checksum: String,
}

/// One entry of a workflow's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Increases per workflow, without gaps between committed events.
    pub id: i64,
    /// The workflow whose log this is.
    pub workflow_id: i64,
    /// The execution the event happened in, if any.
    pub execution_id: Option<i64>,
    /// The event's `type` on the wire (see `EventKind`), kept as a string so unknown stored types still load.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's payload, as built by `WorkflowEvent::data`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
    /// When the event was committed.
    pub created_at: DateTime<Utc>,
}

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
    /// Every kind, in declaration order.
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

impl Event {
    /// The typed kind; `None` for a stored type this build does not know.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.event_type)
    }

    /// Whether the event is of `kind`.
    pub fn is(&self, kind: EventKind) -> bool {
        self.event_type == kind.as_str()
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paged<T> {
    /// The 1-based page number.
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
    /// Items over all pages.
    pub total: i64,
    /// This page's items.
    pub items: Vec<T>,
}

/// A page of a conversation's calls, with totals over the whole conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LlmCallPage {
    /// The conversation the calls belong to.
    pub conversation_id: i64,
    /// Tokens over all of the conversation's calls.
    pub total_tokens_used: i64,
    /// Cost over all of the conversation's calls: nano-dollars in memory, dollars on the wire.
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
    /// The 1-based page number.
    pub page: u32,
    /// Calls per page.
    pub page_size: u32,
    /// Calls matching the filters.
    pub total: i64,
    /// This page's calls, matching the filters.
    pub calls: Vec<LlmCall>,
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
