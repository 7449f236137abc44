//! The local step executor: pulls step messages from the durable queue in
//! the database and hands them to the engine, N at a time; sweeps
//! executions whose worker stopped beating. `try_execute_next` runs one
//! message, so tests (and `ai-team run`) can drive it deterministically.

use std::sync::Arc;
use std::time::Duration;

use ai_team_core::engine::{Engine, Outcome};
use ai_team_core::queue::{DatabaseId, JobSource, STEPS_QUEUE, StepMessage};
use tokio::sync::watch;

/// How long a received job stays hidden from other workers; the step's
/// own lease guards the work, this only limits duplicate pickups.
const VISIBILITY: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Worker {
    pub engine: Engine,
    pub jobs: Arc<dyn JobSource>,
}

impl Worker {
    pub fn new(engine: Engine, jobs: Arc<dyn JobSource>) -> Self {
        Self { engine, jobs }
    }

    fn id(&self) -> &str {
        &self.engine.config.worker_id
    }

    /// Frees what this worker name holds: at start, what an earlier
    /// process of the same name held when it died; at shutdown, what this
    /// one was still running. The queue jobs and step leases come back at
    /// once, not when they expire.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let jobs = self.jobs.release(self.id()).await?;
        let leases = self.engine.store.release_leases(self.id()).await?;
        if jobs + leases > 0 {
            tracing::info!(
                worker = self.id(),
                jobs,
                leases,
                "released the queue jobs and step leases held under this worker name"
            );
        }
        Ok(())
    }

    /// Runs the next visible step message, if any.
    pub async fn try_execute_next(&self) -> anyhow::Result<Option<Outcome>> {
        let Some(delivery) = self
            .jobs
            .receive(STEPS_QUEUE, self.id(), VISIBILITY)
            .await?
        else {
            return Ok(None);
        };
        let msg: StepMessage = match serde_json::from_value(delivery.payload.clone()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(receipt = delivery.receipt, error = %e, "unreadable step message dropped");
                self.jobs.ack(&delivery.receipt).await?;
                return Ok(Some(Outcome::Stale {
                    reason: format!("unreadable message: {e}"),
                }));
            }
        };
        // A job of the store's own queue is acknowledged by its step's
        // commit: one write fewer through the one SQLite writer.
        let settles = DatabaseId::shared(self.jobs.database(), self.engine.store.database())
            .then_some(delivery.receipt.as_str());
        match self.engine.handle_settling(&msg, settles).await {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Completed { .. } if settles.is_some() => {}
                    Outcome::Busy { retry_in } => {
                        self.jobs
                            .retry(&delivery.receipt, *retry_in, "step busy")
                            .await?;
                    }
                    Outcome::Retry { delay, reason } => {
                        self.jobs.retry(&delivery.receipt, *delay, reason).await?;
                    }
                    _ => self.jobs.ack(&delivery.receipt).await?,
                }
                Ok(Some(outcome))
            }
            Err(e) => {
                let delay = backoff(delivery.receive_count);
                tracing::warn!(execution_id = msg.execution_id, step = %msg.step, error = %e, "step failed to run; will retry");
                self.jobs
                    .retry(&delivery.receipt, delay, &e.to_string())
                    .await?;
                Ok(Some(Outcome::Retry {
                    delay,
                    reason: e.to_string(),
                }))
            }
        }
    }

    /// Runs until `stop` turns true: `concurrency` loops pulling work, and
    /// a sweeper failing executions with no heartbeat for `timeout`.
    pub async fn run(self, concurrency: usize, timeout: Duration, stop: watch::Receiver<bool>) {
        if concurrency == 0 {
            return;
        }
        if let Err(e) = self.recover().await {
            tracing::warn!(error = %e, "could not recover earlier work");
        }
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let me = self.clone();
            let mut stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let signal = me.jobs.job_signal(STEPS_QUEUE);
                poll_until_stopped(&mut stop, signal.as_deref(), || me.try_execute_next()).await;
            }));
        }
        let me = self.clone();
        let mut stop_sweep = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if let Err(e) = me.engine.sweep_stale(timeout).await {
                    tracing::warn!(error = %e, "heartbeat sweep failed");
                }
                if let Err(e) = me
                    .engine
                    .requeue_unstarted(ai_team_core::engine::UNSTARTED_AFTER, None)
                    .await
                {
                    tracing::warn!(error = %e, "sweep of never-started executions failed");
                }
                tokio::select! {
                    () = tokio::time::sleep((timeout / 4).max(Duration::from_secs(1))) => {}
                    _ = stop_sweep.changed() => break,
                }
            }
        }));
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// The wait before a job that failed to run is tried again: the square of
/// its receives, capped at 36 s.
pub fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(u64::from(receive_count.min(6)).pow(2))
}

/// Runs `next` until `stop` turns true, sleeping `POLL_INTERVAL` (or until
/// stopped, or woken by `signal`) whenever there was nothing to do or the
/// queue was unreachable.
pub async fn poll_until_stopped<F, Fut, T>(
    stop: &mut watch::Receiver<bool>,
    signal: Option<&tokio::sync::Notify>,
    mut next: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let never = tokio::sync::Notify::new();
    let signal = signal.unwrap_or(&never);
    while !*stop.borrow() {
        // Registered before looking: a job queued between an empty look
        // and the wait still wakes this loop.
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let idle = match next().await {
            Ok(Some(_)) => false,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "queue unavailable");
                true
            }
        };
        if idle {
            tokio::select! {
                () = tokio::time::sleep(crate::engine_wiring::POLL_INTERVAL) => {}
                () = &mut woken => {}
                _ = stop.changed() => {}
            }
        }
    }
}
