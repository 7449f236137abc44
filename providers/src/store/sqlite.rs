//! The embedded default: one SQLite file in WAL mode with foreign keys on.

use std::str::FromStr;
use std::time::Duration;

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::models::*;
use ai_team_core::query::{LlmCallQuery, NewWorkflow, PageRequest};
use ai_team_core::store::Created;
use chrono::SubsecRound;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::delivery::impl_delivery_store;
use super::errors::{is_foreign_key_violation, is_unique_violation, map_sqlx};
use super::jobs::impl_job_queue;
use super::ledger::impl_ledger;
use super::push::impl_push_connections;
use super::rows::*;
use super::sql::{
    CallNumbers, ExecutionDelta, MAX_CALL_TOKENS, TextSearch, bind_call_filters, call_filters,
    call_order, capped_add, id_walk_bound, impl_sql_store, now, saturating_sum,
};
use super::url::DatabaseUrl;

/// The `Store` on SQLite.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Wakes this process's event subscribers after a commit.
    signal: tokio::sync::broadcast::Sender<i64>,
    /// Wakes this process's idle workers when it queues a job they can
    /// take at once (other processes find it by polling).
    jobs_signal: std::sync::Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    /// How the `q` of a call listing is served. FTS5 answers a rare text
    /// at once (its few ids, then the listing's own filters) but a
    /// frequent one slowly (hundreds of thousands of ids to intersect),
    /// where the listing's index walk meets a match within a few rows; so
    /// the index is asked for at most `FTS_PROBE` matches first. Texts
    /// shorter than a trigram cannot use the index.
    async fn text_search(&self, query: &LlmCallQuery) -> StoreResult<TextSearch> {
        const FTS_PROBE: i64 = 1000;
        let Some(text) = query.q.as_deref() else {
            return Ok(TextSearch::Like);
        };
        if text.chars().count() < 3 {
            return Ok(TextSearch::Like);
        }
        let matches = sqlx::query_scalar::<Sqlite, i64>(
            "SELECT COUNT(*) FROM (SELECT 1 FROM llm_calls_fts WHERE llm_calls_fts MATCH $1 LIMIT $2)",
        )
        .bind(super::sql::fts_phrase(text))
        .bind(FTS_PROBE + 1)
        .fetch_one(&self.pool)
        .await
        .map_err(map_sqlx)?;
        Ok(if matches > FTS_PROBE {
            TextSearch::Like
        } else {
            TextSearch::Index
        })
    }

    /// Opens (creating if needed) the file, or a private in-memory database.
    pub async fn connect(url: &DatabaseUrl) -> StoreResult<Self> {
        let (options, max) = match url {
            DatabaseUrl::SqliteFile(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                (SqliteConnectOptions::new().filename(path), 8)
            }
            // One connection: each in-memory connection is its own database.
            DatabaseUrl::SqliteMemory => (
                SqliteConnectOptions::from_str("sqlite::memory:").map_err(map_sqlx)?,
                1,
            ),
            DatabaseUrl::Postgres(_) => {
                return Err(StoreError::Invalid("not a SQLite URL".into()));
            }
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(if max == 1 { 1 } else { 0 })
            .idle_timeout(if max == 1 {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if max == 1 {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(map_sqlx)?;
        Ok(Self {
            pool,
            signal: tokio::sync::broadcast::channel(1024).0,
            jobs_signal: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Applies `migrations/sqlite`.
    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(super::migrate_error)
    }

    /// The pool, for benchmarks and tests that seed in bulk.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl_sql_store!(SqliteStore, Sqlite, "sqlite");
impl_ledger!(SqliteStore, Sqlite);
impl_delivery_store!(SqliteStore, Sqlite);
impl_push_connections!(SqliteStore, Sqlite);
impl_job_queue!(SqliteStore, Sqlite, "");
