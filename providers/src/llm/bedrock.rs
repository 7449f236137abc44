//! The Bedrock Converse API through `aws-sdk-bedrockruntime`
//! (`BEDROCK_MODEL_ID`; region, credentials and `AWS_ENDPOINT_URL` from
//! the standard AWS chain). The SDK client is built once; its own retries
//! are off so that `chat_with_retries` owns them and every attempt becomes
//! a call row; the operation timeout bounds each request.

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use ai_team_core::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, LlmErrorKind, Usage};
use ai_team_core::models::Role;
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::{ConverseError, ConverseOutput};
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as Output, InferenceConfiguration, Message,
    StopReason, SystemContentBlock,
};

use super::classify::{classify_aws, retry_after_from};
use crate::aws::{AwsOverrides, https_client, load_config};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct BedrockClient {
    client: Client,
    model_id: String,
}

impl BedrockClient {
    /// Region, credentials and endpoint from the standard AWS chain.
    pub async fn from_env(model_id: &str, timeout: Duration) -> Result<Self, String> {
        Self::load(model_id, timeout, &AwsOverrides::default()).await
    }

    /// The chain, with explicit values where given. Fails when no region
    /// is found: every request would fail without one.
    pub async fn load(
        model_id: &str,
        timeout: Duration,
        overrides: &AwsOverrides,
    ) -> Result<Self, String> {
        let config = load_config(overrides).await;
        if config.region().is_none() {
            return Err(
                "no AWS region in the environment (AWS_REGION), the profile or instance metadata"
                    .into(),
            );
        }
        Ok(Self::from_sdk_config(&config, model_id, timeout))
    }

    /// From a config already loaded (shared with other AWS clients, or
    /// built by a test); given no HTTP client, it gets the ring one.
    pub fn from_sdk_config(config: &SdkConfig, model_id: &str, timeout: Duration) -> Self {
        let mut conf = aws_sdk_bedrockruntime::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT.min(timeout))
                    .operation_timeout(timeout)
                    .build(),
            );
        if config.http_client().is_none() {
            conf = conf.http_client(https_client());
        }
        Self {
            client: Client::from_conf(conf.build()),
            model_id: model_id.to_owned(),
        }
    }
}

/// Converse takes the system prompt apart and wants the turns to start
/// with a user message and alternate: consecutive messages of one role
/// become one message of several text blocks. Blank messages are left
/// out (Converse refuses blank text blocks).
fn to_converse(request: &ChatRequest) -> Result<(Vec<SystemContentBlock>, Vec<Message>), String> {
    let mut system = Vec::new();
    let mut turns: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    for m in request
        .messages
        .iter()
        .filter(|m| !m.content.trim().is_empty())
    {
        let role = match m.role {
            Role::System => {
                system.push(SystemContentBlock::Text(m.content.clone()));
                continue;
            }
            Role::Assistant => ConversationRole::Assistant,
            // A tool's output without a toolUse to pair with is user-side text.
            Role::User | Role::Tool => ConversationRole::User,
        };
        let block = ContentBlock::Text(m.content.clone());
        match turns.last_mut() {
            Some((last, blocks)) if *last == role => blocks.push(block),
            _ => turns.push((role, vec![block])),
        }
    }
    if turns.first().map(|(role, _)| role) != Some(&ConversationRole::User) {
        return Err("Converse needs a user message before any assistant message".into());
    }
    let messages = turns
        .into_iter()
        .map(|(role, content)| {
            Message::builder()
                .role(role)
                .set_content(Some(content))
                .build()
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok((system, messages))
}

/// The OpenAI-style finish reason the rest of the code reads.
fn finish_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence => "stop",
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => "length",
        StopReason::ContentFiltered | StopReason::GuardrailIntervened => "content_filter",
        StopReason::ToolUse => "tool_calls",
        other => other.as_str(),
    }
    .to_owned()
}

fn error(kind: LlmErrorKind, status: Option<u16>, message: String, started: Instant) -> LlmError {
    LlmError {
        kind,
        status,
        message,
        latency_ms: started.elapsed().as_millis() as i64,
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(500).collect()
}

fn response(
    out: &ConverseOutput,
    model_id: &str,
    started: Instant,
) -> Result<ChatResponse, LlmError> {
    let Some(Output::Message(message)) = out.output() else {
        return Err(error(
            LlmErrorKind::Retryable,
            Some(200),
            "malformed response (no output message)".into(),
            started,
        ));
    };
    let content: String = message
        .content()
        .iter()
        .filter_map(|block| block.as_text().ok())
        .map(String::as_str)
        .collect();
    let usage = out
        .usage()
        .map(|u| Usage {
            prompt_tokens: u.input_tokens().into(),
            completion_tokens: u.output_tokens().into(),
            estimated: false,
        })
        // No usage block: the tracker estimates it (and says so).
        .unwrap_or(Usage {
            estimated: true,
            ..Usage::default()
        });
    Ok(ChatResponse {
        content,
        model: model_id.to_owned(),
        usage,
        latency_ms: started.elapsed().as_millis() as i64,
        finish_reason: Some(finish_reason(out.stop_reason())),
    })
}

/// A credentials failure found in the error's causes: none to be found
/// (or a configuration that cannot work) is `Auth`, a provider that failed
/// on the way (STS 503, a timeout) may succeed on a new attempt.
fn credentials_problem(err: &(dyn StdError + 'static)) -> Option<LlmErrorKind> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(match c {
                CredentialsError::CredentialsNotLoaded(_)
                | CredentialsError::InvalidConfiguration(_) => LlmErrorKind::Auth,
                _ => LlmErrorKind::Retryable,
            });
        }
        cause = e.source();
    }
    None
}

/// An error and its causes on one line, without the SDK's Debug dump
/// (which carries the raw response).
fn chain(err: &(dyn StdError + 'static)) -> String {
    excerpt(&crate::error_chain(err))
}

fn classify_sdk_error(err: &SdkError<ConverseError, HttpResponse>, started: Instant) -> LlmError {
    let detail = chain(err);
    match err {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let status = raw.status().as_u16();
            if raw.status().is_success() {
                // A 2xx the SDK could not deserialise.
                let body = String::from_utf8_lossy(raw.body().bytes().unwrap_or_default());
                return error(
                    LlmErrorKind::Retryable,
                    Some(status),
                    format!("malformed response ({detail}): {}", excerpt(&body)),
                    started,
                );
            }
            let e = service.err();
            let message = e.message().unwrap_or_default();
            let wait = retry_after_from(|name| raw.headers().get(name));
            error(
                classify_aws(e.code(), message, status, wait),
                Some(status),
                excerpt(&format!("{}: {message}", e.code().unwrap_or("error"))),
                started,
            )
        }
        SdkError::ResponseError(r) => error(
            LlmErrorKind::Retryable,
            Some(r.raw().status().as_u16()),
            format!("malformed response: {detail}"),
            started,
        ),
        SdkError::TimeoutError(_) => error(
            LlmErrorKind::Retryable,
            None,
            format!("request timed out: {detail}"),
            started,
        ),
        SdkError::DispatchFailure(d) => {
            if let Some(kind) = credentials_problem(err) {
                return error(kind, None, format!("AWS credentials: {detail}"), started);
            }
            let what = if d.is_timeout() {
                "timed out"
            } else {
                "could not be sent"
            };
            error(
                LlmErrorKind::Retryable,
                None,
                format!("request {what}: {detail}"),
                started,
            )
        }
        _ => error(
            LlmErrorKind::Fatal,
            None,
            format!("request could not be built: {detail}"),
            started,
        ),
    }
}

#[async_trait]
impl LlmClient for BedrockClient {
    fn provider(&self) -> &'static str {
        "bedrock"
    }

    fn model(&self) -> &str {
        &self.model_id
    }

    #[tracing::instrument(skip(self, request), fields(provider = "bedrock", model = %self.model_id))]
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let (system, messages) =
            to_converse(request).map_err(|why| error(LlmErrorKind::Fatal, None, why, started))?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
            .temperature(request.temperature)
            .build();
        let out = self
            .client
            .converse()
            .model_id(&self.model_id)
            .set_system((!system.is_empty()).then_some(system))
            .set_messages(Some(messages))
            .inference_config(inference)
            .send()
            .await
            .map_err(|e| classify_sdk_error(&e, started))?;
        response(&out, &self.model_id, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_team_core::llm::ChatMessage;

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
        }
    }

    fn req(messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest {
            messages,
            max_tokens: 100,
            temperature: 0.0,
            grammar: None,
        }
    }

    #[test]
    fn system_is_taken_apart_and_same_role_turns_are_merged() {
        let (system, messages) = to_converse(&req(vec![
            msg(Role::System, "You are a reviewer."),
            msg(Role::User, "The story."),
            msg(Role::Tool, "Test output."),
            msg(Role::Assistant, "  "),
            msg(Role::Assistant, "Looks fine."),
            msg(Role::User, "Now the tests."),
        ]))
        .unwrap();
        assert_eq!(
            system,
            [SystemContentBlock::Text("You are a reviewer.".into())]
        );
        let shape: Vec<(ConversationRole, usize)> = messages
            .iter()
            .map(|m| (m.role().clone(), m.content().len()))
            .collect();
        assert_eq!(
            shape,
            [
                (ConversationRole::User, 2),
                (ConversationRole::Assistant, 1),
                (ConversationRole::User, 1)
            ]
        );
    }

    #[test]
    fn a_conversation_must_open_with_the_user() {
        assert!(to_converse(&req(vec![msg(Role::Assistant, "Hello")])).is_err());
        assert!(to_converse(&req(vec![msg(Role::System, "Only a system prompt")])).is_err());
    }

    #[test]
    fn stop_reasons_read_as_finish_reasons() {
        assert_eq!(finish_reason(&StopReason::EndTurn), "stop");
        assert_eq!(finish_reason(&StopReason::StopSequence), "stop");
        assert_eq!(finish_reason(&StopReason::MaxTokens), "length");
        assert_eq!(
            finish_reason(&StopReason::GuardrailIntervened),
            "content_filter"
        );
    }
}
