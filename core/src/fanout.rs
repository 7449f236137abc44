//! Sending a workflow's new events to the WebSocket clients a gateway
//! holds (API Gateway WebSocket APIs), through the `PushChannel` port and
//! the connections the store keeps (`push::PushConnections`).

use serde_json::Value;

use crate::error::{StoreError, StoreResult};
use crate::models::Event;
use crate::push::{PushChannel, PushConnection, PushError};
use crate::store::Store;
use crate::views::{DEFAULT_HEARTBEAT_TIMEOUT, StatusInfo, current_status};

/// A WebSocket frame: the event with the workflow's status
/// (`crate::frames::ws_event`).
pub fn frame_of(e: &Event, status: &StatusInfo) -> Value {
    crate::frames::ws_event(e, status)
}

/// What one push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Frames sent.
    pub frames: usize,
    /// Connections found gone and forgotten.
    pub gone: usize,
}

const PAGE: i64 = 500;

/// Sends `connection` every event it has not had, in order, and moves its
/// mark. A gone client is forgotten; an unavailable channel stops this
/// connection's push where it is (the next push resumes there).
pub async fn push_connection(
    store: &dyn Store,
    channel: &dyn PushChannel,
    connection: &PushConnection,
) -> StoreResult<Pushed> {
    let mut pushed = Pushed::default();
    let mut sent = connection.last_event_id;
    // Gateway-held sockets have no host configuration at hand: the
    // default heartbeat timeout decides staleness.
    let status =
        match current_status(store, connection.workflow_id, DEFAULT_HEARTBEAT_TIMEOUT).await {
            Ok(s) => s,
            Err(StoreError::NotFound(_)) => return Ok(pushed),
            Err(e) => return Err(e),
        };
    'pages: loop {
        let events = store
            .events_after(connection.workflow_id, sent, PAGE)
            .await?;
        if events.is_empty() {
            break;
        }
        for event in &events {
            match channel
                .send(
                    &connection.connection_id,
                    &frame_of(event, &status).to_string(),
                )
                .await
            {
                Ok(()) => {
                    sent = event.id;
                    pushed.frames += 1;
                }
                Err(PushError::Gone) => {
                    store
                        .remove_push_connection(&connection.connection_id)
                        .await?;
                    pushed.gone += 1;
                    return Ok(pushed);
                }
                Err(PushError::Unavailable(reason)) => {
                    tracing::warn!(connection_id = %connection.connection_id, %reason, "push stopped; the next one resumes");
                    break 'pages;
                }
            }
        }
    }
    if sent > connection.last_event_id {
        store
            .advance_push_connection(&connection.connection_id, sent)
            .await?;
    }
    Ok(pushed)
}

/// Pushes to every connection of `workflow_id`.
pub async fn push_workflow(
    store: &dyn Store,
    channel: &dyn PushChannel,
    workflow_id: i64,
) -> StoreResult<Pushed> {
    let mut total = Pushed::default();
    for connection in store.push_connections(workflow_id).await? {
        let p = push_connection(store, channel, &connection).await?;
        total.frames += p.frames;
        total.gone += p.gone;
    }
    Ok(total)
}

/// Pushes to every connection of the execution's workflow.
pub async fn push_execution(
    store: &dyn Store,
    channel: &dyn PushChannel,
    execution_id: i64,
) -> StoreResult<Pushed> {
    match store.execution_by_id(execution_id).await {
        Ok(e) => push_workflow(store, channel, e.workflow_id).await,
        Err(StoreError::NotFound(_)) => Ok(Pushed::default()),
        Err(e) => Err(e),
    }
}
