//! A workflow's executions.

use ai_team_core::models::Execution;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Ids2, QueryMap};
use crate::routes::ErrorBody;
use crate::routes::workflows::{engine_unavailable, list_response, optional_page};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows/{workflow_id}/executions", get(list_executions))
        .route(
            "/workflows/{workflow_id}/executions/start",
            post(start_execution),
        )
        .route(
            "/workflows/{workflow_id}/executions/{execution_id}",
            get(get_execution),
        )
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/executions", tag = "executions",
    params(("workflow_id" = i64, Path), ("page" = Option<u32>, Query), ("page_size" = Option<u32>, Query)),
    responses((status = 200, description = "Newest first: a plain array without page/page_size, else paginated", body = [Execution]),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_executions(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Response> {
    let page = optional_page(&query)?;
    Ok(list_response(
        state.store.list_executions(id, page).await?,
        page.is_some(),
    ))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/executions/{execution_id}", tag = "executions",
    params(("workflow_id" = i64, Path), ("execution_id" = i64, Path)),
    responses((status = 200, body = Execution), (status = 404, description = "Unknown, or belongs to another workflow", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn get_execution(
    State(state): State<AppState>,
    Ids2(workflow_id, execution_id): Ids2,
) -> ApiResult<Json<Execution>> {
    Ok(Json(
        state.store.get_execution(workflow_id, execution_id).await?,
    ))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/executions/start", tag = "executions",
    params(("workflow_id" = i64, Path)),
    responses((status = 202, description = "Execution started"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, description = "engine not available", body = ErrorBody)))]
pub async fn start_execution(State(state): State<AppState>, Id(id): Id) -> ApiError {
    engine_unavailable(&state, id).await
}
