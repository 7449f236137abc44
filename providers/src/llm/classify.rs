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
    // Bedrock: Anthropic models ("input length and `max_tokens` exceed
    // context limit"), and the byte limit some models apply before tokens.
    "exceed context limit",
    "too many total text bytes",
];

pub fn is_context_overflow(body: &str) -> bool {
    let lower = body.to_lowercase();
    CONTEXT_OVERFLOW_MARKERS.iter().any(|m| lower.contains(m))
}

/// `retry-after-ms` (Azure) or `retry-after` in seconds; an HTTP date is
/// ignored (the backoff applies instead).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_from(|name| headers.get(name).and_then(|v| v.to_str().ok()))
}

/// The same reading over any header map (the AWS SDK has its own type).
pub fn retry_after_from<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Duration> {
    let number = |name: &str| get(name).and_then(|v| v.trim().parse::<f64>().ok());
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    number("retry-after").map(|s| Duration::from_secs_f64(s.max(0.0)))
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

/// An AWS service error (Bedrock), by its error code first: the code is
/// the service's own statement of what went wrong, the status only a
/// fallback for codes not listed here.
#[cfg_attr(
    not(feature = "aws"),
    allow(dead_code, reason = "Bedrock's, built with the aws feature")
)]
pub fn classify_aws(
    code: Option<&str>,
    message: &str,
    status: u16,
    retry_after: Option<Duration>,
) -> LlmErrorKind {
    match code.unwrap_or_default() {
        "ThrottlingException" | "TooManyRequestsException" => {
            LlmErrorKind::RateLimited { retry_after }
        }
        // ModelNotReady: the model is being loaded; ModelError (424): the
        // model failed on this request, which a new attempt may not repeat.
        "ServiceUnavailableException"
        | "InternalServerException"
        | "ModelTimeoutException"
        | "ModelNotReadyException"
        | "ModelErrorException" => LlmErrorKind::Retryable,
        "ValidationException" if is_context_overflow(message) => LlmErrorKind::ContextOverflow,
        "ValidationException" | "ResourceNotFoundException" => LlmErrorKind::Fatal,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException"
        | "InvalidClientTokenId" => LlmErrorKind::Auth,
        _ => classify(status, message, retry_after),
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

    #[test]
    fn aws_error_codes_decide_before_the_status() {
        let d = Some(Duration::from_secs(2));
        assert_eq!(
            classify_aws(Some("ThrottlingException"), "Too many requests", 429, d),
            LlmErrorKind::RateLimited { retry_after: d }
        );
        for code in [
            "ServiceUnavailableException",
            "InternalServerException",
            "ModelTimeoutException",
        ] {
            assert_eq!(
                classify_aws(Some(code), "", 500, None),
                LlmErrorKind::Retryable
            );
        }
        let anthropic = "The model returned the following errors: prompt is too long: 215234 tokens > 200000 maximum";
        assert_eq!(
            classify_aws(Some("ValidationException"), anthropic, 400, None),
            LlmErrorKind::ContextOverflow
        );
        assert_eq!(
            classify_aws(
                Some("ValidationException"),
                "Malformed input request: #: extraneous key [foo] is not permitted",
                400,
                None
            ),
            LlmErrorKind::Fatal
        );
        assert_eq!(
            classify_aws(
                Some("UnrecognizedClientException"),
                "The security token included in the request is invalid.",
                403,
                None
            ),
            LlmErrorKind::Auth
        );
        assert_eq!(
            classify_aws(None, "", 502, None),
            LlmErrorKind::Retryable,
            "unknown code: by status"
        );
    }
}
