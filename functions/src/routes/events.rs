//! Server-Sent Events and WebSocket streams of a workflow's event log
//! (API.md "Real-time streaming"): replay after `Last-Event-ID` (or
//! `?after=` on WebSocket), then live events, with heartbeats.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::{ApiError, ApiResult};
use crate::events::{Filter, Frame};
use crate::extract::{Id, QueryMap};
use crate::routes::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events/workflows/{workflow_id}", get(status_stream))
        .route("/events/workflows/{workflow_id}/stream", get(event_stream))
        .route("/ws/workflows/{workflow_id}", get(websocket))
}

/// `Last-Event-ID` (or `?after=`) as a number; absent is 0, the whole log.
fn resume_point(headers: &HeaderMap, query: &QueryMap, query_name: &str) -> ApiResult<i64> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get(query_name).map(str::to_owned));
    match raw {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::validation(ai_team_core::query::FieldError::new(
                    "header",
                    "last-event-id",
                    "must be a non-negative integer",
                    "int_parsing",
                ))
            }),
    }
}

fn sse_frame(frame: Frame) -> SseEvent {
    match frame {
        Frame::Event(e) => SseEvent::default()
            .id(e.id.to_string())
            .event(e.event_type.clone())
            .data(
                json!({"id": e.id, "workflow_id": e.workflow_id, "execution_id": e.execution_id,
                         "type": e.event_type, "data": e.data, "created_at": e.created_at})
                .to_string(),
            ),
        Frame::Heartbeat(at) => SseEvent::default()
            .event("heartbeat")
            .data(json!({"time": at}).to_string()),
    }
}

/// The frames of `rx` as SSE events, until `rx` ends or `max` has passed.
fn frames(
    rx: mpsc::Receiver<Frame>,
    max: Option<Duration>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let deadline = max.map(|m| tokio::time::Instant::now() + m);
    stream::unfold(rx, move |mut rx| async move {
        let frame = match deadline {
            Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok().flatten(),
            None => rx.recv().await,
        };
        frame.map(|f| (Ok(sse_frame(f)), rx))
    })
}

async fn sse(state: AppState, workflow_id: i64, after: i64, filter: Filter) -> ApiResult<Response> {
    let hub = state.events.clone().ok_or(ApiError::Unavailable {
        public: "streaming not available",
        detail: "no event hub in this host".into(),
    })?;
    let rx = hub.subscribe(workflow_id, after, filter).await?;
    let mut response = Sse::new(frames(rx, state.config.stream_max)).into_response();
    // Proxies must not buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    response
        .headers_mut()
        .insert("cache-control", "no-cache".parse().expect("static header"));
    Ok(response)
}

#[utoipa::path(get, path = "/events/workflows/{workflow_id}", tag = "events",
    params(("workflow_id" = i64, Path), ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream of workflow and execution status events, then heartbeats", content_type = "text/event-stream"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn status_stream(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    query: QueryMap,
) -> ApiResult<Response> {
    let after = resume_point(&headers, &query, "after")?;
    sse(state, id, after, Filter::Status).await
}

#[utoipa::path(get, path = "/events/workflows/{workflow_id}/stream", tag = "events",
    params(("workflow_id" = i64, Path), ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id; 0 replays the whole log")),
    responses((status = 200, description = "text/event-stream of every event: workflow, execution, conversation, message, llm_call, governance, escalation, collaboration, error, heartbeat", content_type = "text/event-stream"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn event_stream(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    query: QueryMap,
) -> ApiResult<Response> {
    let after = resume_point(&headers, &query, "after")?;
    sse(state, id, after, Filter::All).await
}

#[utoipa::path(get, path = "/ws/workflows/{workflow_id}", tag = "events",
    params(("workflow_id" = i64, Path), ("after" = Option<i64>, Query, description = "Resume after this event id")),
    responses((status = 101, description = "WebSocket of JSON text frames {id, type, data}"), (status = 404, body = ErrorBody)))]
pub async fn websocket(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    query: QueryMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    let after = resume_point(&headers, &query, "after")?;
    let hub = state.events.clone().ok_or(ApiError::Unavailable {
        public: "streaming not available",
        detail: "no event hub in this host".into(),
    })?;
    let rx = hub.subscribe(id, after, Filter::All).await?;
    // Clients only send pings and small control messages: a larger message
    // (or frame) is refused and the socket closed (the default is 64 MiB).
    const WS_MAX_MESSAGE_BYTES: usize = 64 * 1024;
    Ok(ws
        // A browser that offers its token as a subprotocol (see the auth
        // middleware) gets `ai-team` selected, never the token's.
        .protocols(["ai-team"])
        .max_message_size(WS_MAX_MESSAGE_BYTES)
        .max_frame_size(WS_MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| pump(socket, rx)))
}

async fn pump(mut socket: WebSocket, mut rx: mpsc::Receiver<Frame>) {
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                let text = match frame {
                    Frame::Event(e) => ai_team_core::push::frame_of(&e),
                    Frame::Heartbeat(at) => json!({"id": null, "type": "heartbeat", "data": {"time": at}}),
                };
                if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
