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
use crate::event_hub::{Filter, Frame};
use crate::extract::{Id, QueryMap};
use crate::routes::{ErrorBody, ValidationErrorBody};
use crate::state::AppState;
use ai_team_core::frames;
use ai_team_core::views::{self, StatusInfo};
use axum::http::HeaderValue;

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
        Frame::Event(e, _) => SseEvent::default()
            .id(e.id.to_string())
            .data(frames::event_data(&e).to_string()),
        Frame::Heartbeat(at) => SseEvent::default()
            .event("heartbeat")
            .data(json!({"time": at}).to_string()),
    }
}

/// The frames of `rx` as SSE events, until `rx` ends or `max` has passed.
fn sse_frames(
    rx: mpsc::Receiver<Frame>,
    max: Option<Duration>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let deadline = max.map(|m| tokio::time::Instant::now() + m);
    stream::unfold(rx, move |mut rx| async move {
        let frame = next_before(&mut rx, deadline).await;
        frame.map(|f| (Ok(sse_frame(f)), rx))
    })
}

async fn next_before(
    rx: &mut mpsc::Receiver<Frame>,
    deadline: Option<tokio::time::Instant>,
) -> Option<Frame> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok().flatten(),
        None => rx.recv().await,
    }
}

fn hub_of(state: &AppState) -> ApiResult<std::sync::Arc<crate::event_hub::EventHub>> {
    state.events.clone().ok_or(ApiError::Unavailable {
        public: "streaming not available",
        detail: "no event hub in this host".into(),
    })
}

fn sse_response<S>(stream: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(stream).into_response();
    // Proxies must not buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

async fn sse(state: AppState, workflow_id: i64, after: i64, filter: Filter) -> ApiResult<Response> {
    let hub = hub_of(&state)?;
    let rx = hub.subscribe(workflow_id, after, filter).await?;
    Ok(sse_response(sse_frames(rx, state.config.stream_max)))
}

/// What the status stream has sent, so it sends only changes.
struct StatusStream {
    rx: mpsc::Receiver<Frame>,
    hub: std::sync::Arc<crate::event_hub::EventHub>,
    workflow_id: i64,
    last: Option<StatusInfo>,
    last_id: i64,
    first: Option<StatusInfo>,
    done: bool,
}

fn status_event(status: &StatusInfo, id: i64) -> SseEvent {
    SseEvent::default()
        .id(id.to_string())
        .data(frames::status_data(status).to_string())
}

/// The status info at once, then on each change (an event, or a
/// heartbeat that finds it changed, e.g. gone stale), ending after the
/// frame whose `isTerminal` is true.
fn status_frames(
    start: StatusStream,
    max: Option<Duration>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let deadline = max.map(|m| tokio::time::Instant::now() + m);
    stream::unfold(start, move |mut s| async move {
        if s.done {
            return None;
        }
        if let Some(first) = s.first.take() {
            s.done = first.is_terminal;
            let ev = status_event(&first, s.last_id);
            s.last = Some(first);
            return Some((Ok(ev), s));
        }
        loop {
            let frame = next_before(&mut s.rx, deadline).await?;
            let (status, id) = match frame {
                Frame::Event(e, status) => ((*status).clone(), e.id),
                Frame::Heartbeat(at) => match s.hub.status(s.workflow_id).await {
                    Some(status)
                        if s.last
                            .as_ref()
                            .is_some_and(|l| views::status_changed(l, &status)) =>
                    {
                        (status, s.last_id)
                    }
                    _ => {
                        let beat = SseEvent::default()
                            .event("heartbeat")
                            .data(json!({"time": at}).to_string());
                        return Some((Ok(beat), s));
                    }
                },
            };
            s.last_id = s.last_id.max(id);
            if s.last
                .as_ref()
                .is_some_and(|l| !views::status_changed(l, &status))
            {
                continue;
            }
            s.done = status.is_terminal;
            let ev = status_event(&status, s.last_id);
            s.last = Some(status);
            return Some((Ok(ev), s));
        }
    })
}

#[utoipa::path(get, path = "/events/workflows/{workflow_id}", tag = "events",
    params(("workflow_id" = i64, Path, minimum = 1), ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream of workflow and execution status events, then heartbeats", content_type = "text/event-stream"),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn status_stream(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
    query: QueryMap,
) -> ApiResult<Response> {
    // The point to resume from is the log's head, not the client's: each
    // connection starts with the status as it is now.
    resume_point(&headers, &query, "after")?;
    let hub = hub_of(&state)?;
    let head = state.store.last_event_id(id).await?;
    let rx = hub.subscribe(id, head, Filter::Status).await?;
    let first = hub.status(id).await.ok_or(ApiError::Unavailable {
        public: "Service temporarily unavailable: the database cannot be reached",
        detail: "status of a streamed workflow".into(),
    })?;
    let start = StatusStream {
        rx,
        hub,
        workflow_id: id,
        last: None,
        last_id: head,
        first: Some(first),
        done: false,
    };
    Ok(sse_response(status_frames(start, state.config.stream_max)))
}

#[utoipa::path(get, path = "/events/workflows/{workflow_id}/stream", tag = "events",
    params(("workflow_id" = i64, Path, minimum = 1), ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id; 0 replays the whole log")),
    responses((status = 200, description = "text/event-stream of every event: workflow, execution, conversation, message, llm_call, governance, escalation, collaboration, error, heartbeat", content_type = "text/event-stream"),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
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
    params(("workflow_id" = i64, Path, minimum = 1), ("after" = Option<i64>, Query, description = "Resume after this event id")),
    responses((status = 101, description = "WebSocket of JSON text frames {id, type, data}"), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
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
        .on_upgrade(move |socket| pump(socket, rx, hub, id)))
}

async fn pump(
    mut socket: WebSocket,
    mut rx: mpsc::Receiver<Frame>,
    hub: std::sync::Arc<crate::event_hub::EventHub>,
    workflow_id: i64,
) {
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                let text = match frame {
                    Frame::Event(e, status) => frames::ws_event(&e, &status),
                    Frame::Heartbeat(at) => frames::heartbeat(at, hub.status(workflow_id).await.as_ref()),
                };
                if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_) | Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
