//! `POST /workflows/from-jira/{story_id}`: the story fetched from the
//! ticket source and the workflow created from it, answering with the
//! original's exact shapes — `{"message", "workflow_id"}` on success and
//! for a duplicate, `{"message": "Could not retrieve story … from Jira"}`
//! with 404 (not found) or 500 (Jira failing, unreachable, or not set up).

use ai_team_core::query::NewWorkflow;
use ai_team_core::ticket::TicketError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::routes::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/workflows/from-jira/{story_id}", post(create_from_jira))
}

/// The success answer (also for a duplicate).
#[derive(Debug, Serialize, ToSchema)]
pub struct FromJiraCreated {
    pub message: String,
    pub workflow_id: i64,
}

/// The failure answer: `message`, not `detail`, as the original.
#[derive(Debug, Serialize, ToSchema)]
pub struct FromJiraFailed {
    pub message: String,
}

fn created(status: StatusCode, story_id: &str, workflow_id: i64) -> Response {
    (
        status,
        Json(json!({
            "message": format!("Workflow created successfully for {story_id}"),
            "workflow_id": workflow_id,
        })),
    )
        .into_response()
}

fn failed(status: StatusCode, story_id: &str) -> Response {
    (
        status,
        Json(json!({"message": format!("Could not retrieve story {story_id} from Jira")})),
    )
        .into_response()
}

#[utoipa::path(post, path = "/workflows/from-jira/{story_id}", tag = "workflows",
    params(("story_id" = String, Path, description = "The Jira issue key, e.g. SHOP-12")),
    responses((status = 201, description = "Created from the Jira story", body = FromJiraCreated),
              (status = 200, description = "A workflow for this story already existed; its id", body = FromJiraCreated),
              (status = 404, description = "Jira has no such story", body = FromJiraFailed),
              (status = 500, description = "Jira failed or cannot be reached", body = FromJiraFailed),
              (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip(state))]
pub async fn create_from_jira(
    State(state): State<AppState>,
    Path(story_id): Path<String>,
) -> ApiResult<Response> {
    let story_id = story_id.trim().to_owned();
    if let Some(existing) = state.store.find_workflow_by_story(&story_id).await? {
        return Ok(created(StatusCode::OK, &story_id, existing.id));
    }
    let Some(tickets) = &state.tickets else {
        tracing::error!(
            story = %story_id,
            "no ticket source: set NEGISHI_JIRA_BASE_URL, NEGISHI_JIRA_EMAIL and NEGISHI_JIRA_API_TOKEN (or AI_TEAM_STORIES_DIR)"
        );
        return Ok(failed(StatusCode::INTERNAL_SERVER_ERROR, &story_id));
    };
    let ticket = match tickets.fetch(&story_id).await {
        Ok(t) => t,
        Err(TicketError::NotFound(_) | TicketError::InvalidKey(_)) => {
            tracing::info!(story = %story_id, source = tickets.kind(), "story not found");
            return Ok(failed(StatusCode::NOT_FOUND, &story_id));
        }
        Err(TicketError::Unavailable(detail)) => {
            tracing::warn!(story = %story_id, source = tickets.kind(), error = %detail, "ticket source failed");
            return Ok(failed(StatusCode::INTERNAL_SERVER_ERROR, &story_id));
        }
    };
    let name: String = ticket.workflow_name().chars().take(500).collect();
    let Ok(new) = NewWorkflow::parse(&name, &story_id, None, Some(&ticket.story_text())) else {
        tracing::warn!(story = %story_id, "the story cannot make a workflow (empty summary?)");
        return Ok(failed(StatusCode::INTERNAL_SERVER_ERROR, &story_id));
    };
    let new = if state.config.redact_sensitive {
        new.redacted()
    } else {
        new
    };
    let workflow = state.store.create_workflow(&new).await?;
    let status = if workflow.is_new() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let workflow = workflow.into_inner();
    if status == StatusCode::CREATED {
        // On the workflow's stream (and so in the log) from its first moment.
        let event = ai_team_core::WorkflowEvent::StoryImported {
            source: tickets.kind(),
            story: story_id.clone(),
            url: ticket.url.clone(),
        }
        .into();
        state
            .store
            .append_events(workflow.id, None, &[event])
            .await?;
    }
    Ok(created(status, &story_id, workflow.id))
}
