//! Errors of the store port, with the meanings the HTTP layer maps to
//! statuses. Adapters translate driver codes into these.

/// What can go wrong when reading or writing a record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A state change conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule of the data model (422).
    #[error("{0}")]
    Invalid(String),
    /// The database cannot be reached now; retrying later may work (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500, detail logged, never sent).
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;
