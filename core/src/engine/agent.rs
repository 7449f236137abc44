//! An agent's step, in the order it happens: the prompt fitted to the
//! model's window (`fit_prompt`), admitted against the token budgets
//! (`admit`), one tracked model call (`call_model`), what the answer
//! changes in the run (`read_answer`, one arm per kind of step), and the
//! conversation's records (`conversation_records`). Adding a step kind
//! means an arm in `read_answer`, not an edit in the middle of the call.

use chrono::Utc;
use serde_json::{Value, json};

use super::grammar;
use super::parse::{self, PathPolicy};
use super::prompt::{self, FileText};
use super::run::{StepOutput, StepStop};
use super::state::{FileEntry, RunState};
use super::steps::{Step, Transition};
use super::{Engine, resume_path};
use crate::agents::{Role as AgentRole, StepSpec};
use crate::budgets::{Budgets, Spent, check_budgets};
use crate::catalog::ModelInfo;
use crate::governance::{self, Fitted, Window};
use crate::ledger::NewEvent;
use crate::llm::ChatRequest;
use crate::models::{
    Agent, ArtifactRef, Conversation, Execution, NewCodeFile, NewConversation, NewMessage, Role,
};
use crate::money::nanos_to_dollars;
use crate::tracking::{CallContext, Spill, TrackError, Tracked, sha256_hex, tracked_chat};
use crate::workflow_event::{Admission, ConversationFinished, WorkflowEvent};

/// How much of an answer a `conversation` event carries (the whole answer
/// is the conversation's `output`).
const OUTPUT_EXCERPT_CHARS: usize = 2000;

/// A step that stops the run, with the event saying why.
fn failure(error: String, event: WorkflowEvent) -> StepStop {
    StepStop::Fail {
        error,
        event: event.into(),
    }
}

/// The prompt as it fits the model, and what it was fitted to.
struct Prompt {
    fitted: Fitted,
    model: ModelInfo,
    max_output: u32,
    /// The fitted prompt's tokens plus the chat framing.
    prompt_tokens: i64,
}

/// What the budgets allow this call.
struct Admitted {
    max_tokens: i64,
    budgets: Budgets,
    spent: Spent,
}

/// What a step's answer changed, beyond the run state.
#[derive(Default)]
struct Answer {
    details: serde_json::Map<String, Value>,
    events: Vec<NewEvent>,
    files: Vec<NewCodeFile>,
    changes_requested: bool,
}

impl Engine {
    /// One agent's step, its stages in order (see the module's doc).
    ///
    /// Long because it is the list of those stages and the values each
    /// hands the next; every stage is its own function below.
    pub(super) async fn agent_step(
        &self,
        execution: &Execution,
        step: Step,
        mut state: RunState,
    ) -> Result<StepOutput, StepStop> {
        let (agent, spec, role) = self.cast(step)?;
        let prompt = self
            .fit_prompt(execution, step, agent, spec, role, &state)
            .await?;
        let conversation = self
            .open_conversation(execution, step, agent, &prompt)
            .await?;
        let admitted = self
            .admit(execution, step, agent, &prompt, &conversation)
            .await?;
        let (request, tracked) = self
            .call_model(
                execution,
                step,
                agent,
                spec,
                &state,
                &prompt,
                &admitted,
                &conversation,
            )
            .await?;
        let output = tracked.response.content.clone();
        let usage = &tracked.response.usage;
        let mut details = json!({
            "prompt_hash": crate::tracking::prompt_hash(self.llm.provider(), self.llm.model(), &request),
            "cached": tracked.cached,
            "truncated_sections": prompt.fitted.truncated_sections,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "estimated": usage.estimated},
            "cost": nanos_to_dollars(prompt.model.cost_nanos(usage.prompt_tokens, usage.completion_tokens)),
            "finish_reason": tracked.response.finish_reason,
        });
        let mut events: Vec<NewEvent> = tracked
            .call_ids
            .iter()
            .map(|&call_id| {
                WorkflowEvent::LlmCallRecorded {
                    call_id,
                    conversation_id: conversation.id,
                    step,
                    agent,
                }
                .into()
            })
            .collect();
        let answer = read_answer(
            step,
            agent,
            &output,
            &mut state,
            execution,
            conversation.id,
            self.config.paths,
        );
        if let Some(d) = details.as_object_mut() {
            d.extend(answer.details);
        }
        events.extend(answer.events);
        let (messages, records) = self.conversation_records(
            step,
            agent,
            role,
            execution,
            &conversation,
            &request,
            &tracked,
            &answer.files,
            &details,
        );
        events.extend(records);
        Ok(StepOutput {
            conversation: Some((
                conversation.id,
                self.persisted(output),
                self.persisted_value(details),
            )),
            messages,
            files: answer.files,
            result: json!({"calls": tracked.call_ids.len(), "cached": tracked.cached}),
            events,
            next: step.next(Transition {
                changes_requested: answer.changes_requested,
                max_fix_rounds: self.config.max_fix_rounds,
                ..Transition::default()
            }),
            state,
        })
    }

    /// The step's agent, and what the team file says of the step and role.
    fn cast(&self, step: Step) -> Result<(Agent, &StepSpec, &AgentRole), StepStop> {
        let agent = step.agent().ok_or_else(|| {
            failure(
                format!("step {step} has no agent"),
                WorkflowEvent::StepFailed {
                    step: Some(step),
                    error: None,
                },
            )
        })?;
        let (Some(spec), Some(role)) = (self.team.step(step.spec_key()), self.team.role(agent))
        else {
            return Err(failure(
                format!("the team file does not describe step {step}"),
                WorkflowEvent::StepFailed {
                    step: Some(step),
                    error: None,
                },
            ));
        };
        Ok((agent, spec, role))
    }

    /// The step's conversation (the one a re-run of the step wrote before,
    /// if any), opened with the task as its prompt.
    async fn open_conversation(
        &self,
        execution: &Execution,
        step: Step,
        agent: Agent,
        prompt: &Prompt,
    ) -> Result<Conversation, StepStop> {
        let conversation_prompt = prompt::request(
            &prompt.fitted.sections,
            prompt.max_output,
            self.config.temperature,
        );
        Ok(self
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
            .await?)
    }

    /// The step's prompt sections (the run so far, the files it reads),
    /// shrunk to the model's window by the governance rules.
    async fn fit_prompt(
        &self,
        execution: &Execution,
        step: Step,
        agent: Agent,
        spec: &StepSpec,
        role: &AgentRole,
        state: &RunState,
    ) -> Result<Prompt, StepStop> {
        let texts = self.file_texts(execution, state).await?;
        let file_views: Vec<FileText<'_>> = texts
            .iter()
            .map(|(f, content, lang)| FileText {
                path: &f.path,
                language: lang.as_deref(),
                content,
            })
            .collect();
        let existing = if spec.context.iter().any(|c| c == "existing_files") {
            self.existing_files(execution, state).await?
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
        let sections = prompt::sections(role, spec, state, &file_views, &existing_views);
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
        let fitted = governance::fit(sections, window, &count, self.config.max_shrink_attempts)
            .map_err(|e| {
                failure(
                    format!(
                        "step {step} ({agent}): {e} Resume with {}.",
                        resume_path(execution)
                    ),
                    WorkflowEvent::PromptDoesNotFit {
                        step,
                        agent,
                        error: e,
                    },
                )
            })?;
        let prompt_tokens = fitted.prompt_tokens as i64 + 8; // chat framing
        Ok(Prompt {
            fitted,
            model,
            max_output,
            prompt_tokens,
        })
    }

    /// The budgets' verdict on this call, recorded as a `governance`
    /// event; over a budget the run stops with the math and the resume call.
    async fn admit(
        &self,
        execution: &Execution,
        step: Step,
        agent: Agent,
        prompt: &Prompt,
        conversation: &Conversation,
    ) -> Result<Admitted, StepStop> {
        let (prompt_tokens, max_output) = (prompt.prompt_tokens, prompt.max_output);
        let budgets = execution.meta.budgets_or(self.config.budgets);
        // Spent before this step: a re-run of the step (after a crash) then
        // asks for the same output, so its request hashes the same and the
        // response already paid for is reused rather than bought again.
        // `execution` is the row the claim returned at this step's start,
        // and no call of this step has been recorded since: its totals are
        // current without reading the row again.
        let this_step = conversation.total_tokens_used;
        let spent = Spent {
            step: 0,
            agent: self
                .store
                .agent_tokens(execution.id, agent)
                .await?
                .saturating_sub(this_step),
            execution: execution.total_tokens.saturating_sub(this_step),
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
                return Err(failure(
                    error.clone(),
                    WorkflowEvent::OverBudget {
                        step,
                        agent,
                        over,
                        message: error,
                    },
                ));
            }
        };
        let fitted = &prompt.fitted;
        let model = &prompt.model;
        let decision = WorkflowEvent::BudgetAdmitted(Box::new(Admission {
            step,
            agent,
            model: model.name.clone(),
            prompt_tokens,
            max_tokens,
            requested_max_tokens: max_output,
            context_window: model.context_window,
            safety_buffer: self.config.safety_buffer,
            truncated_sections: fitted.truncated_sections.clone(),
            shrink_attempts: fitted.attempts,
            budgets,
            spent,
        }));
        self.store
            .append_events(
                execution.workflow_id,
                Some(execution.id),
                &[decision.into()],
            )
            .await?;
        Ok(Admitted {
            max_tokens,
            budgets,
            spent,
        })
    }

    /// The model call, tracked (retries, the response cache, the calls'
    /// rows); a provider that fails for good stops the run.
    #[allow(clippy::too_many_arguments)]
    async fn call_model(
        &self,
        execution: &Execution,
        step: Step,
        agent: Agent,
        spec: &StepSpec,
        state: &RunState,
        prompt: &Prompt,
        admitted: &Admitted,
        conversation: &Conversation,
    ) -> Result<(ChatRequest, Tracked), StepStop> {
        let mut request = prompt::request(
            &prompt.fitted.sections,
            admitted.max_tokens as u32,
            self.config.temperature,
        );
        // Only a model that samples under a grammar gets one (the embedded
        // model); remote APIs take none, and their requests hash as before.
        // Where the story or design names the files, the grammar allows those.
        if self.llm.accepts_grammar()
            && let (Some(name), Some(text)) = (&spec.grammar, self.team.grammar(step.as_str()))
        {
            let named = grammar::named_paths(&[&state.story, &state.design]);
            request.grammar = Some(grammar::fit(name, text, &named));
        }
        let (budgets, spent) = (admitted.budgets, admitted.spent);
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
            truncated_sections: prompt.fitted.truncated_sections.clone(),
            prompt_tokens_estimate: Some(prompt.prompt_tokens),
            redact: self.config.redact,
            spill: self.blobs.as_deref().map(|blobs| Spill {
                blobs,
                threshold: self.config.spill_threshold,
            }),
        };
        match tracked_chat(
            &self.store,
            self.llm.as_ref(),
            &ctx,
            &request,
            self.config.retry,
        )
        .await
        {
            Ok(t) => Ok((request, t)),
            Err(TrackError::Store(e)) => Err(StepStop::Store(e)),
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
                Err(failure(
                    error,
                    WorkflowEvent::ModelFailed {
                        step,
                        agent,
                        error_code: e.code(),
                        message: e.message,
                    },
                ))
            }
        }
    }

    /// The conversation's three messages (system, task, answer with its
    /// files as artifacts) and its `conversation` and `message` events.
    #[allow(clippy::too_many_arguments)]
    fn conversation_records(
        &self,
        step: Step,
        agent: Agent,
        role: &AgentRole,
        execution: &Execution,
        conversation: &Conversation,
        request: &ChatRequest,
        tracked: &Tracked,
        files: &[NewCodeFile],
        details: &Value,
    ) -> (Vec<NewMessage>, Vec<NewEvent>) {
        let output = &tracked.response.content;
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
        let message =
            |role: Role, content: &str, artifacts: Vec<ArtifactRef>, kind: &str| NewMessage {
                conversation_id: conversation.id,
                role,
                content: self.persisted(content.to_owned()),
                artifacts,
                message_metadata: meta(kind),
                created_at: now,
            };
        let messages = vec![
            message(Role::System, &request.messages[0].content, vec![], "system"),
            message(Role::User, &request.messages[1].content, vec![], "task"),
            message(Role::Assistant, output, artifacts, "answer"),
        ];
        let usage = &tracked.response.usage;
        let events = vec![
            WorkflowEvent::ConversationFinished(Box::new(ConversationFinished {
                conversation_id: conversation.id,
                step,
                agent,
                agent_name: role.name.clone(),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cost: details["cost"].clone(),
                cached: tracked.cached,
                files: details["files"].clone(),
                output_excerpt: output.chars().take(OUTPUT_EXCERPT_CHARS).collect(),
            }))
            .into(),
            WorkflowEvent::AnswerWritten {
                conversation_id: conversation.id,
                step,
                agent,
                chars: output.len(),
            }
            .into(),
        ];
        (messages, events)
    }
}

/// What `step`'s answer changes: the criteria, the design, the verdict,
/// or the files it writes (paths the policy refuses are dropped and said).
///
/// Long because it holds one short arm per kind of step: this match is
/// where a new kind of step says what its answer changes.
fn read_answer(
    step: Step,
    agent: Agent,
    output: &str,
    state: &mut RunState,
    execution: &Execution,
    conversation_id: i64,
    paths: PathPolicy,
) -> Answer {
    let mut answer = Answer::default();
    let details = &mut answer.details;
    match step {
        Step::Analysis => {
            state.acceptance_criteria = parse::acceptance_criteria(output);
            if state.acceptance_criteria.is_empty() {
                state.acceptance_criteria = vec![state.title.clone()];
            }
            details.insert(
                "acceptance_criteria".into(),
                json!(state.acceptance_criteria),
            );
            state.notes.push(format!(
                "analysis (pm): {} acceptance criteria",
                state.acceptance_criteria.len()
            ));
        }
        Step::Architecture => {
            state.design = output.trim().chars().take(6000).collect();
            details.insert("design_chars".into(), json!(state.design.len()));
            state
                .notes
                .push("architecture (architect): design written".into());
        }
        Step::Review | Step::FinalReview => {
            let v = parse::verdict(output);
            answer.changes_requested = !v.approved;
            details.insert("verdict".into(), json!(v));
            if answer.changes_requested && step == Step::Review {
                answer.events.push(
                    WorkflowEvent::ChangesRequested {
                        step,
                        changes: v.changes.clone(),
                    }
                    .into(),
                );
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
            let parsed = parse::code_files_with(output, paths);
            if !parsed.refused.is_empty() {
                details.insert("refused_paths".into(), json!(parsed.refused));
                answer.events.push(
                    WorkflowEvent::PathsRefused {
                        step,
                        paths: parsed.refused.clone(),
                    }
                    .into(),
                );
            }
            details.insert(
                "files".into(),
                json!(parsed.files.iter().map(|f| &f.path).collect::<Vec<_>>()),
            );
            state
                .notes
                .push(format!("{step} ({agent}): {} files", parsed.files.len()));
            for f in parsed.files {
                state.put_file(FileEntry {
                    path: f.path.clone(),
                    step: step.as_str().into(),
                    agent: agent.as_str().into(),
                    conversation_id,
                    checksum: sha256_hex(f.content.as_bytes()),
                    size_bytes: f.content.len() as i64,
                });
                answer.files.push(NewCodeFile {
                    workflow_id: execution.workflow_id,
                    conversation_id: Some(conversation_id),
                    execution_id: Some(execution.id),
                    checksum: sha256_hex(f.content.as_bytes()),
                    path: f.path,
                    language: f.language,
                    content: f.content,
                });
            }
        }
    }
    answer
}
