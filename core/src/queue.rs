//! The `StepQueue` port: durable, at-least-once delivery of small JSON
//! jobs (engine steps, refresh jobs), with delays. Adapters: a table in
//! the store (local), SQS, Service Bus. Every consumer must be idempotent:
//! a message may arrive twice, or after the work it asks for was done.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The queue that carries engine steps.
pub const STEPS_QUEUE: &str = "steps";

/// Why the queue could not take or give a job.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue cannot be reached or failed: retry.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// A message that cannot be read or sent as is: retrying cannot help.
    #[error("invalid message: {0}")]
    Invalid(String),
}

/// One step of one execution to run. `attempt` is the execution's run
/// (1, then +1 per resume): a message of an older run is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    /// The execution's row id.
    pub execution_id: i64,
    /// The step's wire name.
    pub step: String,
    /// The execution's run this message belongs to.
    pub attempt: u32,
}

impl StepMessage {
    /// Duplicate sends of the same step in the same run collapse into one
    /// job where the adapter supports it.
    pub fn dedup_key(&self) -> String {
        format!("{}:{}:{}", self.execution_id, self.step, self.attempt)
    }
}

/// A received job, with what the adapter needs to settle it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedJob {
    /// The adapter's handle to acknowledge or release the message.
    pub receipt: String,
    /// The queue it came from (`STEPS_QUEUE`, `REFRESH_QUEUE`).
    pub queue: String,
    /// The job's JSON.
    pub payload: serde_json::Value,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// One open database (its pools), the same for every port it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatabaseId(pub u64);

impl DatabaseId {
    /// Whether two ports are tables of one open database (neither `None`),
    /// so one's writes can join the other's transaction.
    pub fn shared(a: Option<Self>, b: Option<Self>) -> bool {
        a.is_some() && a == b
    }
}

/// The sending side, which every host needs.
#[async_trait]
pub trait StepQueue: Send + Sync + 'static {
    /// The database this queue is a table of, if it is one. When the
    /// store's `StepLedger::database` is the same, a step's completion
    /// queues the next step in its own transaction (an outbox) instead
    /// of a send after it.
    fn database(&self) -> Option<DatabaseId> {
        None
    }

    /// Enqueues `payload` on `queue`, visible after `delay`; `dedup_key` collapses duplicates where the adapter can.
    async fn send(
        &self,
        queue: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        delay: Duration,
    ) -> Result<(), QueueError>;
}

/// The polling side, for hosts that pull (the local worker). Serverless
/// hosts receive their batches from the platform instead.
#[async_trait]
pub trait JobSource: Send + Sync + 'static {
    /// The database this source is a table of, if it is one (see
    /// `StepQueue::database`): a job of it can be acknowledged in the
    /// transaction that completes its step.
    fn database(&self) -> Option<DatabaseId> {
        None
    }

    /// Notified (`notify_one`, so one idle worker wakes) when this process
    /// queued a job on `queue` that is visible at once, so that worker
    /// starts it without waiting for its next poll; `None` where the
    /// source cannot tell (poll only).
    fn job_signal(&self, _queue: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// The next visible job of `queue`, hidden from others for `visibility`.
    async fn receive(
        &self,
        queue: &str,
        worker: &str,
        visibility: Duration,
    ) -> Result<Option<ReceivedJob>, QueueError>;
    /// Done: never delivered again.
    async fn ack(&self, receipt: &str) -> Result<(), QueueError>;
    /// Not done: visible again after `delay`; dead after too many receives.
    async fn retry(&self, receipt: &str, delay: Duration, error: &str) -> Result<(), QueueError>;
    /// Makes the jobs `worker` holds visible again (a restarted worker
    /// holds none).
    async fn release(&self, worker: &str) -> Result<u64, QueueError>;
}

/// Sends a step message on the steps queue.
pub async fn send_step(
    queue: &dyn StepQueue,
    msg: &StepMessage,
    delay: Duration,
) -> Result<(), QueueError> {
    let payload = serde_json::to_value(msg).map_err(|e| QueueError::Invalid(e.to_string()))?;
    queue
        .send(STEPS_QUEUE, &payload, Some(&msg.dedup_key()), delay)
        .await
}
