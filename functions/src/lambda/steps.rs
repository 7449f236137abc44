//! The step executor on SQS: each record of a batch is one step message,
//! run by the engine (steps of one execution never share a batch, since
//! each is sent after the previous one committed). A step that is busy
//! elsewhere or asked to be retried comes back after its own delay; one
//! that failed to run comes back after the worker's backoff; an
//! unreadable one after the visibility timeout, until it is
//! dead-lettered. The function's event source mapping must enable
//! `ReportBatchItemFailures`.

use ai_team_core::engine::{Engine, Outcome};
use ai_team_core::fanout::push_execution;
use ai_team_core::push::PushChannel;
use ai_team_core::queue::{STEPS_QUEUE, StepMessage};
use ai_team_providers::aws_sqs::SqsQueue;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use super::batch::{Handback, body_of, receive_count, settle};

/// Runs every record of the batch and lists the ones to redeliver; `sqs`
/// shortens the wait of those that know when to come back; `push` sends
/// each step's events to the workflow's WebSocket clients.
pub async fn steps_handler(
    engine: &Engine,
    sqs: Option<&SqsQueue>,
    push: Option<&dyn PushChannel>,
    event: SqsEvent,
) -> SqsBatchResponse {
    settle(STEPS_QUEUE, sqs, &event, |record| {
        handle_record(engine, push, record)
    })
    .await
}

/// The step message a record carries, if it is one.
pub fn parse_record(record: &SqsMessage) -> Result<StepMessage, Handback> {
    serde_json::from_str(body_of(record, STEPS_QUEUE)?)
        .map_err(|e| Handback::at_timeout(format!("unreadable step message: {e}")))
}

#[tracing::instrument(skip_all, fields(message_id = record.message_id.as_deref().unwrap_or("")))]
async fn handle_record(
    engine: &Engine,
    push: Option<&dyn PushChannel>,
    record: &SqsMessage,
) -> Result<(), Handback> {
    let msg = parse_record(record)?;
    let outcome = engine.handle(&msg).await;
    if let Some(push) = push {
        let pushed = push_execution(engine.store.as_ref(), push, msg.execution_id).await;
        if let Err(e) = pushed {
            tracing::warn!(execution_id = msg.execution_id, error = %e, "events not pushed; the next push sends them");
        }
    }
    match outcome {
        Ok(Outcome::Busy { retry_in }) => Err(Handback::after(retry_in, "step busy elsewhere")),
        Ok(Outcome::Retry { delay, reason }) => Err(Handback::after(delay, reason)),
        Ok(_) => Ok(()),
        Err(e) => Err(Handback::after(
            crate::worker::backoff(receive_count(record)),
            format!("step failed to run: {e}"),
        )),
    }
}
