//! Rows as the database returns them, and their conversion into the core
//! models. JSON columns are TEXT in both databases; parsing them here
//! keeps the SQL identical.

use ai_team_core::StoreError;
use ai_team_core::execution_meta::ExecutionMeta;
use ai_team_core::ledger::UnreadableCheckpoint;
use ai_team_core::models::{
    CodeFile, Conversation, Event, Execution, ExecutionStatus, LlmCall, LlmCallStatus,
    LlmCallSummary, Message, Role, Workflow, WorkflowStatus,
};
use ai_team_core::steps::Step;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

fn json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Unknown(anyhow::anyhow!("column {column} holds bad JSON: {e}")))
}

pub(super) fn enum_value<T>(
    column: &str,
    raw: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(raw).ok_or_else(|| StoreError::Unknown(anyhow::anyhow!("column {column} holds {raw:?}")))
}

pub const WORKFLOW_COLUMNS: &str = "id, name, jira_story_id, status, repository_url, description, \
    jira_story_title, target_branch, test_command, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub struct WorkflowRow {
    id: i64,
    name: String,
    jira_story_id: String,
    status: String,
    repository_url: Option<String>,
    description: Option<String>,
    jira_story_title: Option<String>,
    target_branch: Option<String>,
    test_command: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<WorkflowRow> for Workflow {
    type Error = StoreError;
    fn try_from(r: WorkflowRow) -> Result<Self, StoreError> {
        Ok(Workflow {
            id: r.id,
            name: r.name,
            jira_story_id: r.jira_story_id,
            status: enum_value("workflows.status", &r.status, WorkflowStatus::parse)?,
            repository_url: r.repository_url,
            description: r.description,
            jira_story_title: r.jira_story_title,
            target_branch: r.target_branch,
            test_command: r.test_command,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub const EXECUTION_COLUMNS: &str = "id, workflow_id, status, started_at, finished_at, \
    total_calls, prompt_tokens, completion_tokens, total_tokens, total_cost_nanos, \
    total_latency_ms, models, error, meta, created_at, heartbeat_at";

#[derive(sqlx::FromRow)]
pub struct ExecutionRow {
    id: i64,
    workflow_id: i64,
    status: String,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    total_calls: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    total_cost_nanos: i64,
    total_latency_ms: i64,
    models: String,
    error: Option<String>,
    meta: String,
    created_at: DateTime<Utc>,
    heartbeat_at: Option<DateTime<Utc>>,
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = StoreError;
    fn try_from(r: ExecutionRow) -> Result<Self, StoreError> {
        let avg_latency_ms = if r.total_calls > 0 {
            r.total_latency_ms as f64 / r.total_calls as f64
        } else {
            0.0
        };
        Ok(Execution {
            id: r.id,
            workflow_id: r.workflow_id,
            status: enum_value("executions.status", &r.status, ExecutionStatus::parse)?,
            started_at: r.started_at,
            finished_at: r.finished_at,
            total_calls: r.total_calls,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            total_cost: r.total_cost_nanos,
            avg_latency_ms,
            models: json("executions.models", &r.models)?,
            error: r.error,
            meta: ExecutionMeta::from_value(json("executions.meta", &r.meta)?),
            created_at: r.created_at,
            last_heartbeat_at: r.heartbeat_at,
        })
    }
}

pub const CONVERSATION_COLUMNS: &str = "id, workflow_id, execution_id, agent, step, prompt, \
    output, details, timestamp, total_tokens_used, total_cost_nanos, call_count";

#[derive(sqlx::FromRow)]
pub struct ConversationRow {
    id: i64,
    workflow_id: i64,
    execution_id: Option<i64>,
    agent: String,
    step: String,
    prompt: String,
    output: Option<String>,
    details: String,
    timestamp: DateTime<Utc>,
    total_tokens_used: i64,
    total_cost_nanos: i64,
    call_count: i64,
}

impl TryFrom<ConversationRow> for Conversation {
    type Error = StoreError;
    fn try_from(r: ConversationRow) -> Result<Self, StoreError> {
        Ok(Conversation {
            id: r.id,
            workflow_id: r.workflow_id,
            execution_id: r.execution_id,
            agent: r.agent,
            step: r.step,
            prompt: r.prompt,
            output: r.output,
            details: json("conversations.details", &r.details)?,
            timestamp: r.timestamp,
            total_tokens_used: r.total_tokens_used,
            total_cost: r.total_cost_nanos,
            llm_calls_count: r.call_count,
        })
    }
}

pub const MESSAGE_COLUMNS: &str =
    "id, conversation_id, role, content, artifacts, message_metadata, created_at";

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    id: i64,
    conversation_id: i64,
    role: String,
    content: String,
    artifacts: String,
    message_metadata: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Message {
            id: r.id,
            conversation_id: r.conversation_id,
            role: enum_value("messages.role", &r.role, Role::parse)?,
            content: r.content,
            artifacts: json("messages.artifacts", &r.artifacts)?,
            message_metadata: json("messages.message_metadata", &r.message_metadata)?,
            created_at: r.created_at,
        })
    }
}

pub const LLM_CALL_COLUMNS: &str = "id, conversation_id, execution_id, model, prompt_tokens, \
    completion_tokens, total_tokens, max_tokens, total_tokens_requested, response_time_ms, \
    status, error_code, truncated_sections, prompt_hash, response_hash, budget_snapshot, \
    cost_nanos, timestamp, request_data, response_data";

#[derive(sqlx::FromRow)]
pub struct LlmCallRow {
    id: i64,
    conversation_id: i64,
    execution_id: Option<i64>,
    model: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    max_tokens: Option<i64>,
    total_tokens_requested: Option<i64>,
    response_time_ms: i64,
    status: String,
    error_code: Option<String>,
    truncated_sections: String,
    prompt_hash: String,
    response_hash: Option<String>,
    budget_snapshot: String,
    cost_nanos: i64,
    timestamp: DateTime<Utc>,
    request_data: String,
    response_data: String,
}

impl TryFrom<LlmCallRow> for LlmCall {
    type Error = StoreError;
    fn try_from(r: LlmCallRow) -> Result<Self, StoreError> {
        Ok(LlmCall {
            id: r.id,
            conversation_id: r.conversation_id,
            execution_id: r.execution_id,
            model: r.model,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            max_tokens: r.max_tokens,
            total_tokens_requested: r.total_tokens_requested,
            response_time_ms: r.response_time_ms,
            status: enum_value("llm_calls.status", &r.status, LlmCallStatus::parse)?,
            error_code: r.error_code,
            truncated_sections: json("llm_calls.truncated_sections", &r.truncated_sections)?,
            prompt_hash: r.prompt_hash,
            response_hash: r.response_hash,
            budget_snapshot: json("llm_calls.budget_snapshot", &r.budget_snapshot)?,
            cost: r.cost_nanos,
            timestamp: r.timestamp,
            request_data: json("llm_calls.request_data", &r.request_data)?,
            response_data: json("llm_calls.response_data", &r.response_data)?,
        })
    }
}

pub const CALL_SUMMARY_COLUMNS: &str = "id, model, status, prompt_tokens, completion_tokens, \
    total_tokens, cost_nanos, response_time_ms, timestamp";

#[derive(sqlx::FromRow)]
pub struct CallSummaryRow {
    id: i64,
    model: String,
    status: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    cost_nanos: i64,
    response_time_ms: i64,
    timestamp: DateTime<Utc>,
}

impl TryFrom<CallSummaryRow> for LlmCallSummary {
    type Error = StoreError;
    fn try_from(r: CallSummaryRow) -> Result<Self, StoreError> {
        Ok(LlmCallSummary {
            id: r.id,
            model: r.model,
            status: enum_value("llm_calls.status", &r.status, LlmCallStatus::parse)?,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            cost: r.cost_nanos,
            response_time_ms: r.response_time_ms,
            timestamp: r.timestamp,
        })
    }
}

pub const CODE_FILE_COLUMNS: &str = "id, workflow_id, conversation_id, execution_id, path, \
    language, content, checksum, created_at";

#[derive(sqlx::FromRow)]
pub struct CodeFileRow {
    id: i64,
    workflow_id: i64,
    conversation_id: Option<i64>,
    execution_id: Option<i64>,
    path: String,
    language: Option<String>,
    content: String,
    checksum: String,
    created_at: DateTime<Utc>,
}

impl From<CodeFileRow> for CodeFile {
    fn from(r: CodeFileRow) -> Self {
        CodeFile {
            id: r.id,
            workflow_id: r.workflow_id,
            conversation_id: r.conversation_id,
            execution_id: r.execution_id,
            filename: r.path.rsplit('/').next().unwrap_or(&r.path).to_owned(),
            file_path: r.path.clone(),
            path: r.path,
            language: r.language,
            content: r.content,
            checksum: r.checksum,
            created_at: r.created_at,
        }
    }
}

pub const EVENT_COLUMNS: &str = "id, workflow_id, execution_id, type, data, created_at";

#[derive(sqlx::FromRow)]
pub struct EventRow {
    id: i64,
    workflow_id: i64,
    execution_id: Option<i64>,
    #[sqlx(rename = "type")]
    event_type: String,
    data: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Self, StoreError> {
        Ok(Event {
            id: r.id,
            workflow_id: r.workflow_id,
            execution_id: r.execution_id,
            event_type: r.event_type,
            data: json("events.data", &r.data)?,
            created_at: r.created_at,
        })
    }
}

/// Converts every row, failing on the first bad one.
pub fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

pub const CHECKPOINT_COLUMNS: &str = "execution_id, step, summary, budgets, created_at";

#[derive(sqlx::FromRow)]
pub struct CheckpointRow {
    execution_id: i64,
    step: String,
    summary: String,
    budgets: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<CheckpointRow> for ai_team_core::ledger::Checkpoint {
    type Error = StoreError;
    /// A state this version cannot read is kept as the checkpoint's error
    /// (the engine ends the run with it), not a store failure that a
    /// worker would retry; the `artifact_index` column is the state's
    /// files again, for SQL readers, and is not read back.
    fn try_from(r: CheckpointRow) -> Result<Self, StoreError> {
        let step = enum_value("checkpoints.step", &r.step, Step::parse)?;
        Ok(ai_team_core::ledger::Checkpoint {
            execution_id: r.execution_id,
            step,
            state: serde_json::from_str(&r.summary).map_err(|e| UnreadableCheckpoint {
                step,
                reason: e.to_string(),
            }),
            budgets: serde_json::from_str(&r.budgets).ok(),
            created_at: r.created_at,
        })
    }
}
