//! A step's prompt: the role's system prompt, the context sections the
//! step asks for (from the checkpoint, not the whole history), and its
//! task; as governance sections, so that a prompt too big for the window
//! loses its least important context first.

use crate::agents::{Role, SECTIONS, StepSpec};
use crate::governance::Section;
use crate::llm::{ChatMessage, ChatRequest};
use crate::models::Role as MessageRole;

use super::state::RunState;

/// A file's content for the `files` section.
pub struct FileText<'a> {
    /// Path relative to the repository root.
    pub path: &'a str,
    /// The file's language, if known.
    pub language: Option<&'a str>,
    /// The file's text.
    pub content: &'a str,
}

/// How many tree entries the repository section lists.
const TREE_LINES: usize = 300;

/// The repository section: size, languages, the tree, the docs.
pub fn repository_text(r: &super::state::RepoContext) -> String {
    let mut t = format!(
        "## Repository\n{} file(s){}; languages: {}",
        r.file_count,
        r.base_sha
            .as_deref()
            .map(|s| format!(" at {}", &s[..s.len().min(12)]))
            .unwrap_or_default(),
        if r.languages.is_empty() {
            "none yet".to_owned()
        } else {
            r.languages
                .iter()
                .map(|(l, n)| format!("{l} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if r.file_count == 0 {
        t.push_str("\nThe repository is empty: every file is new.");
        return t;
    }
    t.push_str("\n### Files\n");
    for (path, size) in r.tree.iter().take(TREE_LINES) {
        t.push_str(&format!("- {path} ({size} B)\n"));
    }
    if r.tree.len() > TREE_LINES || r.file_count > r.tree.len() {
        t.push_str(&format!(
            "- … {} more\n",
            r.file_count - r.tree.len().min(TREE_LINES)
        ));
    }
    if !r.docs.is_empty() {
        t.push_str(&format!("### Project notes\n{}", r.docs));
    }
    t
}

/// The latest verification, for the fix and review prompts.
fn verification_text(state: &RunState) -> String {
    let Some(v) = state.verifications.last() else {
        return String::new();
    };
    let mut t = format!("## Test results ({})\n{}", v.step, v.summary);
    if v.status == crate::verification::TestStatus::Failed && !v.tail.is_empty() {
        t.push_str(&format!(
            "\nThe last lines of the output:\n```\n{}\n```",
            v.tail
        ));
    }
    t
}

/// The prompt's sections, each with its priority and whether the step
/// can do without it (governance shrinks the others first).
///
/// Long because it lists every section a team file can name, in prompt
/// order; each is a few lines and they share the run state they read.
pub fn sections(
    role: &Role,
    spec: &StepSpec,
    state: &RunState,
    files: &[FileText<'_>],
    existing: &[FileText<'_>],
) -> Vec<Section> {
    let mut out = vec![Section {
        name: "system".into(),
        text: role.system_prompt(),
        priority: u8::MAX,
        required: true,
    }];
    for name in &spec.context {
        let text = match name.as_str() {
            "story" => format!(
                "## Story {}: {}\n{}",
                state.story_key, state.title, state.story
            ),
            "acceptance_criteria" if !state.acceptance_criteria.is_empty() => format!(
                "## Acceptance criteria\n{}",
                state
                    .acceptance_criteria
                    .iter()
                    .map(|c| format!("- {c}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            "design" if !state.design.is_empty() => format!("## Design\n{}", state.design),
            "review" => match &state.review {
                Some(v) if !v.changes.is_empty() => format!(
                    "## Changes the reviewer requested\n{}",
                    v.changes
                        .iter()
                        .map(|c| format!("- {c}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                _ => String::new(),
            },
            "files" if !files.is_empty() => {
                let mut t = String::from("## Code so far");
                for f in files {
                    t.push_str(&format!(
                        "\n```{} {}\n{}```",
                        f.language.unwrap_or(""),
                        f.path,
                        f.content
                    ));
                }
                t
            }
            "summary" if !state.notes.is_empty() => {
                format!("## Progress so far\n{}", state.notes.join("\n"))
            }
            "repository" => state
                .repository
                .as_ref()
                .map(repository_text)
                .unwrap_or_default(),
            "existing_files" if !existing.is_empty() => {
                let mut t = String::from(
                    "## Current content of the repository's files you may change\n\
                     Each is the file as it is now. To change one, write its whole new version; \
                     files you do not write stay exactly as they are.",
                );
                for f in existing {
                    let end = if f.content.ends_with('\n') { "" } else { "\n" };
                    t.push_str(&format!(
                        "\n```{} {}\n{}{end}```",
                        f.language.unwrap_or(""),
                        f.path,
                        f.content
                    ));
                }
                t
            }
            "verification" => verification_text(state),
            _ => String::new(),
        };
        if text.is_empty() {
            continue;
        }
        let priority = SECTIONS
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, p)| *p);
        out.push(Section {
            name: name.clone(),
            text,
            priority,
            required: false,
        });
    }
    out.push(Section {
        name: "task".into(),
        text: format!(
            "## Your task\n{}",
            spec.task
                .replace("{story_key}", &state.story_key)
                .replace("{title}", &state.title)
        ),
        priority: u8::MAX,
        required: true,
    });
    out
}

/// The chat request of fitted sections: the system prompt as the system
/// message, everything else as one user message.
pub fn request(sections: &[Section], max_tokens: u32, temperature: f32) -> ChatRequest {
    let system = sections
        .iter()
        .filter(|s| s.name == "system")
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let user = sections
        .iter()
        .filter(|s| s.name != "system" && !s.text.is_empty())
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    ChatRequest {
        messages: vec![
            ChatMessage {
                role: MessageRole::System,
                content: system,
            },
            ChatMessage {
                role: MessageRole::User,
                content: user,
            },
        ],
        max_tokens,
        temperature,
        grammar: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::Team;

    #[test]
    fn a_step_sees_only_its_context_and_its_task() {
        let team = Team::builtin();
        let spec = team.step("architecture").unwrap();
        let role = team.role(spec.agent).unwrap();
        let state = RunState {
            story_key: "PROJ-1".into(),
            title: "Reset".into(),
            story: "As a user I reset my password".into(),
            acceptance_criteria: vec!["link expires".into()],
            design: "should not appear".into(),
            ..Default::default()
        };
        let s = sections(role, spec, &state, &[], &[]);
        let names: Vec<_> = s.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["system", "story", "acceptance_criteria", "task"]);
        let r = request(&s, 100, 0.2);
        assert!(
            r.messages[0]
                .content
                .starts_with("You are the Solution Architect.")
        );
        assert!(r.messages[1].content.contains("- link expires"));
        assert!(
            r.messages[1]
                .content
                .contains("Design the solution for story PROJ-1")
        );
        assert!(!r.messages[1].content.contains("should not appear"));
    }
}
