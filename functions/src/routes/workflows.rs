//! Workflows: list, create (idempotent on `jira_story_id`), get with
//! everything under it, delete, and the execute trigger.

use ai_team_core::models::{Workflow, WorkflowDetail};
use ai_team_core::query::{NewWorkflow, PageRequest};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, QueryMap};
use crate::routes::{ErrorBody, MessageBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list_workflows).post(create_workflow))
        .route(
            "/workflows/{workflow_id}",
            get(get_workflow).delete(delete_workflow),
        )
        .route("/workflows/{workflow_id}/execute", post(execute_workflow))
        .route("/workflows/{workflow_id}/compare", get(compare_workflows))
}

/// The optional page of a list that was a plain array in the original:
/// paginated only when `page` or `page_size` is given.
pub fn optional_page(query: &QueryMap) -> ApiResult<Option<PageRequest>> {
    let (page, size) = (query.get("page"), query.get("page_size"));
    if page.is_none() && size.is_none() {
        return Ok(None);
    }
    PageRequest::parse(page, size)
        .map(Some)
        .map_err(ApiError::Validation)
}

/// A list answer: the plain array, or the paginated object.
pub fn list_response<T: serde::Serialize>(
    paged: ai_team_core::models::Paged<T>,
    paginated: bool,
) -> Response {
    if paginated {
        Json(paged).into_response()
    } else {
        Json(paged.items).into_response()
    }
}

#[utoipa::path(get, path = "/workflows", tag = "workflows",
    params(("page" = Option<u32>, Query), ("page_size" = Option<u32>, Query)),
    responses((status = 200, description = "Newest first: a plain array without page/page_size, else {page, page_size, total, items}", body = [Workflow]),
              (status = 422, body = ErrorBody)))]
pub async fn list_workflows(State(state): State<AppState>, query: QueryMap) -> ApiResult<Response> {
    let page = optional_page(&query)?;
    Ok(list_response(
        state.store.list_workflows(page).await?,
        page.is_some(),
    ))
}

/// Body of `POST /workflows`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateWorkflow {
    pub name: Option<String>,
    pub jira_story_id: Option<String>,
    pub repository_url: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(post, path = "/workflows", tag = "workflows", request_body = CreateWorkflow,
    responses((status = 201, description = "Created", body = Workflow),
              (status = 200, description = "A workflow with this jira_story_id already existed; nothing created", body = Workflow),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_workflow(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateWorkflow>,
) -> ApiResult<(StatusCode, Json<Workflow>)> {
    let mut missing = Vec::new();
    for (field, value) in [("name", &body.name), ("jira_story_id", &body.jira_story_id)] {
        if value.is_none() {
            missing.push(ai_team_core::query::FieldError::new(
                "body",
                field,
                "Field required",
                "missing",
            ));
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    let new = NewWorkflow::parse(
        body.name.as_deref().unwrap_or_default(),
        body.jira_story_id.as_deref().unwrap_or_default(),
        body.repository_url.as_deref(),
        body.description.as_deref(),
    )
    .map_err(ApiError::Validation)?;
    let created = state.store.create_workflow(&new).await?;
    let status = if created.is_new() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(created.into_inner())))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}", tag = "workflows",
    params(("workflow_id" = i64, Path)),
    responses((status = 200, body = WorkflowDetail), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<WorkflowDetail>> {
    Ok(Json(state.store.workflow_detail(id).await?))
}

#[utoipa::path(delete, path = "/workflows/{workflow_id}", tag = "workflows",
    params(("workflow_id" = i64, Path)),
    responses((status = 200, body = MessageBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<MessageBody>> {
    state.store.delete_workflow(id).await?;
    Ok(Json(MessageBody {
        message: format!("Workflow {id} deleted"),
    }))
}

/// The engine, or 503 where this host has none (404 first for an
/// unknown workflow).
pub async fn engine_of(
    state: &AppState,
    workflow_id: i64,
) -> ApiResult<&ai_team_core::engine::Engine> {
    state.store.get_workflow(workflow_id).await?;
    state.engine.as_ref().ok_or_else(|| ApiError::Unavailable {
        public: "engine not available",
        detail: "this host runs no workflow engine".into(),
    })
}

/// `POST /workflows/{id}/execute` and `/executions/start`: a new execution, queued.
pub async fn start(
    state: &AppState,
    workflow_id: i64,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let engine = engine_of(state, workflow_id).await?;
    let execution = engine.start(workflow_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "message": "Workflow execution started",
            "workflow_id": workflow_id,
            "execution_id": execution.id,
            "status": execution.status,
        })),
    ))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/execute", tag = "executions",
    params(("workflow_id" = i64, Path)),
    responses((status = 202, description = "Execution started"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 503, description = "engine not available", body = ErrorBody)))]
pub async fn execute_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    start(&state, id).await
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/compare", tag = "workflows",
    params(("workflow_id" = i64, Path), ("with" = i64, Query, description = "The other workflow")),
    responses((status = 200, description = "`{a, b, delta}`: calls, prompt/completion/total tokens, cost, average and p95 latency, models, per-agent totals of each workflow's calls, and b minus a"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn compare_workflows(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Json<serde_json::Value>> {
    let other = match query.get("with") {
        Some(raw) => ai_team_core::query::parse_id("with", raw).map_err(ApiError::validation)?,
        None => {
            return Err(ApiError::validation(ai_team_core::query::FieldError::new(
                "query",
                "with",
                "Field required",
                "missing",
            )));
        }
    };
    state.store.get_workflow(id).await?;
    state.store.get_workflow(other).await?;
    let a = ai_team_core::compare::aggregate(id, &state.store.call_facts(id, None).await?);
    let b = ai_team_core::compare::aggregate(other, &state.store.call_facts(other, None).await?);
    Ok(Json(ai_team_core::compare::compare(&a, &b, false)))
}
