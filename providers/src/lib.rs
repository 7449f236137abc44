//! Adapters behind the ports of `ai-team-core`, chosen by configuration.
//! For now: the `Store` on SQLite (the embedded default) and PostgreSQL,
//! the OpenAI-wire LLM clients (OpenAI-compatible servers, Azure OpenAI),
//! Bedrock's Converse API, Jira (tickets), GitHub (code host, review
//! state, webhooks), the AWS queue (SQS) and blob store (S3), the Azure
//! queue (Service Bus) and blob store (Blob Storage), and, with the
//! `embedded` feature, the in-process model (llama.cpp). The AWS adapters
//! (SQS, S3, API Gateway, Bedrock) need the `aws` feature: the AWS SDK
//! crates are most of a cold build, and the local binary does without.
//! The Azure adapters (Service Bus, Blob Storage, Entra ID credentials)
//! need the `azure` feature: the official Azure SDK crates.

pub mod aws;
#[cfg(feature = "aws")]
pub mod aws_apigw;
#[cfg(feature = "aws")]
pub mod aws_s3;
#[cfg(feature = "aws")]
pub mod aws_sqs;
#[cfg(feature = "azure")]
pub mod azure_blob;
pub mod azure_entra;
#[cfg(feature = "azure")]
pub mod azure_http;
#[cfg(feature = "azure")]
pub mod azure_service_bus;
pub mod blob;
pub mod codehost;
pub mod github;
pub mod jira;
pub mod llm;
pub mod store;
pub mod stories;
pub mod tokens;
pub mod verify;
