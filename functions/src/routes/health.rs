//! `GET /health`: the service and its database.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when a dependency is down.
    pub status: &'static str,
    /// `ok`, or what is wrong with the database.
    pub database: String,
    pub version: &'static str,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}

#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = match tokio::time::timeout(Duration::from_secs(3), state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("database unavailable: no answer within 3 s".to_owned()),
    };
    let (code, status) = match database {
        None => (StatusCode::OK, "ok"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
    };
    (
        code,
        Json(Health {
            status,
            database: database.unwrap_or_else(|| "ok".into()),
            version: env!("CARGO_PKG_VERSION"),
        }),
    )
}
