//! Refresh jobs: reading a workflow's pull request, checks, diff and CI
//! artifacts back from the code host (the `ReviewSource` port) into the
//! store. A refresh is a queue job (`REFRESH_QUEUE`) so that the HTTP
//! request only enqueues; the job is idempotent (every write is an
//! upsert, newer wins) and reports its progress and result as `workflow`
//! events (which the store also writes as log lines).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::codehost::CodeHostError;
pub use crate::delivery::RefreshKind;
use crate::delivery::{ArtifactUpdate, CheckUpdate, DiffUpdate, PullRequest, PullRequestUpdate};
use crate::error::StoreError;
use crate::ledger::NewEvent;
use crate::store::Store;
use crate::workflow_event::{RefreshProgress, WorkflowEvent};

/// The queue that carries refresh jobs.
pub const REFRESH_QUEUE: &str = "refresh";

/// Reading delivered work back from the code host.
#[async_trait]
pub trait ReviewSource: Send + Sync + 'static {
    /// The pull request `number` of `repository` (`owner/name`).
    async fn pull_request(
        &self,
        repository: &str,
        number: i64,
    ) -> Result<PullRequestUpdate, CodeHostError>;
    /// Check runs and check suites of a commit.
    async fn checks(
        &self,
        repository: &str,
        head_sha: &str,
    ) -> Result<Vec<CheckUpdate>, CodeHostError>;
    /// Files changed between `base` and `head` (branch names or shas).
    async fn diff(
        &self,
        repository: &str,
        base: &str,
        head: &str,
    ) -> Result<Vec<DiffUpdate>, CodeHostError>;
    /// Artifacts of the CI runs of a commit.
    async fn artifacts(
        &self,
        repository: &str,
        head_sha: &str,
    ) -> Result<Vec<ArtifactUpdate>, CodeHostError>;
}

/// The payload of a refresh job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshJob {
    /// The job's id, returned by the refresh endpoint and on its progress events.
    pub job_id: String,
    /// The workflow whose delivery is refreshed.
    pub workflow_id: i64,
    /// What the job fetches.
    pub kind: RefreshKind,
}

/// How a refresh job ended, for the host to settle the message.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// The job ran and stored what it read.
    Done {
        /// What was read: counts and, for a pull request, its state.
        summary: Value,
    },
    /// For good: nothing to refresh, or the host refuses.
    Failed {
        /// Why it failed.
        error: String,
    },
    /// A passing failure (rate limit, outage): run the job again later.
    Retry {
        /// How long to wait before the job runs again.
        delay: std::time::Duration,
        /// What failed.
        reason: String,
    },
}

/// The event of a refresh's progress, also logged.
fn event(job: &RefreshJob, progress: RefreshProgress) -> NewEvent {
    WorkflowEvent::Refresh {
        kind: job.kind,
        job_id: job.job_id.clone(),
        progress,
    }
    .into()
}

/// Appends `events` to the workflow's log (the store logs each one).
pub async fn emit(
    store: &dyn Store,
    workflow_id: i64,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    store.append_events(workflow_id, None, events).await
}

fn retry_delay(e: &CodeHostError) -> std::time::Duration {
    match e {
        CodeHostError::RateLimited { retry_after_secs } => {
            std::time::Duration::from_secs((*retry_after_secs).max(1))
        }
        _ => std::time::Duration::from_secs(30),
    }
}

/// Runs one refresh job. `Err` only when the store is unreachable (the
/// host retries the message).
#[tracing::instrument(skip(store, source), fields(workflow_id = job.workflow_id, kind = job.kind.as_str(), job_id = %job.job_id))]
pub async fn run_refresh(
    store: &dyn Store,
    source: Option<&dyn ReviewSource>,
    job: &RefreshJob,
) -> Result<RefreshOutcome, StoreError> {
    let fail = |error: String| async move {
        emit(
            store,
            job.workflow_id,
            &[event(
                job,
                RefreshProgress::Failed {
                    error: error.clone(),
                },
            )],
        )
        .await?;
        Ok::<_, StoreError>(RefreshOutcome::Failed { error })
    };
    match store.get_workflow(job.workflow_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            return Ok(RefreshOutcome::Failed {
                error: "the workflow no longer exists".into(),
            });
        }
        Err(e) => return Err(e),
    }
    let Some(source) = source else {
        return fail("no code host to read from: set USE_REAL_GITHUB=true".into()).await;
    };
    let Some(pr) = store.get_pull_request(job.workflow_id).await? else {
        return fail("the workflow has no pull request yet".into()).await;
    };
    emit(
        store,
        job.workflow_id,
        &[event(job, RefreshProgress::Started)],
    )
    .await?;
    let result = match job.kind {
        RefreshKind::Pr => refresh_pr(store, source, job, &pr).await,
        RefreshKind::Diffs => refresh_diffs(store, source, job, &pr).await,
        RefreshKind::Artifacts => refresh_artifacts(store, source, job, &pr).await,
    };
    match result {
        Ok(summary) => Ok(RefreshOutcome::Done { summary }),
        Err(Stop::Store(e)) => Err(e),
        Err(Stop::Host(e)) if e.is_retryable() => {
            let delay = retry_delay(&e);
            emit(
                store,
                job.workflow_id,
                &[event(
                    job,
                    RefreshProgress::Retrying {
                        error: e.to_string(),
                        retry_in: delay,
                    },
                )],
            )
            .await?;
            Ok(RefreshOutcome::Retry {
                delay,
                reason: e.to_string(),
            })
        }
        Err(Stop::Host(e)) => fail(e.to_string()).await,
    }
}

enum Stop {
    Host(CodeHostError),
    Store(StoreError),
}

impl From<CodeHostError> for Stop {
    fn from(e: CodeHostError) -> Self {
        Stop::Host(e)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

async fn refresh_pr(
    store: &dyn Store,
    source: &dyn ReviewSource,
    job: &RefreshJob,
    pr: &PullRequest,
) -> Result<Value, Stop> {
    let fresh = source.pull_request(&pr.repository, pr.number).await?;
    let checks = match fresh.head_sha.as_deref() {
        Some(sha) => source.checks(&pr.repository, sha).await?,
        None => vec![],
    };
    let pr_event = event(
        job,
        RefreshProgress::PullRequest {
            number: fresh.number,
            state: fresh.state.clone(),
            merged: fresh.merged,
            head_sha: fresh.head_sha.clone(),
        },
    );
    store
        .upsert_pull_request(job.workflow_id, &fresh, &[pr_event])
        .await?;
    let count = |kind| checks.iter().filter(|c| c.kind == kind).count();
    let checks_event = event(
        job,
        RefreshProgress::Checks {
            runs: count(crate::delivery::CheckKind::Run),
            suites: count(crate::delivery::CheckKind::Suite),
            conclusions: conclusions(&checks),
        },
    );
    let changed = store
        .upsert_checks(job.workflow_id, &checks, &[checks_event])
        .await?;
    Ok(
        json!({"state": fresh.state, "merged": fresh.merged, "checks": checks.len(), "checks_changed": changed}),
    )
}

/// `{conclusion or status: count}` of the check runs.
fn conclusions(checks: &[CheckUpdate]) -> serde_json::Map<String, Value> {
    let mut counts = serde_json::Map::new();
    for c in checks
        .iter()
        .filter(|c| c.kind == crate::delivery::CheckKind::Run)
    {
        let key = c.conclusion.clone().unwrap_or_else(|| c.status.clone());
        let n = counts.get(&key).and_then(Value::as_i64).unwrap_or(0);
        counts.insert(key, json!(n + 1));
    }
    counts
}

async fn refresh_diffs(
    store: &dyn Store,
    source: &dyn ReviewSource,
    job: &RefreshJob,
    pr: &PullRequest,
) -> Result<Value, Stop> {
    let head = pr.head_sha.as_deref().unwrap_or(&pr.head_branch);
    let files = source.diff(&pr.repository, &pr.base_branch, head).await?;
    let additions: i64 = files.iter().map(|f| f.additions).sum();
    let deletions: i64 = files.iter().map(|f| f.deletions).sum();
    let done = event(
        job,
        RefreshProgress::Diffs {
            files: files.len(),
            additions,
            deletions,
        },
    );
    store
        .replace_diffs(job.workflow_id, &files, &[done])
        .await?;
    Ok(json!({"files": files.len(), "additions": additions, "deletions": deletions}))
}

async fn refresh_artifacts(
    store: &dyn Store,
    source: &dyn ReviewSource,
    job: &RefreshJob,
    pr: &PullRequest,
) -> Result<Value, Stop> {
    let Some(sha) = pr.head_sha.as_deref() else {
        return Ok(json!({"artifacts": 0}));
    };
    let artifacts = source.artifacts(&pr.repository, sha).await?;
    let done = event(
        job,
        RefreshProgress::Artifacts {
            artifacts: artifacts.len(),
        },
    );
    let new = store
        .upsert_artifacts(job.workflow_id, &artifacts, &[done])
        .await?;
    Ok(json!({"artifacts": artifacts.len(), "new": new}))
}
