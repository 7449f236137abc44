//! GitHub as the `CodeHost`, through the Git data API — the same
//! blobs → tree → commit → ref sequence as the local adapter's plumbing:
//!
//! 1. `GET /repos/{o}/{r}` (default branch, web address);
//! 2. `GET …/git/ref/heads/{branch}`: the execution's branch, if it exists;
//!    then `GET …/commits?sha={branch}` to read the `AI-Team-Step` trailers
//!    of the commits already made — or `GET …/git/ref/heads/{base}` to
//!    start from the base;
//! 3. `GET …/git/commits/{parent}` for the parent's tree;
//! 4. per step not yet committed: `POST …/git/blobs` per file, `POST
//!    …/git/trees` on the parent's tree, `POST …/git/commits`;
//! 5. `PATCH …/git/refs/heads/{branch}` (fast-forward only) or `POST
//!    …/git/refs`;
//! 6. `GET …/pulls?head={owner}:{branch}&state=open`, else `POST …/pulls`.
//!
//! A redelivered step repeats none of the commits (trailers) and reuses
//! the open pull request; commits made before a crash but never referenced
//! are unreachable objects GitHub collects.

use std::collections::HashSet;

use ai_team_core::codehost::{
    CodeHost, CodeHostError, CommitRequest, Delivered, PullRequestRef, PullRequestRequest,
};
use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{GitHub, parse_repository};

const TRAILER: &str = "AI-Team-Step";

/// The step keys named by `AI-Team-Step:` trailers in commit messages.
pub fn step_trailers<'a>(messages: impl Iterator<Item = &'a str>) -> HashSet<String> {
    messages
        .flat_map(str::lines)
        .filter_map(|l| l.trim().strip_prefix(TRAILER)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn sha_of(body: &Value, pointer: &str, what: &str) -> Result<String, CodeHostError> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| CodeHostError::Unavailable(format!("GitHub sent a {what} without a sha")))
}

impl GitHub {
    async fn post(&self, path: &str, body: &Value, what: &str) -> Result<Value, CodeHostError> {
        self.call(Method::POST, path, &[], Some(body))
            .await?
            .ok(what)
    }

    /// The branch's commit, or `None` when GitHub has no such branch.
    async fn branch_sha(&self, repo: &str, branch: &str) -> Result<Option<String>, CodeHostError> {
        let answer = self
            .get(&format!("{repo}/git/ref/heads/{branch}"), &[])
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = answer.ok("branch")?;
        sha_of(&body, "/object/sha", "ref").map(Some)
    }

    /// The open pull request of `owner:branch`, else a new one.
    async fn open_pull_request(
        &self,
        repo: &str,
        owner: &str,
        branch: &str,
        base: &str,
        pr: &PullRequestRequest,
    ) -> Result<Value, CodeHostError> {
        let find = || async {
            let body = self
                .get(
                    &format!("{repo}/pulls"),
                    &[
                        ("head", format!("{owner}:{branch}")),
                        ("state", "open".into()),
                    ],
                )
                .await?
                .ok("pull requests")?;
            Ok::<_, CodeHostError>(body.as_array().and_then(|a| a.first()).cloned())
        };
        if let Some(existing) = find().await? {
            return Ok(existing);
        }
        let answer = self
            .call(
                Method::POST,
                &format!("{repo}/pulls"),
                &[],
                Some(&json!({"title": pr.title, "head": branch, "base": base, "body": pr.body, "draft": false})),
            )
            .await?;
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
            // Opened by a concurrent delivery in between: use that one.
            if let Some(existing) = find().await? {
                return Ok(existing);
            }
        }
        answer.ok("pull request")
    }
}

impl GitHub {
    /// Owner, name and `/repos/{owner}/{name}` of an allowed repository,
    /// and what GitHub says of it (its default branch among the rest).
    async fn repository_info(
        &self,
        repository: &str,
    ) -> Result<(String, String, String, Value), CodeHostError> {
        let (owner, name) = parse_repository(repository).ok_or_else(|| {
            CodeHostError::Refused(format!(
                "{repository:?} is not a GitHub repository (owner/name or its URL)"
            ))
        })?;
        if !self.settings.allows(&owner, &name) {
            return Err(CodeHostError::Refused(format!(
                "{owner}/{name} is not in the allowed repositories (NEGISHI_GITHUB_REPO, AI_TEAM_ALLOWED_REPOSITORIES)"
            )));
        }
        let repo = format!("/repos/{owner}/{name}");
        let info = self.get(&repo, &[]).await?.ok("repository")?;
        Ok((owner, name, repo, info))
    }

    /// The repository's API path and its default branch.
    async fn base_of(&self, repository: &str) -> Result<(String, String), CodeHostError> {
        let (_, _, repo, info) = self.repository_info(repository).await?;
        let branch = info["default_branch"].as_str().unwrap_or("main").to_owned();
        Ok((repo, branch))
    }
}

#[async_trait]
impl CodeHost for GitHub {
    fn kind(&self) -> &'static str {
        "github"
    }

    /// The default branch's tree (Git data API, `recursive=1`): an empty
    /// repository (409) has no files.
    async fn snapshot(
        &self,
        repository: &str,
    ) -> Result<ai_team_core::codehost::RepoSnapshot, CodeHostError> {
        let (repo, branch) = self.base_of(repository).await?;
        let answer = self
            .get(
                &format!("{repo}/git/trees/{branch}"),
                &[("recursive", "1".to_owned())],
            )
            .await?;
        if matches!(answer.status.as_u16(), 404 | 409) {
            return Ok(Default::default());
        }
        let body = answer.ok("tree")?;
        let files = body["tree"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["type"] == "blob")
                    .filter_map(|e| {
                        Some(ai_team_core::codehost::RepoEntry {
                            path: e["path"].as_str()?.to_owned(),
                            size_bytes: e["size"].as_u64().unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(ai_team_core::codehost::RepoSnapshot {
            base_sha: body["sha"].as_str().map(str::to_owned),
            files,
        })
    }

    /// A file of the default branch (contents API, base64).
    async fn read_file(
        &self,
        repository: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, CodeHostError> {
        use base64::Engine as _;
        let (repo, branch) = self.base_of(repository).await?;
        let answer = self
            .get(&format!("{repo}/contents/{path}"), &[("ref", branch)])
            .await?;
        if answer.status.as_u16() == 404 {
            return Ok(None);
        }
        let body = answer.ok("file")?;
        let Some(encoded) = body["content"].as_str() else {
            return Ok(None);
        };
        let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        Ok(base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok())
    }

    #[tracing::instrument(skip(self, commits, pull_request), fields(commits = commits.len()))]
    async fn deliver(
        &self,
        repository: &str,
        branch: &str,
        commits: &[CommitRequest],
        pull_request: Option<&PullRequestRequest>,
    ) -> Result<Delivered, CodeHostError> {
        let (owner, name, repo, info) = self.repository_info(repository).await?;
        let base = pull_request
            .map(|p| p.base.trim())
            .filter(|b| !b.is_empty())
            .or_else(|| info["default_branch"].as_str())
            .unwrap_or("main")
            .to_owned();
        let existing = self.branch_sha(&repo, branch).await?;
        let (mut parent, done) = match &existing {
            Some(sha) => {
                let history = self
                    .get(
                        &format!("{repo}/commits"),
                        &[("sha", branch.to_owned()), ("per_page", "100".into())],
                    )
                    .await?
                    .ok("commits")?;
                let messages = history.as_array().cloned().unwrap_or_default();
                let done = step_trailers(
                    messages
                        .iter()
                        .filter_map(|c| c["commit"]["message"].as_str()),
                );
                (sha.clone(), done)
            }
            None => {
                let base_sha = self.branch_sha(&repo, &base).await?.ok_or_else(|| {
                    CodeHostError::Refused(format!(
                        "the base branch {base:?} does not exist in {owner}/{name} (an empty repository needs a first commit)"
                    ))
                })?;
                (base_sha, HashSet::new())
            }
        };
        let todo: Vec<&CommitRequest> = commits
            .iter()
            .filter(|c| !done.contains(&c.step_key))
            .collect();
        let mut new_commits = 0;
        if !todo.is_empty() {
            let parent_commit = self
                .get(&format!("{repo}/git/commits/{parent}"), &[])
                .await?
                .ok("commit")?;
            let mut tree = sha_of(&parent_commit, "/tree/sha", "commit")?;
            for c in todo {
                let mut entries = Vec::with_capacity(c.files.len());
                for f in &c.files {
                    let blob = self
                        .post(
                            &format!("{repo}/git/blobs"),
                            &json!({"content": f.content, "encoding": "utf-8"}),
                            "blob",
                        )
                        .await?;
                    entries.push(json!({"path": f.path, "mode": "100644", "type": "blob", "sha": sha_of(&blob, "/sha", "blob")?}));
                }
                let new_tree = self
                    .post(
                        &format!("{repo}/git/trees"),
                        &json!({"base_tree": tree, "tree": entries}),
                        "tree",
                    )
                    .await?;
                tree = sha_of(&new_tree, "/sha", "tree")?;
                let commit = self
                    .post(
                        &format!("{repo}/git/commits"),
                        &json!({
                            "message": format!("{}\n\n{TRAILER}: {}\n", c.message, c.step_key),
                            "tree": tree,
                            "parents": [parent],
                        }),
                        "commit",
                    )
                    .await?;
                parent = sha_of(&commit, "/sha", "commit")?;
                new_commits += 1;
            }
            match &existing {
                Some(_) => {
                    self.call(
                        Method::PATCH,
                        &format!("{repo}/git/refs/heads/{branch}"),
                        &[],
                        Some(&json!({"sha": parent, "force": false})),
                    )
                    .await?
                    .ok("ref update")?;
                }
                None => {
                    self.post(
                        &format!("{repo}/git/refs"),
                        &json!({"ref": format!("refs/heads/{branch}"), "sha": parent}),
                        "ref",
                    )
                    .await?;
                }
            }
        }
        let web = info["html_url"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{owner}/{name}"));
        let has_branch = existing.is_some() || new_commits > 0;
        let pull = match pull_request {
            Some(pr) if has_branch => {
                let body = self
                    .open_pull_request(&repo, &owner, branch, &base, pr)
                    .await?;
                Some(PullRequestRef {
                    number: body["number"].as_i64().ok_or_else(|| {
                        CodeHostError::Unavailable(
                            "GitHub sent a pull request without a number".into(),
                        )
                    })?,
                    url: body["html_url"].as_str().unwrap_or_default().to_owned(),
                    repository: info["full_name"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{owner}/{name}")),
                    state: body["state"].as_str().unwrap_or("open").to_owned(),
                    draft: body["draft"].as_bool().unwrap_or(false),
                    updated_at: body["updated_at"]
                        .as_str()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|d| d.with_timezone(&chrono::Utc)),
                })
            }
            _ => None,
        };
        Ok(Delivered {
            location: format!("{web}/tree/{branch}"),
            branch: branch.to_owned(),
            base_branch: base,
            head_sha: parent,
            new_commits,
            pull_request: pull,
            pull_request_skipped: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::step_trailers;

    #[test]
    fn trailers_name_the_steps_already_committed() {
        let msgs = [
            "implementation: 2 file(s)\n\nAI-Team-Step: execution-1/implementation\n",
            "a person's commit",
            "testing\n\nAI-Team-Step:execution-1/testing",
            "AI-Team-Step: ",
        ];
        let got = step_trailers(msgs.iter().copied());
        assert_eq!(got.len(), 2);
        assert!(got.contains("execution-1/implementation") && got.contains("execution-1/testing"));
    }
}
