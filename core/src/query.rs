//! Validated inputs: once one of these exists, the store can trust it.
//! Parsing failures carry FastAPI's `{loc, msg, type}` so the HTTP layer
//! can answer 422 in the shape clients know.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

/// One invalid input, as FastAPI reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where the input is: `["query", "page"]`, `["body", "name"]`, ...
    pub loc: Vec<String>,
    /// What is wrong, for a person.
    pub msg: String,
    /// FastAPI's error type (`enum`, `string_length`, ...); `type` on the wire.
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// An error at `field` of `place` (`path`, `query`, `body`).
    pub fn new(place: &str, field: &str, msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc: vec![place.to_owned(), field.to_owned()],
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// A positive database id taken from a path segment.
pub fn parse_id(field: &str, raw: &str) -> Result<i64, FieldError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        Ok(_) => Err(FieldError::new(
            "path",
            field,
            "Input should be greater than 0",
            "greater_than",
        )),
        Err(_) => Err(FieldError::new(
            "path",
            field,
            "Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        )),
    }
}

/// A free-text query value (`q`, `model`, a path or kind filter): absent
/// when empty, refused when it holds a NUL, which PostgreSQL's text cannot
/// hold and SQLite would cut the pattern at (matching everything).
pub fn query_text<'a>(field: &str, raw: Option<&'a str>) -> Result<Option<&'a str>, FieldError> {
    match raw.filter(|s| !s.is_empty()) {
        Some(s) if s.contains('\0') => Err(FieldError::new(
            "query",
            field,
            format!("{field} must not contain NUL characters"),
            "value_error",
        )),
        other => Ok(other),
    }
}

/// `page` and `page_size` of a paginated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The 1-based page number.
    pub page: u32,
    /// Items per page, 1..=`MAX_SIZE`.
    pub page_size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            page_size: Self::DEFAULT_SIZE,
        }
    }
}

impl PageRequest {
    /// Page size when `page_size` is absent.
    pub const DEFAULT_SIZE: u32 = 50;
    /// The largest `page_size` accepted.
    pub const MAX_SIZE: u32 = 200;
    /// Far enough for any real listing; keeps OFFSET arithmetic in range.
    pub const MAX_PAGE: u32 = 1_000_000;

    /// Parses the two query values (absent means default).
    pub fn parse(page: Option<&str>, page_size: Option<&str>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let page = parse_bounded("page", page, 1, 1, Self::MAX_PAGE, &mut errors);
        let page_size = parse_bounded(
            "page_size",
            page_size,
            Self::DEFAULT_SIZE,
            1,
            Self::MAX_SIZE,
            &mut errors,
        );
        if errors.is_empty() {
            Ok(Self { page, page_size })
        } else {
            Err(errors)
        }
    }

    /// Rows to skip for this page (SQL `OFFSET`).
    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.page_size)
    }

    /// Rows in this page (SQL `LIMIT`).
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    /// The listing's total when this page, back with `rows` rows, tells
    /// it: a page that is not full is the last one. An empty page past
    /// the first tells nothing (the listing may end anywhere before it).
    pub fn total_from_short_page(&self, rows: usize) -> Option<i64> {
        let rows = i64::try_from(rows).ok()?;
        (rows < self.limit() && (rows > 0 || self.page == 1)).then(|| self.offset() + rows)
    }
}

fn parse_bounded(
    field: &str,
    raw: Option<&str>,
    default: u32,
    min: u32,
    max: u32,
    errors: &mut Vec<FieldError>,
) -> u32 {
    let Some(raw) = raw else { return default };
    match raw.trim().parse::<i64>() {
        Ok(v) if v >= i64::from(min) && v <= i64::from(max) => v as u32,
        Ok(v) if v < i64::from(min) => {
            errors.push(FieldError::new(
                "query",
                field,
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            ));
            default
        }
        Ok(_) => {
            errors.push(FieldError::new(
                "query",
                field,
                format!("Input should be less than or equal to {max}"),
                "less_than_equal",
            ));
            default
        }
        Err(_) => {
            errors.push(FieldError::new(
                "query",
                field,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            ));
            default
        }
    }
}

/// Column a call list is ordered by; ties are broken by id in the same
/// direction (for `model`, by timestamp, then id) so that pages never
/// overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// `timestamp`, the default.
    #[default]
    Timestamp,
    /// `model`.
    Model,
    /// `total_tokens`.
    TotalTokens,
    /// `response_time_ms`.
    ResponseTimeMs,
    /// `cost`.
    Cost,
    /// `id`.
    Id,
}

impl SortBy {
    /// The accepted spellings, for the error message.
    pub const NAMES: &'static str = "timestamp, model, total_tokens, response_time_ms, cost, id";

    /// The column named `s` in the query string, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "timestamp" => Self::Timestamp,
            "model" => Self::Model,
            "total_tokens" => Self::TotalTokens,
            "response_time_ms" => Self::ResponseTimeMs,
            "cost" => Self::Cost,
            "id" => Self::Id,
            _ => return None,
        })
    }
}

/// Order of a sorted list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    /// `asc`: smallest first.
    Asc,
    /// `desc`: largest (newest) first, the default.
    #[default]
    Desc,
}

/// Every filter and order of `GET /conversations/{id}/llm-calls`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LlmCallQuery {
    /// Which page.
    pub page: PageRequest,
    /// Column to order by.
    pub sort_by: SortBy,
    /// Direction of the order.
    pub sort_dir: SortDir,
    /// Only calls to this model (exact match).
    pub model: Option<String>,
    /// Lower-cased substring of the request or response text.
    pub q: Option<String>,
    /// Only calls at or after this time.
    pub date_from: Option<DateTime<Utc>>,
    /// Only calls at or before this time (a bare date means its end of day).
    pub date_to: Option<DateTime<Utc>>,
}

/// The raw query values, as strings from the URL.
#[derive(Debug, Default, Clone)]
pub struct RawLlmCallQuery<'a> {
    /// `page`.
    pub page: Option<&'a str>,
    /// `page_size`.
    pub page_size: Option<&'a str>,
    /// `sort_by`.
    pub sort_by: Option<&'a str>,
    /// `sort_dir`.
    pub sort_dir: Option<&'a str>,
    /// `model`.
    pub model: Option<&'a str>,
    /// `q`.
    pub q: Option<&'a str>,
    /// `date_from`.
    pub date_from: Option<&'a str>,
    /// `date_to`.
    pub date_to: Option<&'a str>,
}

impl LlmCallQuery {
    /// Validates every value, reporting all invalid ones at once.
    pub fn parse(raw: RawLlmCallQuery<'_>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let page = PageRequest::parse(raw.page, raw.page_size).unwrap_or_else(|e| {
            errors.extend(e);
            PageRequest::default()
        });
        let sort_by = match raw.sort_by {
            None => SortBy::default(),
            Some(s) => SortBy::parse(s).unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "query",
                    "sort_by",
                    format!("Input should be one of: {}", SortBy::NAMES),
                    "enum",
                ));
                SortBy::default()
            }),
        };
        let sort_dir = match raw.sort_dir.map(str::to_ascii_lowercase).as_deref() {
            None => SortDir::default(),
            Some("asc") => SortDir::Asc,
            Some("desc") => SortDir::Desc,
            Some(_) => {
                errors.push(FieldError::new(
                    "query",
                    "sort_dir",
                    "Input should be 'asc' or 'desc'",
                    "enum",
                ));
                SortDir::default()
            }
        };
        let mut date = |field: &str, raw: Option<&str>, end_of_day: bool| {
            raw.and_then(|s| match parse_datetime(s, end_of_day) {
                Some(d) => Some(d),
                None => {
                    errors.push(FieldError::new(
                        "query",
                        field,
                        "Input should be a valid datetime or date (ISO 8601)",
                        "datetime_parsing",
                    ));
                    None
                }
            })
        };
        let date_from = date("date_from", raw.date_from, false);
        let date_to = date("date_to", raw.date_to, true);
        let mut text = |field: &str, raw: Option<&str>| {
            query_text(field, raw)
                .map_err(|e| errors.push(e))
                .ok()
                .flatten()
                .map(str::to_owned)
        };
        let model = text("model", raw.model);
        let q = text("q", raw.q).map(|q| q.to_lowercase());
        if errors.is_empty() {
            Ok(Self {
                page,
                sort_by,
                sort_dir,
                model,
                q,
                date_from,
                date_to,
            })
        } else {
            Err(errors)
        }
    }
}

/// ISO 8601 with an offset, a naive date-time (taken as UTC, as the
/// original stored them), or a plain date (start of day, or its last
/// microsecond for an inclusive upper bound).
pub fn parse_datetime(s: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc());
        }
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let t = if end_of_day {
        day.and_hms_micro_opt(23, 59, 59, 999_999)?
    } else {
        day.and_hms_opt(0, 0, 0)?
    };
    Some(t.and_utc())
}

/// A validated `jira_story_id`: trimmed, 1..=100 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryId(String);

impl StoryId {
    /// The longest story id (Jira keys are a dozen characters).
    pub const MAX_CHARS: usize = 100;

    /// Trims and checks `raw`; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("jira_story_id must not be empty".into());
        }
        // It names the git branch (`ai-team/{id}-execution-{n}`) and the
        // local working copy: git and file systems refuse names over 255
        // bytes, so the id stays well under that.
        if s.chars().count() > StoryId::MAX_CHARS {
            return Err(format!(
                "jira_story_id must be at most {} characters",
                StoryId::MAX_CHARS
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("jira_story_id must not contain control characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    /// The validated id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A workflow to create, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorkflow {
    /// Display name, trimmed, 1..=`MAX_NAME_CHARS` characters.
    pub name: String,
    /// The story's key.
    pub jira_story_id: StoryId,
    /// The repository the team works on, if any (at most 2048 bytes).
    pub repository_url: Option<String>,
    /// The story's description, as given at creation.
    pub description: Option<String>,
    /// The story's title as the original client's form sends it.
    pub jira_story_title: Option<String>,
    /// The branch the work targets (the repository's default when unset).
    pub target_branch: Option<String>,
    /// The repository's test command, when the workflow names one.
    pub test_command: Option<String>,
}

impl NewWorkflow {
    /// The longest `name`, in characters.
    pub const MAX_NAME_CHARS: usize = 500;

    /// The same workflow with the secrets of its name and description
    /// redacted (`crate::redact`): what the store keeps when
    /// `AI_TEAM_REDACT_SENSITIVE` is on, so the story's own row holds no
    /// key either.
    pub fn redacted(mut self) -> Self {
        self.name = crate::redact::redact_text(&self.name);
        self.description = self.description.map(|d| crate::redact::redact_text(&d));
        self.jira_story_title = self
            .jira_story_title
            .map(|t| crate::redact::redact_text(&t));
        self
    }

    /// Validates the fields of `POST /workflows`, reporting all invalid ones at once.
    pub fn parse(
        name: &str,
        jira_story_id: &str,
        repository_url: Option<&str>,
        description: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > Self::MAX_NAME_CHARS {
            errors.push(FieldError::new(
                "body",
                "name",
                "name must be 1 to 500 characters",
                "string_length",
            ));
        }
        let story = StoryId::parse(jira_story_id)
            .map_err(|m| errors.push(FieldError::new("body", "jira_story_id", m, "value_error")))
            .ok();
        if repository_url.is_some_and(|u| u.len() > 2048) {
            errors.push(FieldError::new(
                "body",
                "repository_url",
                "repository_url must be at most 2048 characters",
                "string_length",
            ));
        }
        match story {
            Some(story) if errors.is_empty() => Ok(Self {
                name: name.to_owned(),
                jira_story_id: story,
                repository_url: repository_url.map(str::to_owned),
                description: description.map(str::to_owned),
                jira_story_title: None,
                target_branch: None,
                test_command: None,
            }),
            _ => Err(errors),
        }
    }

    /// The optional fields of the original client's form and of API.md,
    /// each bounded; blank values count as absent.
    pub fn with_extras(
        mut self,
        jira_story_title: Option<&str>,
        target_branch: Option<&str>,
        test_command: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut field = |name: &str, value: Option<&str>, max: usize| {
            let v = value.filter(|v| !v.trim().is_empty())?;
            if v.contains('\0') {
                errors.push(FieldError::new(
                    "body",
                    name,
                    format!("{name} must not contain NUL characters"),
                    "value_error",
                ));
                return None;
            }
            if v.chars().count() > max {
                errors.push(FieldError::new(
                    "body",
                    name,
                    format!("{name} must be at most {max} characters"),
                    "string_length",
                ));
                return None;
            }
            Some(v.to_owned())
        };
        self.jira_story_title = field("jira_story_title", jira_story_title, 500);
        self.target_branch = field("target_branch", target_branch, 255);
        self.test_command = field("test_command", test_command, 2000);
        if let Some(b) = &self.target_branch
            && !valid_branch(b)
        {
            errors.push(FieldError::new(
                "body",
                "target_branch",
                "target_branch must be a git branch name (letters, digits, `-`, `_`, `.`, `/`, not starting with `-`, `.` or `/`)",
                "value_error",
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

/// A branch name that cannot smuggle an option (`--force`) or odd
/// characters; git's own rules (`git check-ref-format`) apply where the
/// branch is used.
fn valid_branch(b: &str) -> bool {
    b.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_page_is_the_last_one_and_gives_the_total() {
        let page = |page, page_size| PageRequest { page, page_size };
        assert_eq!(page(1, 20).total_from_short_page(0), Some(0));
        assert_eq!(page(1, 20).total_from_short_page(7), Some(7));
        assert_eq!(page(3, 20).total_from_short_page(5), Some(45));
        assert_eq!(
            page(1, 20).total_from_short_page(20),
            None,
            "a full page may have more after it"
        );
        assert_eq!(
            page(3, 20).total_from_short_page(0),
            None,
            "an empty page past the end"
        );
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id("id", "42"), Ok(42));
        assert_eq!(parse_id("id", "abc").unwrap_err().kind, "int_parsing");
        assert_eq!(parse_id("id", "0").unwrap_err().kind, "greater_than");
        assert_eq!(
            parse_id("id", "99999999999999999999").unwrap_err().kind,
            "int_parsing"
        );
    }

    #[test]
    fn page_size_out_of_range_is_rejected() {
        assert!(PageRequest::parse(None, Some("0")).is_err());
        assert!(PageRequest::parse(None, Some("201")).is_err());
        assert!(PageRequest::parse(Some("x"), None).is_err());
        assert_eq!(
            PageRequest::parse(Some("3"), Some("200")).unwrap(),
            PageRequest {
                page: 3,
                page_size: 200
            }
        );
    }

    #[test]
    fn dates_accept_offsets_naive_and_plain_days() {
        let z = parse_datetime("2026-11-23T22:30:51Z", false).unwrap();
        assert_eq!(parse_datetime("2026-11-23T23:30:51+01:00", false), Some(z));
        assert_eq!(parse_datetime("2026-11-23T22:30:51", false), Some(z));
        let end = parse_datetime("2026-11-23", true).unwrap();
        assert_eq!(end.to_rfc3339(), "2026-11-23T23:59:59.999999+00:00");
        assert!(parse_datetime("yesterday", false).is_none());
    }

    #[test]
    fn a_nul_in_a_text_filter_is_refused_not_passed_to_the_database() {
        let errors = LlmCallQuery::parse(RawLlmCallQuery {
            q: Some("pass\0word"),
            model: Some("\0"),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.loc[1].as_str()).collect();
        assert_eq!(fields, ["model", "q"]);
        let ok = LlmCallQuery::parse(RawLlmCallQuery {
            q: Some("Pass Word"),
            model: Some(""),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((ok.q.as_deref(), ok.model), (Some("pass word"), None));
        assert_eq!(
            crate::delivery::FilteredPage::parse(Some("0"), None, "path", Some("a\0"))
                .unwrap_err()
                .len(),
            2,
            "the page and the filter reported together"
        );
    }

    #[test]
    fn call_query_collects_every_error() {
        let errors = LlmCallQuery::parse(RawLlmCallQuery {
            sort_by: Some("price"),
            sort_dir: Some("up"),
            date_from: Some("nope"),
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.loc[1].as_str()).collect();
        assert_eq!(fields, ["sort_by", "sort_dir", "date_from"]);
    }

    #[test]
    fn a_redacted_workflow_keeps_no_secret_of_its_story() {
        let w = NewWorkflow::parse(
            "SHOP-1: key ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "SHOP-1",
            None,
            Some("Use password=hunter2! and AKIAIOSFODNN7EXAMPLE"),
        )
        .unwrap()
        .redacted();
        assert_eq!(w.name, "SHOP-1: key [REDACTED]");
        assert_eq!(
            w.description.as_deref(),
            Some("Use password=[REDACTED] and [REDACTED]")
        );
        assert_eq!(w.jira_story_id.as_str(), "SHOP-1");
    }

    #[test]
    fn story_ids_are_trimmed_and_bounded() {
        assert_eq!(StoryId::parse("  PROJ-1 ").unwrap().as_str(), "PROJ-1");
        assert!(StoryId::parse("   ").is_err());
        assert!(StoryId::parse(&"x".repeat(256)).is_err());
        assert!(StoryId::parse(&"x".repeat(101)).is_err());
        assert!(StoryId::parse(&"x".repeat(100)).is_ok());
        assert!(StoryId::parse(&"\u{212A}".repeat(100)).is_ok());
        assert!(StoryId::parse("A\u{0}B").is_err());
    }
}
