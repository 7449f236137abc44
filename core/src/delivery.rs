//! What the code host tells us back about delivered work: the pull
//! request, its checks, the per-file diff, the CI artifacts, and the
//! webhook deliveries already applied. The records of API.md's "PR,
//! checks, diffs, artifacts" and the `DeliveryStore` side of the store (a
//! supertrait of `Store`, kept apart like the engine's ledger).
//!
//! Updates arrive out of order (webhooks race refresh jobs, GitHub does
//! not order deliveries), so every write is "newer wins": a pull request
//! by its `updated_at`, a check by status precedence (queued < in_progress
//! < completed) and then by its own time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreResult;
use crate::ledger::NewEvent;
use crate::models::Paged;
use crate::query::{FieldError, PageRequest};

/// `GET /workflows/{id}/pr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequest {
    pub workflow_id: i64,
    /// `owner/name`, as GitHub spells it.
    pub repository: String,
    pub number: i64,
    pub url: String,
    pub state: String,
    pub title: String,
    pub head_branch: String,
    pub base_branch: String,
    pub head_sha: Option<String>,
    pub merged: bool,
    pub draft: bool,
    pub updated_at: DateTime<Utc>,
}

/// A pull request as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestUpdate {
    pub repository: String,
    pub number: i64,
    pub url: String,
    pub state: String,
    pub title: String,
    pub head_branch: String,
    pub base_branch: String,
    pub head_sha: Option<String>,
    pub merged: bool,
    pub draft: bool,
    /// The host's own time of the change: an older one never overwrites.
    pub updated_at: DateTime<Utc>,
}

/// Declares a small string enum with `as_str`/`parse`.
macro_rules! wire_kind {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_kind!(
    /// A check run, or the suite that groups them.
    CheckKind { Run => "check_run", Suite => "check_suite" }
);

wire_kind!(
    /// What happened to a file between base and head.
    DiffStatus { Added => "added", Modified => "modified", Removed => "removed", Renamed => "renamed" }
);

/// One row of `GET /workflows/{id}/pr/checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    pub id: i64,
    /// The host's id of the run or suite.
    pub external_id: i64,
    pub kind: CheckKind,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub head_sha: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A check as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckUpdate {
    pub kind: CheckKind,
    pub external_id: i64,
    pub name: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub details_url: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub head_sha: Option<String>,
    /// The host's time of this state (completed_at, else started_at, else
    /// the delivery's): breaks ties between two reports of one status.
    pub updated_at: DateTime<Utc>,
}

/// Precedence of a check's status: a report of a lower one never
/// replaces a higher one (a run does not go back from completed).
pub fn check_status_rank(status: &str) -> u8 {
    match status {
        "completed" => 3,
        "in_progress" => 2,
        _ => 1,
    }
}

/// One row of `GET /workflows/{id}/diffs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffFile {
    pub path: String,
    pub previous_path: Option<String>,
    pub status: DiffStatus,
    pub additions: i64,
    pub deletions: i64,
    pub patch: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A file of a comparison, as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffUpdate {
    pub path: String,
    pub previous_path: Option<String>,
    pub status: DiffStatus,
    pub additions: i64,
    pub deletions: i64,
    pub patch: Option<String>,
}

/// One row of `GET /workflows/{id}/artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub uri: String,
    pub checksum: Option<String>,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
}

/// An artifact as the code host reports it; `external_id` makes the
/// upsert idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactUpdate {
    pub external_id: String,
    pub kind: String,
    pub name: String,
    pub uri: String,
    pub checksum: Option<String>,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
}

/// A validated listing of checks (`kind` defaults to check runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckQuery {
    pub page: PageRequest,
    /// `None`: runs and suites.
    pub kind: Option<CheckKind>,
}

impl CheckQuery {
    pub fn parse(
        page: Option<&str>,
        page_size: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let page = PageRequest::parse(page, page_size).unwrap_or_else(|e| {
            errors.extend(e);
            PageRequest::default()
        });
        let kind = match kind.map(str::trim).filter(|k| !k.is_empty()) {
            None => Some(CheckKind::Run),
            Some("all") => None,
            Some(k) => match CheckKind::parse(k) {
                Some(k) => Some(k),
                None => {
                    errors.push(FieldError::new(
                        "query",
                        "kind",
                        "Input should be 'check_run', 'check_suite' or 'all'",
                        "enum",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { page, kind })
        } else {
            Err(errors)
        }
    }
}

/// A validated listing with an optional text filter (`path` of diffs,
/// `kind` of artifacts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredPage {
    pub page: PageRequest,
    pub filter: Option<String>,
}

impl FilteredPage {
    pub fn parse(
        page: Option<&str>,
        page_size: Option<&str>,
        filter: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        Ok(Self {
            page: PageRequest::parse(page, page_size)?,
            filter: filter
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
        })
    }
}

/// Which workflow a webhook delivery is about: its repository, and the
/// pull request numbers or head branch it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    /// `owner/name`.
    pub repository: String,
    pub pr_numbers: Vec<i64>,
    pub head_branch: Option<String>,
    /// The pull request's title: a PR that people opened matches the
    /// workflow whose story id it names (as the original did).
    #[serde(default)]
    pub title: Option<String>,
    /// The commit a check ran on.
    #[serde(default)]
    pub head_sha: Option<String>,
}

/// Whether `text` names the story `key` as a whole word, case-insensitively
/// (`SHOP-7` in `ai-team/shop-7-reset` or `SHOP-7: Reset`, not in `SHOP-70`).
pub fn mentions_story(text: &str, key: &str) -> bool {
    let (text, key) = (text.to_lowercase(), key.to_lowercase());
    if key.is_empty() {
        return false;
    }
    let word = |c: char| c.is_alphanumeric();
    let mut from = 0;
    while let Some(at) = text[from..].find(&key) {
        let start = from + at;
        let end = start + key.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(word) && !after.is_some_and(word) {
            return true;
        }
        // Step past the first character of this match (on a char boundary).
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// What a delivery changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookChange {
    PullRequest(PullRequestUpdate),
    Check(CheckUpdate),
}

/// A verified, parsed delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event: String,
    pub action: Option<String>,
    pub target: WebhookTarget,
    pub change: WebhookChange,
}

/// What applying a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Matched and recorded; `changed` is false when the store already
    /// held a newer state (an out-of-order delivery).
    Applied { workflow_id: i64, changed: bool },
    /// This delivery id was applied before: nothing done.
    Duplicate,
    /// No workflow has this pull request; recorded, so a redelivery after
    /// the pull request is known is applied.
    Unmatched,
}

#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Writes the pull request unless the stored one is newer; `events`
    /// are appended in the same transaction either way (each with
    /// `"changed"` set). Returns whether the row changed.
    async fn upsert_pull_request(
        &self,
        workflow_id: i64,
        pr: &PullRequestUpdate,
        events: &[NewEvent],
    ) -> StoreResult<bool>;
    async fn get_pull_request(&self, workflow_id: i64) -> StoreResult<Option<PullRequest>>;

    /// Upserts each check by precedence; returns how many changed.
    async fn upsert_checks(
        &self,
        workflow_id: i64,
        checks: &[CheckUpdate],
        events: &[NewEvent],
    ) -> StoreResult<usize>;
    async fn list_checks(&self, workflow_id: i64, query: &CheckQuery) -> StoreResult<Paged<Check>>;

    /// Replaces the workflow's diff with `files` (files gone from the
    /// comparison are removed) in one transaction.
    async fn replace_diffs(
        &self,
        workflow_id: i64,
        files: &[DiffUpdate],
        events: &[NewEvent],
    ) -> StoreResult<()>;
    /// `filter`: a path, exact or as a directory prefix.
    async fn list_diffs(
        &self,
        workflow_id: i64,
        query: &FilteredPage,
    ) -> StoreResult<Paged<DiffFile>>;

    /// Upserts by `external_id`; returns how many were new.
    async fn upsert_artifacts(
        &self,
        workflow_id: i64,
        artifacts: &[ArtifactUpdate],
        events: &[NewEvent],
    ) -> StoreResult<usize>;
    /// `filter`: an exact kind.
    async fn list_artifacts(
        &self,
        workflow_id: i64,
        query: &FilteredPage,
    ) -> StoreResult<Paged<Artifact>>;

    /// Records the delivery and applies it to the matching workflow with
    /// `events`, in one transaction: a delivery id seen before is a
    /// `Duplicate` and changes nothing.
    async fn apply_webhook(
        &self,
        delivery: &WebhookDelivery,
        events: &[NewEvent],
    ) -> StoreResult<WebhookOutcome>;
}

/// What a refresh job fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshKind {
    /// The pull request, its check runs and check suites.
    Pr,
    Diffs,
    Artifacts,
}

impl RefreshKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshKind::Pr => "pr",
            RefreshKind::Diffs => "diffs",
            RefreshKind::Artifacts => "artifacts",
        }
    }
}

#[cfg(test)]
mod story_mention_tests {
    use super::mentions_story;

    #[test]
    fn a_story_key_is_found_as_a_word_in_titles_and_branches() {
        assert!(mentions_story("SHOP-7: Reset password", "SHOP-7"));
        assert!(mentions_story("ai-team/shop-7-reset", "SHOP-7"));
        assert!(mentions_story("Fix (shop-7)", "SHOP-7"));
        assert!(!mentions_story("SHOP-70: other", "SHOP-7"));
        assert!(!mentions_story("XSHOP-7", "SHOP-7"));
        assert!(mentions_story("\u{212A}elvin SHOP-7", "shop-7"));
        assert!(!mentions_story("anything", ""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_outranks_in_progress_outranks_queued() {
        assert!(check_status_rank("completed") > check_status_rank("in_progress"));
        assert!(check_status_rank("in_progress") > check_status_rank("queued"));
        assert_eq!(check_status_rank("requested"), check_status_rank("queued"));
    }

    #[test]
    fn check_listing_defaults_to_runs_and_refuses_unknown_kinds() {
        let q = CheckQuery::parse(None, None, None).unwrap();
        assert_eq!(q.kind, Some(CheckKind::Run));
        assert_eq!(
            CheckQuery::parse(None, None, Some("all")).unwrap().kind,
            None
        );
        assert_eq!(
            CheckQuery::parse(None, Some("0"), Some("bogus"))
                .unwrap_err()
                .len(),
            2
        );
    }
}
