//! The original's status service: a workflow's status info, the running
//! ones, a reconcile from executions and heartbeats, and the resume of a
//! workflow's latest failed execution.

use ai_team_core::budgets::BudgetPatch;
use ai_team_core::models::ExecutionStatus;
use ai_team_core::views::StatusInfo;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::Id;
use crate::routes::workflows::{engine_of, status_of, statuses};
use crate::routes::{ErrorBody, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows/status/running", get(running_workflows))
        .route("/workflows/{workflow_id}/status", get(workflow_status))
        .route(
            "/workflows/{workflow_id}/reconcile",
            post(reconcile_workflow),
        )
        .route("/workflows/{workflow_id}/resume", post(resume_workflow))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/status", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = StatusInfo), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn workflow_status(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<StatusInfo>> {
    Ok(Json(status_of(&state, id).await?.1))
}

#[utoipa::path(get, path = "/workflows/status/running", tag = "workflows",
    responses((status = 200, description = "The status info of every running workflow", body = [StatusInfo])))]
pub async fn running_workflows(State(state): State<AppState>) -> ApiResult<Json<Vec<StatusInfo>>> {
    let all = state.store.list_workflows(None).await?.items;
    let infos = statuses(&state, &all).await?;
    Ok(Json(
        infos
            .into_iter()
            .filter(|s| s.status == ai_team_core::models::WorkflowStatus::Running)
            .collect(),
    ))
}

/// The answer of a reconcile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciled {
    pub message: String,
    pub workflow_id: i64,
    pub status: ai_team_core::models::WorkflowStatus,
    #[serde(rename = "isTerminal")]
    pub is_terminal: bool,
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/reconcile", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = Reconciled), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn reconcile_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Reconciled>> {
    let engine = engine_of(&state, id).await?;
    // A running execution whose worker stopped beating is failed with a
    // resume hint; every other status already is what the records say.
    let failed = engine.sweep_stale(state.config.heartbeat_timeout).await?;
    let (_, info) = status_of(&state, id).await?;
    Ok(Json(Reconciled {
        message: if failed > 0 {
            format!(
                "Status reconciled: {failed} execution(s) without a heartbeat marked failed; workflow is {}",
                info.status
            )
        } else {
            format!("Status reconciled: workflow is {}", info.status)
        },
        workflow_id: id,
        status: info.status,
        is_terminal: info.is_terminal,
    }))
}

/// The answer of a workflow-level resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resumed {
    pub message: String,
    pub workflow_id: i64,
    pub execution_id: i64,
    pub resumed: bool,
    pub status: ExecutionStatus,
    /// The step the execution continues from.
    pub resumed_from: Option<String>,
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/resume", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = Resumed), (status = 404, body = ErrorBody),
              (status = 409, description = "Nothing to resume: no execution, or the latest one is not failed or cancelled", body = ErrorBody),
              (status = 422, body = ValidationErrorBody), (status = 503, body = ErrorBody)))]
pub async fn resume_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<Resumed>> {
    let engine = engine_of(&state, id).await?;
    let latest = state
        .store
        .latest_executions(&[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Conflict("the workflow has no execution to resume".into()))?;
    if !matches!(
        latest.status,
        ExecutionStatus::Failed | ExecutionStatus::Cancelled
    ) {
        return Err(ApiError::Conflict(format!(
            "the latest execution ({}) is {}; only a failed or cancelled one can be resumed",
            latest.id, latest.status
        )));
    }
    let execution = engine.resume(id, latest.id, BudgetPatch::default()).await?;
    Ok(Json(Resumed {
        message: format!(
            "Execution {} resumed from its last checkpoint",
            execution.id
        ),
        workflow_id: id,
        execution_id: execution.id,
        resumed: true,
        status: execution.status,
        resumed_from: execution.meta.resumed_from.clone(),
    }))
}
