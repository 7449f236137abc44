//! SQL fragments and bounds the store's statements share: the call
//! listing's filters and order, and the saturating totals.

use ai_team_core::query::{LlmCallQuery, SortBy, SortDir};
use chrono::{DateTime, SubsecRound, Utc};

use super::db::Stmt;

/// Now, at the microsecond precision both databases keep, so that a value
/// read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `LIKE` pattern for a case-insensitive substring, with `\` as escape.
pub fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// How the `q` filter of a call listing is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSearch {
    /// `LOWER(column) LIKE '%q%'` on the rows the other filters leave:
    /// PostgreSQL's trigram GIN indexes serve it; on SQLite it scans, which
    /// is the cheapest plan when the text is frequent (the first page is
    /// found within a few rows of the listing's own index) or shorter than
    /// a trigram.
    Like,
    /// SQLite's FTS5 trigram index `llm_calls_fts`: the ids of the calls
    /// whose text holds `q` (few of them: see `SqliteStore::text_search`).
    Index,
}

/// An FTS5 query matching `q` as one substring: a phrase of its trigrams.
pub fn fts_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// The WHERE clause of a call listing; placeholders from `$2` on, in the
/// order `bind_call_filters!` binds them. `$1` is the conversation id.
pub fn call_filters(q: &LlmCallQuery, search: TextSearch) -> (String, usize) {
    let mut sql = String::from("conversation_id = $1");
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if q.model.is_some() {
        sql += &format!(" AND model = ${}", next());
    }
    if q.date_from.is_some() {
        sql += &format!(" AND timestamp >= ${}", next());
    }
    if q.date_to.is_some() {
        sql += &format!(" AND timestamp <= ${}", next());
    }
    if q.q.is_some() {
        let i = next();
        sql += &match search {
            TextSearch::Like => format!(
                " AND (LOWER(request_data) LIKE ${i} ESCAPE '\\' OR LOWER(response_data) LIKE ${i} ESCAPE '\\')"
            ),
            TextSearch::Index => {
                format!(
                    " AND id IN (SELECT rowid FROM llm_calls_fts WHERE llm_calls_fts MATCH ${i})"
                )
            }
        };
    }
    (sql, n)
}

/// ORDER BY for a call listing, ties broken by id in the same direction
/// (for model, by time first, so that `llm_calls_conv_model_idx` serves it).
pub fn call_order(q: &LlmCallQuery) -> String {
    let dir = match q.sort_dir {
        SortDir::Asc => "ASC",
        SortDir::Desc => "DESC",
    };
    let column = match q.sort_by {
        SortBy::Timestamp => "timestamp",
        SortBy::TotalTokens => "total_tokens",
        SortBy::ResponseTimeMs => "response_time_ms",
        SortBy::Cost => "cost_nanos",
        SortBy::Id => return format!("id {dir}"),
        SortBy::Model => return format!("model {dir}, timestamp {dir}, id {dir}"),
    };
    format!("{column} {dir}, id {dir}")
}

/// For an id-ordered page, a bound that starts the walk inside the
/// conversation's own id range. It changes no result; without it
/// PostgreSQL may walk the primary key backwards past every newer row of
/// other conversations (seen: 250 ms on 1M rows; 1 ms with it).
pub fn id_walk_bound(q: &LlmCallQuery) -> &'static str {
    match (q.sort_by, q.sort_dir) {
        (SortBy::Id, SortDir::Desc) => {
            " AND id <= (SELECT MAX(id) FROM llm_calls WHERE conversation_id = $1)"
        }
        (SortBy::Id, SortDir::Asc) => {
            " AND id >= (SELECT MIN(id) FROM llm_calls WHERE conversation_id = $1)"
        }
        _ => "",
    }
}

/// Binds the optional filters of `call_filters` in order.
pub fn bind_call_filters<'q, O>(
    mut stmt: Stmt<'q, O>,
    q: &'q LlmCallQuery,
    search: TextSearch,
) -> Stmt<'q, O> {
    if let Some(model) = &q.model {
        stmt = stmt.bind(model);
    }
    if let Some(from) = q.date_from {
        stmt = stmt.bind(from);
    }
    if let Some(to) = q.date_to {
        stmt = stmt.bind(to);
    }
    if let Some(text) = &q.q {
        stmt = stmt.bind(match search {
            TextSearch::Like => like_pattern(text),
            TextSearch::Index => fts_phrase(text),
        });
    }
    stmt
}

/// What a batch of calls adds to one execution's running totals.
#[derive(Default)]
pub struct ExecutionDelta {
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
    pub latency_ms: i64,
    pub models: Vec<String>,
}

impl ExecutionDelta {
    pub fn add(&mut self, model: &str, n: CallNumbers) {
        self.calls += 1;
        self.prompt_tokens = capped_add(self.prompt_tokens, n.prompt_tokens);
        self.completion_tokens = capped_add(self.completion_tokens, n.completion_tokens);
        self.cost = capped_add(self.cost, n.cost);
        self.latency_ms = capped_add(self.latency_ms, n.latency_ms);
        if !self.models.iter().any(|m| m == model) {
            self.models.push(model.to_owned());
        }
    }
}

/// The most tokens one call row may carry. Usage is checked against the
/// model before it gets here (`ModelInfo::check_usage`); this bound holds
/// whatever a caller passes, so that no sum below can overflow.
pub const MAX_CALL_TOKENS: i64 = 1 << 32;
/// The most one call may cost ($1,000,000) or take (about 35 years).
pub const MAX_CALL_COST_NANOS: i64 = 1 << 50;
pub const MAX_CALL_LATENCY_MS: i64 = 1 << 40;
/// Running totals stop here instead of overflowing (SQLite turns an
/// overflowing integer sum into a REAL, which no longer reads as BIGINT;
/// PostgreSQL fails the statement).
pub const MAX_TOTAL: i64 = (1 << 62) - 1;

/// One call's numbers as written: never negative, within the bounds above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallNumbers {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
    pub latency_ms: i64,
}

impl CallNumbers {
    pub fn of(c: &ai_team_core::models::NewLlmCall) -> Self {
        Self {
            prompt_tokens: c.prompt_tokens.clamp(0, MAX_CALL_TOKENS),
            completion_tokens: c.completion_tokens.clamp(0, MAX_CALL_TOKENS),
            cost: c.cost.clamp(0, MAX_CALL_COST_NANOS),
            latency_ms: c.response_time_ms.clamp(0, MAX_CALL_LATENCY_MS),
        }
    }
}

/// `a + b` for non-negative totals, stopping at `MAX_TOTAL`.
pub fn capped_add(a: i64, b: i64) -> i64 {
    a.saturating_add(b).min(MAX_TOTAL)
}

/// SQL for `column + param` that stops at `MAX_TOTAL` without ever
/// computing an overflowing value (the same text on SQLite and PostgreSQL).
pub fn saturating_sum(column: &str, param: &str) -> String {
    format!(
        "CASE WHEN {column} >= {MAX_TOTAL} - {param} THEN {MAX_TOTAL} ELSE {column} + {param} END"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_team_core::query::RawLlmCallQuery;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn filters_number_their_placeholders_in_bind_order() {
        let q = LlmCallQuery::parse(RawLlmCallQuery {
            model: Some("gpt-4o"),
            date_to: Some("2026-01-01"),
            q: Some("Hello"),
            ..Default::default()
        })
        .unwrap();
        let (sql, last) = call_filters(&q, TextSearch::Like);
        assert_eq!(last, 4);
        assert!(sql.contains("model = $2"));
        assert!(sql.contains("timestamp <= $3"));
        assert!(sql.contains("LIKE $4"));
        assert_eq!(q.q.as_deref(), Some("hello"));
    }
}
