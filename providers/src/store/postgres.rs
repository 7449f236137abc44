//! The `Store` on PostgreSQL, for deployments (Lambda, Azure Functions)
//! and for several processes sharing one database.

use std::time::Duration;

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::models::*;
use ai_team_core::query::{LlmCallQuery, NewWorkflow, PageRequest};
use ai_team_core::store::Created;
use chrono::SubsecRound;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

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

/// The `Store` on PostgreSQL.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Wakes this process's event subscribers after a commit.
    signal: tokio::sync::broadcast::Sender<i64>,
    /// Wakes this process's idle workers when it queues a job they can
    /// take at once (other processes find it by polling).
    jobs_signal: std::sync::Arc<tokio::sync::Notify>,
}

impl PostgresStore {
    /// `q` is always the `LIKE` form, which the trigram GIN indexes of
    /// migration 0004 serve (the planner weighs them against the
    /// listing's own index).
    async fn text_search(&self, _query: &LlmCallQuery) -> StoreResult<TextSearch> {
        Ok(TextSearch::Like)
    }

    /// Connects eagerly, so that a wrong URL fails at start-up; later
    /// outages surface as `Unavailable` and the pool reconnects by itself.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            // Fail fast when the server is gone: the client gets a 503
            // instead of a hung request.
            .acquire_timeout(Duration::from_secs(3))
            .idle_timeout(Some(Duration::from_secs(300)))
            .test_before_acquire(true)
            .connect(url)
            .await
            .map_err(map_sqlx)?;
        Ok(Self {
            pool,
            signal: tokio::sync::broadcast::channel(1024).0,
            jobs_signal: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Applies `migrations/postgres`.
    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(super::migrate_error)
    }

    /// The pool, for benchmarks and tests that seed in bulk.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl_sql_store!(PostgresStore, Postgres, "postgres");
impl_ledger!(PostgresStore, Postgres);
impl_delivery_store!(PostgresStore, Postgres);
impl_push_connections!(PostgresStore, Postgres);
impl_job_queue!(PostgresStore, Postgres, "FOR UPDATE SKIP LOCKED");
