//! The `Store` port on SQLite (the embedded default) and PostgreSQL. The
//! SQL is shared (`sql.rs`); each database has its own migrations under
//! `migrations/` and its own connection set-up.

mod errors;
mod postgres;
mod rows;
mod sql;
mod sqlite;
mod url;

use std::sync::Arc;

use ai_team_core::{Store, StoreError};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use url::DatabaseUrl;

/// Connects to the database and, when `migrate` is set, brings its schema
/// up to date.
pub async fn connect(url: &DatabaseUrl, migrate: bool) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Postgres(u) => {
            let store = PostgresStore::connect(u).await?;
            if migrate {
                store.migrate().await?;
            }
            Arc::new(store)
        }
        _ => {
            let store = SqliteStore::connect(url).await?;
            if migrate {
                store.migrate().await?;
            }
            Arc::new(store)
        }
    })
}

fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => errors::map_sqlx(inner),
        other => StoreError::Unknown(anyhow::anyhow!("migration failed: {other}")),
    }
}
