//! The refresh executor on SQS (the refresh queue): each record is one
//! refresh job (PR, checks, diffs, artifacts), run by
//! `ai_team_core::refresh::run_refresh` as the local refresh worker does.
//! A rate-limited or failed refresh comes back after its delay; a job that
//! failed for good is settled (its failure is an event of the workflow).

use ai_team_core::Store;
use ai_team_core::fanout::push_workflow;
use ai_team_core::push::PushChannel;
use ai_team_core::refresh::{REFRESH_QUEUE, RefreshJob, RefreshOutcome, ReviewSource, run_refresh};
use ai_team_providers::aws_sqs::SqsQueue;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use super::batch::{Handback, body_of, receive_count, settle};

pub async fn refresh_handler(
    store: &dyn Store,
    source: Option<&dyn ReviewSource>,
    sqs: Option<&SqsQueue>,
    push: Option<&dyn PushChannel>,
    event: SqsEvent,
) -> SqsBatchResponse {
    settle(REFRESH_QUEUE, sqs, &event, |record| {
        handle_record(store, source, push, record)
    })
    .await
}

#[tracing::instrument(skip_all, fields(message_id = record.message_id.as_deref().unwrap_or("")))]
async fn handle_record(
    store: &dyn Store,
    source: Option<&dyn ReviewSource>,
    push: Option<&dyn PushChannel>,
    record: &SqsMessage,
) -> Result<(), Handback> {
    let job: RefreshJob = serde_json::from_str(body_of(record, REFRESH_QUEUE)?)
        .map_err(|e| Handback::at_timeout(format!("unreadable refresh job: {e}")))?;
    let outcome = run_refresh(store, source, &job).await;
    if let Some(push) = push
        && let Err(e) = push_workflow(store, push, job.workflow_id).await
    {
        tracing::warn!(workflow_id = job.workflow_id, error = %e, "events not pushed; the next push sends them");
    }
    match outcome {
        Ok(RefreshOutcome::Retry { delay, reason }) => Err(Handback::after(delay, reason)),
        Ok(_) => Ok(()),
        Err(e) => Err(Handback::after(
            crate::worker::backoff(receive_count(record)),
            format!("refresh failed to run: {e}"),
        )),
    }
}
