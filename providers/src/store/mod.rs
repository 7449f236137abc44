//! The `Store` port on SQLite (the embedded default) and PostgreSQL: one
//! `SqlStore` whose SQL is written once (`db.rs` runs each statement on
//! either database), one module per port. Each database has its own
//! migrations under `migrations/` and its own connection set-up.

mod calls;
mod db;
mod delivery;
mod errors;
mod events;
mod jobs;
mod ledger;
mod postgres;
mod push;
mod rows;
mod sql;
mod sqlite;
mod url;
mod workflows;

use std::sync::Arc;

use ai_team_core::error::StoreResult;
use ai_team_core::queue::{JobSource, StepQueue};
use ai_team_core::{Store, StoreError};
use sqlx::{PgPool, SqlitePool};

use db::{Db, query, query_scalar};
use errors::map_sqlx;
pub use url::DatabaseUrl;

/// The store on one database; every port of `ai_team_core::store` and the
/// durable local queue (`jobs.rs`) are implemented on it.
#[derive(Clone)]
pub struct SqlStore {
    db: Db,
    /// Wakes this process's event subscribers after a commit.
    signal: tokio::sync::broadcast::Sender<i64>,
    /// Wakes one idle worker of a queue when this process queues a job
    /// it can take at once (other processes find it by polling); one per
    /// queue, so a wake meant for the steps is not spent on the refresh
    /// worker.
    jobs_signals:
        Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>>,
    /// This open database, the same in every clone: the store and its
    /// queue join one transaction only when they share it.
    id: ai_team_core::queue::DatabaseId,
}

impl SqlStore {
    fn on(db: Db) -> Self {
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: ai_team_core::queue::DatabaseId(
                OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
            db,
            signal: tokio::sync::broadcast::channel(1024).0,
            jobs_signals: Arc::default(),
        }
    }

    /// Applies the database's migrations (`migrations/sqlite` or
    /// `migrations/postgres`).
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.db {
            Db::Sqlite(pools) => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&pools.write)
                    .await
            }
            Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await,
        }
        .map_err(migrate_error)
    }

    /// The SQLite pool that writes, for benchmarks and tests that seed in bulk.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite(pools) => Some(&pools.write),
            Db::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for benchmarks and tests that seed in bulk.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(pool) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.db.name()
    }

    #[tracing::instrument(skip(self))]
    async fn ping(&self) -> StoreResult<()> {
        query("SELECT 1")
            .execute(&self.db)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn service_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
        query(
            "INSERT INTO service_secrets (name, secret) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.db)
        .await
        .map_err(map_sqlx)?;
        query_scalar::<String>("SELECT secret FROM service_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.db)
            .await
            .map_err(map_sqlx)
    }
}

/// One database seen through each port it serves: the store, and the
/// durable local queue in the same database.
#[derive(Clone)]
pub struct Backend {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn StepQueue>,
    pub jobs: Arc<dyn JobSource>,
}

/// Connects to the database and, when `migrate` is set, brings its schema
/// up to date.
pub async fn connect(url: &DatabaseUrl, migrate: bool) -> Result<Arc<dyn Store>, StoreError> {
    Ok(connect_backend(url, migrate).await?.store)
}

/// `connect`, with the queue ports of the same database.
pub async fn connect_backend(url: &DatabaseUrl, migrate: bool) -> Result<Backend, StoreError> {
    let store = match url {
        DatabaseUrl::Postgres(u) => SqlStore::postgres(u).await?,
        _ => SqlStore::sqlite(url).await?,
    };
    if migrate {
        store.migrate().await?;
    }
    Ok(Backend {
        store: Arc::new(store.clone()),
        queue: Arc::new(store.clone()),
        jobs: Arc::new(store),
    })
}

fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => errors::map_sqlx(inner),
        other => StoreError::Unknown(anyhow::anyhow!("migration failed: {other}")),
    }
}
