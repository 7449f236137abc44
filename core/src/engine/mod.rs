//! The workflow engine: starts, resumes and cancels executions, and runs
//! one step per queue message. Delivery is at least once; effects are
//! exactly once: a step claims `(execution, step)` with a lease, its
//! records, checkpoint and events commit in one transaction with the
//! lease's completion, a redelivered finished step only re-sends its
//! successor, and LLM responses already paid for are reused by prompt hash.

mod agent;
pub mod grammar;
/// The answers' parsing lives at the crate root (`crate::answers`): the
/// call tracking reads answers too.
pub use crate::answers as parse;
pub mod prompt;
mod pull_request;
mod repo_steps;
pub mod run;
/// The run state lives at the crate root (`crate::run_state`): a
/// checkpoint, which the store ports carry, holds one.
pub use crate::run_state as state;
/// The step list lives at the crate root (`crate::steps`): the team file
/// names steps too.
pub use crate::steps;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::agents::Team;
use crate::blob::BlobStore;
use crate::catalog::Catalog;
use crate::codehost::CodeHost;
use crate::error::StoreError;
use crate::ledger::NewEvent;
use crate::llm::{LlmClient, RetryPolicy};
use crate::models::{Execution, ExecutionStatus};
use crate::queue::{QueueError, StepMessage, StepQueue, send_step};
use crate::store::Store;
use crate::workflow_event::WorkflowEvent;

use crate::budgets::{BudgetPatch, Budgets};
use crate::execution_meta::{ExecutionMeta, RunConfig};
pub use repo_steps::repo_context;
pub use run::Outcome;
use steps::Step;

/// Counts tokens under a catalog tokenizer name (tiktoken lives in the
/// providers; core only knows the estimate).
pub trait TokenCounter: Send + Sync + 'static {
    /// Tokens in `text` under the catalog's `tokenizer`.
    fn count(&self, tokenizer: &str, text: &str) -> usize;
}

/// The documented estimate for every model.
pub struct EstimateCounter;

impl TokenCounter for EstimateCounter {
    fn count(&self, _tokenizer: &str, text: &str) -> usize {
        crate::governance::estimate_tokens(text)
    }
}

/// How the engine runs steps: leases, retries, budgets, redaction, paths, tests.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a claimed step is ours without a heartbeat.
    pub lease: Duration,
    /// How LLM calls are retried.
    pub retry: RetryPolicy,
    /// Whether secrets are redacted from what is stored (`AI_TEAM_REDACT_SENSITIVE`).
    pub redact: bool,
    /// Request/response bodies larger than this move to the blob store.
    pub spill_threshold: usize,
    /// Token budgets an execution runs under unless its own meta sets others.
    pub budgets: Budgets,
    /// Tokens kept free in the window besides prompt and output.
    pub safety_buffer: usize,
    /// Most times a prompt is shrunk before it is declared not to fit.
    pub max_shrink_attempts: u32,
    /// Sampling temperature of every call.
    pub temperature: f32,
    /// This worker's name on leases.
    pub worker_id: String,
    /// Where the code goes when a workflow names no repository;
    /// `{workflow_id}` and `{story}` are replaced.
    pub default_repository: String,
    /// Which paths the agents' answers may write (`AI_TEAM_ALLOW_CI_PATHS`).
    pub paths: parse::PathPolicy,
    /// `AI_TEAM_TEST_COMMAND`: the test command when a workflow names none.
    pub test_command: Option<String>,
    /// `AI_TEAM_MAX_FIX_ROUNDS`: fixes of failing tests before review.
    pub max_fix_rounds: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            redact: true,
            spill_threshold: 64 * 1024,
            budgets: Budgets::default(),
            safety_buffer: 256,
            max_shrink_attempts: 8,
            temperature: 0.2,
            worker_id: format!("worker-{}", std::process::id()),
            default_repository: "./data/repos/{story}".into(),
            paths: parse::PathPolicy::default(),
            test_command: None,
            max_fix_rounds: 2,
        }
    }
}

/// Why the engine could not run a step.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Input the engine refuses (e.g. an invalid budget patch).
    #[error("{0}")]
    Invalid(String),
}

/// The engine and the adapters it drives, built once.
#[derive(Clone)]
pub struct Engine {
    /// Where everything is recorded.
    pub store: Arc<dyn Store>,
    /// The model the agents talk to.
    pub llm: Arc<dyn LlmClient>,
    /// Where steps are queued.
    pub queue: Arc<dyn StepQueue>,
    /// Where large request and response bodies go; `None` keeps them inline.
    pub blobs: Option<Arc<dyn BlobStore>>,
    /// Where delivered files land.
    pub code_host: Arc<dyn CodeHost>,
    /// Per-model context windows, output limits, tokenizers and prices.
    pub catalog: Arc<Catalog>,
    /// The agent team: roles and step definitions.
    pub team: Arc<Team>,
    /// Counts tokens for the budgets.
    pub counter: Arc<dyn TokenCounter>,
    /// Runs the repository's tests (`NoRunner` where the host has no toolchain).
    pub tests: Arc<dyn crate::verification::TestRunner>,
    /// The engine's settings.
    pub config: Arc<EngineConfig>,
}

impl Engine {
    /// Whether the queue is a table of the store's database, so a step's
    /// completion queues the next step in its own transaction.
    pub(crate) fn outbox(&self) -> bool {
        crate::queue::DatabaseId::shared(self.queue.database(), self.store.database())
    }

    /// A text as the engine writes it (conversations, messages, execution
    /// errors): redacted unless `AI_TEAM_REDACT_SENSITIVE` is off.
    pub(crate) fn persisted(&self, text: String) -> String {
        if !self.config.redact {
            return text;
        }
        match crate::redact::redact(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(r) => r,
        }
    }

    /// A JSON value (details, checkpoint summaries) as the engine writes it.
    pub(crate) fn persisted_value(&self, mut value: Value) -> Value {
        if self.config.redact {
            crate::redact::redact_value(&mut value);
        }
        value
    }

    /// The run state as a checkpoint stores it: redacted, so a secret in
    /// the story reaches neither the database nor a later prompt.
    /// Redaction only rewrites the text of strings, so the state reads
    /// back; were it ever not to, nothing is stored rather than the
    /// unredacted state.
    pub(crate) fn persisted_state(
        &self,
        state: &crate::run_state::RunState,
    ) -> Result<crate::run_state::RunState, EngineError> {
        if !self.config.redact {
            return Ok(state.clone());
        }
        let value = self.persisted_value(serde_json::to_value(state).unwrap_or_default());
        serde_json::from_value(value).map_err(|e| {
            EngineError::Invalid(format!("the redacted run state does not read back: {e}"))
        })
    }
}

/// How long a pending execution may go without any step claimed before it
/// counts as never started (its first message lost to a crash).
pub const UNSTARTED_AFTER: Duration = Duration::from_secs(30);

pub(crate) fn resume_path(e: &Execution) -> String {
    format!(
        "POST /workflows/{}/executions/{}/resume",
        e.workflow_id, e.id
    )
}

impl Engine {
    /// A new execution of the workflow, its first step queued. `Conflict`
    /// when one is already live.
    /// An execution left `pending` by a start that crashed before queueing
    /// its first step is taken up again instead (its first step queued):
    /// without that it would answer 409 to every start and delete forever.
    #[tracing::instrument(skip(self))]
    pub async fn start(&self, workflow_id: i64) -> Result<Execution, EngineError> {
        let execution = match self.store.create_execution(workflow_id).await {
            Ok(e) => e,
            Err(StoreError::Conflict(reason)) => {
                return match self
                    .requeue_unstarted(UNSTARTED_AFTER, Some(workflow_id))
                    .await?
                    .pop()
                {
                    Some(stuck) => Ok(stuck),
                    None => Err(StoreError::Conflict(reason).into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let meta = ExecutionMeta {
            run: Some(1),
            budgets: Some(self.config.budgets),
            config: Some(RunConfig {
                provider: self.llm.provider().to_owned(),
                model: self.llm.model().to_owned(),
                code_host: self.code_host.kind().to_owned(),
                temperature: self.config.temperature,
            }),
            ..ExecutionMeta::default()
        };
        self.store.set_execution_meta(execution.id, &meta).await?;
        self.store
            .append_events(
                workflow_id,
                Some(execution.id),
                &[WorkflowEvent::ExecutionQueued {
                    execution_id: execution.id,
                    run: 1,
                    resumed: None,
                }
                .into()],
            )
            .await?;
        let first = StepMessage {
            execution_id: execution.id,
            step: Step::FIRST.as_str().into(),
            attempt: 1,
        };
        if let Err(e) = send_step(self.queue.as_ref(), &first, Duration::ZERO).await {
            let error = format!(
                "could not queue the first step: {e}. Resume with {}",
                resume_path(&execution)
            );
            self.store
                .end_execution(
                    execution.id,
                    None,
                    ExecutionStatus::Failed,
                    Some(&error),
                    &meta,
                    &[],
                )
                .await?;
            return Err(e.into());
        }
        Ok(self.store.execution_by_id(execution.id).await?)
    }

    /// The same execution continues from its last checkpoint with the
    /// budgets raised as asked; completed steps are not run again.
    #[tracing::instrument(skip(self))]
    pub async fn resume(
        &self,
        workflow_id: i64,
        execution_id: i64,
        patch: BudgetPatch,
    ) -> Result<Execution, EngineError> {
        patch.validate().map_err(EngineError::Invalid)?;
        let execution = self.store.get_execution(workflow_id, execution_id).await?;
        if !matches!(
            execution.status,
            ExecutionStatus::Failed | ExecutionStatus::Cancelled
        ) {
            return Err(StoreError::Conflict(format!(
                "execution {execution_id} is {}; only a failed or cancelled execution can be resumed",
                execution.status
            ))
            .into());
        }
        let run = execution.meta.run() + 1;
        let budgets = patch.apply(execution.meta.budgets_or(self.config.budgets));
        let next = match self.store.latest_checkpoint(execution_id).await? {
            Some(c) => {
                c.state
                    .map_err(|e| StoreError::Conflict(format!("{e}; start a new execution")))?
                    .next_step
            }
            None => Some(Step::FIRST),
        };
        let Some(next_step) = next else {
            return Err(StoreError::Conflict("every step of this execution is done".into()).into());
        };
        let meta = ExecutionMeta {
            run: Some(run),
            budgets: Some(budgets),
            resumed_from: Some(next_step.as_str().to_owned()),
            resume_hint: None,
            ..execution.meta.clone()
        };
        let events: [NewEvent; 1] = [WorkflowEvent::ExecutionQueued {
            execution_id,
            run,
            resumed: Some((next_step, budgets)),
        }
        .into()];
        let reopened = self
            .store
            .reopen_execution(execution_id, &meta, &events)
            .await?;
        tracing::debug!(workflow_id, execution_id, run, step = %next_step, "execution resumed");
        send_step(
            self.queue.as_ref(),
            &StepMessage {
                execution_id,
                step: next_step.as_str().to_owned(),
                attempt: run,
            },
            Duration::ZERO,
        )
        .await?;
        Ok(reopened)
    }

    /// Cancels a live execution; a step in flight finishes its call (it
    /// is paid for and recorded) but nothing after it runs.
    #[tracing::instrument(skip(self))]
    pub async fn cancel(
        &self,
        workflow_id: i64,
        execution_id: i64,
    ) -> Result<Execution, EngineError> {
        let execution = self.store.get_execution(workflow_id, execution_id).await?;
        let mut meta = execution.meta.clone();
        meta.resume_hint = Some(format!(
            "{} continues from the last checkpoint",
            resume_path(&execution)
        ));
        let events: [NewEvent; 1] = [WorkflowEvent::ExecutionStatus {
            execution_id,
            status: ExecutionStatus::Cancelled,
        }
        .into()];
        Ok(self
            .store
            .end_execution(
                execution_id,
                None,
                ExecutionStatus::Cancelled,
                Some("cancelled by request"),
                &meta,
                &events,
            )
            .await?)
    }

    /// Queues the first step again of every execution created more than
    /// `older_than` ago and never started (see `StepLedger::unstarted_executions`);
    /// it stays `pending` and runs as usual. A duplicate of a message that
    /// was queued after all is harmless: the queue drops it by its dedup
    /// key, or its claim finds the step taken.
    pub async fn requeue_unstarted(
        &self,
        older_than: Duration,
        workflow_id: Option<i64>,
    ) -> Result<Vec<Execution>, EngineError> {
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::seconds(30));
        let stuck = self.store.unstarted_executions(before, workflow_id).await?;
        for e in &stuck {
            let first = StepMessage {
                execution_id: e.id,
                step: Step::FIRST.as_str().into(),
                attempt: e.meta.run(),
            };
            send_step(self.queue.as_ref(), &first, Duration::ZERO).await?;
            tracing::warn!(
                workflow_id = e.workflow_id,
                execution_id = e.id,
                "execution was never started (its first step was not queued): queued now"
            );
        }
        Ok(stuck)
    }

    /// Fails running executions whose worker stopped beating: the message
    /// says how to resume.
    pub async fn sweep_stale(&self, timeout: Duration) -> Result<usize, EngineError> {
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::seconds(120));
        let stale = self.store.stale_executions(before).await?;
        let mut n = 0;
        for e in stale {
            let error = format!(
                "no heartbeat from the worker for more than {} s: the process running it stopped. \
                 {} continues from the last checkpoint ({}).",
                timeout.as_secs(),
                resume_path(&e),
                e.meta.checkpoint.as_deref().unwrap_or("none yet")
            );
            let mut meta = e.meta.clone();
            meta.resume_hint = Some(resume_path(&e));
            let events: [NewEvent; 1] = [WorkflowEvent::ExecutionAbandoned {
                execution_id: e.id,
                error: error.clone(),
            }
            .into()];
            match self
                .store
                .end_execution(
                    e.id,
                    None,
                    ExecutionStatus::Failed,
                    Some(&error),
                    &meta,
                    &events,
                )
                .await
            {
                Ok(_) => {
                    tracing::warn!(
                        workflow_id = e.workflow_id,
                        execution_id = e.id,
                        "execution failed: no heartbeat"
                    );
                    n += 1;
                }
                Err(StoreError::Conflict(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(n)
    }
}
