//! The embedded default: one SQLite file in WAL mode with foreign keys on.

use std::str::FromStr;
use std::time::Duration;

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::query::LlmCallQuery;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::SqlStore;
use super::db::{Db, query_scalar};
use super::errors::map_sqlx;
use super::sql::{TextSearch, fts_phrase};
use super::url::DatabaseUrl;

impl SqlStore {
    /// How the `q` of a call listing is served. FTS5 answers a rare text
    /// at once (its few ids, then the listing's own filters) but a
    /// frequent one slowly (hundreds of thousands of ids to intersect),
    /// where the listing's index walk meets a match within a few rows; so
    /// the index is asked for at most `FTS_PROBE` matches first. Texts
    /// shorter than a trigram cannot use the index.
    pub(super) async fn sqlite_text_search(&self, query: &LlmCallQuery) -> StoreResult<TextSearch> {
        const FTS_PROBE: i64 = 1000;
        let Some(text) = query.q.as_deref() else {
            return Ok(TextSearch::Like);
        };
        if text.chars().count() < 3 {
            return Ok(TextSearch::Like);
        }
        let matches = query_scalar::<i64>(
            "SELECT COUNT(*) FROM (SELECT 1 FROM llm_calls_fts WHERE llm_calls_fts MATCH $1 LIMIT $2)",
        )
        .bind(fts_phrase(text))
        .bind(FTS_PROBE + 1)
        .fetch_one(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(if matches > FTS_PROBE {
            TextSearch::Like
        } else {
            TextSearch::Index
        })
    }

    /// Opens (creating if needed) the file, or a private in-memory database.
    pub async fn sqlite(url: &DatabaseUrl) -> StoreResult<Self> {
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
            .min_connections(u32::from(max == 1))
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
        Ok(Self::on(Db::Sqlite(pool)))
    }
}
