//! A workflow's executions.

use ai_team_core::budgets::BudgetPatch;
use ai_team_core::models::Execution;
use ai_team_core::query::FieldError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Ids2, Ids3, QueryMap};
use crate::routes::workflows::{engine_of, list_response, optional_page, start};
use crate::routes::{ErrorBody, ListOf, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows/{workflow_id}/executions", get(list_executions))
        .route(
            "/workflows/{workflow_id}/executions/start",
            post(start_execution),
        )
        .route(
            "/workflows/{workflow_id}/executions/compare",
            get(compare_executions_query),
        )
        .route(
            "/workflows/{workflow_id}/executions/{execution_id}",
            get(get_execution),
        )
        .route(
            "/workflows/{workflow_id}/executions/{execution_id}/resume",
            post(resume_execution),
        )
        .route(
            "/workflows/{workflow_id}/executions/{execution_id}/cancel",
            post(cancel_execution),
        )
        .route(
            "/workflows/{workflow_id}/executions/{execution_a}/compare/{execution_b}",
            get(compare_executions),
        )
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/executions", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1), ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200)),
    responses((status = 200, description = "Newest first: a plain array without page/page_size, else paginated", body = ListOf<Execution>),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
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
    params(("workflow_id" = i64, Path, minimum = 1), ("execution_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = Execution), (status = 404, description = "Unknown, or belongs to another workflow", body = ErrorBody),
              (status = 422, body = ValidationErrorBody)))]
pub async fn get_execution(
    State(state): State<AppState>,
    Ids2(workflow_id, execution_id): Ids2,
) -> ApiResult<Json<Execution>> {
    Ok(Json(
        state.store.get_execution(workflow_id, execution_id).await?,
    ))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/executions/start", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 202, description = "Execution started"), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody),
              (status = 409, body = ErrorBody), (status = 503, description = "engine not available", body = ErrorBody)))]
pub async fn start_execution(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    start(&state, id).await
}

/// The body of a resume: optional, with optional raised budgets.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// Each optional.
    #[serde(default)]
    #[schema(value_type = Option<BudgetsBody>)]
    pub budgets: Option<BudgetPatch>,
}

/// Raised budgets (schema of `BudgetPatch`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the JSON shape only")]
pub struct BudgetsBody {
    #[schema(minimum = 1, maximum = 100_000_000)]
    step_tokens: Option<i64>,
    #[schema(minimum = 1, maximum = 100_000_000)]
    agent_tokens: Option<i64>,
    #[schema(minimum = 1, maximum = 100_000_000)]
    execution_tokens: Option<i64>,
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/executions/{execution_id}/resume", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1), ("execution_id" = i64, Path, minimum = 1)),
    request_body(content = Option<ResumeBody>, description = "Optional raised budgets"),
    responses((status = 202, description = "The same execution continues from its last checkpoint"),
              (status = 404, body = ErrorBody), (status = 409, description = "Not failed or cancelled, or another execution runs", body = ErrorBody),
              (status = 422, body = ValidationErrorBody), (status = 503, body = ErrorBody)))]
pub async fn resume_execution(
    State(state): State<AppState>,
    Ids2(workflow_id, execution_id): Ids2,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let body: ResumeBody = if body.iter().all(u8::is_ascii_whitespace)
        || body.trim_ascii() == b"null"
    {
        ResumeBody::default()
    } else {
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::validation(FieldError::new(
                "body",
                "budgets",
                e.to_string(),
                "json_invalid",
            ))
        })?;
        if !value.is_object() || !(value["budgets"].is_object() || value["budgets"].is_null()) {
            return Err(ApiError::validation(FieldError::new(
                "body",
                "budgets",
                "Input should be an object {\"budgets\": {step_tokens?, agent_tokens?, execution_tokens?}}",
                "model_attributes_type",
            )));
        }
        serde_json::from_value(value).map_err(|e| {
            ApiError::validation(FieldError::new(
                "body",
                "budgets",
                e.to_string(),
                "value_error",
            ))
        })?
    };
    let patch = body.budgets.unwrap_or_default();
    patch
        .validate()
        .map_err(|m| ApiError::validation(FieldError::new("body", "budgets", m, "value_error")))?;
    let engine = engine_of(&state, workflow_id).await?;
    let execution = engine.resume(workflow_id, execution_id, patch).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "message": "Execution resumed from its last checkpoint",
            "workflow_id": workflow_id,
            "execution_id": execution.id,
            "status": execution.status,
            "resumed_from": execution.meta.resumed_from,
            "budgets": execution.meta.budgets,
        })),
    ))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/executions/{execution_id}/cancel", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1), ("execution_id" = i64, Path, minimum = 1)),
    responses((status = 200, description = "Cancelled", body = Execution), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody),
              (status = 409, description = "Already finished", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn cancel_execution(
    State(state): State<AppState>,
    Ids2(workflow_id, execution_id): Ids2,
) -> ApiResult<Json<Execution>> {
    let engine = engine_of(&state, workflow_id).await?;
    Ok(Json(engine.cancel(workflow_id, execution_id).await?))
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/executions/{execution_a}/compare/{execution_b}", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1), ("execution_a" = i64, Path, minimum = 1), ("execution_b" = i64, Path, minimum = 1)),
    responses((status = 200, description = "`{a, b, delta, steps}`: the aggregates of both executions, b minus a, and per step the tokens, cost and whether the prompt hash changed"),
              (status = 404, description = "Unknown, or not of this workflow", body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn compare_executions(
    State(state): State<AppState>,
    Ids3(workflow_id, a, b): Ids3,
) -> ApiResult<Json<serde_json::Value>> {
    state.store.get_execution(workflow_id, a).await?;
    state.store.get_execution(workflow_id, b).await?;
    let fa =
        ai_team_core::compare::aggregate(a, &state.store.call_facts(workflow_id, Some(a)).await?);
    let fb =
        ai_team_core::compare::aggregate(b, &state.store.call_facts(workflow_id, Some(b)).await?);
    Ok(Json(ai_team_core::compare::compare(&fa, &fb, true)))
}

/// One side of the original's execution comparison.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExecutionTotals {
    pub id: i64,
    pub workflow_id: i64,
    pub total_calls: i64,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub avg_latency_ms: f64,
    pub models: Vec<String>,
}

impl From<&Execution> for ExecutionTotals {
    fn from(e: &Execution) -> Self {
        Self {
            id: e.id,
            workflow_id: e.workflow_id,
            total_calls: e.total_calls,
            total_tokens: e.total_tokens,
            total_cost: ai_team_core::money::nanos_to_dollars(e.total_cost),
            avg_latency_ms: e.avg_latency_ms,
            models: e.models.clone(),
        }
    }
}

/// Right minus left for each number.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExecutionDeltas {
    pub total_calls: i64,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub avg_latency_ms: f64,
}

/// `{left, right, deltas}` of the original's compare route.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExecutionComparison {
    pub left: ExecutionTotals,
    pub right: ExecutionTotals,
    pub deltas: ExecutionDeltas,
}

fn query_id(query: &QueryMap, name: &str) -> ApiResult<i64> {
    let raw = query.get(name).ok_or_else(|| {
        ApiError::validation(FieldError::new("query", name, "Field required", "missing"))
    })?;
    ai_team_core::query::parse_id(name, raw)
        .map_err(|mut e| {
            e.loc[0] = "query".into();
            e
        })
        .map_err(ApiError::validation)
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/executions/compare", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1), ("execA" = i64, Query, minimum = 1), ("execB" = i64, Query, minimum = 1)),
    responses((status = 200, body = ExecutionComparison),
              (status = 404, description = "Unknown, or not of this workflow", body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn compare_executions_query(
    State(state): State<AppState>,
    Id(workflow_id): Id,
    query: QueryMap,
) -> ApiResult<Json<ExecutionComparison>> {
    let (a, b) = (query_id(&query, "execA")?, query_id(&query, "execB")?);
    let left = state.store.get_execution(workflow_id, a).await?;
    let right = state.store.get_execution(workflow_id, b).await?;
    let (l, r) = (ExecutionTotals::from(&left), ExecutionTotals::from(&right));
    let deltas = ExecutionDeltas {
        total_calls: r.total_calls.saturating_sub(l.total_calls),
        total_tokens: r.total_tokens.saturating_sub(l.total_tokens),
        total_cost: ai_team_core::money::nanos_to_dollars(
            right.total_cost.saturating_sub(left.total_cost),
        ),
        avg_latency_ms: r.avg_latency_ms - l.avg_latency_ms,
    };
    Ok(Json(ExecutionComparison {
        left: l,
        right: r,
        deltas,
    }))
}
