//! The `LlmClient` port: one chat call in, one completion out, with the
//! provider's own usage numbers, the latency, and a classified error; and
//! the retry policy (exponential backoff with jitter, honouring
//! `Retry-After`, bounded in attempts and total time) in which every
//! attempt is reported so that the cost record is complete.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::models::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// A GBNF grammar the answer must follow (llama.cpp's constrained
    /// sampling). Only set for a client whose [`LlmClient::accepts_grammar`]
    /// is true (the embedded model); the remote providers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// From a provider: it reported no usage (the numbers are zeros, to be
    /// estimated). After `ModelInfo::check_usage`: the numbers are (partly)
    /// estimates.
    #[serde(default)]
    pub estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub content: String,
    /// The model as the provider reports it.
    pub model: String,
    pub usage: Usage,
    pub latency_ms: i64,
    pub finish_reason: Option<String>,
}

/// What kind of failure, deciding whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmErrorKind {
    /// 429: wait (`retry_after` when the provider said) and retry.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, dropped connections, malformed answers: retry.
    Retryable,
    /// The prompt and output do not fit the model's window: shrink, do not retry as is.
    ContextOverflow,
    /// Credentials refused: retrying cannot help.
    Auth,
    /// Anything else the provider refused.
    Fatal,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    pub kind: LlmErrorKind,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    pub message: String,
    pub latency_ms: i64,
}

impl LlmError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            LlmErrorKind::RateLimited { .. } | LlmErrorKind::Retryable
        )
    }

    /// The `error_code` of the call row: the HTTP status, else the kind.
    pub fn code(&self) -> String {
        match (self.status, self.kind) {
            (Some(s), _) => s.to_string(),
            (None, LlmErrorKind::RateLimited { .. }) => "rate_limited".into(),
            (None, LlmErrorKind::Retryable) => "retryable".into(),
            (None, LlmErrorKind::ContextOverflow) => "context_overflow".into(),
            (None, LlmErrorKind::Auth) => "auth".into(),
            (None, LlmErrorKind::Fatal) => "fatal".into(),
        }
    }
}

#[async_trait]
pub trait LlmClient: Send + Sync + 'static {
    /// `azure-openai`, `openai`, `bedrock`, `embedded`, …
    fn provider(&self) -> &'static str;
    /// The model (or deployment) requests go to.
    fn model(&self) -> &str;
    /// Whether the client constrains its sampling to
    /// [`ChatRequest::grammar`]. Remote APIs take no GBNF, so the default is no.
    fn accepts_grammar(&self) -> bool {
        false
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Bounds of the retry loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1` (attempt counts from 1):
    /// the provider's `Retry-After` when given, else full jitter over an
    /// exponentially growing cap; `jitter` is in [0, 1).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max_delay);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        exp.min(self.max_delay).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// One attempt, as the tracker records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub result: Result<ChatResponse, LlmError>,
}

/// Calls until success, a non-retryable error, or the policy's bounds;
/// `on_attempt` is awaited for every attempt before the next one starts
/// (each becomes a call row, written before anything else can fail).
pub async fn chat_with_retries<F, Fut>(
    client: &dyn LlmClient,
    request: &ChatRequest,
    policy: RetryPolicy,
    mut on_attempt: F,
) -> Result<ChatResponse, LlmError>
where
    F: FnMut(Attempt) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = std::time::Instant::now();
    let mut number = 0;
    loop {
        number += 1;
        let result = client.chat(request).await;
        on_attempt(Attempt {
            number,
            result: result.clone(),
        })
        .await;
        let err = match result {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        if !err.is_retryable() || number >= policy.max_attempts {
            return Err(err);
        }
        let retry_after = match err.kind {
            LlmErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        };
        let delay = policy.delay(number, retry_after, jitter());
        if started.elapsed() + delay > policy.max_total {
            return Err(err);
        }
        tokio::time::sleep(delay).await;
    }
}

/// A jitter fraction from the clock's low bits: enough to spread retries,
/// no RNG dependency in core.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2)), 0.5),
            Duration::from_secs(2)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(999)), 0.5), p.max_delay);
    }

    #[test]
    fn backoff_grows_exponentially_under_full_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 0.999_999).as_millis(), 499);
        assert_eq!(p.delay(3, None, 0.999_999).as_millis(), 1999);
        assert_eq!(p.delay(30, None, 1.0), p.max_delay);
        assert_eq!(p.delay(2, None, 0.0), Duration::ZERO);
    }
}
