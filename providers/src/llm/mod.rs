//! LLM adapters behind `ai_team_core::llm::LlmClient`.

pub mod bedrock;
pub mod classify;
pub mod openai;

pub use bedrock::BedrockClient;
pub use openai::OpenAiClient;
