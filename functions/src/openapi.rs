//! The OpenAPI description (`/openapi.json`), Swagger UI (`/docs`, its
//! assets vendored into the binary: no outside network), and the index of
//! endpoints (`GET /`) made from the same description.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::ToSchema;
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
        index,
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
        Endpoint,
        EndpointIndex,
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

/// `/openapi.json`, `/docs` and `GET /`.
pub fn router() -> Router<AppState> {
    Router::<AppState>::from(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .route("/", get(index))
}

/// One route of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub path: String,
    pub method: String,
    pub description: String,
}

/// `GET /`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointIndex {
    pub name: &'static str,
    pub version: &'static str,
    pub endpoints: Vec<Endpoint>,
}

/// Every route of the OpenAPI description, with its summary.
pub fn endpoints() -> Vec<Endpoint> {
    let doc = crate::openapi::ApiDoc::openapi();
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                out.push(Endpoint {
                    path: path.clone(),
                    method: method.to_owned(),
                    description: op
                        .summary
                        .clone()
                        .or_else(|| op.description.clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    out
}

#[utoipa::path(get, path = "/", tag = "health",
    responses((status = 200, description = "The endpoints of this API", body = EndpointIndex)))]
pub async fn index() -> Json<EndpointIndex> {
    Json(EndpointIndex {
        name: "AI Team",
        version: env!("CARGO_PKG_VERSION"),
        endpoints: endpoints(),
    })
}
