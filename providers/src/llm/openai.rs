//! Chat completions over the OpenAI wire format: any OpenAI-compatible
//! server (`OPENAI_BASE_URL`: OpenAI, Ollama, llama.cpp's server, vLLM)
//! and Azure OpenAI (`{endpoint}/openai/deployments/{deployment}/chat/
//! completions?api-version=…` with an `api-key` header, or an Entra ID
//! bearer token). One HTTP client, built once; a timeout on every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, LlmErrorKind, Usage};
use async_trait::async_trait;
use serde_json::{Value, json};

use super::classify::{classify, retry_after};

/// Where a request's credential header comes from: a fixed key, or a token
/// source that renews itself (Entra ID, `azure_entra::BearerToken`).
#[async_trait]
pub trait AuthHeader: Send + Sync {
    /// The header's name and value; an error is the credential's failure.
    async fn header(&self) -> Result<(&'static str, String), String>;
}

/// A header that never changes (an API key).
pub struct StaticHeader(pub &'static str, pub String);

#[async_trait]
impl AuthHeader for StaticHeader {
    async fn header(&self) -> Result<(&'static str, String), String> {
        Ok((self.0, self.1.clone()))
    }
}

/// How Azure OpenAI is authenticated.
pub enum AzureAuth {
    /// `AZURE_OPENAI_API_KEY`, as the `api-key` header.
    ApiKey(String),
    /// A bearer token (Entra ID).
    Token(Arc<dyn AuthHeader>),
}

pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    auth: Option<Arc<dyn AuthHeader>>,
    model: String,
    provider: &'static str,
    /// Azure takes the deployment from the URL, not the body.
    send_model: bool,
}

impl OpenAiClient {
    /// An OpenAI-compatible server; `base_url` ends before
    /// `/chat/completions` (e.g. `https://api.openai.com/v1`).
    pub fn openai(
        base_url: &str,
        api_key: Option<&str>,
        model: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            http: http_client(timeout)?,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            auth: api_key.map(|k| {
                Arc::new(StaticHeader("authorization", format!("Bearer {k}")))
                    as Arc<dyn AuthHeader>
            }),
            model: model.to_owned(),
            provider: "openai",
            send_model: true,
        })
    }

    /// Azure OpenAI.
    pub fn azure(
        endpoint: &str,
        deployment: &str,
        api_version: &str,
        auth: AzureAuth,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            http: http_client(timeout)?,
            url: format!(
                "{}/openai/deployments/{deployment}/chat/completions?api-version={api_version}",
                endpoint.trim_end_matches('/')
            ),
            auth: Some(match auth {
                AzureAuth::ApiKey(key) => Arc::new(StaticHeader("api-key", key)),
                AzureAuth::Token(source) => source,
            }),
            model: deployment.to_owned(),
            provider: "azure-openai",
            send_model: false,
        })
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        });
        if self.send_model {
            body["model"] = json!(self.model);
        }
        body
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

fn error(kind: LlmErrorKind, status: Option<u16>, message: String, started: Instant) -> LlmError {
    LlmError {
        kind,
        status,
        message,
        latency_ms: started.elapsed().as_millis() as i64,
    }
}

/// The largest response body read from a provider; a larger one is an
/// error (a chat completion of any real model is far smaller).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

enum BodyError {
    Lost(reqwest::Error),
    TooLarge,
}

/// The body, read chunk by chunk and never beyond `cap` bytes.
async fn bounded_text(mut response: reqwest::Response, cap: usize) -> Result<String, BodyError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Lost)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The provider's usage block. Absent, or without integer counts, it is
/// marked for estimation; the counts are checked against the model by the
/// tracker (`ModelInfo::check_usage`), not trusted here.
fn usage_of(usage: &Value) -> Usage {
    match (
        usage["prompt_tokens"].as_i64(),
        usage["completion_tokens"].as_i64(),
    ) {
        (Some(prompt_tokens), Some(completion_tokens)) => Usage {
            prompt_tokens,
            completion_tokens,
            estimated: false,
        },
        _ => Usage {
            estimated: true,
            ..Usage::default()
        },
    }
}

/// The first 500 characters of a provider's error body, for the record.
fn excerpt(body: &str) -> String {
    body.chars().take(500).collect()
}

#[async_trait]
impl LlmClient for OpenAiClient {
    fn provider(&self) -> &'static str {
        self.provider
    }

    fn model(&self) -> &str {
        &self.model
    }

    #[tracing::instrument(skip(self, request), fields(provider = self.provider, model = %self.model))]
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let mut call = self.http.post(&self.url).json(&self.body(request));
        if let Some(auth) = &self.auth {
            // A credential that cannot get a token now may get one on
            // the step's next try (the identity endpoint was down).
            let (name, value) = auth.header().await.map_err(|e| {
                error(
                    LlmErrorKind::Retryable,
                    None,
                    format!("no credential for the request: {e}"),
                    started,
                )
            })?;
            call = call.header(name, value);
        }
        let response = call.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "could not be sent"
            };
            error(
                LlmErrorKind::Retryable,
                None,
                format!("request {what}: {e}"),
                started,
            )
        })?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let text = match bounded_text(response, MAX_RESPONSE_BYTES).await {
            Ok(t) => t,
            Err(BodyError::Lost(e)) => {
                return Err(error(
                    LlmErrorKind::Retryable,
                    Some(status),
                    format!("response body lost: {e}"),
                    started,
                ));
            }
            Err(BodyError::TooLarge) => {
                return Err(error(
                    LlmErrorKind::Fatal,
                    Some(status),
                    format!("response body larger than {MAX_RESPONSE_BYTES} bytes: not read"),
                    started,
                ));
            }
        };
        if !(200..300).contains(&status) {
            return Err(error(
                classify(status, &text, wait),
                Some(status),
                excerpt(&text),
                started,
            ));
        }
        let malformed = |why: &str| {
            error(
                LlmErrorKind::Retryable,
                Some(status),
                format!("malformed response ({why}): {}", excerpt(&text)),
                started,
            )
        };
        let v: Value = serde_json::from_str(&text).map_err(|_| malformed("not JSON"))?;
        let choice = v["choices"].get(0).ok_or_else(|| malformed("no choices"))?;
        let content = choice["message"]["content"]
            .as_str()
            .ok_or_else(|| malformed("no content"))?;
        Ok(ChatResponse {
            content: content.to_owned(),
            model: v["model"].as_str().unwrap_or(&self.model).to_owned(),
            usage: usage_of(&v["usage"]),
            latency_ms: started.elapsed().as_millis() as i64,
            finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        })
    }
}
