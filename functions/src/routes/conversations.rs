//! A conversation's LLM calls (filtered, sorted, paginated) and messages.

use ai_team_core::models::{LlmCallPage, Message, Paged};
use ai_team_core::query::{LlmCallQuery, PageRequest, RawLlmCallQuery};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, QueryMap};
use crate::routes::{ErrorBody, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/conversations/{conversation_id}/llm-calls",
            get(list_llm_calls),
        )
        .route(
            "/conversations/{conversation_id}/messages",
            get(list_messages),
        )
}

#[utoipa::path(get, path = "/conversations/{conversation_id}/llm-calls", tag = "conversations",
    params(("conversation_id" = i64, Path, minimum = 1),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200, description = "default 50"),
        ("sort_by" = Option<SortByName>, Query, description = "default timestamp"),
        ("sort_dir" = Option<SortDirName>, Query, description = "default desc"),
        ("model" = Option<String>, Query, pattern = "^[^\\u0000]*$", description = "exact model name; no NUL character"),
        ("q" = Option<String>, Query, pattern = "^[^\\u0000]*$", description = "case-insensitive substring of the request or response; no NUL character"),
        ("date_from" = Option<String>, Query, format = DateTime, description = "inclusive, ISO 8601 (a plain date is accepted too)"),
        ("date_to" = Option<String>, Query, format = DateTime, description = "inclusive, ISO 8601; a plain date covers the whole day")),
    responses((status = 200, description = "Totals cover the whole conversation; total counts the filtered calls", body = LlmCallPage),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn list_llm_calls(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Json<LlmCallPage>> {
    let parsed = LlmCallQuery::parse(RawLlmCallQuery {
        page: query.get("page"),
        page_size: query.get("page_size"),
        sort_by: query.get("sort_by"),
        sort_dir: query.get("sort_dir"),
        model: query.get("model"),
        q: query.get("q"),
        date_from: query.get("date_from"),
        date_to: query.get("date_to"),
    })
    .map_err(ApiError::Validation)?;
    Ok(Json(state.store.list_llm_calls(id, &parsed).await?))
}

#[utoipa::path(get, path = "/conversations/{conversation_id}/messages", tag = "conversations",
    params(("conversation_id" = i64, Path, minimum = 1), ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200)),
    responses((status = 200, description = "{page, page_size, total, items}", body = PagedMessages),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn list_messages(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Json<Paged<Message>>> {
    let page = PageRequest::parse(query.get("page"), query.get("page_size"))
        .map_err(ApiError::Validation)?;
    Ok(Json(state.store.list_messages(id, page).await?))
}

/// The schema of a page of messages.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "documents the JSON shape only")]
pub struct PagedMessages {
    page: u32,
    page_size: u32,
    total: i64,
    items: Vec<Message>,
}

/// The sorts of a call listing (schema only: `SortBy` parses them).
#[derive(utoipa::ToSchema)]
#[expect(non_camel_case_types, reason = "the variants are the query values")]
pub enum SortByName {
    timestamp,
    model,
    total_tokens,
    response_time_ms,
    cost,
    id,
}

/// The directions of a call listing (schema only).
#[derive(utoipa::ToSchema)]
#[expect(non_camel_case_types, reason = "the variants are the query values")]
pub enum SortDirName {
    asc,
    desc,
}
