//! The OpenAPI description (`/openapi.json`) and Swagger UI (`/docs`),
//! whose assets are vendored into the binary: no outside network.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{conversations, events, executions, health, jira, pr, webhooks, workflows};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "AI Team", description = "A team of AI agents that implements a user story: workflows, executions, conversations and every LLM call, tracked and governed."),
    paths(
        health::health,
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
        ai_team_core::models::Workflow,
        ai_team_core::models::WorkflowDetail,
        ai_team_core::models::Execution,
        ai_team_core::models::Conversation,
        ai_team_core::models::ConversationDetail,
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
        (name = "workflows"), (name = "executions"), (name = "conversations"), (name = "pr"), (name = "webhooks"), (name = "health"), (name = "events"),
    )
)]
pub struct ApiDoc;

/// `/openapi.json` and `/docs`.
pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}
