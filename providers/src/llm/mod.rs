//! LLM adapters behind `ai_team_core::llm::LlmClient`.

pub mod classify;
pub mod openai;

pub use openai::OpenAiClient;
