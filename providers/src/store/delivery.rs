//! The `DeliveryStore` side of the store (pull requests, checks, diffs,
//! artifacts, webhook deliveries), written once for both databases like
//! `sql.rs`. Every write is an upsert where "newer wins" is decided in
//! the `ON CONFLICT … DO UPDATE … WHERE` clause, so two racing writers
//! (a webhook and a refresh job) cannot put an older state back; each
//! transaction starts with a write (SQLite takes its lock up front) and
//! appends its events last, under the workflow row's lock; after commit
//! they are published (one log line each, subscribers woken).

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::models::*;
use ai_team_core::query::PageRequest;

use super::SqlStore;
use super::db::{FromEitherRow, Tx, query, query_as, query_scalar};
use super::errors::{is_foreign_key_violation, map_sqlx};
use super::sql::now;

use ai_team_core::delivery::{Artifact, Check, CheckKind, DiffFile, DiffStatus, PullRequest};
use ai_team_core::ledger::NewEvent;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub const PULL_REQUEST_COLUMNS: &str = "workflow_id, repository, number, url, state, title, \
    head_branch, base_branch, head_sha, merged, draft, updated_at";

#[derive(sqlx::FromRow)]
pub struct PullRequestRow {
    workflow_id: i64,
    repository: String,
    number: i64,
    url: String,
    state: String,
    title: String,
    head_branch: String,
    base_branch: String,
    head_sha: Option<String>,
    merged: bool,
    draft: bool,
    updated_at: DateTime<Utc>,
}

impl From<PullRequestRow> for PullRequest {
    fn from(r: PullRequestRow) -> Self {
        PullRequest {
            workflow_id: r.workflow_id,
            repository: r.repository,
            number: r.number,
            url: r.url,
            state: r.state,
            title: r.title,
            head_branch: r.head_branch,
            base_branch: r.base_branch,
            head_sha: r.head_sha,
            merged: r.merged,
            draft: r.draft,
            updated_at: r.updated_at,
        }
    }
}

pub const CHECK_COLUMNS: &str = "id, external_id, kind, name, status, conclusion, details_url, \
    started_at, completed_at, head_sha, updated_at";

#[derive(sqlx::FromRow)]
pub struct CheckRow {
    id: i64,
    external_id: i64,
    kind: String,
    name: String,
    status: String,
    conclusion: Option<String>,
    details_url: Option<String>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    head_sha: Option<String>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<CheckRow> for Check {
    type Error = StoreError;
    fn try_from(r: CheckRow) -> Result<Self, StoreError> {
        Ok(Check {
            id: r.id,
            external_id: r.external_id,
            kind: CheckKind::parse(&r.kind).ok_or_else(|| {
                StoreError::Unknown(anyhow::anyhow!("checks.kind holds {:?}", r.kind))
            })?,
            name: r.name,
            status: r.status,
            conclusion: r.conclusion,
            details_url: r.details_url,
            started_at: r.started_at,
            completed_at: r.completed_at,
            head_sha: r.head_sha,
            updated_at: r.updated_at,
        })
    }
}

pub const DIFF_COLUMNS: &str =
    "path, previous_path, status, additions, deletions, patch, updated_at";

#[derive(sqlx::FromRow)]
pub struct DiffRow {
    path: String,
    previous_path: Option<String>,
    status: String,
    additions: i64,
    deletions: i64,
    patch: Option<String>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DiffRow> for DiffFile {
    type Error = StoreError;
    fn try_from(r: DiffRow) -> Result<Self, StoreError> {
        Ok(DiffFile {
            status: DiffStatus::parse(&r.status).ok_or_else(|| {
                StoreError::Unknown(anyhow::anyhow!("diffs.status holds {:?}", r.status))
            })?,
            path: r.path,
            previous_path: r.previous_path,
            additions: r.additions,
            deletions: r.deletions,
            patch: r.patch,
            updated_at: r.updated_at,
        })
    }
}

pub const ARTIFACT_COLUMNS: &str = "id, kind, name, uri, checksum, size_bytes, created_at";

#[derive(sqlx::FromRow)]
pub struct ArtifactRow {
    id: i64,
    kind: String,
    name: String,
    uri: String,
    checksum: Option<String>,
    size_bytes: i64,
    created_at: DateTime<Utc>,
}

impl From<ArtifactRow> for Artifact {
    fn from(r: ArtifactRow) -> Self {
        Artifact {
            id: r.id,
            kind: r.kind,
            name: r.name,
            uri: r.uri,
            checksum: r.checksum,
            size_bytes: r.size_bytes,
            created_at: r.created_at,
        }
    }
}

/// The status precedence of `core::delivery::check_status_rank`, in SQL,
/// for the row `table`.
pub fn rank_sql(table: &str) -> String {
    format!("(CASE {table}.status WHEN 'completed' THEN 3 WHEN 'in_progress' THEN 2 ELSE 1 END)")
}

/// The events with `"changed": changed` added to each object's data.
pub fn with_changed(events: &[NewEvent], changed: bool) -> Vec<NewEvent> {
    events
        .iter()
        .cloned()
        .map(|mut e| {
            if let Value::Object(m) = &mut e.data {
                m.insert("changed".into(), json!(changed));
            }
            e
        })
        .collect()
}

impl SqlStore {
    pub(super) async fn upsert_pull_request_tx(
        tx: &mut Tx,
        workflow_id: i64,
        pr: &ai_team_core::delivery::PullRequestUpdate,
    ) -> StoreResult<bool> {
        let changed = query_scalar::<i64>(
            "INSERT INTO pull_requests (workflow_id, repository, number, url, state, title, head_branch, \
             base_branch, head_sha, merged, draft, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (workflow_id) DO UPDATE SET repository = excluded.repository, number = excluded.number, \
             url = excluded.url, state = excluded.state, title = excluded.title, head_branch = excluded.head_branch, \
             base_branch = excluded.base_branch, head_sha = COALESCE(excluded.head_sha, pull_requests.head_sha), \
             merged = excluded.merged, draft = excluded.draft, updated_at = excluded.updated_at \
             WHERE excluded.updated_at > pull_requests.updated_at \
             OR (excluded.updated_at = pull_requests.updated_at AND (excluded.state <> pull_requests.state \
                 OR excluded.title <> pull_requests.title OR excluded.merged <> pull_requests.merged \
                 OR excluded.draft <> pull_requests.draft OR excluded.number <> pull_requests.number \
                 OR excluded.head_branch <> pull_requests.head_branch \
                 OR COALESCE(excluded.head_sha, '') <> COALESCE(pull_requests.head_sha, ''))) \
             RETURNING workflow_id",
        )
        .bind(workflow_id)
        .bind(&pr.repository)
        .bind(pr.number)
        .bind(&pr.url)
        .bind(&pr.state)
        .bind(&pr.title)
        .bind(&pr.head_branch)
        .bind(&pr.base_branch)
        .bind(&pr.head_sha)
        .bind(pr.merged)
        .bind(pr.draft)
        .bind(pr.updated_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_delivery_error)?;
        Ok(changed.is_some())
    }

    pub(super) async fn upsert_check_tx(
        tx: &mut Tx,
        workflow_id: i64,
        c: &ai_team_core::delivery::CheckUpdate,
    ) -> StoreResult<bool> {
        let new = crate::store::delivery::rank_sql("excluded");
        let old = crate::store::delivery::rank_sql("checks");
        let sql = format!(
            "INSERT INTO checks (workflow_id, external_id, kind, name, status, conclusion, details_url, \
             started_at, completed_at, head_sha, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (workflow_id, kind, external_id) DO UPDATE SET name = excluded.name, \
             status = excluded.status, conclusion = excluded.conclusion, \
             details_url = COALESCE(excluded.details_url, checks.details_url), \
             started_at = COALESCE(excluded.started_at, checks.started_at), \
             completed_at = COALESCE(excluded.completed_at, checks.completed_at), \
             head_sha = COALESCE(excluded.head_sha, checks.head_sha), updated_at = excluded.updated_at \
             WHERE {new} > {old} OR ({new} = {old} AND (excluded.updated_at > checks.updated_at \
                 OR (excluded.updated_at = checks.updated_at AND (excluded.name <> checks.name \
                     OR COALESCE(excluded.conclusion, '') <> COALESCE(checks.conclusion, '') \
                     OR COALESCE(excluded.details_url, '') <> COALESCE(checks.details_url, '') \
                     OR COALESCE(excluded.head_sha, '') <> COALESCE(checks.head_sha, ''))))) \
             RETURNING id"
        );
        let changed = query_scalar::<i64>(&sql)
            .bind(workflow_id)
            .bind(c.external_id)
            .bind(c.kind.as_str())
            .bind(&c.name)
            .bind(&c.status)
            .bind(&c.conclusion)
            .bind(&c.details_url)
            .bind(c.started_at)
            .bind(c.completed_at)
            .bind(&c.head_sha)
            .bind(c.updated_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_delivery_error)?;
        Ok(changed.is_some())
    }

    /// The workflow whose pull request the delivery names: by number
    /// first, then by head branch. GitHub's names are case-insensitive.
    pub(super) async fn match_webhook_tx(
        tx: &mut Tx,
        target: &ai_team_core::delivery::WebhookTarget,
    ) -> StoreResult<Option<i64>> {
        let repository = target.repository.to_lowercase();
        for number in &target.pr_numbers {
            let found = query_scalar::<i64>(
                "SELECT workflow_id FROM pull_requests WHERE LOWER(repository) = $1 AND number = $2 \
                 ORDER BY workflow_id DESC LIMIT 1",
            )
            .bind(&repository)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        // Then by head branch, then by head sha (the columns are fixed names).
        for (column, value) in [
            ("head_branch", &target.head_branch),
            ("head_sha", &target.head_sha),
        ] {
            let Some(value) = value else { continue };
            let found = query_scalar::<i64>(&format!(
                "SELECT workflow_id FROM pull_requests WHERE LOWER(repository) = $1 AND {column} = $2 \
                 ORDER BY workflow_id DESC LIMIT 1"
            ))
            .bind(&repository)
            .bind(value)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        // A pull request that people opened: the newest workflow of
        // the same repository whose story id the head branch or the
        // title names (only pull_request deliveries carry a title).
        if target.title.is_none() {
            return Ok(None);
        }
        let Some(name) = repository.rsplit('/').next().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let candidates = query_as::<(i64, String, Option<String>)>(
            "SELECT id, jira_story_id, repository_url FROM workflows \
             WHERE LOWER(repository_url) LIKE $1 ESCAPE '\\' ORDER BY id DESC LIMIT 500",
        )
        .bind(crate::store::sql::like_pattern(&name.to_lowercase()))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_sqlx)?;
        let texts = [target.head_branch.as_deref(), target.title.as_deref()];
        Ok(candidates
            .into_iter()
            .find(|(_, key, url)| {
                url.as_deref()
                    .and_then(|u| ai_team_core::repository::RepositoryRef::parse(u).ok())
                    .and_then(|r| r.full_name())
                    .is_some_and(|full| full.eq_ignore_ascii_case(&repository))
                    && texts
                        .iter()
                        .flatten()
                        .any(|t| ai_team_core::delivery::mentions_story(t, key))
            })
            .map(|(id, _, _)| id))
    }
}

/// A foreign-key failure means the workflow is gone (404).
fn map_delivery_error(e: sqlx::Error) -> StoreError {
    if is_foreign_key_violation(&e) {
        StoreError::NotFound("workflow")
    } else {
        map_sqlx(e)
    }
}

/// One of the delivery listings: a workflow's rows of `table`, optionally
/// narrowed by one filter on `$2`, counted and paged.
struct Listing {
    table: &'static str,
    columns: &'static str,
    /// The clause that `filter` binds as `$2`, e.g. `" AND kind = $2"`.
    filter: &'static str,
    order: &'static str,
}

impl SqlStore {
    async fn page_of<R: FromEitherRow, T>(
        &self,
        listing: Listing,
        workflow_id: i64,
        filter: Option<&str>,
        page: PageRequest,
        convert: fn(R) -> StoreResult<T>,
    ) -> StoreResult<Paged<T>> {
        let Listing {
            table,
            columns,
            order,
            ..
        } = listing;
        let clause = if filter.is_some() { listing.filter } else { "" };
        let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE workflow_id = $1{clause}");
        let total = query_scalar::<i64>(&count_sql)
            .bind(workflow_id)
            .bind_some(filter)
            .fetch_one(&self.db)
            .await
            .map_err(map_sqlx)?;
        let n = if filter.is_some() { 3 } else { 2 };
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE workflow_id = $1{clause} ORDER BY {order} LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let rows = query_as::<R>(&sql)
            .bind(workflow_id)
            .bind_some(filter)
            .bind(page.limit())
            .bind(page.offset())
            .fetch_all(&self.db)
            .await
            .map_err(map_sqlx)?;
        Ok(Paged {
            page: page.page,
            page_size: page.page_size,
            total,
            items: rows.into_iter().map(convert).collect::<StoreResult<_>>()?,
        })
    }
}

#[async_trait::async_trait]
impl ai_team_core::delivery::DeliveryStore for SqlStore {
    #[tracing::instrument(skip(self, pr, events), fields(number = pr.number))]
    async fn upsert_pull_request(
        &self,
        workflow_id: i64,
        pr: &ai_team_core::delivery::PullRequestUpdate,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let changed = Self::upsert_pull_request_tx(&mut tx, workflow_id, pr).await?;
        let events = crate::store::delivery::with_changed(events, changed);
        self.commit_with_events(tx, workflow_id, None, &events)
            .await?;
        Ok(changed)
    }

    async fn get_pull_request(
        &self,
        workflow_id: i64,
    ) -> StoreResult<Option<ai_team_core::delivery::PullRequest>> {
        let sql = format!(
            "SELECT {} FROM pull_requests WHERE workflow_id = $1",
            crate::store::delivery::PULL_REQUEST_COLUMNS
        );
        Ok(query_as::<crate::store::delivery::PullRequestRow>(&sql)
            .bind(workflow_id)
            .fetch_optional(&self.db)
            .await
            .map_err(map_sqlx)?
            .map(Into::into))
    }

    #[tracing::instrument(skip(self, checks, events), fields(checks = checks.len()))]
    async fn upsert_checks(
        &self,
        workflow_id: i64,
        checks: &[ai_team_core::delivery::CheckUpdate],
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<usize> {
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let mut changed = 0;
        for c in checks {
            if Self::upsert_check_tx(&mut tx, workflow_id, c).await? {
                changed += 1;
            }
        }
        self.commit_with_events(tx, workflow_id, None, events)
            .await?;
        Ok(changed)
    }

    async fn list_checks(
        &self,
        workflow_id: i64,
        query: &ai_team_core::delivery::CheckQuery,
    ) -> StoreResult<Paged<ai_team_core::delivery::Check>> {
        self.page_of::<CheckRow, _>(
            Listing {
                table: "checks",
                columns: CHECK_COLUMNS,
                filter: " AND kind = $2",
                order: "id",
            },
            workflow_id,
            query.kind.map(ai_team_core::delivery::CheckKind::as_str),
            query.page,
            TryInto::try_into,
        )
        .await
    }

    #[tracing::instrument(skip(self, files, events), fields(files = files.len()))]
    async fn replace_diffs(
        &self,
        workflow_id: i64,
        files: &[ai_team_core::delivery::DiffUpdate],
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<()> {
        let at = now();
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        query("DELETE FROM diffs WHERE workflow_id = $1")
            .bind(workflow_id)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        for f in files {
            query(
                "INSERT INTO diffs (workflow_id, path, previous_path, status, additions, deletions, patch, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (workflow_id, path) DO UPDATE SET previous_path = excluded.previous_path, \
                 status = excluded.status, additions = excluded.additions, deletions = excluded.deletions, \
                 patch = excluded.patch, updated_at = excluded.updated_at",
            )
            .bind(workflow_id)
            .bind(&f.path)
            .bind(&f.previous_path)
            .bind(f.status.as_str())
            .bind(f.additions)
            .bind(f.deletions)
            .bind(&f.patch)
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(map_delivery_error)?;
        }
        self.commit_with_events(tx, workflow_id, None, events)
            .await?;
        Ok(())
    }

    async fn list_diffs(
        &self,
        workflow_id: i64,
        query: &ai_team_core::delivery::FilteredPage,
    ) -> StoreResult<Paged<ai_team_core::delivery::DiffFile>> {
        self.page_of::<DiffRow, _>(
            Listing {
                table: "diffs",
                columns: DIFF_COLUMNS,
                filter: " AND substr(path, 1, length($2)) = $2",
                order: "path",
            },
            workflow_id,
            query.filter.as_deref(),
            query.page,
            TryInto::try_into,
        )
        .await
    }

    #[tracing::instrument(skip(self, artifacts, events), fields(artifacts = artifacts.len()))]
    async fn upsert_artifacts(
        &self,
        workflow_id: i64,
        artifacts: &[ai_team_core::delivery::ArtifactUpdate],
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<usize> {
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let mut new = 0;
        for a in artifacts {
            let inserted = query_scalar::<i64>(
                "INSERT INTO artifacts (workflow_id, external_id, kind, name, uri, checksum, size_bytes, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (workflow_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING id",
            )
            .bind(workflow_id)
            .bind(&a.external_id)
            .bind(&a.kind)
            .bind(&a.name)
            .bind(&a.uri)
            .bind(&a.checksum)
            .bind(a.size_bytes)
            .bind(a.created_at)
            .fetch_optional(&mut tx)
            .await
            .map_err(map_delivery_error)?;
            if inserted.is_some() {
                new += 1;
                continue;
            }
            query(
                "UPDATE artifacts SET kind = $3, name = $4, uri = $5, checksum = $6, size_bytes = $7 \
                 WHERE workflow_id = $1 AND external_id = $2",
            )
            .bind(workflow_id)
            .bind(&a.external_id)
            .bind(&a.kind)
            .bind(&a.name)
            .bind(&a.uri)
            .bind(&a.checksum)
            .bind(a.size_bytes)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        }
        self.commit_with_events(tx, workflow_id, None, events)
            .await?;
        Ok(new)
    }

    async fn list_artifacts(
        &self,
        workflow_id: i64,
        query: &ai_team_core::delivery::FilteredPage,
    ) -> StoreResult<Paged<ai_team_core::delivery::Artifact>> {
        self.page_of::<ArtifactRow, _>(
            Listing {
                table: "artifacts",
                columns: ARTIFACT_COLUMNS,
                filter: " AND kind = $2",
                order: "id",
            },
            workflow_id,
            query.filter.as_deref(),
            query.page,
            |r| Ok(r.into()),
        )
        .await
    }

    #[tracing::instrument(skip(self, delivery, events), fields(delivery_id = %delivery.delivery_id, event = %delivery.event))]
    async fn apply_webhook(
        &self,
        delivery: &ai_team_core::delivery::WebhookDelivery,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<ai_team_core::delivery::WebhookOutcome> {
        use ai_team_core::delivery::{WebhookChange, WebhookOutcome};
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        // Claiming the id is the first write: a concurrent twin waits
        // on the key and then finds it taken. An unmatched delivery
        // may be claimed again (its pull request may be known now).
        let fresh = query_scalar::<String>(
            "INSERT INTO webhook_deliveries (delivery_id, event, status, received_at) VALUES ($1, $2, 'received', $3) \
             ON CONFLICT (delivery_id) DO UPDATE SET received_at = excluded.received_at \
             WHERE webhook_deliveries.status = 'unmatched' RETURNING delivery_id",
        )
        .bind(&delivery.delivery_id)
        .bind(&delivery.event)
        .bind(now())
        .fetch_optional(&mut tx)
        .await
        .map_err(map_sqlx)?;
        if fresh.is_none() {
            tx.rollback().await.map_err(map_sqlx)?;
            return Ok(WebhookOutcome::Duplicate);
        }
        let Some(workflow_id) = Self::match_webhook_tx(&mut tx, &delivery.target).await? else {
            query("UPDATE webhook_deliveries SET status = 'unmatched' WHERE delivery_id = $1")
                .bind(&delivery.delivery_id)
                .execute(&mut tx)
                .await
                .map_err(map_sqlx)?;
            tx.commit().await.map_err(map_sqlx)?;
            return Ok(WebhookOutcome::Unmatched);
        };
        let changed = match &delivery.change {
            WebhookChange::PullRequest(pr) => {
                Self::upsert_pull_request_tx(&mut tx, workflow_id, pr).await?
            }
            WebhookChange::Check(c) => Self::upsert_check_tx(&mut tx, workflow_id, c).await?,
        };
        query("UPDATE webhook_deliveries SET status = $2, workflow_id = $3 WHERE delivery_id = $1")
            .bind(&delivery.delivery_id)
            .bind(if changed { "applied" } else { "stale" })
            .bind(workflow_id)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        let events = crate::store::delivery::with_changed(events, changed);
        self.commit_with_events(tx, workflow_id, None, &events)
            .await?;
        Ok(WebhookOutcome::Applied {
            workflow_id,
            changed,
        })
    }
}
