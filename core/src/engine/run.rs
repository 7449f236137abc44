//! Running one step message: claim, run with a heartbeat, commit the
//! step's records with its events and checkpoint, queue the successor.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use super::grammar;
use super::parse;
use super::prompt::{self, FileText};
use super::state::{FileEntry, RunState, Spent, check_budgets};
use super::steps::{Step, Transition};
use super::{Engine, EngineError, meta_budgets, meta_run, resume_path};
use crate::codehost::{CommitRequest, PullRequestRequest};
use crate::error::StoreError;
use crate::governance::{self, Window};
use crate::ledger::{Claim, EventKind, NewEvent, StepCompletion};
use crate::models::{
    ArtifactRef, Execution, ExecutionStatus, NewCodeFile, NewConversation, NewMessage, Role,
};
use crate::money::nanos_to_dollars;
use crate::queue::{StepMessage, send_step};
use crate::tracking::{CallContext, Spill, TrackError, sha256_hex, tracked_chat};

/// How much of an answer a `conversation` event carries (the whole answer
/// is the conversation's `output`).
const OUTPUT_EXCERPT_CHARS: usize = 2000;

/// What handling a message came to; the host acks or retries by it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The step ran and committed; `next` was queued.
    Completed { step: String, next: Option<String> },
    /// Finished before (a redelivery): its successor was queued again.
    AlreadyDone { step: String, next: Option<String> },
    /// Another worker holds the step: try again later.
    Busy { retry_in: Duration },
    /// Nothing to do: the execution ended, was deleted, or the message
    /// belongs to an earlier run.
    Stale { reason: String },
    /// The step failed for good (or escalated); the execution is failed
    /// with a message saying how to resume.
    Failed { step: String, error: String },
    /// A passing failure (code host down): try again after `delay`.
    Retry { delay: Duration, reason: String },
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
    /// Handles one step message. Errors are passing (the store or queue
    /// is unreachable): the host retries the message.
    #[tracing::instrument(skip(self), fields(execution_id = msg.execution_id, step = %msg.step, run = msg.attempt))]
    pub async fn handle(&self, msg: &StepMessage) -> Result<Outcome, EngineError> {
        let Some(step) = Step::parse(&msg.step) else {
            return Ok(Outcome::Stale {
                reason: format!("unknown step {:?}", msg.step),
            });
        };
        let execution = match self.store.execution_by_id(msg.execution_id).await {
            Ok(e) => e,
            Err(StoreError::NotFound(_)) => {
                return Ok(Outcome::Stale {
                    reason: "the execution no longer exists".into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        if !matches!(
            execution.status,
            ExecutionStatus::Pending | ExecutionStatus::Running
        ) {
            return Ok(Outcome::Stale {
                reason: format!("the execution is {}", execution.status),
            });
        }
        if msg.attempt != meta_run(&execution.meta) {
            return Ok(Outcome::Stale {
                reason: format!(
                    "message of run {}, execution is in run {}",
                    msg.attempt,
                    meta_run(&execution.meta)
                ),
            });
        }
        let owner = &self.config.worker_id;
        match self
            .store
            .claim_step(execution.id, step.as_str(), owner, self.config.lease)
            .await?
        {
            Claim::Completed => {
                let next = self
                    .store
                    .checkpoint(execution.id, step.as_str())
                    .await?
                    .and_then(|c| c.summary["next_step"].as_str().map(str::to_owned));
                if let Some(n) = &next {
                    self.queue_next(&execution, n, msg.attempt).await?;
                }
                return Ok(Outcome::AlreadyDone {
                    step: step.as_str().into(),
                    next,
                });
            }
            Claim::Busy { until } => {
                let retry_in =
                    (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
                return Ok(Outcome::Busy { retry_in });
            }
            Claim::Claimed { .. } => {}
        }
        let execution = self
            .store
            .mark_running(
                execution.id,
                &[
                    NewEvent::new(
                        EventKind::Execution,
                        json!({"execution_id": execution.id, "status": "running"}),
                    ),
                    NewEvent::new(
                        EventKind::Workflow,
                        json!({"workflow_id": execution.workflow_id, "status": "running"}),
                    ),
                ],
            )
            .await;
        let execution = match execution {
            Ok(e) => e,
            // Cancelled (or failed by the sweeper) since it was read: give
            // the step back so a resume can claim it at once.
            Err(StoreError::Conflict(reason)) => {
                self.store
                    .release_step(msg.execution_id, step.as_str(), owner)
                    .await?;
                return Ok(Outcome::Stale { reason });
            }
            Err(e) => return Err(e.into()),
        };
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
                self.commit(&execution, step, out, started, msg.attempt)
                    .await
            }
            Err(StepStop::Store(e)) => Err(e.into()),
            Err(StepStop::Retry { delay, reason }) => {
                // Give the step back (a no-op when the lease was lost) so
                // the retried message claims it without waiting for expiry.
                self.store
                    .release_step(execution.id, step.as_str(), owner)
                    .await?;
                Ok(Outcome::Retry { delay, reason })
            }
            Err(StepStop::Fail { error, event }) => {
                let mut meta = execution.meta.clone();
                meta["resume_hint"] = json!(format!(
                    "{} continues from step {step}",
                    resume_path(&execution)
                ));
                let events = [
                    event,
                    NewEvent::new(
                        EventKind::Execution,
                        json!({"execution_id": execution.id, "status": "failed", "step": step.as_str(), "error": error}),
                    ),
                    NewEvent::new(
                        EventKind::Workflow,
                        json!({"workflow_id": execution.workflow_id, "status": "failed"}),
                    ),
                ];
                match self
                    .store
                    .end_execution(
                        execution.id,
                        Some(step.as_str()),
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
                Ok(Outcome::Failed {
                    step: step.as_str().into(),
                    error,
                })
            }
        }
    }

    /// Renews the lease every third of its length; returns only when the
    /// lease was lost (another worker took the step over).
    async fn keep_lease(&self, execution_id: i64, step: Step, owner: &str) {
        let every = self.config.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self
                .store
                .renew_lease(execution_id, step.as_str(), owner, self.config.lease)
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
        next: &str,
        run: u32,
    ) -> Result<(), EngineError> {
        let msg = StepMessage {
            execution_id: execution.id,
            step: next.to_owned(),
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
    ) -> Result<Outcome, EngineError> {
        let next = out.next.map(|s| s.as_str().to_owned());
        out.state.next_step = next.clone();
        let budgets = meta_budgets(&execution.meta, self.config.budgets);
        let mut completion = StepCompletion {
            workflow_id: execution.workflow_id,
            execution_id: execution.id,
            step: step.as_str().into(),
            owner: self.config.worker_id.clone(),
            conversation: out.conversation,
            messages: out.messages,
            code_files: out.files,
            // The summary feeds later prompts and is stored: redacted, so
            // a secret in the story reaches neither the database nor the model.
            summary: self.persisted_value(serde_json::to_value(&out.state).unwrap_or_default()),
            artifact_index: out.state.artifact_index(),
            budgets: json!(budgets),
            result: out.result,
            events: out.events,
            finish: None,
        };
        if next.is_none() {
            completion.finish = Some(ExecutionStatus::Completed);
            completion.events.push(NewEvent::new(
                EventKind::Execution,
                json!({"execution_id": execution.id, "status": "completed"}),
            ));
            completion.events.push(NewEvent::new(
                EventKind::Workflow,
                json!({"workflow_id": execution.workflow_id, "status": "completed"}),
            ));
        }
        if !self.store.complete_step(&completion).await? {
            return Ok(Outcome::Stale {
                reason: "the step was completed by another worker".into(),
            });
        }
        tracing::debug!(workflow_id = execution.workflow_id, execution_id = execution.id, step = %step,
            elapsed_ms = started.elapsed().as_millis() as u64, "step completed");
        if let Some(n) = &next {
            // A cancelled execution keeps what the step did but goes no further.
            let now = self.store.execution_by_id(execution.id).await?;
            if matches!(
                now.status,
                ExecutionStatus::Running | ExecutionStatus::Pending
            ) {
                self.queue_next(execution, n, run).await?;
            }
        }
        Ok(Outcome::Completed {
            step: step.as_str().into(),
            next,
        })
    }

    async fn previous_state(&self, execution: &Execution) -> Result<RunState, StepStop> {
        let checkpoint = self.store.latest_checkpoint(execution.id).await?;
        match checkpoint {
            Some(c) => serde_json::from_value(c.summary).map_err(|e| StepStop::Fail {
                error: format!("the checkpoint cannot be read ({e}); start a new execution"),
                event: NewEvent::new(EventKind::Error, json!({"error": "unreadable checkpoint"})),
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
            events: vec![NewEvent::new(
                EventKind::Workflow,
                json!({"workflow_id": workflow.id, "step": "story_retrieval", "story": workflow.jira_story_id, "chars": state.story.len()}),
            )],
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

    async fn agent_step(
        &self,
        execution: &Execution,
        step: Step,
        mut state: RunState,
    ) -> Result<StepOutput, StepStop> {
        let agent = step.agent().ok_or_else(|| StepStop::Fail {
            error: format!("step {step} has no agent"),
            event: NewEvent::new(EventKind::Error, json!({"step": step.as_str()})),
        })?;
        let fail = |error: String, kind: EventKind, data: Value| StepStop::Fail {
            error,
            event: NewEvent::new(kind, data),
        };
        let (Some(spec), Some(role)) = (self.team.step(step.spec_key()), self.team.role(agent))
        else {
            return Err(fail(
                format!("the team file does not describe step {step}"),
                EventKind::Error,
                json!({"step": step.as_str()}),
            ));
        };
        let texts = self.file_texts(execution, &state).await?;
        let file_views: Vec<FileText<'_>> = texts
            .iter()
            .map(|(f, content, lang)| FileText {
                path: &f.path,
                language: lang.as_deref(),
                content,
            })
            .collect();
        let existing = if spec.context.iter().any(|c| c == "existing_files") {
            self.existing_files(execution, &state).await?
        } else {
            vec![]
        };
        let existing_views: Vec<FileText<'_>> = existing
            .iter()
            .map(|(path, lang, content)| FileText {
                path,
                language: lang.as_deref(),
                content,
            })
            .collect();
        let sections = prompt::sections(role, spec, &state, &file_views, &existing_views);
        let model = self.catalog.lookup(self.llm.model());
        let max_output = role.max_output_tokens.min(model.max_output_tokens as u32);
        let window = Window {
            context_window: model.context_window as usize,
            max_output_tokens: max_output as usize,
            safety_buffer: self.config.safety_buffer,
        };
        let counter = self.counter.clone();
        let tokenizer = model.tokenizer.clone();
        let count = move |t: &str| counter.count(&tokenizer, t);
        let fitted = governance::fit(sections, window, &count, self.config.max_shrink_attempts).map_err(|e| {
            fail(
                format!("step {step} ({agent}): {e} Resume with {}.", resume_path(execution)),
                EventKind::Governance,
                json!({"step": step.as_str(), "agent": agent.as_str(), "decision": "does_not_fit", "prompt_tokens": e.prompt_tokens,
                       "max_output_tokens": e.max_output_tokens, "context_window": e.context_window, "cut": e.cut}),
            )
        })?;
        let prompt_tokens = fitted.prompt_tokens as i64 + 8; // chat framing
        let budgets = meta_budgets(&execution.meta, self.config.budgets);
        let conversation_prompt =
            prompt::request(&fitted.sections, max_output, self.config.temperature);
        let conversation = self
            .store
            .ensure_conversation(&NewConversation {
                workflow_id: execution.workflow_id,
                execution_id: Some(execution.id),
                agent,
                step: step.as_str().into(),
                prompt: self.persisted(conversation_prompt.messages[1].content.clone()),
                output: None,
                details: json!({}),
                timestamp: Utc::now(),
            })
            .await?;
        // Spent before this step: a re-run of the step (after a crash) then
        // asks for the same output, so its request hashes the same and the
        // response already paid for is reused rather than bought again.
        let current = self.store.execution_by_id(execution.id).await?;
        let this_step = conversation.total_tokens_used;
        let spent = Spent {
            step: 0,
            agent: self
                .store
                .agent_tokens(execution.id, agent.as_str())
                .await?
                .saturating_sub(this_step),
            execution: current.total_tokens.saturating_sub(this_step),
        };
        let max_tokens = match check_budgets(budgets, spent, prompt_tokens, i64::from(max_output)) {
            Ok(m) => m,
            Err(over) => {
                let error = format!(
                    "step {step} ({agent}) stopped before calling the model: it {} (prompt {prompt_tokens} + max output {max_output}). \
                     Raise the budget and resume: {} with {{\"budgets\": {{\"{}_tokens\": {}}}}}.",
                    over.math(),
                    resume_path(execution),
                    over.budget,
                    over.spent
                        .saturating_add(prompt_tokens)
                        .saturating_add(i64::from(max_output))
                        .max(over.limit.saturating_mul(2))
                        .min(100_000_000)
                );
                return Err(fail(
                    error.clone(),
                    EventKind::Escalation,
                    json!({"step": step.as_str(), "agent": agent.as_str(), "reason": "budget", "budget": over.budget,
                           "limit": over.limit, "spent": over.spent, "needed": over.needed, "message": error}),
                ));
            }
        };
        let decision = json!({
            "step": step.as_str(), "agent": agent.as_str(), "decision": if fitted.truncated_sections.is_empty() { "fits" } else { "shrunk" },
            "model": model.name, "prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "requested_max_tokens": max_output,
            "context_window": model.context_window, "safety_buffer": self.config.safety_buffer,
            "truncated_sections": fitted.truncated_sections, "shrink_attempts": fitted.attempts,
            "budgets": budgets, "spent": {"step": spent.step, "agent": spent.agent, "execution": spent.execution},
        });
        self.store
            .append_events(
                execution.workflow_id,
                Some(execution.id),
                &[NewEvent::new(EventKind::Governance, decision)],
            )
            .await?;
        let mut request =
            prompt::request(&fitted.sections, max_tokens as u32, self.config.temperature);
        // Only a model that samples under a grammar gets one (the embedded
        // model); remote APIs take none, and their requests hash as before.
        // Where the story or design names the files, the grammar allows those.
        if self.llm.accepts_grammar()
            && let (Some(name), Some(text)) = (&spec.grammar, self.team.grammar(step.as_str()))
        {
            let named = grammar::named_paths(&[&state.story, &state.design]);
            request.grammar = Some(grammar::fit(name, text, &named));
        }
        let snapshot = json!({
            "step_tokens_left": budgets.step_tokens.saturating_sub(spent.step),
            "agent_tokens_left": budgets.agent_tokens.saturating_sub(spent.agent),
            "execution_tokens_left": budgets.execution_tokens.saturating_sub(spent.execution),
            "budgets": budgets,
        });
        let ctx = CallContext {
            conversation_id: conversation.id,
            execution_id: Some(execution.id),
            catalog: &self.catalog,
            budget_snapshot: snapshot,
            truncated_sections: fitted.truncated_sections.clone(),
            prompt_tokens_estimate: Some(prompt_tokens),
            redact: self.config.redact,
            spill: self.blobs.as_deref().map(|blobs| Spill {
                blobs,
                threshold: self.config.spill_threshold,
            }),
        };
        let tracked = match tracked_chat(
            &self.store,
            self.llm.as_ref(),
            &ctx,
            &request,
            self.config.retry,
        )
        .await
        {
            Ok(t) => t,
            Err(TrackError::Store(e)) => return Err(StepStop::Store(e)),
            Err(TrackError::Llm(e)) => {
                let error = format!(
                    "step {step} ({agent}) failed: the model call failed ({} {}): {}. The attempts are recorded as failed calls. \
                     Resume with {} once the provider answers.",
                    e.code(),
                    if e.is_retryable() {
                        "after every retry"
                    } else {
                        "and retrying cannot help"
                    },
                    e.message,
                    resume_path(execution)
                );
                return Err(fail(
                    error,
                    EventKind::Error,
                    json!({"step": step.as_str(), "agent": agent.as_str(), "error_code": e.code(), "message": e.message}),
                ));
            }
        };
        let output = tracked.response.content.clone();
        let prompt_hash =
            crate::tracking::prompt_hash(self.llm.provider(), self.llm.model(), &request);
        let mut events = Vec::new();
        for id in &tracked.call_ids {
            events.push(NewEvent::new(EventKind::LlmCall, json!({"call_id": id, "conversation_id": conversation.id, "step": step.as_str(), "agent": agent.as_str()})));
        }
        let mut files = Vec::new();
        let mut details = json!({
            "prompt_hash": prompt_hash,
            "cached": tracked.cached,
            "truncated_sections": fitted.truncated_sections,
            "usage": {"prompt_tokens": tracked.response.usage.prompt_tokens, "completion_tokens": tracked.response.usage.completion_tokens,
                      "estimated": tracked.response.usage.estimated},
            "cost": nanos_to_dollars(model.cost_nanos(tracked.response.usage.prompt_tokens, tracked.response.usage.completion_tokens)),
            "finish_reason": tracked.response.finish_reason,
        });
        let mut changes_requested = false;
        match step {
            Step::Analysis => {
                state.acceptance_criteria = parse::acceptance_criteria(&output);
                if state.acceptance_criteria.is_empty() {
                    state.acceptance_criteria = vec![state.title.clone()];
                }
                details["acceptance_criteria"] = json!(state.acceptance_criteria);
                state.notes.push(format!(
                    "analysis (pm): {} acceptance criteria",
                    state.acceptance_criteria.len()
                ));
            }
            Step::Architecture => {
                state.design = output.trim().chars().take(6000).collect();
                details["design_chars"] = json!(state.design.len());
                state
                    .notes
                    .push("architecture (architect): design written".into());
            }
            Step::Review | Step::FinalReview => {
                let v = parse::verdict(&output);
                changes_requested = !v.approved;
                details["verdict"] = json!(v);
                if changes_requested && step == Step::Review {
                    events.push(NewEvent::new(
                        EventKind::Collaboration,
                        json!({"from": "reviewer", "to": "developer", "step": step.as_str(), "changes": v.changes, "round": 1}),
                    ));
                }
                state.notes.push(format!(
                    "{step} (reviewer): {}",
                    if v.approved {
                        "approved".to_owned()
                    } else {
                        format!("{} changes requested", v.changes.len())
                    }
                ));
                state.review = Some(v);
            }
            _ => {
                let parsed = parse::code_files_with(&output, self.config.paths);
                if !parsed.refused.is_empty() {
                    details["refused_paths"] = json!(parsed.refused);
                    events.push(NewEvent::new(
                        EventKind::Governance,
                        json!({"step": step.as_str(), "decision": "paths_refused", "paths": parsed.refused}),
                    ));
                }
                details["files"] = json!(parsed.files.iter().map(|f| &f.path).collect::<Vec<_>>());
                state
                    .notes
                    .push(format!("{step} ({agent}): {} files", parsed.files.len()));
                for f in parsed.files {
                    state.put_file(FileEntry {
                        path: f.path.clone(),
                        step: step.as_str().into(),
                        agent: agent.as_str().into(),
                        conversation_id: conversation.id,
                        checksum: sha256_hex(f.content.as_bytes()),
                        size_bytes: f.content.len() as i64,
                    });
                    files.push(NewCodeFile {
                        workflow_id: execution.workflow_id,
                        conversation_id: Some(conversation.id),
                        execution_id: Some(execution.id),
                        checksum: sha256_hex(f.content.as_bytes()),
                        path: f.path,
                        language: f.language,
                        content: f.content,
                    });
                }
            }
        }
        let now = Utc::now();
        let meta = |kind: &str| json!({"agent": agent.as_str(), "step": step.as_str(), "timestamp": now, "kind": kind});
        let artifacts: Vec<ArtifactRef> = files
            .iter()
            .map(|f| ArtifactRef {
                kind: "code_file".into(),
                id: f.path.clone(),
                uri: format!("code_files://{}/{}", execution.id, f.path),
                checksum: f.checksum.clone(),
            })
            .collect();
        let messages = vec![
            NewMessage {
                conversation_id: conversation.id,
                role: Role::System,
                content: self.persisted(request.messages[0].content.clone()),
                artifacts: vec![],
                message_metadata: meta("system"),
                created_at: now,
            },
            NewMessage {
                conversation_id: conversation.id,
                role: Role::User,
                content: self.persisted(request.messages[1].content.clone()),
                artifacts: vec![],
                message_metadata: meta("task"),
                created_at: now,
            },
            NewMessage {
                conversation_id: conversation.id,
                role: Role::Assistant,
                content: self.persisted(output.clone()),
                artifacts,
                message_metadata: meta("answer"),
                created_at: now,
            },
        ];
        events.push(NewEvent::new(
            EventKind::Conversation,
            json!({"conversation_id": conversation.id, "agent": agent.as_str(), "step": step.as_str(),
                   "prompt_tokens": tracked.response.usage.prompt_tokens, "completion_tokens": tracked.response.usage.completion_tokens,
                   "cost": details["cost"], "cached": tracked.cached, "files": details["files"],
                   "conversation": {"id": conversation.id, "agent": role.name, "agent_id": agent.as_str(), "step": step.as_str(),
                                    "output": output.chars().take(OUTPUT_EXCERPT_CHARS).collect::<String>(),
                                    "files": details["files"]}}),
        ));
        events.push(NewEvent::new(
            EventKind::Message,
            json!({"conversation_id": conversation.id, "role": "assistant", "agent": agent.as_str(), "step": step.as_str(), "chars": output.len()}),
        ));
        Ok(StepOutput {
            conversation: Some((
                conversation.id,
                self.persisted(output),
                self.persisted_value(details),
            )),
            messages,
            files,
            result: json!({"calls": tracked.call_ids.len(), "cached": tracked.cached}),
            events,
            next: step.next(Transition {
                changes_requested,
                max_fix_rounds: self.config.max_fix_rounds,
                ..Transition::default()
            }),
            state,
        })
    }

    async fn integrate(
        &self,
        execution: &Execution,
        mut state: RunState,
    ) -> Result<StepOutput, StepStop> {
        let workflow = self.store.get_workflow(execution.workflow_id).await?;
        let texts = self.file_texts(execution, &state).await?;
        let mut commits: Vec<CommitRequest> = Vec::new();
        for (entry, content, _) in &texts {
            let key = format!("execution-{}/{}", execution.id, entry.step);
            match commits.iter_mut().find(|c| c.step_key == key) {
                Some(c) => c.files.push(crate::codehost::FileChange {
                    path: entry.path.clone(),
                    content: content.clone(),
                }),
                None => commits.push(CommitRequest {
                    step_key: key,
                    message: format!(
                        "{} ({}): {} for {}",
                        entry.step, entry.agent, "files", state.story_key
                    ),
                    files: vec![crate::codehost::FileChange {
                        path: entry.path.clone(),
                        content: content.clone(),
                    }],
                }),
            }
        }
        for c in &mut commits {
            c.message = format!(
                "{}: {} file(s) for {} ({})",
                c.step_key.rsplit('/').next().unwrap_or("step"),
                c.files.len(),
                state.story_key,
                state.title
            );
        }
        let slug = super::repo_steps::slug(&state.story_key);
        let branch = format!("ai-team/{slug}-execution-{}", execution.id);
        let repository = self.repository_of(&workflow, &state.story_key);
        let current = self.store.execution_by_id(execution.id).await?;
        let body = format!(
            "Implements {}: {}\n\n## Acceptance criteria\n{}\n\n## Tests\n{}\n\n## The team's work\n{}\n\n## Cost\n{} LLM calls, {} tokens ({} prompt, {} completion), ${:.6}\n\nReview: {}",
            state.story_key,
            state.title,
            state
                .acceptance_criteria
                .iter()
                .map(|c| format!("- {c}"))
                .collect::<Vec<_>>()
                .join("\n"),
            tests_section(&state),
            state
                .notes
                .iter()
                .map(|n| format!("- {n}"))
                .collect::<Vec<_>>()
                .join("\n"),
            current.total_calls,
            current.total_tokens,
            current.prompt_tokens,
            current.completion_tokens,
            nanos_to_dollars(current.total_cost),
            match &state.review {
                Some(v) if v.approved => "approved".to_owned(),
                Some(v) => format!("open points: {}", v.changes.join("; ")),
                None => "none".into(),
            }
        );
        let pr = PullRequestRequest {
            title: format!("{}: {}", state.story_key, state.title),
            body,
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
                    event: NewEvent::new(
                        EventKind::Error,
                        json!({"step": "integration", "error": e.to_string()}),
                    ),
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
                title: format!("{}: {}", state.story_key, state.title),
                head_branch: delivered.branch.clone(),
                base_branch: delivered.base_branch.clone(),
                head_sha: Some(delivered.head_sha.clone()),
                merged: false,
                draft: pr.draft,
                updated_at: pr.updated_at.unwrap_or_else(Utc::now),
            };
            let event = NewEvent::new(
                EventKind::Workflow,
                json!({"kind": "pr", "source": "integration", "number": pr.number, "url": pr.url, "state": update.state}),
            );
            self.store
                .upsert_pull_request(workflow.id, &update, &[event])
                .await?;
        }
        let mut events = vec![NewEvent::new(
            EventKind::Workflow,
            json!({"workflow_id": workflow.id, "step": "integration", "delivered": delivered}),
        )];
        if let Some(reason) = &delivered.pull_request_skipped {
            // As the original's `pr_skipped`: the run completes, and says why.
            state
                .notes
                .push(format!("integration: pull request skipped ({reason})"));
            events.push(NewEvent::new(
                EventKind::Workflow,
                json!({"workflow_id": workflow.id, "kind": "pr", "status": "skipped", "pr_skipped": true, "reason": reason}),
            ));
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

/// The PR body's tests: the last verification's command and counts, and
/// the end of its output when it failed.
fn tests_section(state: &RunState) -> String {
    let Some(v) = state.verifications.last() else {
        return "No verification ran.".into();
    };
    let mut t = format!(
        "{} ({} verification run(s) in all)",
        v.summary,
        state.verifications.len()
    );
    if v.status == crate::verification::TestStatus::Failed && !v.tail.is_empty() {
        let last: Vec<&str> = v.tail.lines().rev().take(20).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        t.push_str(&format!("\n\n```\n{}\n```", last.join("\n")));
    }
    t
}
