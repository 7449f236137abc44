//! The embedded default: one SQLite file in WAL mode with foreign keys on.

use std::str::FromStr;
use std::time::Duration;

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::query::LlmCallQuery;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::SqlStore;
use super::db::{Db, SqlitePools, query_scalar};
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
        let options = match url {
            DatabaseUrl::SqliteFile(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                SqliteConnectOptions::new().filename(path)
            }
            DatabaseUrl::SqliteMemory => {
                // One connection, reading and writing: each in-memory
                // connection is its own database.
                let options = SqliteConnectOptions::from_str("sqlite::memory:")
                    .map_err(map_sqlx)?
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(map_sqlx)?;
                return Ok(Self::on(Db::Sqlite(SqlitePools {
                    read: pool.clone(),
                    write: pool,
                })));
            }
            DatabaseUrl::Postgres(_) => {
                return Err(StoreError::Invalid("not a SQLite URL".into()));
            }
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Another process (a CLI run beside `serve`) still competes
            // for the file's one writer.
            .busy_timeout(Duration::from_secs(10));
        let pool = |max: u32, options: SqliteConnectOptions| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .idle_timeout(Some(Duration::from_secs(600)))
                .max_lifetime(Some(Duration::from_secs(3600)))
                .acquire_timeout(Duration::from_secs(10))
                // The file has no other end to hang up, and sqlx's default
                // ping is one more trip to the connection's thread for
                // every statement: through the one writer, that doubled
                // what each write held it for.
                .test_before_acquire(false)
                .connect_with(options)
        };
        // The writer first: it creates the file and switches it to WAL.
        let write = pool(1, options.clone()).await.map_err(map_sqlx)?;
        let read = pool(8, options.read_only(true)).await.map_err(map_sqlx)?;
        Ok(Self::on(Db::Sqlite(SqlitePools { read, write })))
    }
}
