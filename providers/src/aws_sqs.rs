//! The `StepQueue` port on Amazon SQS: one standard queue carries every
//! logical queue of the application, named by the `ai-team-queue`
//! message attribute. Delays use `DelaySeconds` (SQS allows at most 15
//! minutes; a longer delay is cut to that, which is safe because every
//! consumer is idempotent and the engine answers an early step `Busy`).
//! Deduplication is the consumer's job: a standard queue delivers at
//! least once, and the engine's step claims make a second delivery a
//! no-op. The dedup key travels as an attribute for the logs.

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

/// Sends to one SQS queue URL; the client is built once and shared.
#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
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
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    secs.min(MAX_DELAY.as_secs()) as i32
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
    #[tracing::instrument(skip(self, payload), fields(queue_url = %self.queue_url))]
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
            .queue_url(&self.queue_url)
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
