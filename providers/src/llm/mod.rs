//! LLM adapters behind `ai_team_core::llm::LlmClient`.

#[cfg(feature = "aws")]
pub mod bedrock;
pub mod classify;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "embedded")]
pub mod model_fetch;
pub mod openai;

#[cfg(feature = "aws")]
pub use bedrock::BedrockClient;
#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedClient, EmbeddedConfig};
pub use openai::{AuthHeader, AzureAuth, OpenAiClient, StaticHeader};
