//! A local git repository as the code host: a branch per execution, one
//! commit per step that produced files, written by one `git fast-import`
//! (blobs, trees, commits and the branch's ref in one process; the user's
//! working tree and checked-out branch are never touched). Each commit
//! carries an `AI-Team-Step` trailer, so a repeated delivery skips the
//! commits already made.

use std::path::PathBuf;
use std::process::Stdio;

use ai_team_core::codehost::{
    CodeHost, CodeHostError, CommitRequest, Delivered, PullRequestRequest, RepoEntry, RepoSnapshot,
};
use ai_team_core::repository::{RepositoryRef, is_within, lexical_absolute};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::new_repository;

const AUTHOR_NAME: &str = "AI Team";
const AUTHOR_EMAIL: &str = "ai-team@localhost";
const TRAILER: &str = "AI-Team-Step";

/// The local git adapter; `git` must be on the PATH. It writes only where
/// the operator said: working copies of remote repositories under
/// `working_copies`, and local repositories inside `local_roots`.
#[derive(Debug, Clone)]
pub struct LocalGit {
    working_copies: PathBuf,
    local_roots: Vec<PathBuf>,
}

/// Where one delivery goes.
struct Target {
    dir: PathBuf,
    /// Why no pull request is opened, for a remote repository.
    pr_skipped: Option<String>,
}

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
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = format!(
                "git {} failed: {}",
                args.first().unwrap_or(&""),
                stderr.trim()
            );
            // A lock held by another git, or a passing shortage, clears up:
            // the step is retried instead of failing the execution.
            return Err(if is_transient(&stderr) {
                CodeHostError::Unavailable(message)
            } else {
                CodeHostError::Refused(message)
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Like `git`, but the raw bytes of stdout (file contents, archives).
    async fn git_bytes(&self, args: &[&str]) -> Result<Vec<u8>, CodeHostError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| CodeHostError::Unavailable(format!("git: {e}")))?;
        if !out.status.success() {
            return Err(CodeHostError::Refused(format!(
                "git {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
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

impl LocalGit {
    /// Working copies of remote repositories go under `working_copies`
    /// (which is also a root local repositories may be in); a local
    /// repository must be inside `working_copies` or one of `local_roots`.
    pub fn new(working_copies: PathBuf, local_roots: Vec<PathBuf>) -> Self {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let working_copies = lexical_absolute(&working_copies, &cwd);
        let mut roots: Vec<PathBuf> = local_roots
            .iter()
            .map(|r| lexical_absolute(r, &cwd))
            .collect();
        roots.push(working_copies.clone());
        Self {
            working_copies,
            local_roots: roots,
        }
    }

    fn target(&self, repository: &str) -> Result<Target, CodeHostError> {
        match RepositoryRef::parse(repository).map_err(CodeHostError::Refused)? {
            remote @ RepositoryRef::Remote { .. } => {
                let dir = remote
                    .working_copy(&self.working_copies)
                    .ok_or_else(|| CodeHostError::Refused("no working copy".into()))?;
                Ok(Target {
                    pr_skipped: Some(format!(
                        "USE_REAL_GITHUB is off: {} was not contacted; the branch is in the local working copy {}",
                        remote.full_name().unwrap_or_default(),
                        dir.display()
                    )),
                    dir,
                })
            }
            RepositoryRef::Local(path) => {
                let cwd = std::env::current_dir()
                    .map_err(|e| CodeHostError::Unavailable(e.to_string()))?;
                let dir = lexical_absolute(&path, &cwd);
                if !is_within(&dir, &self.local_roots) {
                    return Err(CodeHostError::Refused(format!(
                        "{} is not a repository this service may write (only the CLI's --repo, \
                         AI_TEAM_LOCAL_REPOSITORIES and working copies under {})",
                        dir.display(),
                        self.working_copies.display()
                    )));
                }
                Ok(Target {
                    dir,
                    pr_skipped: None,
                })
            }
        }
    }
}

impl LocalGit {
    /// The repository to read, when it exists and has a commit at HEAD.
    async fn readable(&self, repository: &str) -> Result<Option<(Repo, String)>, CodeHostError> {
        let Target { dir, .. } = self.target(repository)?;
        if !tokio::fs::try_exists(dir.join(".git"))
            .await
            .unwrap_or(false)
        {
            return Ok(None);
        }
        let repo = Repo {
            index: index_path(&dir, "read"),
            dir,
        };
        Ok(repo.resolve("HEAD").await.map(|sha| (repo, sha)))
    }
}

/// Whether git's complaint is one that passes (a lock, a busy resource).
fn is_transient(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        ".lock': file exists",
        "unable to create",
        "cannot lock ref",
        "unable to lock",
        "resource temporarily unavailable",
        "too many open files",
        "another git process",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// A private index file per repository and branch, short whatever the
/// branch's length.
fn index_path(dir: &std::path::Path, branch: &str) -> PathBuf {
    let digest =
        ai_team_core::tracking::sha256_hex(format!("{}\n{branch}", dir.display()).as_bytes());
    std::env::temp_dir().join(format!(
        "ai-team-index-{}-{}",
        std::process::id(),
        &digest[..16]
    ))
}

/// The `git fast-import` stream that writes `commits` on `branch_ref`, the
/// first one on `parent`; commit `n` (from 1) gets mark `:n`, and the
/// stream ends asking for the last one's id (`get-mark`).
fn fast_import_stream(
    branch_ref: &str,
    parent: Option<&str>,
    commits: &[&CommitRequest],
    now: i64,
) -> Vec<u8> {
    let mut out = Vec::new();
    let data = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.push(b'\n');
    };
    for (n, c) in commits.iter().enumerate() {
        out.extend_from_slice(format!("commit {branch_ref}\nmark :{}\n", n + 1).as_bytes());
        out.extend_from_slice(
            format!("committer {AUTHOR_NAME} <{AUTHOR_EMAIL}> {now} +0000\n").as_bytes(),
        );
        let message = format!(
            "{}\n\n{TRAILER}: {}\n",
            new_repository::without_nul(&c.message),
            new_repository::without_nul(&c.step_key)
        );
        data(&mut out, message.as_bytes());
        if n == 0
            && let Some(p) = parent
        {
            out.extend_from_slice(format!("from {p}\n").as_bytes());
        }
        for f in &c.files {
            // A path that starts with a quote or holds a control character
            // (a newline would start a command of its own) goes in
            // fast-import's C-style quotes: Rust's escapes of `"`, `\\`,
            // `\n`, `\t` are C's; any other control character comes out as
            // `\u{..}`, which git refuses, failing the delivery rather than
            // writing another path.
            let path = if f.path.starts_with('"') || f.path.chars().any(char::is_control) {
                format!("{:?}", f.path)
            } else {
                f.path.clone()
            };
            out.extend_from_slice(format!("M 100644 inline {path}\n").as_bytes());
            data(&mut out, f.content.as_bytes());
        }
        out.push(b'\n');
    }
    out.extend_from_slice(format!("get-mark :{}\ndone\n", commits.len()).as_bytes());
    out
}

#[async_trait]
impl CodeHost for LocalGit {
    fn kind(&self) -> &'static str {
        "git"
    }

    async fn snapshot(&self, repository: &str) -> Result<RepoSnapshot, CodeHostError> {
        let Some((repo, sha)) = self.readable(repository).await? else {
            return Ok(RepoSnapshot::default());
        };
        let listing = repo
            .git_bytes(&["ls-tree", "-r", "-l", "--full-tree", "-z", &sha])
            .await?;
        let files = listing
            .split(|b| *b == 0)
            .filter_map(|entry| {
                let entry = std::str::from_utf8(entry).ok()?;
                let (meta, path) = entry.split_once('\t')?;
                let mut parts = meta.split_whitespace();
                let (_mode, kind, _sha, size) =
                    (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
                (kind == "blob").then(|| RepoEntry {
                    path: path.to_owned(),
                    size_bytes: size.parse().unwrap_or(0),
                })
            })
            .collect();
        Ok(RepoSnapshot {
            base_sha: Some(sha),
            files,
        })
    }

    async fn read_file(
        &self,
        repository: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, CodeHostError> {
        let Some((repo, sha)) = self.readable(repository).await? else {
            return Ok(None);
        };
        Ok(repo
            .git_bytes(&["show", &format!("{sha}:{path}")])
            .await
            .ok())
    }

    async fn export_base(
        &self,
        repository: &str,
        dest: &std::path::Path,
    ) -> Result<bool, CodeHostError> {
        let Some((repo, sha)) = self.readable(repository).await? else {
            return Ok(false);
        };
        let archive = repo.git_bytes(&["archive", "--format=tar", &sha]).await?;
        let mut tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(dest)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CodeHostError::Unavailable(format!("tar: {e}")))?;
        if let Some(mut input) = tar.stdin.take() {
            input
                .write_all(&archive)
                .await
                .map_err(|e| CodeHostError::Unavailable(format!("tar stdin: {e}")))?;
        }
        let out = tar
            .wait_with_output()
            .await
            .map_err(|e| CodeHostError::Unavailable(format!("tar: {e}")))?;
        if !out.status.success() {
            return Err(CodeHostError::Unavailable(format!(
                "tar failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(true)
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
        let Target { dir, pr_skipped } = self.target(repository)?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| CodeHostError::Refused(format!("cannot create {}: {e}", dir.display())))?;
        let git_dir = dir.join(".git");
        let index = index_path(&dir, branch);
        let repo = Repo {
            dir: dir.clone(),
            index,
        };
        let branch_ref = format!("refs/heads/{branch}");
        let has_git = tokio::fs::try_exists(&git_dir).await.unwrap_or(false);
        if !has_git
            && !commits.is_empty()
            && new_repository::is_plain_branch(branch)
            && commits
                .iter()
                .all(|c| c.files.iter().all(|f| new_repository::is_plain(&f.path)))
        {
            // A repository made here (the default one of a workflow
            // without a repository): written in-process, no git to start.
            // One at a time: a burst of deliveries otherwise starts a
            // blocking thread (and a malloc arena) each, which held 40-75
            // MiB more at 100 executions at once; one takes a few ms.
            static WRITING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
            let _one = WRITING
                .acquire()
                .await
                .map_err(|e| CodeHostError::Unavailable(format!("git objects: {e}")))?;
            let head_sha = {
                let (into, branch_ref, commits) =
                    (dir.clone(), branch_ref.clone(), commits.to_vec());
                tokio::task::spawn_blocking(move || {
                    let commits: Vec<&CommitRequest> = commits.iter().collect();
                    new_repository::write(
                        &into,
                        &branch_ref,
                        &commits,
                        &format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}>"),
                        TRAILER,
                        chrono::Utc::now().timestamp(),
                    )
                })
                .await
                .map_err(|e| CodeHostError::Unavailable(format!("git objects: {e}")))?
                .map_err(|e| {
                    CodeHostError::Unavailable(format!(
                        "cannot write the repository {}: {e}",
                        dir.display()
                    ))
                })?
            };
            return Ok(Delivered {
                location: dir.display().to_string(),
                branch: branch.to_owned(),
                base_branch: "main".to_owned(),
                head_sha,
                new_commits: commits.len(),
                pull_request: None,
                pull_request_skipped: pr_skipped,
            });
        }
        let (base_branch, existing, parent) = if has_git {
            let base_branch = repo
                .git(&["symbolic-ref", "--short", "-q", "HEAD"], None)
                .await
                .unwrap_or_else(|_| "main".into());
            let existing = repo.resolve(&branch_ref).await;
            let parent = match &existing {
                Some(sha) => Some(sha.clone()),
                None => repo.resolve("HEAD").await,
            };
            (base_branch, existing, parent)
        } else {
            // A repository made here that the in-process writer does
            // not take (a path or branch git quotes or refuses, or no
            // commit): no commit, no branch and `main` checked out,
            // nothing to ask git. No template either: its sample hooks
            // are a dozen files per workflow, unused.
            repo.git(&["init", "-q", "-b", "main", "--template="], None)
                .await?;
            ("main".to_owned(), None, None)
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
        let todo: Vec<&CommitRequest> = commits
            .iter()
            .filter(|c| !done.contains(&c.step_key))
            .collect();
        let new_commits = todo.len();
        let head_sha = if todo.is_empty() {
            match &parent {
                Some(p) => p.clone(),
                None => {
                    // Nothing to commit on an empty repository: an empty
                    // root commit still gives the branch something to point at.
                    let tree = repo.git(&["write-tree"], None).await?;
                    repo.git(&["commit-tree", &tree, "-m", "AI Team: no files"], None)
                        .await?
                }
            }
        } else {
            // Every commit in one `git fast-import`, which also moves the
            // branch (refusing a move that is not a fast-forward): one
            // process instead of five per commit (read-tree, hash-object
            // and update-index per file, write-tree, commit-tree), which
            // was most of an execution's own time.
            // The stream ends by asking for the last commit's id, which
            // fast-import answers on stdout (`--cat-blob-fd=1`): no marks file.
            let stream = fast_import_stream(
                &branch_ref,
                parent.as_deref(),
                &todo,
                chrono::Utc::now().timestamp(),
            );
            let head = repo
                .git(
                    &["fast-import", "--quiet", "--done", "--cat-blob-fd=1"],
                    Some(&stream),
                )
                .await?;
            let head = head.trim();
            if !matches!(head.len(), 40 | 64) || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CodeHostError::Unavailable(format!(
                    "git fast-import answered {head:?} for the last commit's id"
                )));
            }
            head.to_owned()
        };
        let _ = tokio::fs::remove_file(&repo.index).await;
        if todo.is_empty() && existing.as_deref() != Some(head_sha.as_str()) {
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
            pull_request_skipped: pr_skipped,
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

    #[test]
    fn a_path_with_a_newline_cannot_add_a_command_to_the_import() {
        let c = commit("s-1", &[("app/a.py\nM 100644 inline x.py", "x = 1\n")]);
        let stream =
            String::from_utf8(fast_import_stream("refs/heads/b", Some("abc"), &[&c], 7)).unwrap();
        assert!(
            stream.contains("M 100644 inline \"app/a.py\\nM 100644 inline x.py\"\n"),
            "{stream}"
        );
        assert_eq!(stream.matches("\nM 100644 inline").count(), 1, "{stream}");
        assert!(stream.starts_with("commit refs/heads/b\nmark :1\ncommitter AI Team"));
        assert!(stream.contains("from abc\n") && stream.ends_with("\nget-mark :1\ndone\n"));
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
        let git = LocalGit::new(dir.join("copies"), vec![dir.clone()]);
        let first = git
            .deliver(&repo, "ai-team/x-1", &commits, None)
            .await
            .unwrap();
        assert_eq!(first.new_commits, 2);
        let again = git
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
    async fn a_new_repository_written_in_process_is_the_one_git_would_write() {
        let root = std::env::temp_dir().join(format!("ai-team-new-repo-{}", uuid_like()));
        let (fresh, with_git) = (root.join("fresh"), root.join("cli"));
        let git = LocalGit::new(root.join("copies"), vec![root.clone()]);
        let commits = vec![
            commit(
                "execution-1/implementation",
                &[("app/a.py", "a = 1\n"), ("app.py", "x\n"), ("app0", "")],
            ),
            commit(
                "execution-1/testing",
                &[
                    ("tests/test_a.py", "def test(): pass\n"),
                    ("app/a.py", "a = 2\n"),
                ],
            ),
        ];
        // The other one through git itself: an existing (empty) repository
        // takes the fast-import path.
        std::fs::create_dir_all(&with_git).unwrap();
        let cli = Repo {
            dir: with_git.clone(),
            index: root.join("unused-index"),
        };
        cli.git(&["init", "-q", "-b", "main", "--template="], None)
            .await
            .unwrap();
        let mut trees = Vec::new();
        for dir in [&fresh, &with_git] {
            let d = git
                .deliver(&dir.display().to_string(), "ai-team/x-1", &commits, None)
                .await
                .unwrap();
            assert_eq!((d.new_commits, d.base_branch.as_str()), (2, "main"));
            let r = Repo {
                dir: dir.clone(),
                index: root.join("unused-index"),
            };
            r.git(&["fsck", "--strict", "--no-dangling"], None)
                .await
                .unwrap();
            trees.push(
                r.git(&["log", "--format=%T %P|%an <%ae>|%B", "ai-team/x-1"], None)
                    .await
                    .unwrap(),
            );
            assert_eq!(
                r.git(&["symbolic-ref", "HEAD"], None).await.unwrap(),
                "refs/heads/main"
            );
            // A repeat finds both commits by their trailers.
            let again = git
                .deliver(&dir.display().to_string(), "ai-team/x-1", &commits, None)
                .await
                .unwrap();
            assert_eq!((again.new_commits, again.head_sha), (0, d.head_sha));
        }
        let strip_parents = |log: &str| -> Vec<String> {
            log.lines()
                .map(|l| {
                    l.split_once(' ').map_or(l.to_owned(), |(tree, rest)| {
                        format!("{tree} {}", rest.split_once('|').map_or("", |r| r.1))
                    })
                })
                .collect()
        };
        assert_eq!(strip_parents(&trees[0]), strip_parents(&trees[1]));
        assert!(trees[0].contains("AI-Team-Step: execution-1/testing"));
        assert!(!fresh.join("app").exists(), "the working tree is untouched");
        assert!(
            std::fs::read_dir(&fresh)
                .unwrap()
                .all(|e| e.unwrap().file_name() == ".git"),
            "no temporary .git is left"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn a_remote_repository_goes_into_a_working_copy_without_a_pull_request() {
        let root = std::env::temp_dir().join(format!("ai-team-copies-{}", uuid_like()));
        let git = LocalGit::new(root.clone(), vec![]);
        let d = git
            .deliver(
                "https://github.com/acme/x",
                "ai-team/x-1",
                &[commit("execution-1/implementation", &[("a.py", "a = 1\n")])],
                None,
            )
            .await
            .unwrap();
        assert_eq!(PathBuf::from(&d.location), root.join("github.com/acme/x"));
        assert!(d.pull_request.is_none());
        assert!(d.pull_request_skipped.unwrap().contains("USE_REAL_GITHUB"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn paths_outside_the_allowed_roots_are_refused_and_nothing_is_created() {
        let root = std::env::temp_dir().join(format!("ai-team-roots-{}", uuid_like()));
        let git = LocalGit::new(root.join("copies"), vec![root.join("allowed")]);
        for bad in [
            root.join("victim").display().to_string(),
            format!("file://{}", root.join("victim2").display()),
            format!("{}/allowed/../victim3", root.display()),
        ] {
            let e = git.deliver(&bad, "b", &[], None).await.unwrap_err();
            assert!(!e.is_retryable(), "{bad}");
        }
        assert!(!root.join("victim").exists() && !root.join("victim2").exists());
        assert!(!root.join("victim3").exists());
        let ok = git
            .deliver(
                &root.join("allowed/repo").display().to_string(),
                "b",
                &[],
                None,
            )
            .await
            .unwrap();
        assert!(ok.pull_request_skipped.is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_lock_held_by_another_git_is_transient_a_bad_ref_is_not() {
        assert!(is_transient(
            "fatal: Unable to create '/r/.git/index.lock': File exists."
        ));
        assert!(is_transient(
            "error: cannot lock ref 'refs/heads/x': is at 1 but expected 2"
        ));
        assert!(!is_transient("fatal: not a valid object name: 'nope'"));
    }

    #[test]
    fn the_index_file_name_is_short_for_a_long_branch() {
        let long = format!("ai-team/{}-execution-1", "k".repeat(240));
        let name = index_path(std::path::Path::new("/r"), &long);
        assert!(name.file_name().unwrap().len() < 64);
    }

    fn uuid_like() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
    }
}
