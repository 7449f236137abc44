//! Pushing a workflow's events to WebSocket clients whose sockets a
//! gateway holds (API Gateway WebSocket APIs): no process of ours stays
//! connected, so the store keeps each connection (its workflow, and the
//! last event sent to it), and whoever commits events pushes what each
//! connection has not had yet through a `PushChannel`. Frames are the
//! local WebSocket's (`fanout::frame_of`). Delivery is at least once: two pushers
//! racing on one connection may both send an event; frames carry their
//! ids, so a client drops one it has seen.

use async_trait::async_trait;

use crate::error::StoreResult;

/// A connected client and how far it has been sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConnection {
    /// The gateway's id of the connection.
    pub connection_id: String,
    /// The workflow whose events it receives.
    pub workflow_id: i64,
    /// Id of the last event sent to it (0 before any).
    pub last_event_id: i64,
}

/// The connections side of the store.
#[async_trait]
pub trait PushConnections: Send + Sync {
    /// Records a client of `workflow_id` that has had every event up to
    /// `after`; reconnecting with the same id starts it again from there.
    /// `NotFound` when the workflow does not exist.
    async fn add_push_connection(
        &self,
        connection_id: &str,
        workflow_id: i64,
        after: i64,
    ) -> StoreResult<()>;
    /// Forgets the connection.
    async fn remove_push_connection(&self, connection_id: &str) -> StoreResult<()>;
    /// The connection with this id, if it is recorded.
    async fn push_connection(&self, connection_id: &str) -> StoreResult<Option<PushConnection>>;
    /// Every connection receiving the workflow's events.
    async fn push_connections(&self, workflow_id: i64) -> StoreResult<Vec<PushConnection>>;
    /// Moves the connection's mark forward to `sent` (never back).
    async fn advance_push_connection(&self, connection_id: &str, sent: i64) -> StoreResult<()>;
}

/// Why a frame could not be pushed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The client has left: forget the connection.
    #[error("connection gone")]
    Gone,
    /// Try again on the next push.
    #[error("push unavailable: {0}")]
    Unavailable(String),
}

/// Sends one text frame to a connected client.
#[async_trait]
pub trait PushChannel: Send + Sync + 'static {
    /// Sends `frame` to the connection.
    async fn send(&self, connection_id: &str, frame: &str) -> Result<(), PushError>;
}
