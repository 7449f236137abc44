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

/// An error and its causes on one line (`error sending request: dns
/// error: …`): the top-level text of reqwest and of the SDKs hides the
/// cause one needs. A cause whose text the line already holds (an SDK's
/// context repeating its source) is not repeated.
#[cfg_attr(
    not(any(feature = "aws", feature = "azure", feature = "embedded")),
    allow(dead_code)
)]
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}
