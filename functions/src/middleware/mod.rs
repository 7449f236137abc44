//! Cross-cutting layers: the request log, bearer auth, per-client rates.

pub mod auth;
pub mod rate_limit;
pub mod request_log;
