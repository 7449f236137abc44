//! A local git repository as the code host: a branch per execution, one
//! commit per step that produced files, made with git's plumbing through
//! a private index (hash-object, update-index, write-tree, commit-tree,
//! update-ref) — the same blobs/tree/commit/ref sequence as GitHub's Git
//! data API, and the user's working tree and checked-out branch are never
//! touched. Each commit carries an `AI-Team-Step` trailer, so a repeated
//! delivery skips the commits already made.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use ai_team_core::codehost::{
    CodeHost, CodeHostError, CommitRequest, Delivered, PullRequestRequest,
};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const AUTHOR_NAME: &str = "AI Team";
const AUTHOR_EMAIL: &str = "ai-team@localhost";
const TRAILER: &str = "AI-Team-Step";

/// The local git adapter; `git` must be on the PATH.
#[derive(Debug, Clone, Default)]
pub struct LocalGit;

struct Repo {
    dir: PathBuf,
    index: PathBuf,
}

impl Repo {
    async fn git(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, CodeHostError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_INDEX_FILE", &self.index)
            .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
            .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
            .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
            .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| CodeHostError::Refused(format!("cannot run git: {e}")))?;
        if let (Some(bytes), Some(mut input)) = (stdin, child.stdin.take()) {
            input
                .write_all(bytes)
                .await
                .map_err(|e| CodeHostError::Unavailable(format!("git stdin: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| CodeHostError::Unavailable(format!("git: {e}")))?;
        if !out.status.success() {
            return Err(CodeHostError::Refused(format!(
                "git {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The commit a ref names, if it exists.
    async fn resolve(&self, rev: &str) -> Option<String> {
        self.git(
            &["rev-parse", "--verify", "-q", &format!("{rev}^{{commit}}")],
            None,
        )
        .await
        .ok()
        .filter(|s| !s.is_empty())
    }
}

fn repo_dir(repository: &str) -> Result<PathBuf, CodeHostError> {
    let path = repository.strip_prefix("file://").unwrap_or(repository);
    if path.contains("://") || path.trim().is_empty() {
        return Err(CodeHostError::Refused(format!(
            "{repository:?} is not a local repository path (set USE_REAL_GITHUB for remote ones)"
        )));
    }
    let p = Path::new(path);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| CodeHostError::Unavailable(e.to_string()))?
            .join(p)
    })
}

#[async_trait]
impl CodeHost for LocalGit {
    fn kind(&self) -> &'static str {
        "git"
    }

    #[tracing::instrument(skip(self, commits, pull_request), fields(commits = commits.len()))]
    async fn deliver(
        &self,
        repository: &str,
        branch: &str,
        commits: &[CommitRequest],
        pull_request: Option<&PullRequestRequest>,
    ) -> Result<Delivered, CodeHostError> {
        let _ = pull_request; // a local repository has no pull requests
        let dir = repo_dir(repository)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| CodeHostError::Refused(format!("cannot create {}: {e}", dir.display())))?;
        let git_dir = dir.join(".git");
        let index = std::env::temp_dir().join(format!(
            "ai-team-index-{}-{}",
            std::process::id(),
            branch.replace('/', "_")
        ));
        let repo = Repo {
            dir: dir.clone(),
            index,
        };
        if !tokio::fs::try_exists(&git_dir).await.unwrap_or(false) {
            repo.git(&["init", "-q", "-b", "main"], None).await?;
        }
        let base_branch = repo
            .git(&["symbolic-ref", "--short", "-q", "HEAD"], None)
            .await
            .unwrap_or_else(|_| "main".into());
        let branch_ref = format!("refs/heads/{branch}");
        let existing = repo.resolve(&branch_ref).await;
        let mut parent = match &existing {
            Some(sha) => Some(sha.clone()),
            None => repo.resolve("HEAD").await,
        };
        let done: Vec<String> = match &existing {
            Some(sha) => repo
                .git(
                    &[
                        "log",
                        &format!("--format=%(trailers:key={TRAILER},valueonly)"),
                        sha,
                    ],
                    None,
                )
                .await?
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect(),
            None => vec![],
        };
        let mut new_commits = 0;
        for c in commits.iter().filter(|c| !done.contains(&c.step_key)) {
            match &parent {
                Some(p) => repo.git(&["read-tree", p], None).await?,
                None => repo.git(&["read-tree", "--empty"], None).await?,
            };
            for f in &c.files {
                let blob = repo
                    .git(
                        &["hash-object", "-w", "--stdin"],
                        Some(f.content.as_bytes()),
                    )
                    .await?;
                repo.git(
                    &[
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        &format!("100644,{blob},{}", f.path),
                    ],
                    None,
                )
                .await?;
            }
            let tree = repo.git(&["write-tree"], None).await?;
            let message = format!("{}\n\n{TRAILER}: {}\n", c.message, c.step_key);
            let mut args = vec!["commit-tree", tree.as_str(), "-F", "-"];
            if let Some(p) = &parent {
                args.extend(["-p", p.as_str()]);
            }
            let sha = repo.git(&args, Some(message.as_bytes())).await?;
            parent = Some(sha);
            new_commits += 1;
        }
        let _ = tokio::fs::remove_file(&repo.index).await;
        let head_sha = match &parent {
            Some(p) => p.clone(),
            None => {
                // Nothing to commit on an empty repository: an empty root commit
                // still gives the branch something to point at.
                let tree = repo.git(&["write-tree"], None).await?;
                repo.git(&["commit-tree", &tree, "-m", "AI Team: no files"], None)
                    .await?
            }
        };
        if existing.as_deref() != Some(head_sha.as_str()) {
            let old = existing.clone().unwrap_or_default();
            repo.git(&["update-ref", &branch_ref, &head_sha, &old], None)
                .await?;
        }
        Ok(Delivered {
            location: dir.display().to_string(),
            branch: branch.to_owned(),
            base_branch,
            head_sha,
            new_commits,
            pull_request: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_team_core::codehost::FileChange;

    fn commit(key: &str, files: &[(&str, &str)]) -> CommitRequest {
        CommitRequest {
            step_key: key.into(),
            message: format!("{key} files"),
            files: files
                .iter()
                .map(|(p, c)| FileChange {
                    path: (*p).into(),
                    content: (*c).into(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn commits_once_per_step_and_repeats_are_skipped() {
        let dir = std::env::temp_dir().join(format!("ai-team-git-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = dir.display().to_string();
        let commits = vec![
            commit(
                "execution-1/implementation",
                &[("app/a.py", "a = 1\n"), ("app/b.py", "b = 2\n")],
            ),
            commit(
                "execution-1/testing",
                &[("tests/test_a.py", "def test(): pass\n")],
            ),
        ];
        let first = LocalGit
            .deliver(&repo, "ai-team/x-1", &commits, None)
            .await
            .unwrap();
        assert_eq!(first.new_commits, 2);
        let again = LocalGit
            .deliver(&repo, "ai-team/x-1", &commits, None)
            .await
            .unwrap();
        assert_eq!(again.new_commits, 0);
        assert_eq!(again.head_sha, first.head_sha);
        let r = Repo {
            dir: dir.clone(),
            index: dir.join("unused-index"),
        };
        let files = r
            .git(&["ls-tree", "-r", "--name-only", "ai-team/x-1"], None)
            .await
            .unwrap();
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            ["app/a.py", "app/b.py", "tests/test_a.py"]
        );
        let author = r
            .git(&["log", "-1", "--format=%an <%ae>", "ai-team/x-1"], None)
            .await
            .unwrap();
        assert_eq!(author, "AI Team <ai-team@localhost>");
        let count = r
            .git(&["rev-list", "--count", "ai-team/x-1"], None)
            .await
            .unwrap();
        assert_eq!(count, "2");
        // The working tree was not touched.
        assert!(!dir.join("app").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn remote_urls_are_refused() {
        let e = LocalGit
            .deliver("https://github.com/o/r", "b", &[], None)
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
    }
}
