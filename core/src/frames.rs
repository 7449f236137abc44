//! The JSON of every streamed frame (API.md "Real-time streaming"), built
//! here once for SSE, the local WebSocket and gateway-held WebSockets, so
//! that the streaming contract has one definition.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::models::Event;
use crate::views::StatusInfo;

/// An event as SSE `data`: its `type` names it (no `event:` line), so a
/// browser's `EventSource.onmessage` receives every frame.
pub fn event_data(e: &Event) -> Value {
    json!({"id": e.id, "workflow_id": e.workflow_id, "execution_id": e.execution_id,
           "type": e.event_type, "data": e.data, "created_at": e.created_at})
}

/// The status info as a frame of `/events/workflows/{id}`.
pub fn status_data(status: &StatusInfo) -> Value {
    let mut v = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    v["type"] = json!("status");
    v
}

/// A WebSocket frame: the event, and the workflow's current status at
/// top level (the original client sets its status from every frame and
/// closes on `isTerminal`).
pub fn ws_event(e: &Event, status: &StatusInfo) -> Value {
    let mut v = event_data(e);
    with_status(&mut v, status);
    v
}

/// A heartbeat frame (`event: heartbeat` on SSE; on WebSocket with the
/// status, when known).
pub fn heartbeat(at: DateTime<Utc>, status: Option<&StatusInfo>) -> Value {
    let mut v = json!({"id": null, "type": "heartbeat", "data": {"time": at}});
    if let Some(s) = status {
        with_status(&mut v, s);
    }
    v
}

fn with_status(v: &mut Value, status: &StatusInfo) {
    v["status"] = json!(status.status);
    v["isTerminal"] = json!(status.is_terminal);
    v["heartbeat_stale"] = json!(status.heartbeat_stale);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::WorkflowStatus;

    fn status() -> StatusInfo {
        StatusInfo {
            workflow_id: 1,
            status: WorkflowStatus::Completed,
            is_terminal: true,
            started_at: None,
            finished_at: None,
            error: None,
            last_heartbeat_at: None,
            heartbeat_stale: false,
            message: "done".into(),
        }
    }

    #[test]
    fn websocket_frames_carry_the_status_at_top_level() {
        let e = Event {
            id: 4,
            workflow_id: 1,
            execution_id: Some(2),
            event_type: "execution".into(),
            data: json!({"status": "completed"}),
            created_at: Utc::now(),
        };
        let f = ws_event(&e, &status());
        assert_eq!(f["type"], "execution");
        assert_eq!(f["id"], 4);
        assert_eq!(f["status"], "completed");
        assert_eq!(f["isTerminal"], true);
        assert_eq!(f["heartbeat_stale"], false);
        assert_eq!(
            heartbeat(Utc::now(), Some(&status()))["status"],
            "completed"
        );
        assert_eq!(status_data(&status())["isTerminal"], true);
        assert_eq!(status_data(&status())["type"], "status");
    }
}
