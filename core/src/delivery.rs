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
    /// The workflow the pull request delivers.
    pub workflow_id: i64,
    /// `owner/name`, as GitHub spells it.
    pub repository: String,
    /// The pull request's number in its repository.
    pub number: i64,
    /// The pull request's web address.
    pub url: String,
    /// `open` or `closed`, as the host reports it.
    pub state: String,
    /// The pull request's title.
    pub title: String,
    /// The branch with the change.
    pub head_branch: String,
    /// The branch the change merges into.
    pub base_branch: String,
    /// The head commit; `None` when the host did not report one.
    pub head_sha: Option<String>,
    /// Whether it was merged.
    pub merged: bool,
    /// Whether it is a draft.
    pub draft: bool,
    /// The host's time of the last change stored.
    pub updated_at: DateTime<Utc>,
}

/// A pull request as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestUpdate {
    /// `owner/name`, as GitHub spells it.
    pub repository: String,
    /// The pull request's number in its repository.
    pub number: i64,
    /// The pull request's web address.
    pub url: String,
    /// `open` or `closed`, as the host reports it.
    pub state: String,
    /// The pull request's title.
    pub title: String,
    /// The branch with the change.
    pub head_branch: String,
    /// The branch the change merges into.
    pub base_branch: String,
    /// The head commit, if reported.
    pub head_sha: Option<String>,
    /// Whether it was merged.
    pub merged: bool,
    /// Whether it is a draft.
    pub draft: bool,
    /// The host's own time of the change: an older one never overwrites.
    pub updated_at: DateTime<Utc>,
}

/// Declares a small string enum with `as_str`/`parse`.
macro_rules! wire_kind {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:tt),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// The wire (and database) name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The value with this wire name, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_kind!(
    /// A check run, or the suite that groups them.
    CheckKind {
        /// A check run (`check_run`).
        Run => "check_run",
        /// A check suite, grouping runs (`check_suite`).
        Suite => "check_suite",
    }
);

wire_kind!(
    /// What happened to a file between base and head.
    DiffStatus {
        /// New at head.
        Added => "added",
        /// Changed between base and head.
        Modified => "modified",
        /// Gone at head.
        Removed => "removed",
        /// Moved from `previous_path`, possibly changed too.
        Renamed => "renamed",
    }
);

/// One row of `GET /workflows/{id}/pr/checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    /// Row id, assigned by the store.
    pub id: i64,
    /// The host's id of the run or suite.
    pub external_id: i64,
    /// A run or a suite.
    pub kind: CheckKind,
    /// The check's name on the host.
    pub name: String,
    /// `queued`, `in_progress` or `completed`, as the host reports it.
    pub status: String,
    /// The host's conclusion (`success`, `failure`, ...); `None` until completed.
    pub conclusion: Option<String>,
    /// Link to the check's details on the host, if any.
    pub details_url: Option<String>,
    /// When the check started, if it has.
    pub started_at: Option<DateTime<Utc>>,
    /// When the check completed, if it has.
    pub completed_at: Option<DateTime<Utc>>,
    /// The commit the check ran on, if reported.
    pub head_sha: Option<String>,
    /// The host's time of the state stored (see `CheckUpdate::updated_at`).
    pub updated_at: DateTime<Utc>,
}

/// A check as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckUpdate {
    /// A run or a suite.
    pub kind: CheckKind,
    /// The host's id of the run or suite.
    pub external_id: i64,
    /// The check's name on the host.
    pub name: String,
    /// `queued`, `in_progress` or `completed`, as the host reports it.
    pub status: String,
    /// The host's conclusion; `None` until completed.
    pub conclusion: Option<String>,
    /// Link to the check's details on the host, if any.
    pub details_url: Option<String>,
    /// When the check started, if it has.
    pub started_at: Option<DateTime<Utc>>,
    /// When the check completed, if it has.
    pub completed_at: Option<DateTime<Utc>>,
    /// The commit the check ran on, if reported.
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
    /// The file's path at head.
    pub path: String,
    /// The path before a rename; `None` unless `status` is `renamed`.
    pub previous_path: Option<String>,
    /// What happened to the file.
    pub status: DiffStatus,
    /// Lines added.
    pub additions: i64,
    /// Lines deleted.
    pub deletions: i64,
    /// The unified diff; `None` when the host gives none (binary or too large).
    pub patch: Option<String>,
    /// When the row was last written.
    pub updated_at: DateTime<Utc>,
}

/// A file of a comparison, as the code host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffUpdate {
    /// The file's path at head.
    pub path: String,
    /// The path before a rename; `None` unless renamed.
    pub previous_path: Option<String>,
    /// What happened to the file.
    pub status: DiffStatus,
    /// Lines added.
    pub additions: i64,
    /// Lines deleted.
    pub deletions: i64,
    /// The unified diff, if the host gave one.
    pub patch: Option<String>,
}

/// One row of `GET /workflows/{id}/artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    /// Row id, assigned by the store.
    pub id: i64,
    /// What kind of artifact it is; the `kind` filter of the listing.
    pub kind: String,
    /// The artifact's name.
    pub name: String,
    /// Where the artifact can be fetched.
    pub uri: String,
    /// Checksum of the artifact, if the host gave one.
    pub checksum: Option<String>,
    /// Size of the artifact, in bytes.
    pub size_bytes: i64,
    /// When the host created it.
    pub created_at: DateTime<Utc>,
}

/// An artifact as the code host reports it; `external_id` makes the
/// upsert idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactUpdate {
    /// The host's id of the artifact.
    pub external_id: String,
    /// What kind of artifact it is.
    pub kind: String,
    /// The artifact's name.
    pub name: String,
    /// Where the artifact can be fetched.
    pub uri: String,
    /// Checksum of the artifact, if the host gave one.
    pub checksum: Option<String>,
    /// Size of the artifact, in bytes.
    pub size_bytes: i64,
    /// When the host created it.
    pub created_at: DateTime<Utc>,
}

/// A validated listing of checks (`kind` defaults to check runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckQuery {
    /// Which page.
    pub page: PageRequest,
    /// `None`: runs and suites.
    pub kind: Option<CheckKind>,
}

impl CheckQuery {
    /// Validates the `page`, `page_size` and `kind` query parameters; `kind` is `check_run` (the default), `check_suite` or `all`.
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
    /// Which page.
    pub page: PageRequest,
    /// The trimmed filter text; `None` when absent or blank.
    pub filter: Option<String>,
}

impl FilteredPage {
    /// Validates the `page` and `page_size` query parameters and the filter
    /// named `filter_name`, trimmed.
    pub fn parse(
        page: Option<&str>,
        page_size: Option<&str>,
        filter_name: &str,
        filter: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let page = PageRequest::parse(page, page_size)
            .map_err(|e| errors.extend(e))
            .ok();
        let filter = crate::query::query_text(filter_name, filter.map(str::trim))
            .map_err(|e| errors.push(e))
            .ok();
        match (page, filter) {
            (Some(page), Some(filter)) => Ok(Self {
                page,
                filter: filter.map(str::to_owned),
            }),
            _ => Err(errors),
        }
    }
}

/// Which workflow a webhook delivery is about: its repository, and the
/// pull request numbers or head branch it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    /// `owner/name`.
    pub repository: String,
    /// Pull request numbers the delivery names.
    pub pr_numbers: Vec<i64>,
    /// The branch the delivery is about, if any.
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
    /// A pull request was opened, changed or closed.
    PullRequest(PullRequestUpdate),
    /// A check run or suite changed.
    Check(CheckUpdate),
}

/// A verified, parsed delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event: String,
    /// The payload's `action` (`opened`, `completed`, ...), if any.
    pub action: Option<String>,
    /// Which workflow it is about.
    pub target: WebhookTarget,
    /// What it changes.
    pub change: WebhookChange,
}

/// What applying a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Matched and recorded; `changed` is false when the store already
    /// held a newer state (an out-of-order delivery).
    Applied {
        /// The workflow the delivery matched.
        workflow_id: i64,
        /// Whether the stored state changed.
        changed: bool,
    },
    /// This delivery id was applied before: nothing done.
    Duplicate,
    /// No workflow has this pull request; recorded, so a redelivery after
    /// the pull request is known is applied.
    Unmatched,
}

/// The store side of delivery: pull requests, checks, diffs, artifacts and webhook deliveries, each write with its events.
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
    /// The workflow's pull request; `None` when it has none.
    async fn get_pull_request(&self, workflow_id: i64) -> StoreResult<Option<PullRequest>>;

    /// Upserts each check by precedence; returns how many changed.
    async fn upsert_checks(
        &self,
        workflow_id: i64,
        checks: &[CheckUpdate],
        events: &[NewEvent],
    ) -> StoreResult<usize>;
    /// A page of the workflow's checks.
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
    /// The per-file diff between base and head.
    Diffs,
    /// The CI artifacts.
    Artifacts,
}

impl RefreshKind {
    /// The wire name (`pr`, `diffs`, `artifacts`).
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
