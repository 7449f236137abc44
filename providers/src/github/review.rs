//! GitHub's pull request, check run, check suite, compare-file and
//! artifact objects mapped into the store's updates (pure functions shared
//! by refresh jobs and webhooks, whose payloads embed the same objects),
//! and the `ReviewSource` that fetches them.

use ai_team_core::codehost::CodeHostError;
use ai_team_core::delivery::{
    ArtifactUpdate, CheckKind, CheckUpdate, DiffStatus, DiffUpdate, PullRequestUpdate,
};
use ai_team_core::refresh::ReviewSource;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{GitHub, parse_repository};

/// Pages fetched at most from a list endpoint (100 items each).
const MAX_PAGES: u32 = 10;

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A pull request object (`GET /pulls/{n}`, or a `pull_request` payload).
pub fn pull_request(pr: &Value, repository: &str) -> Option<PullRequestUpdate> {
    let merged = pr["merged"]
        .as_bool()
        .unwrap_or_else(|| !pr["merged_at"].is_null());
    Some(PullRequestUpdate {
        repository: pr["base"]["repo"]["full_name"]
            .as_str()
            .unwrap_or(repository)
            .to_owned(),
        number: pr["number"].as_i64()?,
        url: text(&pr["html_url"]).or_else(|| text(&pr["url"]))?,
        state: text(&pr["state"]).unwrap_or_else(|| "open".into()),
        title: pr["title"].as_str().unwrap_or_default().to_owned(),
        head_branch: text(&pr["head"]["ref"])?,
        base_branch: text(&pr["base"]["ref"])?,
        head_sha: text(&pr["head"]["sha"]),
        merged,
        draft: pr["draft"].as_bool().unwrap_or(false),
        updated_at: time(&pr["updated_at"]).unwrap_or_else(Utc::now),
    })
}

/// A check run object.
pub fn check_run(run: &Value) -> Option<CheckUpdate> {
    let started_at = time(&run["started_at"]);
    let completed_at = time(&run["completed_at"]);
    Some(CheckUpdate {
        kind: CheckKind::Run,
        external_id: run["id"].as_i64()?,
        name: text(&run["name"]).unwrap_or_else(|| "check".into()),
        status: text(&run["status"]).unwrap_or_else(|| "queued".into()),
        conclusion: text(&run["conclusion"]),
        details_url: text(&run["details_url"]).or_else(|| text(&run["html_url"])),
        started_at,
        completed_at,
        head_sha: text(&run["head_sha"]),
        updated_at: completed_at.or(started_at).unwrap_or_else(Utc::now),
    })
}

/// A check suite object, named after the app that runs it.
pub fn check_suite(suite: &Value) -> Option<CheckUpdate> {
    let status = text(&suite["status"]).unwrap_or_else(|| "queued".into());
    let updated = time(&suite["updated_at"]);
    Some(CheckUpdate {
        kind: CheckKind::Suite,
        external_id: suite["id"].as_i64()?,
        name: text(&suite["app"]["name"]).unwrap_or_else(|| "check suite".into()),
        conclusion: text(&suite["conclusion"]),
        details_url: text(&suite["url"]),
        started_at: time(&suite["created_at"]),
        completed_at: if status == "completed" { updated } else { None },
        head_sha: text(&suite["head_sha"]),
        updated_at: updated.unwrap_or_else(Utc::now),
        status,
    })
}

/// A file of a comparison; GitHub's `copied`, `changed` and `unchanged`
/// fold into the four statuses API.md names.
pub fn diff_file(file: &Value) -> Option<DiffUpdate> {
    let status = match file["status"].as_str()? {
        "added" | "copied" => DiffStatus::Added,
        "removed" => DiffStatus::Removed,
        "renamed" => DiffStatus::Renamed,
        _ => DiffStatus::Modified,
    };
    Some(DiffUpdate {
        path: text(&file["filename"])?,
        previous_path: text(&file["previous_filename"]),
        status,
        additions: file["additions"].as_i64().unwrap_or(0),
        deletions: file["deletions"].as_i64().unwrap_or(0),
        patch: text(&file["patch"]),
    })
}

/// An Actions artifact.
pub fn artifact(a: &Value) -> Option<ArtifactUpdate> {
    let id = a["id"].as_i64()?;
    Some(ArtifactUpdate {
        external_id: format!("github-actions:{id}"),
        kind: "github-actions".into(),
        name: text(&a["name"]).unwrap_or_else(|| format!("artifact-{id}")),
        uri: text(&a["archive_download_url"]).or_else(|| text(&a["url"]))?,
        checksum: text(&a["digest"]),
        size_bytes: a["size_in_bytes"].as_i64().unwrap_or(0),
        created_at: time(&a["created_at"]).unwrap_or_else(Utc::now),
    })
}

fn repo_path(repository: &str) -> Result<String, CodeHostError> {
    let (owner, name) = parse_repository(repository).ok_or_else(|| {
        CodeHostError::Refused(format!("{repository:?} is not a GitHub repository"))
    })?;
    Ok(format!("/repos/{owner}/{name}"))
}

impl GitHub {
    /// Every item of a paginated list whose page is `{total_count, <key>: [...]}`.
    async fn all_pages(
        &self,
        path: &str,
        key: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Vec<Value>, CodeHostError> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("per_page", "100".into()));
            q.push(("page", page.to_string()));
            let body = self.get(path, &q).await?.ok(what)?;
            let batch = body[key].as_array().cloned().unwrap_or_default();
            let total = body["total_count"].as_u64().unwrap_or(0) as usize;
            let short = batch.len() < 100;
            items.extend(batch);
            if short || items.len() >= total {
                break;
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl ReviewSource for GitHub {
    #[tracing::instrument(skip(self))]
    async fn pull_request(
        &self,
        repository: &str,
        number: i64,
    ) -> Result<PullRequestUpdate, CodeHostError> {
        let path = format!("{}/pulls/{number}", repo_path(repository)?);
        let body = self.get(&path, &[]).await?.ok("pull request")?;
        pull_request(&body, repository).ok_or_else(|| {
            CodeHostError::Unavailable("GitHub sent a pull request without its fields".into())
        })
    }

    #[tracing::instrument(skip(self))]
    async fn checks(
        &self,
        repository: &str,
        head_sha: &str,
    ) -> Result<Vec<CheckUpdate>, CodeHostError> {
        let base = format!("{}/commits/{head_sha}", repo_path(repository)?);
        let runs = self
            .all_pages(
                &format!("{base}/check-runs"),
                "check_runs",
                &[],
                "check runs",
            )
            .await?;
        let suites = self
            .all_pages(
                &format!("{base}/check-suites"),
                "check_suites",
                &[],
                "check suites",
            )
            .await?;
        Ok(runs
            .iter()
            .filter_map(check_run)
            .chain(suites.iter().filter_map(check_suite))
            .collect())
    }

    #[tracing::instrument(skip(self))]
    async fn diff(
        &self,
        repository: &str,
        base: &str,
        head: &str,
    ) -> Result<Vec<DiffUpdate>, CodeHostError> {
        let path = format!("{}/compare/{base}...{head}", repo_path(repository)?);
        let body = self.get(&path, &[]).await?.ok("compare")?;
        Ok(body["files"]
            .as_array()
            .map(|f| f.iter().filter_map(diff_file).collect())
            .unwrap_or_default())
    }

    #[tracing::instrument(skip(self))]
    async fn artifacts(
        &self,
        repository: &str,
        head_sha: &str,
    ) -> Result<Vec<ArtifactUpdate>, CodeHostError> {
        let repo = repo_path(repository)?;
        let runs = self
            .all_pages(
                &format!("{repo}/actions/runs"),
                "workflow_runs",
                &[("head_sha", head_sha.to_owned())],
                "workflow runs",
            )
            .await?;
        let mut out = Vec::new();
        for run in runs {
            let Some(id) = run["id"].as_i64() else {
                continue;
            };
            let artifacts = self
                .all_pages(
                    &format!("{repo}/actions/runs/{id}/artifacts"),
                    "artifacts",
                    &[],
                    "artifacts",
                )
                .await?;
            out.extend(artifacts.iter().filter_map(artifact));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_map_to_updates() {
        let pr = json!({"number": 7, "html_url": "https://github.com/o/r/pull/7", "state": "closed",
            "title": "T", "head": {"ref": "b", "sha": "abc"}, "base": {"ref": "main", "repo": {"full_name": "O/R"}},
            "merged_at": "2024-01-01T00:00:00Z", "draft": false, "updated_at": "2024-01-01T00:00:01Z"});
        let u = pull_request(&pr, "o/r").unwrap();
        assert!(u.merged);
        assert_eq!((u.repository.as_str(), u.number), ("O/R", 7));
        let run = json!({"id": 4, "name": "ci", "status": "completed", "conclusion": "success",
            "started_at": "2024-01-01T00:00:00Z", "completed_at": "2024-01-01T00:01:00Z", "head_sha": "abc"});
        let c = check_run(&run).unwrap();
        assert_eq!(c.updated_at, c.completed_at.unwrap());
        let f = diff_file(&json!({"filename": "a", "status": "copied", "additions": 1})).unwrap();
        assert_eq!(f.status, DiffStatus::Added);
        assert!(artifact(&json!({"id": 1})).is_none());
        assert!(check_run(&json!({"name": "no id"})).is_none());
    }
}
