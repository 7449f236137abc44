//! `POST` (and `GET`) `/workflows/{id}/conversation-review`: the review
//! of a workflow's conversations, computed from its records
//! (`ai_team_core::conversation_review`). No model is asked: every line
//! comes from a recorded call, conversation or verdict.

use ai_team_core::conversation_review::{self, ConversationFacts, ConversationReview};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::ApiResult;
use crate::extract::Id;
use crate::routes::{ErrorBody, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/workflows/{workflow_id}/conversation-review",
        get(conversation_review_get).post(conversation_review),
    )
}

async fn reviewed(state: &AppState, id: i64) -> ApiResult<ConversationReview> {
    let detail = state.store.workflow_detail(id).await?;
    let calls = state.store.call_facts(id, None).await?;
    let conversations: Vec<ConversationFacts> = detail
        .conversations
        .iter()
        .map(|c| ConversationFacts {
            step: c.conversation.step.clone(),
            agent: c.conversation.agent.clone(),
            details: c.conversation.details.clone(),
        })
        .collect();
    Ok(conversation_review::review(id, &calls, &conversations))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/conversation-review", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = ConversationReview), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn conversation_review(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<ConversationReview>> {
    Ok(Json(reviewed(&state, id).await?))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/conversation-review", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = ConversationReview), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn conversation_review_get(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<ConversationReview>> {
    Ok(Json(reviewed(&state, id).await?))
}
