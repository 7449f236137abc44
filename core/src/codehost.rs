//! The `CodeHost` port: where the team's files land. A branch per
//! execution, one commit per step that produced files, then a pull request
//! where the host has them. Adapters: a local git repository, GitHub.
//! Commits must be idempotent: a redelivered integration step finds the
//! commits it already made (by their step trailer) and does not repeat them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Why a code host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CodeHostError {
    /// The host rate-limited us: retry after the wait.
    #[error("code host rate-limited; retry after {retry_after_secs} s")]
    RateLimited {
        /// How long the host asks us to wait, in seconds.
        retry_after_secs: u64,
    },
    /// The host could not be reached or failed the request: retry.
    #[error("code host unavailable: {0}")]
    Unavailable(String),
    /// The host refused the operation: retrying cannot help.
    #[error("{0}")]
    Refused(String),
}

impl CodeHostError {
    /// Whether another attempt may succeed (anything but `Refused`).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, CodeHostError::Refused(_))
    }
}

/// One file to write, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Path relative to the repository root.
    pub path: String,
    /// The file's full text.
    pub content: String,
}

/// One commit: the files one step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRequest {
    /// The step's identity, kept as a trailer so a repeat is recognised.
    pub step_key: String,
    /// The commit message.
    pub message: String,
    /// The files to write in this commit.
    pub files: Vec<FileChange>,
}

/// The pull request to open (or find) for a delivered branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRequest {
    /// The pull request's title.
    pub title: String,
    /// The pull request's description.
    pub body: String,
    /// The branch with the change.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
}

/// What delivery produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// Where the branch is (a path or a URL).
    pub location: String,
    /// The execution's branch.
    pub branch: String,
    /// The branch the work is based on.
    pub base_branch: String,
    /// The branch's head commit after delivery.
    pub head_sha: String,
    /// Commits made now (0 when all were already there).
    pub new_commits: usize,
    /// The pull request opened or found; `None` where none was (see `pull_request_skipped`).
    pub pull_request: Option<PullRequestRef>,
    /// Why no pull request was opened (a remote repository without GitHub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_skipped: Option<String>,
}

/// A pull request on the code host, as delivery opened or found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestRef {
    /// The pull request's number in its repository.
    pub number: i64,
    /// The pull request's web address.
    pub url: String,
    /// `owner/name` on the host.
    #[serde(default)]
    pub repository: String,
    /// `open` or `closed`, as the host reports it; empty when unknown.
    #[serde(default)]
    pub state: String,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: bool,
    /// The host's time of the pull request's last change.
    #[serde(default)]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One file of a repository's base tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEntry {
    /// Path relative to the repository root.
    pub path: String,
    /// Size of the file, in bytes.
    pub size_bytes: u64,
}

/// What a repository holds at the commit the work starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSnapshot {
    /// The base commit; `None` for a repository without commits (or none yet).
    pub base_sha: Option<String>,
    /// Every file of the base tree.
    pub files: Vec<RepoEntry>,
}

/// Where the team's files land: a local git repository or GitHub (adapters in `ai-team-providers`).
#[async_trait]
pub trait CodeHost: Send + Sync + 'static {
    /// `git`, `github`, …
    fn kind(&self) -> &'static str;

    /// The file tree of the repository's base; empty where the host cannot
    /// read it (or the repository does not exist yet).
    async fn snapshot(&self, repository: &str) -> Result<RepoSnapshot, CodeHostError> {
        let _ = repository;
        Ok(RepoSnapshot::default())
    }

    /// A file of the base tree; `None` when absent.
    async fn read_file(
        &self,
        repository: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, CodeHostError> {
        let _ = (repository, path);
        Ok(None)
    }

    /// Writes the base tree into `dest` (a throw-away working copy);
    /// `false` where this host cannot.
    async fn export_base(
        &self,
        repository: &str,
        dest: &std::path::Path,
    ) -> Result<bool, CodeHostError> {
        let _ = (repository, dest);
        Ok(false)
    }
    /// Creates `branch` from the base if missing, makes each commit not
    /// already on it, in order, and opens (or finds) the pull request.
    async fn deliver(
        &self,
        repository: &str,
        branch: &str,
        commits: &[CommitRequest],
        pull_request: Option<&PullRequestRequest>,
    ) -> Result<Delivered, CodeHostError>;
}

/// Whether a path component names git's metadata directory: `.git` in
/// any case, and the spellings some file systems fold onto it (`.git.`,
/// `.git ` on NTFS, its 8.3 short name `git~1`).
fn is_git_dir(part: &str) -> bool {
    let p = part.trim_end_matches(['.', ' ']).to_ascii_lowercase();
    p == ".git" || p == "git~1"
}

/// CI and git-metadata paths (`.github/workflows/…`, `.gitmodules`,
/// `.gitattributes`, any case, `.gitmodules`/`.gitattributes` at any
/// depth): what runs on the code host or changes how git reads the tree.
/// Written only when the operator allows it (`AI_TEAM_ALLOW_CI_PATHS`).
pub fn is_ci_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    (parts.len() > 2 && parts[0] == ".github" && parts[1] == "workflows")
        || parts
            .iter()
            .any(|p| matches!(*p, ".gitmodules" | ".gitattributes"))
}

/// A repository-relative path, normalised; `None` when it is absolute,
/// escapes the root, is empty, or has a `.git` component at any depth.
pub fn normalise_path(raw: &str) -> Option<String> {
    let raw = raw.trim().trim_matches('`').replace('\\', "/");
    if raw.is_empty() || raw.starts_with('/') || raw.contains(':') || raw.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() || parts.iter().any(|p| is_git_dir(p)) {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::{is_ci_path, normalise_path};

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        assert_eq!(
            normalise_path("app/reset.py").as_deref(),
            Some("app/reset.py")
        );
        assert_eq!(normalise_path("./app//x.py").as_deref(), Some("app/x.py"));
        assert_eq!(normalise_path("src\\a.ts").as_deref(), Some("src/a.ts"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a/../b",
            "C:/x",
            ".git/config",
            ".",
        ] {
            assert_eq!(normalise_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_git_component_is_refused_in_any_case_at_any_depth() {
        for bad in [
            ".GIT/hooks/post-commit",
            ".Git/config",
            "sub/.git/config",
            "a/b/.gIt/hooks/pre-push",
            "sub\\.git\\config",
            ".git./config",
            "x/.git /config",
            "GIT~1/config",
            ".git",
        ] {
            assert_eq!(normalise_path(bad), None, "{bad}");
        }
        for good in [
            ".gitignore",
            "docs/.github/x.md",
            "my.git/x",
            "src/git/x.rs",
        ] {
            assert_eq!(normalise_path(good).as_deref(), Some(good), "{good}");
        }
    }

    #[test]
    fn ci_and_git_metadata_paths_are_recognised() {
        for ci in [
            ".github/workflows/x.yml",
            ".GitHub/Workflows/ci.yaml",
            ".gitmodules",
            ".gitattributes",
            "sub/.gitattributes",
        ] {
            assert!(is_ci_path(ci), "{ci}");
        }
        for plain in [
            ".github/CODEOWNERS",
            "app/workflows/x.yml",
            ".gitignore",
            "src/main.rs",
        ] {
            assert!(!is_ci_path(plain), "{plain}");
        }
    }
}
