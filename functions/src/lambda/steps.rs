//! The step executor on SQS: each record of a batch is one step message,
//! run by the engine. Records that did not settle (the step is busy or
//! asked to be retried), that failed to run, or that cannot be read are
//! reported in `batchItemFailures`, so SQS redelivers only those after
//! their visibility timeout and, past `maxReceiveCount`, moves them to the
//! dead-letter queue; the rest of the batch is deleted. The function's
//! event source mapping must enable `ReportBatchItemFailures`.

use ai_team_core::engine::{Engine, Outcome};
use ai_team_core::queue::{STEPS_QUEUE, StepMessage};
use ai_team_providers::aws_sqs::QUEUE_ATTRIBUTE;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;

/// Why a record is handed back to SQS.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unreadable step message: {0}")]
    Unreadable(String),
    #[error("not settled: {0:?}")]
    NotSettled(Outcome),
    #[error("step failed to run: {0}")]
    Engine(String),
}

/// Runs every record of the batch (concurrently; steps of one execution
/// never share a batch, since each is sent after the previous committed)
/// and lists the ones to redeliver.
pub async fn steps_handler(engine: &Engine, event: SqsEvent) -> SqsBatchResponse {
    let results = join_all(event.records.iter().map(|r| handle_record(engine, r))).await;
    let mut response = SqsBatchResponse::default();
    for (record, result) in event.records.iter().zip(results) {
        if let Err(error) = result {
            let id = record.message_id.clone().unwrap_or_default();
            tracing::warn!(message_id = %id, %error, "record handed back to the queue");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The step message a record carries, if it is one.
pub fn parse_record(record: &SqsMessage) -> Result<StepMessage, RecordError> {
    if let Some(queue) = record
        .message_attributes
        .get(QUEUE_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        && queue != STEPS_QUEUE
    {
        return Err(RecordError::Unreadable(format!(
            "sent to queue {queue:?}, not {STEPS_QUEUE:?}"
        )));
    }
    let body = record.body.as_deref().unwrap_or_default();
    serde_json::from_str(body).map_err(|e| RecordError::Unreadable(e.to_string()))
}

#[tracing::instrument(skip_all, fields(message_id = record.message_id.as_deref().unwrap_or("")))]
async fn handle_record(engine: &Engine, record: &SqsMessage) -> Result<Outcome, RecordError> {
    let msg = parse_record(record)?;
    match engine.handle(&msg).await {
        Ok(outcome) if outcome.settles() => Ok(outcome),
        Ok(outcome) => Err(RecordError::NotSettled(outcome)),
        Err(e) => Err(RecordError::Engine(e.to_string())),
    }
}
