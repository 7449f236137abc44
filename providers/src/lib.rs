//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL,
//! the OpenAI-wire LLM clients (OpenAI-compatible servers, Azure OpenAI)
//! and Bedrock's Converse API.

pub mod aws;
pub mod blob;
pub mod codehost;
pub mod llm;
pub mod store;
pub mod tokens;
