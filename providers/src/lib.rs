//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL.

pub mod store;
