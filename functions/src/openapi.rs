//! The OpenAPI description (`/openapi.json`) and Swagger UI (`/docs`),
//! whose assets are vendored into the binary: no outside network.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{
    agents, conversations, events, executions, health, jira, pr, review, status, webhooks,
    workflows,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "AI Team", description = "A team of AI agents that implements a user story: workflows, executions, conversations and every LLM call, tracked and governed."),
    paths(
        health::health,
        agents::index,
        agents::list_agents,
        agents::get_agent,
        status::workflow_status,
        status::running_workflows,
        status::reconcile_workflow,
        status::resume_workflow,
        review::conversation_review,
        review::conversation_review_get,
        executions::compare_executions_query,
        workflows::list_workflows,
        workflows::create_workflow,
        workflows::get_workflow,
        workflows::delete_workflow,
        workflows::execute_workflow,
        workflows::compare_workflows,
        executions::list_executions,
        executions::get_execution,
        executions::start_execution,
        executions::resume_execution,
        executions::cancel_execution,
        executions::compare_executions,
        conversations::list_llm_calls,
        conversations::list_messages,
        jira::create_from_jira,
        pr::get_pull_request,
        pr::list_checks,
        pr::list_diffs,
        pr::list_artifacts,
        pr::refresh_pr,
        pr::refresh_diffs,
        pr::refresh_artifacts,
        webhooks::github_webhook,
        events::status_stream,
        events::event_stream,
        events::websocket,
    ),
    components(schemas(
        ai_team_core::views::WorkflowView,
        ai_team_core::views::WorkflowDetailView,
        ai_team_core::views::ConversationView,
        ai_team_core::views::Interaction,
        ai_team_core::views::StatusInfo,
        ai_team_core::models::WorkflowStatus,
        ai_team_core::models::ExecutionStatus,
        ai_team_core::models::LlmCallStatus,
        ai_team_core::models::Role,
        ai_team_core::models::CodeFile,
        ai_team_core::models::LlmCallSummary,
        ai_team_core::models::ArtifactRef,
        ai_team_core::conversation_review::ConversationReview,
        ai_team_core::conversation_review::Savings,
        crate::routes::ValidationErrorBody,
        crate::routes::FieldErrorBody,
        crate::routes::workflows::CreateWorkflow,
        crate::routes::agents::AgentInfo,
        crate::routes::agents::AgentDetail,
        crate::routes::agents::Endpoint,
        crate::routes::agents::EndpointIndex,
        crate::routes::status::Reconciled,
        crate::routes::status::Resumed,
        crate::routes::executions::ExecutionComparison,
        crate::routes::executions::ExecutionTotals,
        crate::routes::executions::ExecutionDeltas,
        ai_team_core::models::Execution,
        ai_team_core::models::Conversation,
        ai_team_core::models::LlmCall,
        ai_team_core::models::LlmCallPage,
        ai_team_core::models::Message,
        ai_team_core::models::Event,
        crate::routes::ErrorBody,
        crate::routes::MessageBody,
        crate::routes::executions::ResumeBody,
        crate::routes::jira::FromJiraCreated,
        crate::routes::jira::FromJiraFailed,
        crate::routes::pr::RefreshAccepted,
        ai_team_core::delivery::PullRequest,
        ai_team_core::delivery::Check,
        ai_team_core::delivery::CheckKind,
        ai_team_core::delivery::DiffFile,
        ai_team_core::delivery::DiffStatus,
        ai_team_core::delivery::Artifact,
    )),
    tags(
        (name = "workflows"), (name = "agents"), (name = "executions"), (name = "conversations"), (name = "pr"), (name = "webhooks"), (name = "health"), (name = "events"),
    )
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
