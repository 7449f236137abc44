//! The `LlmClient` port: one chat call in, one completion out, with the
//! provider's own usage numbers, the latency, and a classified error; and
//! the retry policy (exponential backoff with jitter, honouring
//! `Retry-After`, bounded in attempts and total time) in which every
//! attempt is reported so that the cost record is complete.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::models::Role;

/// One message of a chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: Role,
    /// The message text.
    pub content: String,
}

/// One chat call to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, system prompt first.
    pub messages: Vec<ChatMessage>,
    /// Most tokens the answer may have.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f32,
    /// A GBNF grammar the answer must follow (llama.cpp's constrained
    /// sampling). Only set for a client whose [`LlmClient::accepts_grammar`]
    /// is true (the embedded model); the remote providers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
}

/// Token counts of one call, as the provider reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: i64,
    /// Tokens in the answer.
    pub completion_tokens: i64,
    /// From a provider: it reported no usage (the numbers are zeros, to be
    /// estimated). After `ModelInfo::check_usage`: the numbers are (partly)
    /// estimates.
    #[serde(default)]
    pub estimated: bool,
}

/// A model's answer to one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The answer text.
    pub content: String,
    /// The model as the provider reports it.
    pub model: String,
    /// Token counts of the call.
    pub usage: Usage,
    /// Wall time of the call, in ms.
    pub latency_ms: i64,
    /// Why the model stopped (`stop`, `length`, ...), if the provider said; `length` makes the call `truncated`.
    pub finish_reason: Option<String>,
}

/// What kind of failure, deciding whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmErrorKind {
    /// 429: wait (`retry_after` when the provider said) and retry.
    RateLimited {
        /// The provider's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// 5xx, timeouts, dropped connections, malformed answers: retry.
    Retryable,
    /// The prompt and output do not fit the model's window: shrink, do not retry as is.
    ContextOverflow,
    /// Credentials refused: retrying cannot help.
    Auth,
    /// Anything else the provider refused.
    Fatal,
}

/// A failed call attempt, classified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    /// What kind of failure, deciding whether to retry.
    pub kind: LlmErrorKind,
    /// HTTP status, when there was one.
    pub status: Option<u16>,
    /// The provider's or client's message.
    pub message: String,
    /// Wall time until the failure, in ms.
    pub latency_ms: i64,
}

impl LlmError {
    /// Whether another attempt may succeed (rate limited or retryable).
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

/// A chat model behind a provider's API (or embedded); adapters live in `ai-team-providers`.
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
    /// Makes one call: one attempt, no retries (see `chat_with_retries`).
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Bounds of the retry loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Most attempts, the first included.
    pub max_attempts: u32,
    /// Cap of the first backoff; doubles with every attempt.
    pub base_delay: Duration,
    /// Longest wait between two attempts (also bounds `Retry-After`).
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
    /// 1 for the first attempt.
    pub number: u32,
    /// What the attempt returned.
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
