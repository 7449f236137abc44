//! sqlx errors translated into the store's meanings.

use ai_team_core::StoreError;

/// Connection-level failures become `Unavailable` (503, retry later);
/// everything else is `Unknown` with its detail kept for the log.
pub fn map_sqlx(err: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match err {
        E::RowNotFound => StoreError::NotFound("record"),
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            StoreError::Unavailable(err.to_string())
        }
        E::Database(ref db) if is_unavailable_code(db.code().as_deref()) => {
            StoreError::Unavailable(err.to_string())
        }
        other => StoreError::Unknown(anyhow::Error::new(other)),
    }
}

/// PostgreSQL's connection-exception, shutdown and resource classes, and
/// SQLite's busy/locked codes: states that pass by themselves.
fn is_unavailable_code(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || c == "5"
                || c == "6"
                || c == "517"
                || c == "261"
        }
        None => false,
    }
}

/// Whether the error is the named unique or exclusion violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Whether the error is a foreign-key violation.
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
