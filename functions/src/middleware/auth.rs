//! Optional bearer auth (`AI_TEAM_API_TOKEN`): every route but health,
//! docs and the (separately signed) GitHub webhook needs the token.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

const OPEN_PATHS: &[&str] = &["/health", "/openapi.json", "/webhooks/github"];

fn is_open(path: &str) -> bool {
    OPEN_PATHS.contains(&path) || path == "/docs" || path.starts_with("/docs/")
}

/// Browsers cannot set headers on a WebSocket: on `/ws/…` the token may
/// be offered as the subprotocol `bearer.<token>` (next to `ai-team`, the
/// one the upgrade selects), so that it never travels in the URL.
fn websocket_protocol_token(req: &Request) -> Option<&str> {
    if !req.uri().path().starts_with("/ws/") {
        return None;
    }
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer."))
}

pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = &state.config.api_token else {
        return next.run(req).await;
    };
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| websocket_protocol_token(&req));
    let ok =
        presented.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.expose().as_bytes())));
    if ok {
        return next.run(req).await;
    }
    let mut response = ApiError::Unauthorized(if presented.is_some() {
        "Invalid token"
    } else {
        "Not authenticated"
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::is_open;

    #[test]
    fn only_health_docs_and_webhooks_are_open() {
        assert!(is_open("/health"));
        assert!(is_open("/docs"));
        assert!(is_open("/docs/index.html"));
        assert!(is_open("/openapi.json"));
        assert!(is_open("/webhooks/github"));
        assert!(!is_open("/workflows"));
        assert!(!is_open("/docsx"));
        assert!(!is_open("/healthz"));
    }
}
