//! One `router()` per area of API.md, merged by `startup::app`.

pub mod agents;
pub mod conversations;
pub mod events;
pub mod executions;
pub mod health;
pub mod jira;
pub mod pr;
pub mod review;
pub mod status;
pub mod webhooks;
pub mod workflows;

use serde::Serialize;
use utoipa::ToSchema;

/// `{"message": ...}` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub message: String,
}

/// FastAPI's error body with a text `detail`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

/// One invalid input, as FastAPI reports it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// Where: `["body", "name"]`, `["query", "page_size"]`, `["path", "workflow_id"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A 422: FastAPI's list of `{loc, msg, type}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValidationErrorBody {
    pub detail: Vec<FieldErrorBody>,
}

/// A page of a list (schema of `Paged`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
    pub items: Vec<T>,
}

/// A list that was a plain array in the original: the array without
/// `page`/`page_size`, the page with either (schema only).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ListOf<T: ToSchema> {
    Plain(Vec<T>),
    Paged(Page<T>),
}
