//! What a checkpoint holds: the running summary of the story so far (the
//! criteria, the design, the file index, the review), from which each
//! step builds its prompt without the whole history, and from which a
//! resume continues.

use serde::{Deserialize, Serialize};

use crate::answers::Verdict;
use crate::codehost::Delivered;
use crate::steps::Step;

/// One file the team wrote: where its content is (a code file row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the repository root.
    pub path: String,
    /// The step that wrote this version (wire name).
    pub step: String,
    /// The agent that wrote it (wire name).
    pub agent: String,
    /// The conversation that wrote this version (with the path, it names the code file row).
    pub conversation_id: i64,
    /// Checksum of the content, as on the code file row.
    pub checksum: String,
    /// Size of the content, in bytes.
    pub size_bytes: i64,
}

/// The running summary of a run, kept as a checkpoint's `summary`: what each step's prompt is built from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The story's key in the ticket system.
    pub story_key: String,
    /// The story's title.
    pub title: String,
    /// The story's text.
    pub story: String,
    /// The criteria the analysis step found.
    #[serde(default)]
    pub acceptance_criteria: Vec<String>,
    /// The architect's design.
    #[serde(default)]
    pub design: String,
    /// Latest version of each path, in the order first written.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// The reviewer's latest verdict; `None` before review.
    #[serde(default)]
    pub review: Option<Verdict>,
    /// One line per finished step.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The step to run after the checkpoint's; `None` once finished.
    #[serde(default)]
    pub next_step: Option<Step>,
    /// What integration delivered; `None` before it ran.
    #[serde(default)]
    pub delivered: Option<Delivered>,
    /// What the repository context step read.
    #[serde(default)]
    pub repository: Option<RepoContext>,
    /// Every verification so far, oldest first.
    #[serde(default)]
    pub verifications: Vec<VerificationRecord>,
}

/// The target repository as the steps see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoContext {
    /// The commit the work is based on; `None` without one.
    pub base_sha: Option<String>,
    /// Number of files in the base tree.
    pub file_count: usize,
    /// Paths with sizes, at most `TREE_LIMIT` of them.
    pub tree: Vec<(String, u64)>,
    /// Files per language, most first.
    pub languages: Vec<(String, usize)>,
    /// `AGENTS.md` and the README, shortened.
    pub docs: String,
}

/// One run of the repository's tests, as the checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRecord {
    /// The step that ran the tests (wire name).
    pub step: String,
    /// How the run ended.
    pub status: crate::verification::TestStatus,
    /// A one-line summary of the outcome.
    pub summary: String,
    /// The command that ran; `None` when none did.
    pub command: Option<String>,
    /// Tests that passed, when the output said.
    pub passed: Option<u32>,
    /// Tests that failed, when the output said.
    pub failed: Option<u32>,
    /// The output's last lines, for the fix prompt and the PR body.
    pub tail: String,
    /// Hash of the tree tested (see `verification::TestOutcome::tree_hash`).
    pub tree_hash: String,
}

impl RunState {
    /// Records a file, replacing an older version of the same path.
    pub fn put_file(&mut self, entry: FileEntry) {
        match self.files.iter_mut().find(|f| f.path == entry.path) {
            Some(old) => *old = entry,
            None => self.files.push(entry),
        }
    }

    /// The artifact index of the checkpoint.
    pub fn artifact_index(&self) -> serde_json::Value {
        serde_json::to_value(&self.files).unwrap_or_default()
    }
}
