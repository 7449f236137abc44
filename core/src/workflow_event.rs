//! Every event written to a workflow's log, as one type. Its kind and its
//! JSON are decided here and nowhere else, so what clients stream (API.md,
//! "Streaming") changes only when this file does; `From<WorkflowEvent> for
//! NewEvent` is the one place an event becomes JSON on its way to the store.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::budgets::{Budgets, OverBudget, Spent};
use crate::codehost::Delivered;
use crate::delivery::{RefreshKind, WebhookChange, WebhookDelivery};
use crate::governance::DoesNotFit;
use crate::ledger::NewEvent;
use crate::models::{Agent, EventKind, ExecutionStatus, WorkflowStatus};
use crate::steps::Step;
use crate::verification::TestOutcome;

/// What happened, with what the log and the stream say about it.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowEvent {
    /// An execution was queued (new or resumed), at its `run`.
    ExecutionQueued {
        /// The execution's row id.
        execution_id: i64,
        /// Which run of the workflow this is (1 for the first).
        run: u32,
        /// The step a resume continues from, and the budgets it runs under.
        resumed: Option<(Step, Budgets)>,
    },
    /// An execution started running, completed or was cancelled.
    ExecutionStatus {
        /// The execution's row id.
        execution_id: i64,
        /// Its new status.
        status: ExecutionStatus,
    },
    /// An execution failed at `step`.
    ExecutionFailed {
        /// The execution's row id.
        execution_id: i64,
        /// The step that failed.
        step: Step,
        /// Why it failed (already redacted).
        error: String,
    },
    /// An execution was given up (its worker is gone): an `error` event.
    ExecutionAbandoned {
        /// The execution's row id.
        execution_id: i64,
        /// Why it was given up.
        error: String,
    },
    /// The workflow follows its execution.
    WorkflowStatus {
        /// The workflow's row id.
        workflow_id: i64,
        /// Its new status, taken from the execution.
        status: WorkflowStatus,
    },
    /// A story was imported from the ticket system.
    StoryImported {
        /// The ticket system (e.g. `jira`).
        source: &'static str,
        /// The story's key.
        story: String,
        /// The story's page in the ticket system, if known.
        url: Option<String>,
    },
    /// The story the run works on was read.
    StoryRetrieved {
        /// The workflow's row id.
        workflow_id: i64,
        /// The story's key.
        story: String,
        /// Length of the story text, in characters.
        chars: usize,
    },
    /// The repository was read: its size, languages and base commit.
    RepositoryRead {
        /// The workflow's row id.
        workflow_id: i64,
        /// Number of files read.
        files: usize,
        /// Languages with their file counts.
        languages: Vec<(String, usize)>,
        /// The commit the change is based on; `None` without one.
        base_sha: Option<String>,
        /// Which code host the repository was read from.
        code_host: &'static str,
    },
    /// The repository's tests ran.
    Verified {
        /// The step that ran the tests.
        step: Step,
        /// What the test run found.
        outcome: Box<TestOutcome>,
        /// A one-line summary of the outcome.
        summary: String,
        /// Where the full test log is stored, if it was kept.
        log_uri: Option<String>,
    },
    /// The change was committed and pushed (and a pull request opened).
    Integrated {
        /// The workflow's row id.
        workflow_id: i64,
        /// What was pushed and where.
        delivered: Box<Delivered>,
    },
    /// Integration opened or found the pull request.
    PullRequestOpened {
        /// The pull request's number on the code host.
        number: i64,
        /// The pull request's web address.
        url: String,
        /// Its state on the code host (`open`, `closed`).
        state: String,
    },
    /// Integration delivered without a pull request, and says why.
    PullRequestSkipped {
        /// The workflow's row id.
        workflow_id: i64,
        /// Why no pull request was opened.
        reason: String,
    },
    /// A refresh of the delivery (pull request, diffs, artifacts, checks).
    Refresh {
        /// What is refreshed.
        kind: RefreshKind,
        /// The refresh job's id, as returned by the refresh endpoint.
        job_id: String,
        /// Where the job is.
        progress: RefreshProgress,
    },
    /// A GitHub webhook delivery was applied.
    Webhook(Box<WebhookDelivery>),
    /// A step that cannot run (no agent, no spec, an unreadable checkpoint,
    /// a repository or integration error).
    StepFailed {
        /// The step, when one was reached.
        step: Option<Step>,
        /// Why it cannot run, if known.
        error: Option<String>,
    },
    /// The model failed for good.
    ModelFailed {
        /// The step whose call failed.
        step: Step,
        /// The agent that made the call.
        agent: Agent,
        /// The client's error code (see `llm::LlmError`).
        error_code: String,
        /// The error message shown to the operator.
        message: String,
    },
    /// The budgets allowed the call (the prompt fits, or was shrunk).
    BudgetAdmitted(Box<Admission>),
    /// The prompt cannot fit the model's window.
    PromptDoesNotFit {
        /// The step whose prompt does not fit.
        step: Step,
        /// The agent the prompt is for.
        agent: Agent,
        /// The sizes that do not fit.
        error: DoesNotFit,
    },
    /// A call the budgets refuse: the operator decides.
    OverBudget {
        /// The step whose call is refused.
        step: Step,
        /// The agent that would make the call.
        agent: Agent,
        /// Which budget is exceeded, and by how much.
        over: OverBudget,
        /// What the operator is told.
        message: String,
    },
    /// Paths in an answer that the path policy refused.
    PathsRefused {
        /// The step whose answer held the paths.
        step: Step,
        /// The refused paths, as the answer gave them.
        paths: Vec<String>,
    },
    /// The reviewer sent the change back to the developer.
    ChangesRequested {
        /// The review step.
        step: Step,
        /// The changes the reviewer asks for.
        changes: Vec<String>,
    },
    /// One LLM call was recorded.
    LlmCallRecorded {
        /// The call's row id.
        call_id: i64,
        /// The conversation the call was made for.
        conversation_id: i64,
        /// The step the call was made at.
        step: Step,
        /// The agent that made the call.
        agent: Agent,
    },
    /// An agent's conversation finished.
    ConversationFinished(Box<ConversationFinished>),
    /// The assistant's message of a conversation was written.
    AnswerWritten {
        /// The conversation's row id.
        conversation_id: i64,
        /// The step of the conversation.
        step: Step,
        /// The agent that answered.
        agent: Agent,
        /// Length of the answer, in characters.
        chars: usize,
    },
    /// A line of the service's log about this workflow (already redacted).
    Log {
        /// The log level (`info`, `warning`, `error`).
        level: String,
        /// The log message, redacted.
        message: String,
        /// When the line was logged.
        timestamp: DateTime<Utc>,
        /// The line's structured fields, if any.
        fields: Option<Value>,
    },
}

/// Where a refresh job is.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshProgress {
    /// The job is on the queue.
    Queued,
    /// A worker picked the job up.
    Started,
    /// The job failed and is tried again.
    Retrying {
        /// Why the attempt failed.
        error: String,
        /// How long until the next attempt; `retry_in_secs` on the wire.
        retry_in: std::time::Duration,
    },
    /// The job failed for good.
    Failed {
        /// Why it failed.
        error: String,
    },
    /// The pull request as read.
    PullRequest {
        /// The pull request's number on the code host.
        number: i64,
        /// Its state on the code host.
        state: String,
        /// Whether it was merged.
        merged: bool,
        /// The head commit, if known.
        head_sha: Option<String>,
    },
    /// The pull request's per-file diffs were stored.
    Diffs {
        /// Number of changed files.
        files: usize,
        /// Lines added over all files.
        additions: i64,
        /// Lines deleted over all files.
        deletions: i64,
    },
    /// The workflow's artifacts were stored.
    Artifacts {
        /// Number of artifacts.
        artifacts: usize,
    },
    /// Check runs and suites, with a count per conclusion.
    Checks {
        /// Number of check runs.
        runs: usize,
        /// Number of check suites.
        suites: usize,
        /// Conclusion (`success`, `failure`, ...) to its count.
        conclusions: Map<String, Value>,
    },
}

/// The budgets' verdict on a call that may go ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// The step the call is for.
    pub step: Step,
    /// The agent making the call.
    pub agent: Agent,
    /// The model the call goes to.
    pub model: String,
    /// Estimated tokens in the prompt as sent.
    pub prompt_tokens: i64,
    /// The `max_tokens` the call is sent with, after the budgets.
    pub max_tokens: i64,
    /// The `max_tokens` the step asked for.
    pub requested_max_tokens: u32,
    /// The model's context window, in tokens.
    pub context_window: i64,
    /// Tokens kept free in the window for estimation error.
    pub safety_buffer: usize,
    /// Prompt sections cut to make it fit; empty when it fit as is.
    pub truncated_sections: Vec<String>,
    /// How many times the prompt was shrunk.
    pub shrink_attempts: u32,
    /// The budgets the execution runs under.
    pub budgets: Budgets,
    /// Tokens spent so far against each budget.
    pub spent: Spent,
}

/// A finished conversation: its tokens, cost and files, and an excerpt.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationFinished {
    /// The conversation's row id.
    pub conversation_id: i64,
    /// The step of the conversation.
    pub step: Step,
    /// The agent that answered.
    pub agent: Agent,
    /// The role's display name.
    pub agent_name: String,
    /// Tokens in the prompts of the conversation's calls.
    pub prompt_tokens: i64,
    /// Tokens in the answers of the conversation's calls.
    pub completion_tokens: i64,
    /// The conversation's cost, as the stream shows it.
    pub cost: Value,
    /// Whether the answer was replayed from a stored call instead of a new one.
    pub cached: bool,
    /// The files the answer produced, as the stream shows them.
    pub files: Value,
    /// The start of the answer.
    pub output_excerpt: String,
}

impl WorkflowEvent {
    /// The event's type on the log and the stream.
    pub fn kind(&self) -> EventKind {
        use WorkflowEvent as E;
        match self {
            E::ExecutionQueued { .. } | E::ExecutionStatus { .. } | E::ExecutionFailed { .. } => {
                EventKind::Execution
            }
            E::ExecutionAbandoned { .. } | E::StepFailed { .. } | E::ModelFailed { .. } => {
                EventKind::Error
            }
            E::WorkflowStatus { .. }
            | E::StoryImported { .. }
            | E::StoryRetrieved { .. }
            | E::RepositoryRead { .. }
            | E::Integrated { .. }
            | E::PullRequestOpened { .. }
            | E::PullRequestSkipped { .. }
            | E::Refresh { .. }
            | E::Webhook(_) => EventKind::Workflow,
            E::Verified { .. } => EventKind::Verification,
            E::BudgetAdmitted(_) | E::PromptDoesNotFit { .. } | E::PathsRefused { .. } => {
                EventKind::Governance
            }
            E::OverBudget { .. } => EventKind::Escalation,
            E::ChangesRequested { .. } => EventKind::Collaboration,
            E::LlmCallRecorded { .. } => EventKind::LlmCall,
            E::ConversationFinished(_) => EventKind::Conversation,
            E::AnswerWritten { .. } => EventKind::Message,
            E::Log { .. } => EventKind::Log,
        }
    }

    /// The event's JSON, as stored and streamed.
    ///
    /// Long because it is the streaming contract: one arm per event, kept
    /// together so that a change of what clients receive is seen here.
    pub fn data(&self) -> Value {
        use WorkflowEvent as E;
        match self {
            E::ExecutionQueued {
                execution_id,
                run,
                resumed,
            } => {
                let mut d = json!({"execution_id": execution_id, "status": "pending", "run": run});
                if let Some((step, budgets)) = resumed {
                    d["resumed_from"] = json!(step);
                    d["budgets"] = json!(budgets);
                }
                d
            }
            E::ExecutionStatus {
                execution_id,
                status,
            } => json!({"execution_id": execution_id, "status": status}),
            E::ExecutionFailed {
                execution_id,
                step,
                error,
            } => {
                json!({"execution_id": execution_id, "status": "failed", "step": step, "error": error})
            }
            E::ExecutionAbandoned {
                execution_id,
                error,
            } => json!({"execution_id": execution_id, "status": "failed", "error": error}),
            E::WorkflowStatus {
                workflow_id,
                status,
            } => json!({"workflow_id": workflow_id, "status": status}),
            E::StoryImported { source, story, url } => {
                json!({"kind": "story", "source": source, "story": story, "url": url})
            }
            E::StoryRetrieved {
                workflow_id,
                story,
                chars,
            } => {
                json!({"workflow_id": workflow_id, "step": Step::StoryRetrieval, "story": story, "chars": chars})
            }
            E::RepositoryRead {
                workflow_id,
                files,
                languages,
                base_sha,
                code_host,
            } => {
                json!({"workflow_id": workflow_id, "step": Step::RepositoryContext, "files": files,
                        "languages": languages, "base_sha": base_sha, "code_host": code_host})
            }
            E::Verified {
                step,
                outcome: o,
                summary,
                log_uri,
            } => json!({"step": step, "status": o.status, "conclusion": o.status.conclusion(),
                        "command": o.command, "command_source": o.command_source, "exit_code": o.exit_code,
                        "passed": o.passed, "failed": o.failed, "duration_ms": o.duration_ms,
                        "timed_out": o.timed_out, "reason": o.reason, "isolation": o.isolation,
                        "summary": summary, "log_uri": log_uri, "tree_hash": o.tree_hash}),
            E::Integrated {
                workflow_id,
                delivered,
            } => {
                json!({"workflow_id": workflow_id, "step": Step::Integration, "delivered": delivered})
            }
            E::PullRequestOpened { number, url, state } => {
                json!({"kind": "pr", "source": "integration", "number": number, "url": url, "state": state})
            }
            E::PullRequestSkipped {
                workflow_id,
                reason,
            } => {
                json!({"workflow_id": workflow_id, "kind": "pr", "status": "skipped", "pr_skipped": true, "reason": reason})
            }
            E::Refresh {
                kind,
                job_id,
                progress,
            } => refresh_data(*kind, job_id, progress),
            E::Webhook(d) => webhook_data(d),
            E::StepFailed { step, error } => {
                let mut d = Map::new();
                if let Some(step) = step {
                    d.insert("step".into(), json!(step));
                }
                if let Some(error) = error {
                    d.insert("error".into(), json!(error));
                }
                Value::Object(d)
            }
            E::ModelFailed {
                step,
                agent,
                error_code,
                message,
            } => {
                json!({"step": step, "agent": agent, "error_code": error_code, "message": message})
            }
            E::BudgetAdmitted(a) => json!({
                "step": a.step, "agent": a.agent,
                "decision": if a.truncated_sections.is_empty() { "fits" } else { "shrunk" },
                "model": a.model, "prompt_tokens": a.prompt_tokens, "max_tokens": a.max_tokens,
                "requested_max_tokens": a.requested_max_tokens, "context_window": a.context_window,
                "safety_buffer": a.safety_buffer, "truncated_sections": a.truncated_sections,
                "shrink_attempts": a.shrink_attempts, "budgets": a.budgets,
                "spent": {"step": a.spent.step, "agent": a.spent.agent, "execution": a.spent.execution},
            }),
            E::PromptDoesNotFit { step, agent, error } => json!({
                "step": step, "agent": agent, "decision": "does_not_fit", "prompt_tokens": error.prompt_tokens,
                "max_output_tokens": error.max_output_tokens, "context_window": error.context_window, "cut": error.cut,
            }),
            E::OverBudget {
                step,
                agent,
                over,
                message,
            } => json!({"step": step, "agent": agent, "reason": "budget", "budget": over.budget,
                        "limit": over.limit, "spent": over.spent, "needed": over.needed, "message": message}),
            E::PathsRefused { step, paths } => {
                json!({"step": step, "decision": "paths_refused", "paths": paths})
            }
            E::ChangesRequested { step, changes } => {
                json!({"from": "reviewer", "to": "developer", "step": step, "changes": changes, "round": 1})
            }
            E::LlmCallRecorded {
                call_id,
                conversation_id,
                step,
                agent,
            } => {
                json!({"call_id": call_id, "conversation_id": conversation_id, "step": step, "agent": agent})
            }
            E::ConversationFinished(c) => json!({
                "conversation_id": c.conversation_id, "agent": c.agent, "step": c.step,
                "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "cost": c.cost, "cached": c.cached, "files": c.files,
                "conversation": {"id": c.conversation_id, "agent": c.agent_name, "agent_id": c.agent,
                                 "step": c.step, "output": c.output_excerpt, "files": c.files},
            }),
            E::AnswerWritten {
                conversation_id,
                step,
                agent,
                chars,
            } => json!({"conversation_id": conversation_id, "role": "assistant", "agent": agent,
                        "step": step, "chars": chars}),
            E::Log {
                level,
                message,
                timestamp,
                fields,
            } => {
                let mut d = json!({"type": "log", "level": level, "message": message, "timestamp": timestamp});
                if let Some(fields) = fields {
                    d["fields"] = fields.clone();
                }
                d
            }
        }
    }
}

fn refresh_data(kind: RefreshKind, job_id: &str, progress: &RefreshProgress) -> Value {
    use RefreshProgress as P;
    let status = match progress {
        P::Queued => "queued",
        P::Started => "started",
        P::Retrying { .. } => "retrying",
        P::Failed { .. } => "failed",
        P::PullRequest { .. } | P::Diffs { .. } | P::Artifacts { .. } | P::Checks { .. } => {
            "completed"
        }
    };
    let kind = match progress {
        P::Checks { .. } => "checks",
        _ => kind.as_str(),
    };
    let mut d = json!({"kind": kind, "job_id": job_id, "status": status, "source": "refresh"});
    let extra = match progress {
        P::Queued | P::Started => json!({}),
        P::Retrying { error, retry_in } => {
            json!({"error": error, "retry_in_secs": retry_in.as_secs()})
        }
        P::Failed { error } => json!({"error": error}),
        P::PullRequest {
            number,
            state,
            merged,
            head_sha,
        } => json!({"number": number, "state": state, "merged": merged, "head_sha": head_sha}),
        P::Diffs {
            files,
            additions,
            deletions,
        } => json!({"files": files, "additions": additions, "deletions": deletions}),
        P::Artifacts { artifacts } => json!({"artifacts": artifacts}),
        P::Checks {
            runs,
            suites,
            conclusions,
        } => json!({"runs": runs, "suites": suites, "conclusions": conclusions}),
    };
    merge(&mut d, extra);
    d
}

fn webhook_data(d: &WebhookDelivery) -> Value {
    let mut data = json!({
        "source": "webhook",
        "delivery_id": d.delivery_id,
        "event": d.event,
        "action": d.action,
    });
    let change = match &d.change {
        WebhookChange::PullRequest(pr) => json!({"kind": "pr", "number": pr.number,
            "state": pr.state, "merged": pr.merged, "head_sha": pr.head_sha}),
        WebhookChange::Check(c) => json!({"kind": "checks", "check": c.kind.as_str(),
            "name": c.name, "status": c.status, "conclusion": c.conclusion, "head_sha": c.head_sha}),
    };
    merge(&mut data, change);
    data
}

fn merge(into: &mut Value, extra: Value) {
    if let (Some(d), Value::Object(extra)) = (into.as_object_mut(), extra) {
        d.extend(extra);
    }
}

impl From<WorkflowEvent> for NewEvent {
    fn from(event: WorkflowEvent) -> Self {
        NewEvent {
            kind: event.kind(),
            data: event.data(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(e: WorkflowEvent) -> (EventKind, Value) {
        let n = NewEvent::from(e);
        (n.kind, n.data)
    }

    // The JSON below is what clients stream today (API.md); a change here
    // is a change of the contract.
    #[test]
    fn execution_events_keep_their_shape() {
        assert_eq!(
            event(WorkflowEvent::ExecutionQueued {
                execution_id: 3,
                run: 1,
                resumed: None
            }),
            (
                EventKind::Execution,
                json!({"execution_id": 3, "status": "pending", "run": 1})
            )
        );
        let budgets = Budgets::default();
        assert_eq!(
            event(WorkflowEvent::ExecutionQueued {
                execution_id: 3,
                run: 2,
                resumed: Some((Step::Review, budgets))
            })
            .1,
            json!({"execution_id": 3, "status": "pending", "run": 2, "resumed_from": "review",
                   "budgets": {"step_tokens": 16000, "agent_tokens": 48000, "execution_tokens": 200000}})
        );
        assert_eq!(
            event(WorkflowEvent::ExecutionFailed {
                execution_id: 3,
                step: Step::Testing,
                error: "boom".into()
            }),
            (
                EventKind::Execution,
                json!({"execution_id": 3, "status": "failed", "step": "testing", "error": "boom"})
            )
        );
        assert_eq!(
            event(WorkflowEvent::WorkflowStatus {
                workflow_id: 1,
                status: WorkflowStatus::Completed
            }),
            (
                EventKind::Workflow,
                json!({"workflow_id": 1, "status": "completed"})
            )
        );
        assert_eq!(
            event(WorkflowEvent::StepFailed {
                step: None,
                error: Some("unreadable checkpoint".into())
            }),
            (EventKind::Error, json!({"error": "unreadable checkpoint"}))
        );
    }

    #[test]
    fn refresh_events_keep_their_shape() {
        let refresh = |progress| {
            event(WorkflowEvent::Refresh {
                kind: RefreshKind::Pr,
                job_id: "j".into(),
                progress,
            })
            .1
        };
        assert_eq!(
            refresh(RefreshProgress::Queued),
            json!({"kind": "pr", "job_id": "j", "status": "queued", "source": "refresh"})
        );
        assert_eq!(
            refresh(RefreshProgress::Retrying {
                error: "rate limited".into(),
                retry_in: std::time::Duration::from_secs(30)
            }),
            json!({"kind": "pr", "job_id": "j", "status": "retrying", "source": "refresh",
                   "error": "rate limited", "retry_in_secs": 30})
        );
        assert_eq!(
            refresh(RefreshProgress::Checks {
                runs: 2,
                suites: 1,
                conclusions: Map::new()
            }),
            json!({"kind": "checks", "job_id": "j", "status": "completed", "source": "refresh",
                   "runs": 2, "suites": 1, "conclusions": {}})
        );
    }

    #[test]
    fn agent_events_keep_their_shape() {
        assert_eq!(
            event(WorkflowEvent::ChangesRequested {
                step: Step::Review,
                changes: vec!["add a test".into()]
            }),
            (
                EventKind::Collaboration,
                json!({"from": "reviewer", "to": "developer", "step": "review",
                       "changes": ["add a test"], "round": 1})
            )
        );
        assert_eq!(
            event(WorkflowEvent::AnswerWritten {
                conversation_id: 9,
                step: Step::Analysis,
                agent: Agent::Pm,
                chars: 12
            }),
            (
                EventKind::Message,
                json!({"conversation_id": 9, "role": "assistant", "agent": "pm",
                       "step": "analysis", "chars": 12})
            )
        );
    }
}
