//! PostgreSQL, for deployments (Lambda, Azure Functions) and for several
//! processes sharing one database.

use std::time::Duration;

use ai_team_core::error::StoreResult;
use sqlx::postgres::PgPoolOptions;

use super::SqlStore;
use super::db::Db;
use super::errors::map_sqlx;

impl SqlStore {
    /// Connects eagerly, so that a wrong URL fails at start-up; later
    /// outages surface as `Unavailable` and the pool reconnects by itself.
    pub async fn postgres(url: &str) -> StoreResult<Self> {
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
        Ok(Self::on(Db::Postgres(pool)))
    }
}
