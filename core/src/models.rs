//! The records of API.md. Field names are the wire names; money is held
//! in nano-dollars and serialised as dollars (see `money`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money::as_dollars;

/// Declares a string enum with its wire names, `as_str` and `parse`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
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
        Pending => "pending", Running => "running", Completed => "completed",
        Failed => "failed", Cancelled => "cancelled",
    }
);

wire_enum!(
    /// Where an execution stands.
    ExecutionStatus {
        Pending => "pending", Running => "running", Completed => "completed",
        Failed => "failed", Cancelled => "cancelled",
    }
);

wire_enum!(
    /// The six roles of the team.
    Agent {
        Pm => "pm", Architect => "architect", Developer => "developer",
        Frontend => "frontend", Tester => "tester", Reviewer => "reviewer",
    }
);

wire_enum!(
    /// Outcome of one LLM call attempt.
    LlmCallStatus { Success => "success", Failed => "failed", Truncated => "truncated", Skipped => "skipped" }
);

wire_enum!(
    /// Who speaks in a message.
    Role { System => "system", User => "user", Assistant => "assistant", Tool => "tool" }
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
    pub id: i64,
    pub name: String,
    pub jira_story_id: String,
    pub status: WorkflowStatus,
    pub repository_url: Option<String>,
    pub description: Option<String>,
    pub jira_story_title: Option<String>,
    pub target_branch: Option<String>,
    pub test_command: Option<String>,
    pub created_at: DateTime<Utc>,
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
    pub id: i64,
    pub workflow_id: i64,
    pub status: ExecutionStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub total_calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
    pub avg_latency_ms: f64,
    pub models: Vec<String>,
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub meta: crate::execution_meta::ExecutionMeta,
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
    pub id: i64,
    pub workflow_id: i64,
    pub execution_id: Option<i64>,
    pub agent: String,
    pub step: String,
    pub prompt: String,
    pub output: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    pub timestamp: DateTime<Utc>,
    pub total_tokens_used: i64,
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
    /// Number of LLM call rows (every attempt).
    pub llm_calls_count: i64,
}

/// The fields a conversation is created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewConversation {
    pub workflow_id: i64,
    pub execution_id: Option<i64>,
    pub agent: Agent,
    pub step: String,
    pub prompt: String,
    pub output: Option<String>,
    pub details: Value,
    pub timestamp: DateTime<Utc>,
}

/// A compact view of one call, listed with its conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LlmCallSummary {
    pub id: i64,
    pub model: String,
    pub status: LlmCallStatus,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub cost: i64,
    pub response_time_ms: i64,
    pub timestamp: DateTime<Utc>,
}

/// A conversation as `GET /workflows/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
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
    #[serde(flatten)]
    pub workflow: Workflow,
    pub conversations: Vec<ConversationDetail>,
    pub code_files: Vec<CodeFile>,
}

/// One LLM call attempt, with everything sent and spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LlmCall {
    pub id: i64,
    pub conversation_id: i64,
    pub execution_id: Option<i64>,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub max_tokens: Option<i64>,
    pub total_tokens_requested: Option<i64>,
    pub response_time_ms: i64,
    pub status: LlmCallStatus,
    pub error_code: Option<String>,
    pub truncated_sections: Vec<String>,
    pub prompt_hash: String,
    pub response_hash: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub budget_snapshot: Value,
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub cost: i64,
    pub timestamp: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request_data: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub response_data: Value,
}

/// The fields a call row is written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLlmCall {
    pub conversation_id: i64,
    pub execution_id: Option<i64>,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub max_tokens: Option<i64>,
    pub total_tokens_requested: Option<i64>,
    pub response_time_ms: i64,
    pub status: LlmCallStatus,
    pub error_code: Option<String>,
    pub truncated_sections: Vec<String>,
    pub prompt_hash: String,
    pub response_hash: Option<String>,
    pub budget_snapshot: Value,
    /// Nano-dollars.
    pub cost: i64,
    pub timestamp: DateTime<Utc>,
    pub request_data: Value,
    pub response_data: Value,
}

/// A reference from a message to a stored artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub uri: String,
    pub checksum: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: i64,
    pub conversation_id: i64,
    pub role: Role,
    pub content: String,
    pub artifacts: Vec<ArtifactRef>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub message_metadata: Value,
    pub created_at: DateTime<Utc>,
}

/// The fields a message is written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    pub conversation_id: i64,
    pub role: Role,
    pub content: String,
    pub artifacts: Vec<ArtifactRef>,
    pub message_metadata: Value,
    pub created_at: DateTime<Utc>,
}

/// A file produced by an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodeFile {
    pub id: i64,
    pub workflow_id: i64,
    pub conversation_id: Option<i64>,
    pub execution_id: Option<i64>,
    /// The base name of `path`, as the original client shows it.
    pub filename: String,
    /// The same as `path` (the original's name).
    pub file_path: String,
    pub path: String,
    pub language: Option<String>,
    pub content: String,
    pub checksum: String,
    pub created_at: DateTime<Utc>,
}

/// The fields a code file is written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCodeFile {
    pub workflow_id: i64,
    pub conversation_id: Option<i64>,
    pub execution_id: Option<i64>,
    pub path: String,
    pub language: Option<String>,
    pub content: String,
    pub checksum: String,
}

/// One entry of a workflow's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Increases per workflow, without gaps between committed events.
    pub id: i64,
    pub workflow_id: i64,
    pub execution_id: Option<i64>,
    #[serde(rename = "type")]
    pub event_type: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
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

    pub fn is(&self, kind: EventKind) -> bool {
        self.event_type == kind.as_str()
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paged<T> {
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
    pub items: Vec<T>,
}

/// A page of a conversation's calls, with totals over the whole conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LlmCallPage {
    pub conversation_id: i64,
    pub total_tokens_used: i64,
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
    pub page: u32,
    pub page_size: u32,
    /// Calls matching the filters.
    pub total: i64,
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
