//! The one error type of the HTTP layer, answering in FastAPI's shape
//! (`{"detail": ...}`). 5xx bodies are generic; the detail goes to the log
//! with the request id.

use std::time::Duration;

use ai_team_core::StoreError;
use ai_team_core::query::FieldError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: the resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 422: FastAPI's list of `{loc, msg, type}`.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 409: the state forbids the change.
    #[error("{0}")]
    Conflict(String),
    /// 401: missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 413: the body is over the configured limit.
    #[error("Request body too large")]
    PayloadTooLarge,
    /// 429: over the per-client rate.
    #[error("rate limit exceeded")]
    RateLimited { retry_after: Duration },
    /// 503: a dependency is down; the detail is logged.
    #[error("{public}")]
    Unavailable {
        public: &'static str,
        detail: String,
    },
    /// 500: anything else; the detail is logged.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<ai_team_core::engine::EngineError> for ApiError {
    fn from(e: ai_team_core::engine::EngineError) -> Self {
        use ai_team_core::engine::EngineError;
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Queue(q) => ApiError::Unavailable {
                public: "queue unavailable",
                detail: q.to_string(),
            },
            EngineError::Invalid(m) => {
                ApiError::validation(FieldError::new("body", "budgets", m, "value_error"))
            }
        }
    }
}

impl ApiError {
    pub fn validation(e: FieldError) -> Self {
        Self::Validation(vec![e])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{} not found", capitalise(what))),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Invalid(m) => Self::Validation(vec![FieldError {
                loc: vec!["body".into()],
                msg: m,
                kind: "value_error".into(),
            }]),
            StoreError::Unavailable(detail) => Self::Unavailable {
                public: "Service temporarily unavailable: the database cannot be reached",
                detail,
            },
            StoreError::Unknown(e) => Self::Internal(e),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Validation(errors) => json!({ "detail": errors }),
            Self::Unavailable { public, detail } => {
                tracing::warn!(error = %detail, "dependency unavailable");
                json!({ "detail": public })
            }
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                json!({ "detail": "Internal server error" })
            }
            other => json!({ "detail": other.to_string() }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::RateLimited { retry_after } = self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
