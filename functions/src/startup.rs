//! Builds the application: the routers of every area, the error contract
//! for unmatched routes and panics, and the cross-cutting layers.

use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, middleware};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::groups::RouteGroup;
use crate::middleware::{auth, rate_limit, request_log};
use crate::state::AppState;

/// The whole HTTP surface over the given adapters.
pub fn app(state: AppState) -> Router {
    app_for(state, &RouteGroup::ALL)
}

/// Only `groups`' routes (one serverless function's share), with the same
/// layers, error contract and 404 for everything else.
pub fn app_for(state: AppState, groups: &[RouteGroup]) -> Router {
    let routes = groups
        .iter()
        .fold(Router::new(), |router, group| router.merge(group.router()));
    app_with(state, routes)
}

/// `routes` with the layers, error contract and 404 of the whole API.
pub fn app_with(state: AppState, routes: Router<AppState>) -> Router {
    let config = state.config.clone();
    let mut router = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    if let Some(n) = config.rate_limit_per_minute.and_then(NonZeroU32::new) {
        router = router.layer(middleware::from_fn_with_state(
            rate_limit::ClientLimiter::new(n, config.trusted_proxies),
            rate_limit::limit,
        ));
    }
    let request_id = HeaderName::from_static("x-request-id");
    router
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(cors(&config.cors_origins))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(middleware::from_fn(request_log::log_request))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(600))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"detail": "Method Not Allowed"})),
    )
        .into_response()
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"detail": "Internal server error"})),
    )
        .into_response()
}
