//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL,
//! the OpenAI-wire LLM clients (OpenAI-compatible servers, Azure OpenAI)
//! Bedrock's Converse API, and the AWS queue (SQS) and blob store (S3).

pub mod aws;
pub mod aws_s3;
pub mod aws_sqs;
pub mod azure_service_bus;
pub mod blob;
pub mod codehost;
pub mod llm;
pub mod store;
pub mod tokens;
