//! Turning a provider's HTTP answer into an error class. Providers word
//! context overflow differently (OpenAI and Azure's `context_length_exceeded`,
//! llama.cpp's `exceed_context_size_error`, vLLM's and Bedrock's messages)
//! and some send it with a 500, so the body is read, not only the status.

use std::time::Duration;

use ai_team_core::llm::LlmErrorKind;

const CONTEXT_OVERFLOW_MARKERS: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "exceed_context_size_error",
    "exceeds the available context size",
    "input length exceeds the context length",
    "prompt is longer than the context length",
    "exceeds the context window",
    "input tokens exceed",
    "too many input tokens",
    "input is too long",
    "prompt is too long",
];

pub fn is_context_overflow(body: &str) -> bool {
    let lower = body.to_lowercase();
    CONTEXT_OVERFLOW_MARKERS.iter().any(|m| lower.contains(m))
}

/// `retry-after-ms` (Azure) or `retry-after` in seconds; an HTTP date is
/// ignored (the backoff applies instead).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

pub fn classify(status: u16, body: &str, retry_after: Option<Duration>) -> LlmErrorKind {
    match status {
        429 => LlmErrorKind::RateLimited { retry_after },
        401 | 403 => LlmErrorKind::Auth,
        _ if is_context_overflow(body) => LlmErrorKind::ContextOverflow,
        408 | 409 | 500..=599 => LlmErrorKind::Retryable,
        _ => LlmErrorKind::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_overflow_is_read_from_the_body_whatever_the_status() {
        let azure = r#"{"error":{"message":"This model's maximum context length is 8192 tokens.","code":"context_length_exceeded"}}"#;
        assert_eq!(classify(400, azure, None), LlmErrorKind::ContextOverflow);
        let llama = r#"{"error":{"code":400,"message":"request (8889 tokens) exceeds the available context size (4096 tokens)","type":"exceed_context_size_error"}}"#;
        assert_eq!(classify(500, llama, None), LlmErrorKind::ContextOverflow);
        assert_eq!(
            classify(400, "Input is too long for requested model.", None),
            LlmErrorKind::ContextOverflow
        );
    }

    #[test]
    fn statuses_map_to_classes() {
        let d = Some(Duration::from_secs(3));
        assert_eq!(
            classify(429, "", d),
            LlmErrorKind::RateLimited { retry_after: d }
        );
        assert_eq!(classify(401, "", None), LlmErrorKind::Auth);
        assert_eq!(classify(503, "busy", None), LlmErrorKind::Retryable);
        assert_eq!(classify(400, "content_filter", None), LlmErrorKind::Fatal);
    }
}
