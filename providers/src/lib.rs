//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL,
//! and the OpenAI-wire LLM clients (OpenAI-compatible servers, Azure OpenAI).

pub mod blob;
pub mod codehost;
pub mod llm;
pub mod store;
pub mod tokens;
