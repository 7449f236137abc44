//! WebSocket on AWS: an API Gateway WebSocket API holds the sockets and
//! invokes this function on `$connect` (`?workflow_id=&after=`, and the
//! API token as `Authorization: Bearer`, or from browsers, which cannot
//! set headers on a WebSocket, as the subprotocol `bearer.<token>` next to
//! `ai-team`; `?token=` still works but puts the token in URLs and logs),
//! `$disconnect`, and every client message
//! (`$default`, which pushes what the client has not had yet: the replay
//! after connecting, since nothing can be sent during `$connect`). The
//! connections live in the store; the step and refresh functions push new
//! events to them as they commit, and the HTTP functions after each write
//! about a workflow (`push_after_writes`; `ai_team_core::push`).

use ai_team_core::fanout::push_connection;
use ai_team_core::push::PushChannel;
use ai_team_core::{Store, StoreError};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use subtle::ConstantTimeEq;

use crate::configuration::Secret;

fn answer(status: i64, body: &str) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = Some(Body::Text(body.to_owned()));
    response
}

/// The subprotocol a browser client offers with its token
/// (`new WebSocket(url, ["ai-team", "bearer." + token])`), and the one the
/// `$connect` answer selects: the token never has to travel in the URL.
pub const WS_PROTOCOL: &str = "ai-team";
const WS_BEARER_PREFIX: &str = "bearer.";

/// The subprotocols the client offered (`Sec-WebSocket-Protocol`).
fn offered_protocols(event: &ApiGatewayWebsocketProxyRequest) -> Vec<&str> {
    event
        .headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether the `$connect` request carries the API token (when one is set):
/// as `Authorization: Bearer`, as a `bearer.<token>` subprotocol, or (a
/// discouraged fallback: URLs end up in logs) as `?token=`.
fn authorised(event: &ApiGatewayWebsocketProxyRequest, token: Option<&Secret>) -> bool {
    let Some(expected) = token else { return true };
    let presented = event
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| {
            offered_protocols(event)
                .into_iter()
                .find_map(|p| p.strip_prefix(WS_BEARER_PREFIX))
        })
        .or_else(|| event.query_string_parameters.first("token"));
    presented.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.expose().as_bytes())))
}

fn number(event: &ApiGatewayWebsocketProxyRequest, name: &str) -> Result<Option<i64>, String> {
    match event.query_string_parameters.first(name) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| format!("{name} must be a non-negative integer")),
    }
}

pub async fn ws_handler(
    store: &dyn Store,
    push: Option<&dyn PushChannel>,
    token: Option<&Secret>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = event.request_context.connection_id.clone() else {
        return answer(400, "no connection id");
    };
    let route = event
        .request_context
        .route_key
        .as_deref()
        .unwrap_or("$default");
    let result = match route {
        "$connect" => connect(store, token, &connection_id, &event).await,
        "$disconnect" => store
            .remove_push_connection(&connection_id)
            .await
            .map(|()| answer(200, "bye")),
        _ => catch_up(store, push, &connection_id).await,
    };
    result.unwrap_or_else(|e| {
        tracing::error!(%connection_id, route, error = %e, "websocket route failed");
        answer(503, "store unavailable")
    })
}

async fn connect(
    store: &dyn Store,
    token: Option<&Secret>,
    connection_id: &str,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, StoreError> {
    if !authorised(event, token) {
        return Ok(answer(401, "Not authenticated"));
    }
    let (workflow_id, after) = match (number(event, "workflow_id"), number(event, "after")) {
        (Ok(Some(w)), Ok(after)) => (w, after.unwrap_or(0)),
        (Ok(None), _) => return Ok(answer(422, "workflow_id is required")),
        (Err(e), _) | (_, Err(e)) => return Ok(answer(422, &e)),
    };
    match store
        .add_push_connection(connection_id, workflow_id, after)
        .await
    {
        Ok(()) => {
            let mut ok = answer(200, "connected");
            // A client that offered subprotocols must get one selected, or
            // the browser drops the connection; never the token's.
            if offered_protocols(event).contains(&WS_PROTOCOL) {
                ok.headers.insert(
                    "sec-websocket-protocol",
                    axum::http::HeaderValue::from_static(WS_PROTOCOL),
                );
            }
            Ok(ok)
        }
        Err(StoreError::NotFound(_)) => Ok(answer(404, "Workflow not found")),
        Err(e) => Err(e),
    }
}

async fn catch_up(
    store: &dyn Store,
    push: Option<&dyn PushChannel>,
    connection_id: &str,
) -> Result<ApiGatewayProxyResponse, StoreError> {
    let Some(connection) = store.push_connection(connection_id).await? else {
        return Ok(answer(410, "unknown connection: connect again"));
    };
    let Some(push) = push else {
        return Ok(answer(
            503,
            "no push channel configured (AI_TEAM_WS_ENDPOINT)",
        ));
    };
    let pushed = push_connection(store, push, &connection).await?;
    Ok(answer(200, &format!("{} events sent", pushed.frames)))
}

/// The workflow a request path is about (`/workflows/{id}/…`).
fn workflow_of(path: &str) -> Option<i64> {
    path.strip_prefix("/workflows/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Makes `router` push a workflow's new events to its WebSocket clients
/// after each successful write request about it (`execute`, `start`,
/// `resume`, `cancel`, refresh triggers, …), before answering: a Lambda
/// function may be frozen as soon as it has answered.
pub fn push_after_writes(
    router: axum::Router,
    store: std::sync::Arc<dyn Store>,
    push: std::sync::Arc<dyn PushChannel>,
) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let (store, push) = (store.clone(), push.clone());
            async move {
                let write = request.method() != axum::http::Method::GET
                    && request.method() != axum::http::Method::HEAD;
                let workflow = workflow_of(request.uri().path());
                let response = next.run(request).await;
                if let (true, Some(id)) = (write && response.status().is_success(), workflow)
                    && let Err(e) = ai_team_core::fanout::push_workflow(store.as_ref(), push.as_ref(), id).await
                {
                    tracing::warn!(workflow_id = id, error = %e, "events not pushed; the next push sends them");
                }
                response
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::workflow_of;

    #[test]
    fn the_workflow_of_a_path() {
        assert_eq!(workflow_of("/workflows/12/execute"), Some(12));
        assert_eq!(workflow_of("/workflows/12"), Some(12));
        assert_eq!(workflow_of("/workflows"), None);
        assert_eq!(workflow_of("/workflows/from-jira/SHOP-1"), None);
        assert_eq!(workflow_of("/conversations/3/messages"), None);
    }
}
