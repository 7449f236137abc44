//! The steps that read and prove, with no model call: the repository
//! context (the target repository's tree, languages and notes, read before
//! anyone designs), the current content of the files a step may change,
//! and the verification (the repository's own tests on the branch's tree,
//! recorded as a check run, a `test-log` artifact and `verification`
//! events).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::run::{StepOutput, StepStop};
use super::state::{RepoContext, RunState, VerificationRecord};
use super::steps::{Step, Transition};
use super::{Engine, resume_path};
use crate::codehost::FileChange;
use crate::delivery::{ArtifactUpdate, CheckKind, CheckUpdate};
use crate::models::{Execution, Workflow};
use crate::tracking::sha256_hex;
use crate::verification::{TestOutcome, TestRun, TestStatus};
use crate::workflow_event::WorkflowEvent;

/// Tree entries kept in the checkpoint.
const TREE_LIMIT: usize = 2000;
/// Characters of AGENTS.md and of the README kept.
const DOC_CHARS: usize = 3000;
/// Existing files given to one step, and their sizes.
const EXISTING_FILES: usize = 8;
const EXISTING_FILE_BYTES: u64 = 64 * 1024;
const EXISTING_TOTAL_BYTES: usize = 96 * 1024;
/// Characters of failing output kept in the checkpoint for prompts.
const TAIL_CHARS: usize = 4000;

/// A file's language from its extension, for the repository summary.
fn language(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "py" => "Python",
        "rs" => "Rust",
        "go" => "Go",
        "js" | "mjs" | "cjs" | "jsx" => "JavaScript",
        "ts" | "tsx" => "TypeScript",
        "java" => "Java",
        "kt" => "Kotlin",
        "rb" => "Ruby",
        "php" => "PHP",
        "cs" => "C#",
        "c" | "h" => "C",
        "cc" | "cpp" | "hpp" => "C++",
        "html" | "htm" => "HTML",
        "css" | "scss" => "CSS",
        "sh" => "Shell",
        "sql" => "SQL",
        _ => return None,
    })
}

/// The repository as the steps see it: the tree (bounded), the files per
/// language, and the notes read from it.
pub fn repo_context(snapshot: &crate::codehost::RepoSnapshot, docs: String) -> RepoContext {
    let mut languages: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &snapshot.files {
        if let Some(l) = language(&f.path) {
            *languages.entry(l).or_default() += 1;
        }
    }
    let mut languages: Vec<(String, usize)> = languages
        .into_iter()
        .map(|(l, n)| (l.to_owned(), n))
        .collect();
    languages.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    RepoContext {
        base_sha: snapshot.base_sha.clone(),
        file_count: snapshot.files.len(),
        tree: snapshot
            .files
            .iter()
            .take(TREE_LIMIT)
            .map(|f| (f.path.clone(), f.size_bytes))
            .collect(),
        languages,
        docs,
    }
}

/// Cuts `text` to `max` characters on a character boundary.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max).collect();
    s.push_str("\n[…]");
    s
}

/// The last `max` characters of `text`.
fn last_chars(text: &str, max: usize) -> String {
    let n = text.chars().count();
    text.chars().skip(n.saturating_sub(max)).collect()
}

/// Whether `text` names `path`: the whole path, or a distinctive file name.
fn names_file(text: &str, path: &str) -> bool {
    if text.contains(path) {
        return true;
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    base.len() >= 5 && base.contains('.') && text.contains(base)
}

/// The check run's id of a verification: negative, so it never meets a
/// code host's own ids.
fn check_id(execution_id: i64, step: Step) -> i64 {
    let index = Step::ALL.iter().position(|s| *s == step).unwrap_or(0) as i64;
    -(execution_id.saturating_mul(64).saturating_add(index))
}

impl Engine {
    /// Where the workflow's code goes: its `repository_url`, else the
    /// configured default for the story.
    pub(super) fn repository_of(&self, workflow: &Workflow, story_key: &str) -> String {
        workflow
            .repository_url
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| {
                self.config
                    .default_repository
                    .replace("{workflow_id}", &workflow.id.to_string())
                    .replace("{story}", &slug(story_key))
            })
    }

    /// Reads the repository the workflow changes: its files (through the
    /// code host), languages, docs and base commit, for the prompts.
    ///
    /// Long because it is one sequence (read, pick the docs, index the
    /// files, write the event) over one context value being filled in.
    pub(super) async fn read_repository(
        &self,
        execution: &Execution,
        mut state: RunState,
    ) -> Result<StepOutput, StepStop> {
        let workflow = self.store.get_workflow(execution.workflow_id).await?;
        let repository = self.repository_of(&workflow, &state.story_key);
        let snapshot = match self.code_host.snapshot(&repository).await {
            Ok(s) => s,
            Err(e) if e.is_retryable() => {
                return Err(StepStop::Retry {
                    delay: Duration::from_secs(10),
                    reason: e.to_string(),
                });
            }
            // Refused before any model is paid for.
            Err(e) => {
                return Err(StepStop::Fail {
                    error: format!(
                        "the repository cannot be read: {e}. Fix the workflow's repository and resume with {}.",
                        resume_path(execution)
                    ),
                    event: WorkflowEvent::StepFailed {
                        step: Some(Step::RepositoryContext),
                        error: Some(e.to_string()),
                    }
                    .into(),
                });
            }
        };
        let mut docs = String::new();
        for name in ["AGENTS.md", "README.md", "README", "README.rst"] {
            if !snapshot.files.iter().any(|f| f.path == name) {
                continue;
            }
            if let Ok(Some(bytes)) = self.code_host.read_file(&repository, name).await
                && let Ok(text) = String::from_utf8(bytes)
            {
                let text = if self.config.redact {
                    crate::redact::redact_text(&text)
                } else {
                    text
                };
                docs.push_str(&format!("#### {name}\n{}\n", shorten(&text, DOC_CHARS)));
            }
            if name.starts_with("README") {
                break;
            }
        }
        let context = repo_context(&snapshot, docs);
        state.notes.push(format!(
            "repository_context: {} file(s){}",
            context.file_count,
            if context.languages.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    context
                        .languages
                        .iter()
                        .map(|(l, _)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
        let event = WorkflowEvent::RepositoryRead {
            workflow_id: workflow.id,
            files: context.file_count,
            languages: context.languages.clone(),
            base_sha: context.base_sha.clone(),
            code_host: self.code_host.kind(),
        }
        .into();
        let result = json!({"files": context.file_count, "base_sha": context.base_sha});
        state.repository = Some(context);
        Ok(StepOutput {
            conversation: None,
            messages: vec![],
            files: vec![],
            events: vec![event],
            result,
            state,
            next: Step::RepositoryContext.next(Transition::default()),
        })
    }

    /// The current content of the repository's files that the story, the
    /// criteria, the design or the last test output name (and the team
    /// has not rewritten yet): `(path, language, content)`.
    pub(super) async fn existing_files(
        &self,
        execution: &Execution,
        state: &RunState,
    ) -> Result<Vec<(String, Option<String>, String)>, StepStop> {
        let Some(repo) = &state.repository else {
            return Ok(vec![]);
        };
        let mut text = format!(
            "{}\n{}\n{}",
            state.story,
            state.acceptance_criteria.join("\n"),
            state.design
        );
        if let Some(v) = state.verifications.last() {
            text.push('\n');
            text.push_str(&v.tail);
        }
        let workflow = self.store.get_workflow(execution.workflow_id).await?;
        let repository = self.repository_of(&workflow, &state.story_key);
        let mut out = Vec::new();
        let mut total = 0usize;
        for (path, size) in &repo.tree {
            if out.len() >= EXISTING_FILES {
                break;
            }
            if *size > EXISTING_FILE_BYTES
                || state.files.iter().any(|f| &f.path == path)
                || !names_file(&text, path)
            {
                continue;
            }
            let bytes = match self.code_host.read_file(&repository, path).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) if e.is_retryable() => {
                    return Err(StepStop::Retry {
                        delay: Duration::from_secs(10),
                        reason: e.to_string(),
                    });
                }
                Err(_) => continue,
            };
            // A binary file is not text a model can rewrite.
            let Ok(content) = String::from_utf8(bytes) else {
                continue;
            };
            if content.contains('\0') || total + content.len() > EXISTING_TOTAL_BYTES {
                continue;
            }
            total += content.len();
            let lang = crate::engine::parse::language_of(path);
            out.push((path.clone(), lang, content));
        }
        Ok(out)
    }

    /// Runs the repository's tests on the base plus the team's files,
    /// keeps the log, and routes failing tests back to the developer.
    ///
    /// Long because the run's record is built in stages that share the
    /// outcome (the redacted log, the artifact and check, the record the
    /// prompts read, the event); the publishing is `publish_test_log`.
    pub(super) async fn verify(
        &self,
        execution: &Execution,
        step: Step,
        mut state: RunState,
    ) -> Result<StepOutput, StepStop> {
        let workflow = self.store.get_workflow(execution.workflow_id).await?;
        let repository = self.repository_of(&workflow, &state.story_key);
        let files: Vec<FileChange> = self
            .file_texts(execution, &state)
            .await?
            .into_iter()
            .map(|(entry, content, _)| FileChange {
                path: entry.path,
                content,
            })
            .collect();
        let command = workflow
            .test_command
            .clone()
            .or_else(|| self.config.test_command.clone());
        let started = Utc::now();
        let outcome = self
            .tests
            .run(&TestRun {
                repository,
                files,
                command,
            })
            .await;
        let finished = Utc::now();
        let summary = outcome.summary();
        let redact = |t: &str| {
            if self.config.redact {
                crate::redact::redact_text(t)
            } else {
                t.to_owned()
            }
        };
        let log = redact(&format!(
            "$ {}\n# source: {}\n# isolation: {}\n# {summary}\n\n{}",
            outcome.command.as_deref().unwrap_or("(none)"),
            outcome.command_source.as_deref().unwrap_or("-"),
            outcome.isolation,
            outcome.log
        ));
        let uri = self
            .publish_test_log(
                &workflow,
                execution,
                step,
                &state,
                &outcome,
                &summary,
                &log,
                (started, finished),
            )
            .await?;
        let tail = redact(&last_chars(&outcome.tail, TAIL_CHARS));
        let record = VerificationRecord {
            step: step.as_str().into(),
            status: outcome.status,
            summary: summary.clone(),
            command: outcome.command.clone(),
            passed: outcome.passed,
            failed: outcome.failed,
            tail,
            tree_hash: outcome.tree_hash.clone(),
        };
        state.notes.push(format!("{step}: {summary}"));
        let event = WorkflowEvent::Verified {
            step,
            // The event says what ran; the output is in the log artifact.
            outcome: Box::new(TestOutcome {
                tail: String::new(),
                log: String::new(),
                ..outcome.clone()
            }),
            summary: summary.clone(),
            log_uri: uri.clone(),
        }
        .into();
        let result = json!({"status": outcome.status, "summary": record.summary, "log_uri": uri});
        state.verifications.push(record);
        Ok(StepOutput {
            conversation: None,
            messages: vec![],
            files: vec![],
            events: vec![event],
            result,
            state,
            next: step.next(Transition {
                tests_failed: outcome.status == TestStatus::Failed,
                max_fix_rounds: self.config.max_fix_rounds,
                ..Transition::default()
            }),
        })
    }

    /// Keeps the test log (a blob, an artifact of the workflow) and the
    /// check run the pull request shows; returns the log's URI.
    #[allow(clippy::too_many_arguments)]
    async fn publish_test_log(
        &self,
        workflow: &Workflow,
        execution: &Execution,
        step: Step,
        state: &RunState,
        outcome: &TestOutcome,
        summary: &str,
        log: &str,
        (started, finished): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Option<String>, StepStop> {
        let key = format!("test-logs/execution-{}/{}.log", execution.id, step.as_str());
        let uri = match &self.blobs {
            Some(b) => match b.put(&key, log.as_bytes()).await {
                Ok(uri) => Some(uri),
                Err(e) => {
                    tracing::warn!(error = %e, key, "the test log could not be stored");
                    None
                }
            },
            None => None,
        };
        if let Some(uri) = &uri {
            let artifact = ArtifactUpdate {
                external_id: format!("ai-team/test-log/{}/{}", execution.id, step.as_str()),
                kind: "test-log".into(),
                name: shorten(&format!("{}: {summary}", step.as_str()), 200),
                uri: uri.clone(),
                checksum: Some(sha256_hex(log.as_bytes())),
                size_bytes: log.len() as i64,
                created_at: finished,
            };
            self.store
                .upsert_artifacts(workflow.id, &[artifact], &[])
                .await?;
        }
        let check = CheckUpdate {
            kind: CheckKind::Run,
            external_id: check_id(execution.id, step),
            name: "ai-team tests".into(),
            status: "completed".into(),
            conclusion: Some(outcome.status.conclusion().into()),
            details_url: uri.clone(),
            started_at: Some(started),
            completed_at: Some(finished),
            head_sha: state.repository.as_ref().and_then(|r| r.base_sha.clone()),
            updated_at: finished,
        };
        self.store.upsert_checks(workflow.id, &[check], &[]).await?;
        Ok(uri)
    }
}

/// The story key as a branch and directory name.
pub(super) fn slug(story_key: &str) -> String {
    story_key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_story_names_files_by_path_or_distinctive_name() {
        assert!(names_file(
            "add subtract next to add in calc/ops.py",
            "calc/ops.py"
        ));
        assert!(names_file("change ops.py", "calc/ops.py"));
        assert!(!names_file("change the ops", "calc/ops.py"));
        assert!(
            !names_file("a.py is short", "x/a.py"),
            "too short to be distinctive"
        );
    }

    #[test]
    fn languages_come_from_extensions() {
        assert_eq!(language("calc/ops.py"), Some("Python"));
        assert_eq!(language("web/app.TSX"), Some("TypeScript"));
        assert_eq!(language("LICENSE"), None);
    }

    #[test]
    fn verification_check_ids_are_negative_and_distinct() {
        let a = check_id(7, Step::Verification(1));
        let b = check_id(7, Step::Verification(2));
        let c = check_id(8, Step::Verification(1));
        assert!(a < 0 && b < 0 && c < 0);
        assert!(a != b && a != c && b != c);
    }
}
