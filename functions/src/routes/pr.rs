//! A workflow's pull request, checks, diff and artifacts as the store
//! holds them (`GET`), and the refresh jobs that read them again from the
//! code host (`POST …/refresh`: 202 with the job id; the job's progress
//! and result are `workflow` events on the workflow's stream).

use ai_team_core::delivery::{Artifact, Check, CheckQuery, DiffFile, FilteredPage, PullRequest};
use ai_team_core::models::Paged;
use ai_team_core::refresh::{REFRESH_QUEUE, RefreshJob, RefreshKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, QueryMap};
use crate::routes::{ErrorBody, ListOf, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows/{workflow_id}/pr", get(get_pull_request))
        .route("/workflows/{workflow_id}/pr/checks", get(list_checks))
        .route("/workflows/{workflow_id}/diffs", get(list_diffs))
        .route("/workflows/{workflow_id}/artifacts", get(list_artifacts))
        .route("/workflows/{workflow_id}/pr/refresh", post(refresh_pr))
        .route(
            "/workflows/{workflow_id}/diffs/refresh",
            post(refresh_diffs),
        )
        .route(
            "/workflows/{workflow_id}/artifacts/refresh",
            post(refresh_artifacts),
        )
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/pr", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = PullRequest), (status = 404, description = "Unknown workflow, or no pull request yet", body = ErrorBody),
              (status = 422, body = ValidationErrorBody)))]
pub async fn get_pull_request(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<PullRequest>> {
    state.store.get_workflow(id).await?;
    if let Some(pr) = state.store.get_pull_request(id).await? {
        return Ok(Json(pr));
    }
    Err(ApiError::NotFound(
        match skipped_reason(&state, id).await? {
            Some(reason) => format!("Workflow {id} has no pull request: it was skipped ({reason})"),
            None => format!("Workflow {id} has no pull request"),
        },
    ))
}

/// Why the latest execution's delivery opened no pull request, if it said.
async fn skipped_reason(state: &AppState, workflow_id: i64) -> ApiResult<Option<String>> {
    let Some(latest) = state
        .store
        .latest_executions(&[workflow_id])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    Ok(state
        .store
        .checkpoint(latest.id, ai_team_core::steps::Step::Integration)
        .await?
        .and_then(|c| c.state.ok()?.delivered?.pull_request_skipped))
}

/// Without `page`/`page_size` a list is a plain array of its first
/// `PageRequest::MAX_SIZE` items (as the original); with either, the page.
fn plain_or_paged<T: Serialize>(query: &QueryMap, paged: Paged<T>) -> Response {
    let paginated = query.get("page").is_some() || query.get("page_size").is_some();
    crate::routes::workflows::list_response(paged, paginated)
}

fn page_size_or_max(query: &QueryMap) -> Option<&str> {
    query.get("page_size").or(if query.get("page").is_none() {
        Some(MAX_PAGE_SIZE)
    } else {
        None
    })
}

const MAX_PAGE_SIZE: &str = "200";

#[utoipa::path(get, path = "/workflows/{workflow_id}/pr/checks", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1), ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200),
           ("kind" = Option<CheckKindName>, Query, description = "check_run (default), check_suite or all")),
    responses((status = 200, description = "A plain array without page/page_size, else {page, page_size, total, items}", body = ListOf<Check>),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn list_checks(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Response> {
    let q = CheckQuery::parse(
        query.get("page"),
        page_size_or_max(&query),
        query.get("kind"),
    )
    .map_err(ApiError::Validation)?;
    state.store.get_workflow(id).await?;
    Ok(plain_or_paged(
        &query,
        state.store.list_checks(id, &q).await?,
    ))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/diffs", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1), ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200),
           ("path" = Option<String>, Query, pattern = "^[^\\u0000]*$", description = "A path, exact or as a prefix; no NUL character")),
    responses((status = 200, description = "A plain array without page/page_size, else {page, page_size, total, items}", body = ListOf<DiffFile>),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn list_diffs(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Response> {
    let q = FilteredPage::parse(
        query.get("page"),
        page_size_or_max(&query),
        "path",
        query.get("path"),
    )
    .map_err(ApiError::Validation)?;
    state.store.get_workflow(id).await?;
    Ok(plain_or_paged(
        &query,
        state.store.list_diffs(id, &q).await?,
    ))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/artifacts", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1), ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200),
           ("kind" = Option<String>, Query, pattern = "^[^\\u0000]*$", description = "An exact kind, e.g. github-actions; no NUL character")),
    responses((status = 200, description = "A plain array without page/page_size, else {page, page_size, total, items}", body = ListOf<Artifact>),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn list_artifacts(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Response> {
    let q = FilteredPage::parse(
        query.get("page"),
        page_size_or_max(&query),
        "kind",
        query.get("kind"),
    )
    .map_err(ApiError::Validation)?;
    state.store.get_workflow(id).await?;
    Ok(plain_or_paged(
        &query,
        state.store.list_artifacts(id, &q).await?,
    ))
}

/// The answer of a refresh request.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshAccepted {
    pub message: String,
    pub job_id: String,
}

/// Queues a refresh of `kind` for the workflow.
async fn enqueue(
    state: &AppState,
    workflow_id: i64,
    kind: RefreshKind,
) -> ApiResult<(StatusCode, Json<RefreshAccepted>)> {
    state.store.get_workflow(workflow_id).await?;
    let queue = state.queue.as_ref().ok_or_else(|| ApiError::Unavailable {
        public: "queue unavailable",
        detail: "this host has no job queue".into(),
    })?;
    let job = RefreshJob {
        job_id: uuid::Uuid::new_v4().to_string(),
        workflow_id,
        kind,
    };
    let payload = serde_json::to_value(&job).map_err(|e| ApiError::Internal(e.into()))?;
    queue
        .send(
            REFRESH_QUEUE,
            &payload,
            Some(&job.job_id),
            std::time::Duration::ZERO,
        )
        .await
        .map_err(|e| ApiError::Unavailable {
            public: "queue unavailable",
            detail: e.to_string(),
        })?;
    let event = ai_team_core::WorkflowEvent::Refresh {
        kind,
        job_id: job.job_id.clone(),
        progress: ai_team_core::workflow_event::RefreshProgress::Queued,
    }
    .into();
    ai_team_core::refresh::emit(state.store.as_ref(), workflow_id, &[event]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RefreshAccepted {
            message: format!("{} refresh queued", kind.as_str()),
            job_id: job.job_id,
        }),
    ))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/pr/refresh", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 202, description = "Queued; progress on the event stream", body = RefreshAccepted),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody), (status = 503, body = ErrorBody)))]
pub async fn refresh_pr(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<RefreshAccepted>)> {
    enqueue(&state, id, RefreshKind::Pr).await
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/diffs/refresh", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 202, description = "Queued; progress on the event stream", body = RefreshAccepted),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody), (status = 503, body = ErrorBody)))]
pub async fn refresh_diffs(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<RefreshAccepted>)> {
    enqueue(&state, id, RefreshKind::Diffs).await
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/artifacts/refresh", tag = "pr",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 202, description = "Queued; progress on the event stream", body = RefreshAccepted),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody), (status = 503, body = ErrorBody)))]
pub async fn refresh_artifacts(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<RefreshAccepted>)> {
    enqueue(&state, id, RefreshKind::Artifacts).await
}

/// The kinds a checks listing filters by (schema only: `CheckQuery` parses them).
#[derive(utoipa::ToSchema)]
#[expect(non_camel_case_types, reason = "the variants are the query values")]
pub enum CheckKindName {
    check_run,
    check_suite,
    all,
}
