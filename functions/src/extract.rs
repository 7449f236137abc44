//! Extractors whose rejections speak API.md's error contract: integer ids
//! (422, never 500), JSON bodies (422, or 413 over the limit) and query
//! maps (422).

use std::collections::HashMap;

use ai_team_core::query::{FieldError, parse_id};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

async fn path_ids<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Vec<i64>, ApiError> {
    let raw = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("path parameters: {e}")))?;
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for (name, value) in &raw {
        match parse_id(name, value) {
            Ok(id) => ids.push(id),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The one integer id of the route's path.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match path_ids(parts, state).await?[..] {
            [id] => Ok(Self(id)),
            _ => Err(ApiError::Internal(anyhow::anyhow!("route expects one id"))),
        }
    }
}

/// The three integer ids of the route's path, in path order.
pub struct Ids3(pub i64, pub i64, pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Ids3 {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match path_ids(parts, state).await?[..] {
            [a, b, c] => Ok(Self(a, b, c)),
            _ => Err(ApiError::Internal(anyhow::anyhow!(
                "route expects three ids"
            ))),
        }
    }
}

/// The two integer ids of the route's path, in path order.
pub struct Ids2(pub i64, pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Ids2 {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match path_ids(parts, state).await?[..] {
            [a, b] => Ok(Self(a, b)),
            _ => Err(ApiError::Internal(anyhow::anyhow!("route expects two ids"))),
        }
    }
}

/// A JSON body; malformed is 422 (as FastAPI), oversized is 413.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(r))
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge)
            }
            Err(r) => {
                let kind = match r {
                    JsonRejection::MissingJsonContentType(_) => "model_attributes_type",
                    JsonRejection::JsonSyntaxError(_) => "json_invalid",
                    _ => "value_error",
                };
                Err(ApiError::validation(FieldError {
                    loc: vec!["body".into()],
                    msg: r.body_text(),
                    kind: kind.into(),
                }))
            }
        }
    }
}

/// The query string as name → value; unknown names are for the handler to
/// ignore.
pub struct QueryMap(pub HashMap<String, String>);

impl QueryMap {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(m)| Self(m))
            .map_err(|e| {
                ApiError::validation(FieldError {
                    loc: vec!["query".into()],
                    msg: e.body_text(),
                    kind: "value_error".into(),
                })
            })
    }
}
