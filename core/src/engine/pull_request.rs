//! What the branch and the pull request say: one commit per step that
//! wrote files, the PR's title, and its body (the criteria, the tests'
//! result, the team's notes, the cost, the review).

use super::state::{FileEntry, RunState};
use crate::codehost::{CommitRequest, FileChange};
use crate::models::Execution;
use crate::money::nanos_to_dollars;

/// The commits of the run's files: one per step, in the order first written.
pub(super) fn commits(
    execution: &Execution,
    state: &RunState,
    texts: &[(FileEntry, String, Option<String>)],
) -> Vec<CommitRequest> {
    let mut commits: Vec<CommitRequest> = Vec::new();
    for (entry, content, _) in texts {
        let key = format!("execution-{}/{}", execution.id, entry.step);
        match commits.iter_mut().find(|c| c.step_key == key) {
            Some(c) => c.files.push(FileChange {
                path: entry.path.clone(),
                content: content.clone(),
            }),
            None => commits.push(CommitRequest {
                step_key: key,
                message: format!(
                    "{} ({}): {} for {}",
                    entry.step, entry.agent, "files", state.story_key
                ),
                files: vec![FileChange {
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
    commits
}

/// The PR's title: the story's key and title.
pub(super) fn title(state: &RunState) -> String {
    format!("{}: {}", state.story_key, state.title)
}

/// The PR's body; `current` holds the execution's totals.
pub(super) fn body(state: &RunState, current: &Execution) -> String {
    format!(
        "Implements {}: {}\n\n## Acceptance criteria\n{}\n\n## Tests\n{}\n\n## The team's work\n{}\n\n## Cost\n{} LLM calls, {} tokens ({} prompt, {} completion), ${:.6}\n\nReview: {}",
        state.story_key,
        state.title,
        state
            .acceptance_criteria
            .iter()
            .map(|c| format!("- {c}"))
            .collect::<Vec<_>>()
            .join("\n"),
        tests_section(state),
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
    )
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
