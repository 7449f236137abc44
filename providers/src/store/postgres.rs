//! PostgreSQL, for deployments (Lambda, Azure Functions) and for several
//! processes sharing one database.

use std::time::Duration;

use ai_team_core::error::StoreResult;
use sqlx::postgres::PgPoolOptions;

use super::SqlStore;
use super::db::Db;
use super::errors::map_sqlx;

/// How long a connection may sit in the pool before it is pinged on its
/// way out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

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
            // sqlx's default pings every connection it hands out: one
            // more network round trip per statement outside a transaction.
            // A connection that sat idle is still checked (a restarted
            // server's are dropped, not handed to a request).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await
            .map_err(map_sqlx)?;
        Ok(Self::on(Db::Postgres(pool)))
    }
}
