//! One SQS batch, settled record by record: the records run concurrently;
//! the ones that did not settle are listed in `batchItemFailures` (so SQS
//! redelivers only those and, past `maxReceiveCount`, dead-letters them),
//! and where the handler knows when to try again, the record's visibility
//! is changed to that instead of the queue's whole visibility timeout.

use std::future::Future;
use std::time::Duration;

use ai_team_providers::aws_sqs::{QUEUE_ATTRIBUTE, SqsQueue};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;

/// A record handed back to the queue.
#[derive(Debug)]
pub struct Handback {
    /// When to deliver it again; `None` waits for the visibility timeout.
    pub after: Option<Duration>,
    pub reason: String,
}

impl Handback {
    /// Comes back after the queue's visibility timeout.
    pub fn at_timeout(reason: impl Into<String>) -> Self {
        Self {
            after: None,
            reason: reason.into(),
        }
    }

    pub fn after(after: Duration, reason: impl Into<String>) -> Self {
        Self {
            after: Some(after),
            reason: reason.into(),
        }
    }
}

/// The body of a record sent to the logical queue `queue`. A record that
/// names another queue in its `ai-team-queue` attribute is refused: it
/// would be read as the wrong kind of job.
pub fn body_of<'a>(record: &'a SqsMessage, queue: &str) -> Result<&'a str, Handback> {
    if let Some(named) = record
        .message_attributes
        .get(QUEUE_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        && named != queue
    {
        return Err(Handback::at_timeout(format!(
            "sent to queue {named:?}, not {queue:?}"
        )));
    }
    Ok(record.body.as_deref().unwrap_or_default())
}

/// How many times SQS has delivered the record, this time included.
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Runs `handle` on every record of `event` (from the logical queue
/// `queue`) and answers the records to redeliver.
pub async fn settle<'a, F, Fut>(
    queue: &str,
    sqs: Option<&SqsQueue>,
    event: &'a SqsEvent,
    handle: F,
) -> SqsBatchResponse
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), Handback>>,
{
    let results = join_all(event.records.iter().map(handle)).await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in event.records.iter().zip(results) {
        let Err(handback) = result else { continue };
        let id = record.message_id.clone().unwrap_or_default();
        tracing::warn!(message_id = %id, reason = %handback.reason, "record handed back to the queue");
        if let (Some(after), Some(sqs), Some(receipt)) =
            (handback.after, sqs, record.receipt_handle.as_deref())
            && let Err(e) = sqs.retry_after(queue, receipt, after).await
        {
            // The record still comes back, after the whole visibility timeout.
            tracing::warn!(message_id = %id, error = %e, "could not shorten the record's visibility");
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}
