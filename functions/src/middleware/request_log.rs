//! One structured log line per request: method, route, status, latency,
//! request id, and the workflow id when the path names one.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// The workflow a path is about, if it names one
/// (`/workflows/{id}/…`, `/events/workflows/{id}`, `/ws/workflows/{id}`).
pub fn workflow_id_of(path: &str) -> Option<i64> {
    let mut segments = path.split('/');
    while let Some(s) = segments.next() {
        if s == "workflows" {
            return segments.next().and_then(|id| id.parse().ok());
        }
    }
    None
}

pub async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    let workflow_id = workflow_id_of(&path);
    let route = route.as_deref().unwrap_or("unmatched");
    if status >= 500 && status != 503 {
        tracing::error!(target: "ai_team::http", %method, route, path, status, latency_ms, request_id, workflow_id, "request");
    } else if status == 503 {
        tracing::warn!(target: "ai_team::http", %method, route, path, status, latency_ms, request_id, workflow_id, "request");
    } else {
        tracing::info!(target: "ai_team::http", %method, route, path, status, latency_ms, request_id, workflow_id, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::workflow_id_of;

    #[test]
    fn finds_the_workflow_in_the_path() {
        assert_eq!(workflow_id_of("/workflows/42"), Some(42));
        assert_eq!(workflow_id_of("/workflows/42/executions/7"), Some(42));
        assert_eq!(workflow_id_of("/events/workflows/9/stream"), Some(9));
        assert_eq!(workflow_id_of("/workflows"), None);
        assert_eq!(workflow_id_of("/workflows/abc"), None);
        assert_eq!(workflow_id_of("/conversations/3/llm-calls"), None);
    }
}
