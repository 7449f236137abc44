//! The `Store` port on SQLite (the embedded default) and PostgreSQL. The
//! SQL is shared (`sql.rs`); each database has its own migrations under
//! `migrations/` and its own connection set-up.

mod delivery;
mod errors;
mod jobs;
mod ledger;
mod postgres;
mod push;
mod rows;
mod sql;
mod sqlite;
mod url;

use std::sync::Arc;

use ai_team_core::queue::{JobSource, StepQueue};
use ai_team_core::{Store, StoreError};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use url::DatabaseUrl;

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
    fn all<T: Store + StepQueue + JobSource + Clone>(s: T) -> Backend {
        Backend {
            store: Arc::new(s.clone()),
            queue: Arc::new(s.clone()),
            jobs: Arc::new(s),
        }
    }
    Ok(match url {
        DatabaseUrl::Postgres(u) => {
            let store = PostgresStore::connect(u).await?;
            if migrate {
                store.migrate().await?;
            }
            all(store)
        }
        _ => {
            let store = SqliteStore::connect(url).await?;
            if migrate {
                store.migrate().await?;
            }
            all(store)
        }
    })
}

fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => errors::map_sqlx(inner),
        other => StoreError::Unknown(anyhow::anyhow!("migration failed: {other}")),
    }
}
