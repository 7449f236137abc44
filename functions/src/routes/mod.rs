//! One `router()` per area of API.md, merged by `startup::app`.

pub mod conversations;
pub mod events;
pub mod executions;
pub mod health;
pub mod jira;
pub mod pr;
pub mod webhooks;
pub mod workflows;

use serde::Serialize;
use utoipa::ToSchema;

/// `{"message": ...}` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    pub message: String,
}

/// FastAPI's error body: a string, or a list of `{loc, msg, type}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}
