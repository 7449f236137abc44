//! The `StepQueue` port on Amazon SQS: each logical queue of the
//! application (`steps`, `refresh`) can have an SQS queue of its own, so
//! each has its own consumer function; a logical queue without one goes to
//! the default queue. Every message names its logical queue in the
//! `ai-team-queue` attribute, which consumers check. Delays use `DelaySeconds` (SQS allows at most 15
//! minutes; a longer delay is cut to that, which is safe because every
//! consumer is idempotent and the engine answers an early step `Busy`).
//! Deduplication is the consumer's job: a standard queue delivers at
//! least once, and the engine's step claims make a second delivery a
//! no-op. The dedup key travels as an attribute for the logs.

use std::collections::HashMap;
use std::time::Duration;

use ai_team_core::queue::{QueueError, StepQueue};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageAttributeValue;

/// The attribute naming the logical queue of a message.
pub const QUEUE_ATTRIBUTE: &str = "ai-team-queue";
/// The attribute carrying the sender's dedup key, when it gave one.
pub const DEDUP_ATTRIBUTE: &str = "ai-team-dedup";
/// The longest delay SQS accepts on one message.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest visibility timeout SQS accepts.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Sends to SQS queue URLs by logical queue; the client is built once and
/// shared.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    routes: HashMap<String, String>,
}

impl SqsQueue {
    /// Every logical queue goes to `queue_url` until `route`d elsewhere.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            routes: HashMap::new(),
        }
    }

    /// Sends the logical queue `queue` to `queue_url`.
    pub fn route(mut self, queue: &str, queue_url: impl Into<String>) -> Self {
        self.routes.insert(queue.to_owned(), queue_url.into());
        self
    }

    /// The SQS queue URL of the logical queue `queue`.
    pub fn url_for(&self, queue: &str) -> &str {
        self.routes.get(queue).unwrap_or(&self.queue_url)
    }

    /// Makes a received message visible again after `after` (SQS allows at
    /// most 12 hours), instead of after the queue's whole visibility
    /// timeout: how a consumer says "busy, try again soon".
    pub async fn retry_after(
        &self,
        queue: &str,
        receipt_handle: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(self.url_for(queue))
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds_up_to(after, MAX_VISIBILITY))
            .send()
            .await
            .map_err(|e| {
                QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(())
    }

    /// Over the shared AWS configuration (`aws::load_config`).
    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

/// `DelaySeconds` for a requested delay: whole seconds, rounded up so a
/// message never arrives before it was asked to, and at most 900.
pub fn delay_seconds(delay: Duration) -> i32 {
    seconds_up_to(delay, MAX_DELAY)
}

/// `d` in whole seconds, rounded up, at most `max`.
fn seconds_up_to(d: Duration, max: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(max.as_secs()) as i32
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Invalid(e.to_string()))
}

#[async_trait]
impl StepQueue for SqsQueue {
    #[tracing::instrument(skip(self, payload), fields(queue_url = %self.url_for(queue)))]
    async fn send(
        &self,
        queue: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let body =
            serde_json::to_string(payload).map_err(|e| QueueError::Invalid(e.to_string()))?;
        let mut request = self
            .client
            .send_message()
            .queue_url(self.url_for(queue))
            .message_body(body)
            .delay_seconds(delay_seconds(delay))
            .message_attributes(QUEUE_ATTRIBUTE, string_attribute(queue)?);
        if let Some(key) = dedup_key {
            request = request.message_attributes(DEDUP_ATTRIBUTE, string_attribute(key)?);
        }
        request.send().await.map_err(|e| {
            QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_and_stop_at_fifteen_minutes() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(delay_seconds(Duration::from_secs(30)), 30);
        assert_eq!(delay_seconds(Duration::from_secs(3600)), 900);
    }
}
