//! The local refresh executor: pulls refresh jobs from the durable queue
//! (`refresh`) and runs them (`ai_team_core::refresh::run_refresh`), like
//! the step worker does for `steps`. `try_execute_next` runs one job, so
//! tests drive it deterministically.

use std::sync::Arc;
use std::time::Duration;

use ai_team_core::Store;
use ai_team_core::queue::JobSource;
use ai_team_core::refresh::{REFRESH_QUEUE, RefreshJob, RefreshOutcome, ReviewSource, run_refresh};
use tokio::sync::watch;

/// How long a received job stays hidden from other workers.
const VISIBILITY: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct RefreshWorker {
    pub store: Arc<dyn Store>,
    pub jobs: Arc<dyn JobSource>,
    pub source: Option<Arc<dyn ReviewSource>>,
    pub worker_id: String,
}

impl RefreshWorker {
    pub fn new(
        store: Arc<dyn Store>,
        jobs: Arc<dyn JobSource>,
        source: Option<Arc<dyn ReviewSource>>,
        worker_id: &str,
    ) -> Self {
        Self {
            store,
            jobs,
            source,
            worker_id: format!("{worker_id}-refresh"),
        }
    }

    /// Runs the next visible refresh job, if any.
    pub async fn try_execute_next(&self) -> anyhow::Result<Option<RefreshOutcome>> {
        let Some(delivery) = self
            .jobs
            .receive(REFRESH_QUEUE, &self.worker_id, VISIBILITY)
            .await?
        else {
            return Ok(None);
        };
        let job: RefreshJob = match serde_json::from_value(delivery.payload.clone()) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(receipt = delivery.receipt, error = %e, "unreadable refresh job dropped");
                self.jobs.ack(&delivery.receipt).await?;
                return Ok(Some(RefreshOutcome::Failed {
                    error: format!("unreadable job: {e}"),
                }));
            }
        };
        match run_refresh(self.store.as_ref(), self.source.as_deref(), &job).await {
            Ok(outcome) => {
                match &outcome {
                    RefreshOutcome::Retry { delay, reason } => {
                        self.jobs.retry(&delivery.receipt, *delay, reason).await?;
                    }
                    _ => self.jobs.ack(&delivery.receipt).await?,
                }
                Ok(Some(outcome))
            }
            Err(e) => {
                let delay = crate::worker::backoff(delivery.receive_count);
                tracing::warn!(workflow_id = job.workflow_id, error = %e, "refresh job failed to run; will retry");
                self.jobs
                    .retry(&delivery.receipt, delay, &e.to_string())
                    .await?;
                Ok(Some(RefreshOutcome::Retry {
                    delay,
                    reason: e.to_string(),
                }))
            }
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if let Err(e) = self.jobs.release(&self.worker_id).await {
            tracing::warn!(error = %e, "could not release earlier refresh jobs");
        }
        let signal = self.jobs.job_signal(REFRESH_QUEUE);
        crate::worker::poll_until_stopped(&mut stop, signal.as_deref(), || self.try_execute_next())
            .await;
    }
}
