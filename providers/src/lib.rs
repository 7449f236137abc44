//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL,
//! the OpenAI-wire LLM clients (OpenAI-compatible servers, Azure OpenAI),
//! and, with the `embedded` feature, the in-process model (llama.cpp).

pub mod blob;
pub mod llm;
pub mod store;
pub mod tokens;
