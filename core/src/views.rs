//! What the API shows of a workflow, in the shapes the original service's
//! web client reads (API.md "Workflows"): the stored records combined with
//! the latest execution (status, heartbeat) and the team (agent names).
//! The shaping is pure; `current_status` is the one read, shared by the
//! routes and the streams.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::agents::Team;
use crate::ledger::EventKind;
use crate::models::{
    Agent, CodeFile, ConversationDetail, Event, Execution, ExecutionStatus, LlmCallSummary,
    Message, Workflow, WorkflowDetail, WorkflowStatus,
};
use crate::money::as_dollars;

/// Where a workflow stands, as the original's status service answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusInfo {
    /// The workflow's row id.
    pub workflow_id: i64,
    /// The workflow's status, following its latest execution.
    pub status: WorkflowStatus,
    /// Whether the status is completed, failed or cancelled; `isTerminal` on the wire.
    #[serde(rename = "isTerminal")]
    pub is_terminal: bool,
    /// When the latest execution started; `None` without one.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest execution finished; `None` until it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// The latest execution's error, if it failed.
    pub error: Option<String>,
    /// The latest execution worker's last beat, if any.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Whether a running execution's worker has been silent for longer than the heartbeat timeout.
    pub heartbeat_stale: bool,
    /// A readable line of where the workflow stands (`Not started`, `Execution 3 is running`, ...).
    pub message: String,
}

/// A workflow's status follows its latest execution.
pub fn workflow_status(stored: WorkflowStatus, latest: Option<&Execution>) -> WorkflowStatus {
    match latest.map(|e| e.status) {
        None => stored,
        Some(ExecutionStatus::Pending) => WorkflowStatus::Pending,
        Some(ExecutionStatus::Running) => WorkflowStatus::Running,
        Some(ExecutionStatus::Completed) => WorkflowStatus::Completed,
        Some(ExecutionStatus::Failed) => WorkflowStatus::Failed,
        Some(ExecutionStatus::Cancelled) => WorkflowStatus::Cancelled,
    }
}

/// The status info of `workflow` whose newest execution is `latest`; a
/// running execution whose worker has not beaten for `heartbeat_timeout`
/// is stale.
pub fn status_info(
    workflow: &Workflow,
    latest: Option<&Execution>,
    now: DateTime<Utc>,
    heartbeat_timeout: std::time::Duration,
) -> StatusInfo {
    let status = workflow_status(workflow.status, latest);
    let is_terminal = matches!(
        status,
        WorkflowStatus::Completed | WorkflowStatus::Failed | WorkflowStatus::Cancelled
    );
    let last_heartbeat_at = latest.and_then(|e| e.last_heartbeat_at);
    let timeout = chrono::Duration::from_std(heartbeat_timeout).unwrap_or(chrono::Duration::MAX);
    let heartbeat_stale = status == WorkflowStatus::Running
        && last_heartbeat_at.is_none_or(|beat| now.signed_duration_since(beat) > timeout);
    let message = match (status, latest) {
        (_, None) => "Not started".to_owned(),
        (WorkflowStatus::Running, Some(e)) if heartbeat_stale => format!(
            "Execution {} is running but its worker has not reported for over {} s",
            e.id,
            heartbeat_timeout.as_secs()
        ),
        (WorkflowStatus::Failed, Some(e)) => e
            .error
            .clone()
            .unwrap_or_else(|| format!("Execution {} failed", e.id)),
        (s, Some(e)) => format!("Execution {} is {s}", e.id),
    };
    StatusInfo {
        workflow_id: workflow.id,
        status,
        is_terminal,
        started_at: latest.and_then(|e| e.started_at),
        finished_at: latest.and_then(|e| e.finished_at),
        error: latest.and_then(|e| e.error.clone()),
        last_heartbeat_at,
        heartbeat_stale,
        message,
    }
}

/// How long a running execution's worker may stay silent where no
/// configuration says (`HEARTBEAT_TIMEOUT_SECONDS`' default).
pub const DEFAULT_HEARTBEAT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The workflow's status info now, from its record and newest execution.
pub async fn current_status(
    store: &dyn crate::store::Store,
    workflow_id: i64,
    heartbeat_timeout: std::time::Duration,
) -> crate::error::StoreResult<StatusInfo> {
    let workflow = store.get_workflow(workflow_id).await?;
    let latest = store.latest_executions(&[workflow_id]).await?;
    Ok(status_info(
        &workflow,
        latest.first(),
        Utc::now(),
        heartbeat_timeout,
    ))
}

/// Whether two status infos differ in anything a client shows.
pub fn status_changed(a: &StatusInfo, b: &StatusInfo) -> bool {
    (
        a.status,
        a.is_terminal,
        a.heartbeat_stale,
        &a.error,
        a.finished_at,
        a.started_at,
    ) != (
        b.status,
        b.is_terminal,
        b.heartbeat_stale,
        &b.error,
        b.finished_at,
        b.started_at,
    )
}

/// A workflow as every route answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowView {
    /// The workflow's row id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The story's key in the ticket system.
    pub jira_story_id: String,
    /// The story's title (see `Workflow::story_title`).
    pub jira_story_title: String,
    /// The same text as `description`.
    pub jira_story_description: Option<String>,
    /// The story's description, as given at creation.
    pub description: Option<String>,
    /// Status, following the latest execution.
    pub status: WorkflowStatus,
    /// The repository the team works on, if any.
    pub repository_url: Option<String>,
    /// The branch the pull request targets, if set.
    pub target_branch: Option<String>,
    /// Command that runs the repository's tests, if set.
    pub test_command: Option<String>,
    /// When the workflow was created.
    pub created_at: DateTime<Utc>,
    /// When the workflow last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether the status is terminal; `isTerminal` on the wire.
    #[serde(rename = "isTerminal")]
    pub is_terminal: bool,
    /// When the latest execution started, if any.
    pub started_at: Option<DateTime<Utc>>,
    /// When the latest execution finished, if it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// The latest execution's error, if it failed.
    pub error: Option<String>,
    /// The latest execution worker's last beat, if any.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Whether a running execution's worker has gone silent (see `StatusInfo`).
    pub heartbeat_stale: bool,
}

impl WorkflowView {
    /// The view of `workflow` with its current `status`.
    pub fn new(workflow: &Workflow, status: &StatusInfo) -> Self {
        Self {
            id: workflow.id,
            name: workflow.name.clone(),
            jira_story_id: workflow.jira_story_id.clone(),
            jira_story_title: workflow.story_title(),
            jira_story_description: workflow.description.clone(),
            description: workflow.description.clone(),
            status: status.status,
            repository_url: workflow.repository_url.clone(),
            target_branch: workflow.target_branch.clone(),
            test_command: workflow.test_command.clone(),
            created_at: workflow.created_at,
            updated_at: workflow.updated_at,
            is_terminal: status.is_terminal,
            started_at: status.started_at,
            finished_at: status.finished_at,
            error: status.error.clone(),
            last_heartbeat_at: status.last_heartbeat_at,
            heartbeat_stale: status.heartbeat_stale,
        }
    }
}

/// An escalation or a collaboration between agents, as the detail page lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interaction {
    /// Display name of the agent raising it.
    pub from_agent: String,
    /// Display name of the agent (or `Operator`) it goes to.
    pub to_agent: String,
    /// Why (escalations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What is asked (collaborations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    /// `open` for escalations, `sent` for collaborations.
    pub status: String,
    /// The step it happened at.
    pub step: String,
    /// Row id of the event it comes from.
    pub event_id: i64,
}

/// A conversation as `GET /workflows/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationView {
    /// The conversation's row id.
    pub id: i64,
    /// The workflow it belongs to.
    pub workflow_id: i64,
    /// The execution that produced it, if any.
    pub execution_id: Option<i64>,
    /// The step's wire name.
    pub step: String,
    /// The role's display name ("Product Manager").
    pub agent: String,
    /// The role's id (`pm`).
    pub agent_id: String,
    /// `completed` once it has an output, else `running`.
    pub status: String,
    /// A readable line of what the step did.
    pub details: String,
    /// The step's structured record (hashes, usage, files, verdict…).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    /// The prompt sent to the agent.
    pub prompt: String,
    /// The agent's answer; `None` while running.
    pub output: Option<String>,
    /// When the conversation was recorded.
    pub timestamp: DateTime<Utc>,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
    /// Files it produced.
    pub code_files: Vec<CodeFile>,
    /// Its most recent calls (see `models::CALL_SUMMARY_LIMIT`).
    pub llm_calls: Vec<LlmCallSummary>,
    /// Number of its LLM call rows (every attempt).
    pub llm_calls_count: i64,
    /// Escalations to the operator raised at its step.
    pub escalations: Vec<Interaction>,
    /// Hand-offs between agents at its step.
    pub collaborations: Vec<Interaction>,
    /// Tokens used by its calls.
    pub total_tokens_used: i64,
    /// Cost of its calls: nano-dollars in memory, dollars on the wire.
    #[serde(with = "as_dollars")]
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub total_cost: i64,
}

/// A workflow with everything produced under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowDetailView {
    /// The workflow's view, flattened into this object on the wire.
    #[serde(flatten)]
    pub workflow: WorkflowView,
    /// Its conversations.
    pub conversations: Vec<ConversationView>,
    /// Every file produced under the workflow.
    pub code_files: Vec<CodeFile>,
}

/// The display name of a role id, from the team (the id itself when the
/// team does not name it).
pub fn agent_name(team: &Team, agent: &str) -> String {
    Agent::parse(agent)
        .and_then(|a| team.role(a))
        .map_or_else(|| agent.to_owned(), |r| r.name.clone())
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// The escalation and collaboration events as interactions of the step
/// they happened at.
fn interaction(team: &Team, e: &Event) -> Option<Interaction> {
    let d = &e.data;
    let step = text(&d["step"]).unwrap_or_default();
    match e.kind()? {
        EventKind::Escalation => Some(Interaction {
            from_agent: agent_name(team, d["agent"].as_str().unwrap_or("")),
            to_agent: "Operator".into(),
            reason: Some(
                text(&d["message"])
                    .or_else(|| text(&d["reason"]))
                    .unwrap_or_default(),
            ),
            request_type: None,
            status: "open".into(),
            step,
            event_id: e.id,
        }),
        EventKind::Collaboration => Some(Interaction {
            from_agent: agent_name(team, d["from"].as_str().unwrap_or("")),
            to_agent: agent_name(team, d["to"].as_str().unwrap_or("")),
            reason: None,
            request_type: Some("changes_requested".into()),
            status: "sent".into(),
            step,
            event_id: e.id,
        }),
        _ => None,
    }
}

/// One line of what a step did, from its structured record.
pub fn details_line(details: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(u) = details.get("usage") {
        parts.push(format!(
            "{} prompt + {} completion tokens",
            u["prompt_tokens"].as_i64().unwrap_or(0),
            u["completion_tokens"].as_i64().unwrap_or(0)
        ));
    }
    if let Some(c) = details["cost"].as_f64() {
        parts.push(format!("${c:.6}"));
    }
    if details["cached"].as_bool() == Some(true) {
        parts.push("stored response reused".into());
    }
    if let Some(files) = details["files"].as_array().filter(|f| !f.is_empty()) {
        let names: Vec<&str> = files.iter().filter_map(Value::as_str).collect();
        parts.push(format!("files: {}", names.join(", ")));
    }
    if let Some(n) = details["acceptance_criteria"].as_array() {
        parts.push(format!("{} acceptance criteria", n.len()));
    }
    if let Some(v) = details.get("verdict") {
        parts.push(if v["approved"].as_bool() == Some(true) {
            "approved".to_owned()
        } else {
            "changes requested".to_owned()
        });
    }
    if let Some(cut) = details["truncated_sections"]
        .as_array()
        .filter(|c| !c.is_empty())
    {
        parts.push(format!("prompt shrunk ({} section(s) cut)", cut.len()));
    }
    parts.join("; ")
}

/// The detail page's view: conversations with their agents' names, their
/// messages, files, calls and interactions.
pub fn workflow_detail(
    detail: WorkflowDetail,
    status: &StatusInfo,
    team: &Team,
    interactions: &[Event],
) -> WorkflowDetailView {
    let workflow = WorkflowView::new(&detail.workflow, status);
    let conversations = detail
        .conversations
        .into_iter()
        .map(|c| conversation_view(c, team, interactions))
        .collect();
    WorkflowDetailView {
        workflow,
        conversations,
        code_files: detail.code_files,
    }
}

fn conversation_view(
    detail: ConversationDetail,
    team: &Team,
    interactions: &[Event],
) -> ConversationView {
    let c = detail.conversation;
    let mine = |kind: EventKind| -> Vec<Interaction> {
        interactions
            .iter()
            .filter(|e| {
                e.is(kind)
                    && e.execution_id == c.execution_id
                    && e.data["step"].as_str() == Some(c.step.as_str())
            })
            .filter_map(|e| interaction(team, e))
            .collect()
    };
    ConversationView {
        id: c.id,
        workflow_id: c.workflow_id,
        execution_id: c.execution_id,
        step: c.step.clone(),
        agent: agent_name(team, &c.agent),
        agent_id: c.agent.clone(),
        status: if c.output.is_some() {
            "completed".into()
        } else {
            "running".into()
        },
        details: details_line(&c.details),
        escalations: mine(EventKind::Escalation),
        collaborations: mine(EventKind::Collaboration),
        metadata: c.details,
        prompt: c.prompt,
        output: c.output,
        timestamp: c.timestamp,
        messages: detail.messages,
        code_files: detail.code_files,
        llm_calls: detail.llm_calls,
        llm_calls_count: c.llm_calls_count,
        total_tokens_used: c.total_tokens_used,
        total_cost: c.total_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn workflow() -> Workflow {
        let t = Utc::now();
        Workflow {
            id: 7,
            name: "NEG-701: Export".into(),
            jira_story_id: "NEG-701".into(),
            status: WorkflowStatus::Pending,
            repository_url: None,
            description: Some("text".into()),
            jira_story_title: None,
            target_branch: None,
            test_command: None,
            created_at: t,
            updated_at: t,
        }
    }

    fn execution(status: ExecutionStatus, beat_secs_ago: i64) -> Execution {
        let now = Utc::now();
        Execution {
            id: 3,
            workflow_id: 7,
            status,
            started_at: Some(now),
            finished_at: None,
            total_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            total_cost: 0,
            avg_latency_ms: 0.0,
            models: vec![],
            error: None,
            meta: Default::default(),
            created_at: now,
            last_heartbeat_at: Some(now - chrono::Duration::seconds(beat_secs_ago)),
        }
    }

    #[test]
    fn status_follows_the_latest_execution_and_says_when_it_ended() {
        let w = workflow();
        let s = status_info(&w, None, Utc::now(), Duration::from_secs(120));
        assert_eq!(
            (s.status, s.is_terminal, s.heartbeat_stale),
            (WorkflowStatus::Pending, false, false)
        );
        let e = execution(ExecutionStatus::Cancelled, 0);
        let s = status_info(&w, Some(&e), Utc::now(), Duration::from_secs(120));
        assert_eq!((s.status, s.is_terminal), (WorkflowStatus::Cancelled, true));
    }

    #[test]
    fn a_running_execution_without_recent_beats_is_stale() {
        let w = workflow();
        let fresh = execution(ExecutionStatus::Running, 5);
        let old = execution(ExecutionStatus::Running, 500);
        let timeout = Duration::from_secs(120);
        assert!(!status_info(&w, Some(&fresh), Utc::now(), timeout).heartbeat_stale);
        let s = status_info(&w, Some(&old), Utc::now(), timeout);
        assert!(s.heartbeat_stale && !s.is_terminal);
        assert!(s.message.contains("has not reported"));
    }

    #[test]
    fn the_title_comes_from_the_form_or_from_the_name() {
        let mut w = workflow();
        assert_eq!(w.story_title(), "Export");
        w.jira_story_title = Some("Export CSV".into());
        let v = WorkflowView::new(&w, &status_info(&w, None, Utc::now(), Duration::ZERO));
        assert_eq!(v.jira_story_title, "Export CSV");
        assert_eq!(v.jira_story_description.as_deref(), Some("text"));
    }

    #[test]
    fn agents_are_shown_by_their_team_names() {
        let team = Team::builtin();
        assert_eq!(agent_name(&team, "pm"), "Product Manager");
        assert_eq!(agent_name(&team, "tester"), "QA Tester");
        assert_eq!(agent_name(&team, "nobody"), "nobody");
    }
}
