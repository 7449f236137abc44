//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL,
//! the OpenAI-wire LLM clients (OpenAI-compatible servers, Azure OpenAI),
//! Bedrock's Converse API, and, with the `embedded` feature, the in-process
//! model (llama.cpp).

pub mod aws;
pub mod blob;
pub mod codehost;
pub mod llm;
pub mod store;
pub mod tokens;
