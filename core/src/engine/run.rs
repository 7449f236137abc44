//! Running one step message: claim, run with a heartbeat, commit the
//! step's records with its events and checkpoint, queue the successor.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use super::pull_request;
use super::state::{FileEntry, RunState};
use super::steps::{Step, Transition};
use super::{Engine, EngineError, resume_path};
use crate::codehost::PullRequestRequest;
use crate::error::StoreError;
use crate::ledger::{Claim, NewEvent, StepCommit, StepCompletion};
use crate::models::WorkflowStatus;
use crate::models::{Execution, ExecutionStatus, NewCodeFile, NewMessage};
use crate::queue::{StepMessage, send_step};
use crate::workflow_event::WorkflowEvent;

/// What handling a message came to; the host acks or retries by it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The step ran and committed; `next` was queued.
    Completed {
        /// The step that ran.
        step: Step,
        /// The step queued next; `None` when the execution is finished.
        next: Option<Step>,
    },
    /// Finished before (a redelivery): its successor was queued again.
    AlreadyDone {
        /// The step that had run.
        step: Step,
        /// The successor queued again; `None` when there is none.
        next: Option<Step>,
    },
    /// Another worker holds the step: try again later.
    Busy {
        /// How long to wait before the message comes back.
        retry_in: Duration,
    },
    /// Nothing to do: the execution ended, was deleted, or the message
    /// belongs to an earlier run.
    Stale {
        /// Why there is nothing to do.
        reason: String,
    },
    /// The step failed for good (or escalated); the execution is failed
    /// with a message saying how to resume.
    Failed {
        /// The step that failed.
        step: Step,
        /// What went wrong (also the execution's error).
        error: String,
    },
    /// A passing failure (code host down): try again after `delay`.
    Retry {
        /// How long to wait before the message comes back.
        delay: Duration,
        /// What failed.
        reason: String,
    },
}

impl Outcome {
    /// Whether the message is settled (acknowledged) by this outcome.
    pub fn settles(&self) -> bool {
        !matches!(self, Outcome::Busy { .. } | Outcome::Retry { .. })
    }
}

/// What a step produced, before it is committed.
pub(super) struct StepOutput {
    pub(super) conversation: Option<(i64, String, Value)>,
    pub(super) messages: Vec<NewMessage>,
    pub(super) files: Vec<NewCodeFile>,
    pub(super) state: RunState,
    pub(super) events: Vec<NewEvent>,
    pub(super) result: Value,
    pub(super) next: Option<Step>,
}

/// Why a step did not produce output.
pub(super) enum StepStop {
    /// Terminal for this run: the execution fails with this message.
    Fail {
        error: String,
        event: NewEvent,
    },
    Retry {
        delay: Duration,
        reason: String,
    },
    Store(StoreError),
}

impl From<StoreError> for StepStop {
    fn from(e: StoreError) -> Self {
        StepStop::Store(e)
    }
}

impl Engine {
    /// Handles one step message: claims the step, runs it under a kept
    /// lease, then commits its output or records why it stopped. Errors
    /// are passing (the store or queue is unreachable): the host retries
    /// the message.
    pub async fn handle(&self, msg: &StepMessage) -> Result<Outcome, EngineError> {
        self.handle_settling(msg, None).await
    }

    /// `handle`, and when the step completes, the local queue job
    /// `receipt` that carried `msg` is acknowledged in the step's own
    /// transaction (`Outcome::Completed`: the caller does not ack it).
    /// Only for a job of the store's own queue (`StepLedger::database`).
    #[tracing::instrument(skip(self, receipt), fields(execution_id = msg.execution_id, step = %msg.step, run = msg.attempt))]
    pub async fn handle_settling(
        &self,
        msg: &StepMessage,
        receipt: Option<&str>,
    ) -> Result<Outcome, EngineError> {
        let Some(step) = Step::parse(&msg.step) else {
            return Ok(Outcome::Stale {
                reason: format!("unknown step {:?}", msg.step),
            });
        };
        let execution = match self.claim(msg, step).await? {
            Ok(execution) => execution,
            Err(outcome) => return Ok(outcome),
        };
        let owner = &self.config.worker_id;
        let started = Instant::now();
        let result = {
            let work = self.run_step(&execution, step);
            let beat = self.keep_lease(execution.id, step, owner);
            tokio::select! {
                r = work => r,
                () = beat => Err(StepStop::Retry { delay: self.config.lease, reason: "lease lost to another worker".into() }),
            }
        };
        match result {
            Ok(out) => {
                self.commit(&execution, step, out, started, msg.attempt, receipt)
                    .await
            }
            Err(StepStop::Store(e)) => Err(e.into()),
            Err(StepStop::Retry { delay, reason }) => {
                // Give the step back (a no-op when the lease was lost) so
                // the retried message claims it without waiting for expiry.
                self.store.release_step(execution.id, step, owner).await?;
                Ok(Outcome::Retry { delay, reason })
            }
            Err(StepStop::Fail { error, event }) => self.fail(&execution, step, error, event).await,
        }
    }

    /// The running execution whose step this worker now holds, or what the
    /// message came to instead (stale, done before, busy elsewhere).
    ///
    /// Long because each way a message can be stale is its own early
    /// return, in the order they are checked.
    async fn claim(
        &self,
        msg: &StepMessage,
        step: Step,
    ) -> Result<Result<Execution, Outcome>, EngineError> {
        let execution = match self.store.execution_by_id(msg.execution_id).await {
            Ok(e) => e,
            Err(StoreError::NotFound(_)) => {
                return Ok(Err(Outcome::Stale {
                    reason: "the execution no longer exists".into(),
                }));
            }
            Err(e) => return Err(e.into()),
        };
        if !matches!(
            execution.status,
            ExecutionStatus::Pending | ExecutionStatus::Running
        ) {
            return Ok(Err(Outcome::Stale {
                reason: format!("the execution is {}", execution.status),
            }));
        }
        if msg.attempt != execution.meta.run() {
            return Ok(Err(Outcome::Stale {
                reason: format!(
                    "message of run {}, execution is in run {}",
                    msg.attempt,
                    execution.meta.run()
                ),
            }));
        }
        let owner = &self.config.worker_id;
        match self
            .store
            .claim_step(execution.id, step, owner, self.config.lease)
            .await?
        {
            Claim::Completed => {
                let next = self
                    .store
                    .checkpoint(execution.id, step)
                    .await?
                    .and_then(|c| c.next_step());
                if let Some(n) = next {
                    self.queue_next(&execution, n, msg.attempt).await?;
                }
                return Ok(Err(Outcome::AlreadyDone { step, next }));
            }
            Claim::Busy { until } => {
                let retry_in =
                    (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
                return Ok(Err(Outcome::Busy { retry_in }));
            }
            Claim::Claimed { .. } => {}
        }
        let execution = self
            .store
            .mark_running(
                execution.id,
                &[
                    WorkflowEvent::ExecutionStatus {
                        execution_id: execution.id,
                        status: ExecutionStatus::Running,
                    }
                    .into(),
                    WorkflowEvent::WorkflowStatus {
                        workflow_id: execution.workflow_id,
                        status: WorkflowStatus::Running,
                    }
                    .into(),
                ],
            )
            .await;
        match execution {
            Ok(e) => Ok(Ok(e)),
            // Cancelled (or failed by the sweeper) since it was read: give
            // the step back so a resume can claim it at once.
            Err(StoreError::Conflict(reason)) => {
                self.store
                    .release_step(msg.execution_id, step, owner)
                    .await?;
                Ok(Err(Outcome::Stale { reason }))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ends the execution as failed at `step`, with the event saying why
    /// and the resume hint in its metadata.
    async fn fail(
        &self,
        execution: &Execution,
        step: Step,
        error: String,
        event: NewEvent,
    ) -> Result<Outcome, EngineError> {
        let mut meta = execution.meta.clone();
        meta.resume_hint = Some(format!(
            "{} continues from step {step}",
            resume_path(execution)
        ));
        let events = [
            event,
            WorkflowEvent::ExecutionFailed {
                execution_id: execution.id,
                step,
                error: error.clone(),
            }
            .into(),
            WorkflowEvent::WorkflowStatus {
                workflow_id: execution.workflow_id,
                status: WorkflowStatus::Failed,
            }
            .into(),
        ];
        match self
            .store
            .end_execution(
                execution.id,
                Some(step),
                ExecutionStatus::Failed,
                Some(&self.persisted(error.clone())),
                &meta,
                &events,
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::warn!(workflow_id = execution.workflow_id, execution_id = execution.id, step = %step, error = %error, "execution failed");
        Ok(Outcome::Failed { step, error })
    }

    /// Renews the lease every third of its length; returns only when the
    /// lease was lost (another worker took the step over).
    async fn keep_lease(&self, execution_id: i64, step: Step, owner: &str) {
        let every = self.config.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self
                .store
                .renew_lease(execution_id, step, owner, self.config.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
            }
        }
    }

    async fn queue_next(
        &self,
        execution: &Execution,
        next: Step,
        run: u32,
    ) -> Result<(), EngineError> {
        let msg = StepMessage {
            execution_id: execution.id,
            step: next.as_str().to_owned(),
            attempt: run,
        };
        send_step(self.queue.as_ref(), &msg, Duration::ZERO).await?;
        Ok(())
    }

    async fn commit(
        &self,
        execution: &Execution,
        step: Step,
        mut out: StepOutput,
        started: Instant,
        run: u32,
        receipt: Option<&str>,
    ) -> Result<Outcome, EngineError> {
        let next = out.next;
        out.state.next_step = next;
        let budgets = execution.meta.budgets_or(self.config.budgets);
        let mut completion = StepCompletion {
            workflow_id: execution.workflow_id,
            execution_id: execution.id,
            step,
            owner: self.config.worker_id.clone(),
            conversation: out.conversation,
            messages: out.messages,
            code_files: out.files,
            // The summary feeds later prompts and is stored: redacted, so
            // a secret in the story reaches neither the database nor the model.
            state: self.persisted_state(&out.state)?,
            budgets,
            result: out.result,
            events: out.events,
            finish: None,
            next: next.filter(|_| self.outbox()).map(|n| StepMessage {
                execution_id: execution.id,
                step: n.as_str().to_owned(),
                attempt: run,
            }),
            settles: receipt.map(str::to_owned),
        };
        if next.is_none() {
            completion.finish = Some(ExecutionStatus::Completed);
            completion.events.push(
                WorkflowEvent::ExecutionStatus {
                    execution_id: execution.id,
                    status: ExecutionStatus::Completed,
                }
                .into(),
            );
            completion.events.push(
                WorkflowEvent::WorkflowStatus {
                    workflow_id: execution.workflow_id,
                    status: WorkflowStatus::Completed,
                }
                .into(),
            );
        }
        let status = match self.store.complete_step(&completion).await? {
            StepCommit::Written(status) => status,
            StepCommit::NotOwner => {
                return Ok(Outcome::Stale {
                    reason: "the step was completed by another worker".into(),
                });
            }
        };
        tracing::debug!(workflow_id = execution.workflow_id, execution_id = execution.id, step = %step,
            elapsed_ms = started.elapsed().as_millis() as u64, "step completed");
        // A cancelled execution keeps what the step did but goes no further.
        if let Some(n) = next
            && !status.is_terminal()
            && completion.next.is_none()
        {
            self.queue_next(execution, n, run).await?;
        }
        Ok(Outcome::Completed { step, next })
    }

    async fn previous_state(&self, execution: &Execution) -> Result<RunState, StepStop> {
        let checkpoint = self.store.latest_checkpoint(execution.id).await?;
        match checkpoint {
            Some(c) => c.state.map_err(|e| StepStop::Fail {
                error: format!("{e}; start a new execution"),
                event: WorkflowEvent::StepFailed {
                    step: None,
                    error: Some("unreadable checkpoint".into()),
                }
                .into(),
            }),
            None => Ok(RunState::default()),
        }
    }

    async fn run_step(&self, execution: &Execution, step: Step) -> Result<StepOutput, StepStop> {
        let state = self.previous_state(execution).await?;
        match step {
            Step::StoryRetrieval => self.retrieve_story(execution).await,
            Step::RepositoryContext => self.read_repository(execution, state).await,
            s if s.is_verification() => self.verify(execution, s, state).await,
            Step::Integration => self.integrate(execution, state).await,
            _ => self.agent_step(execution, step, state).await,
        }
    }

    async fn retrieve_story(&self, execution: &Execution) -> Result<StepOutput, StepStop> {
        let workflow = self.store.get_workflow(execution.workflow_id).await?;
        let story = workflow
            .description
            .clone()
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| workflow.name.clone());
        let title = workflow
            .name
            .strip_prefix(&format!("{}: ", workflow.jira_story_id))
            .unwrap_or(&workflow.name)
            .to_owned();
        let state = RunState {
            story_key: workflow.jira_story_id.clone(),
            title,
            story,
            notes: vec![format!("story {} retrieved", workflow.jira_story_id)],
            ..Default::default()
        };
        Ok(StepOutput {
            conversation: None,
            messages: vec![],
            files: vec![],
            events: vec![
                WorkflowEvent::StoryRetrieved {
                    workflow_id: workflow.id,
                    story: workflow.jira_story_id.clone(),
                    chars: state.story.len(),
                }
                .into(),
            ],
            result: json!({"story_chars": state.story.len()}),
            state,
            next: Step::StoryRetrieval.next(Transition::default()),
        })
    }

    /// The latest content of every file in the index.
    pub(super) async fn file_texts(
        &self,
        execution: &Execution,
        state: &RunState,
    ) -> Result<Vec<(FileEntry, String, Option<String>)>, StepStop> {
        if state.files.is_empty() {
            return Ok(vec![]);
        }
        let all = self
            .store
            .workflow_code_files(execution.workflow_id)
            .await?;
        // A path recorded before today's path rules (an older run's
        // checkpoint) is not read back or delivered either.
        let allowed = |path: &str| {
            crate::codehost::normalise_path(path).is_some()
                && (self.config.paths.allow_ci_paths || !crate::codehost::is_ci_path(path))
        };
        Ok(state
            .files
            .iter()
            .filter(|f| allowed(&f.path))
            .filter_map(|f| {
                all.iter()
                    .find(|c| c.conversation_id == Some(f.conversation_id) && c.path == f.path)
                    .map(|c| (f.clone(), c.content.clone(), c.language.clone()))
            })
            .collect())
    }

    /// Commits the team's files on a branch, pushes it and opens (or
    /// finds) the pull request; the delivery is the step's result.
    ///
    /// Long because the delivery is one sequence whose every stage reads
    /// the previous one's values (branch, commits, pull request, events);
    /// the formatting of the pull request is in `pull_request.rs`.
    async fn integrate(
        &self,
        execution: &Execution,
        mut state: RunState,
    ) -> Result<StepOutput, StepStop> {
        let workflow = self.store.get_workflow(execution.workflow_id).await?;
        let texts = self.file_texts(execution, &state).await?;
        let commits = pull_request::commits(execution, &state, &texts);
        let slug = super::repo_steps::slug(&state.story_key);
        let branch = format!("ai-team/{slug}-execution-{}", execution.id);
        let repository = self.repository_of(&workflow, &state.story_key);
        // The claim's row: integration records no call, so its totals are
        // the run's.
        let pr = PullRequestRequest {
            title: pull_request::title(&state),
            body: pull_request::body(&state, execution),
            head: branch.clone(),
            base: String::new(),
        };
        let delivered = match self
            .code_host
            .deliver(&repository, &branch, &commits, Some(&pr))
            .await
        {
            Ok(d) => d,
            Err(e) if e.is_retryable() => {
                return Err(StepStop::Retry {
                    delay: Duration::from_secs(10),
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                return Err(StepStop::Fail {
                    error: format!(
                        "integration failed: {e}. Fix the repository settings and resume with {}.",
                        resume_path(execution)
                    ),
                    event: WorkflowEvent::StepFailed {
                        step: Some(Step::Integration),
                        error: Some(e.to_string()),
                    }
                    .into(),
                });
            }
        };
        state.notes.push(format!(
            "integration: {} commit(s) on {} in {}",
            commits.len(),
            delivered.branch,
            delivered.location
        ));
        if let Some(pr) = &delivered.pull_request {
            // The pull request is readable (GET …/pr) as soon as it exists;
            // an upsert, so a redelivered step or an earlier webhook is fine.
            let update = crate::delivery::PullRequestUpdate {
                repository: pr.repository.clone(),
                number: pr.number,
                url: pr.url.clone(),
                state: if pr.state.is_empty() {
                    "open".into()
                } else {
                    pr.state.clone()
                },
                title: pull_request::title(&state),
                head_branch: delivered.branch.clone(),
                base_branch: delivered.base_branch.clone(),
                head_sha: Some(delivered.head_sha.clone()),
                merged: false,
                draft: pr.draft,
                updated_at: pr.updated_at.unwrap_or_else(Utc::now),
            };
            let event: NewEvent = WorkflowEvent::PullRequestOpened {
                number: pr.number,
                url: pr.url.clone(),
                state: update.state.clone(),
            }
            .into();
            self.store
                .upsert_pull_request(workflow.id, &update, &[event])
                .await?;
        }
        let mut events: Vec<NewEvent> = vec![
            WorkflowEvent::Integrated {
                workflow_id: workflow.id,
                delivered: Box::new(delivered.clone()),
            }
            .into(),
        ];
        if let Some(reason) = &delivered.pull_request_skipped {
            // As the original's `pr_skipped`: the run completes, and says why.
            state
                .notes
                .push(format!("integration: pull request skipped ({reason})"));
            events.push(
                WorkflowEvent::PullRequestSkipped {
                    workflow_id: workflow.id,
                    reason: reason.clone(),
                }
                .into(),
            );
        }
        let result = json!(delivered);
        state.delivered = Some(delivered);
        Ok(StepOutput {
            conversation: None,
            messages: vec![],
            files: vec![],
            events,
            result,
            state,
            next: None,
        })
    }
}
