//! The OpenAI-wire adapters against a local server that answers in the
//! real shapes of OpenAI and Azure OpenAI: usage mapping, request shape,
//! 429 with Retry-After, 500, timeout, malformed JSON, context overflow,
//! auth failure, and every retry attempt reported.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_team_core::llm::{
    ChatMessage, ChatRequest, LlmClient, LlmErrorKind, RetryPolicy, chat_with_retries,
};
use ai_team_core::models::Role;
use ai_team_providers::llm::OpenAiClient;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
    delay: Duration,
}

fn ok_body(content: &str) -> String {
    json!({
        "id": "chatcmpl-AbC123", "object": "chat.completion", "created": 1732000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}
    })
    .to_string()
}

fn reply(status: u16, body: String) -> Reply {
    Reply {
        status,
        headers: vec![],
        body,
        delay: Duration::ZERO,
    }
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<(String, HeaderMap, Value)>>,
}

async fn answer(
    State(fake): State<Arc<Fake>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    fake.seen.lock().unwrap().push((
        uri.to_string(),
        headers,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    ));
    let r = fake
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| reply(500, "script exhausted".into()));
    tokio::time::sleep(r.delay).await;
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in r.headers {
        h.insert(k, v.parse().unwrap());
    }
    (StatusCode::from_u16(r.status).unwrap(), h, r.body)
}

async fn start(script: Vec<Reply>) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        script: Mutex::new(script.into()),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(answer))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(answer),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), fake)
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "You are a Product Manager.".into(),
            },
            ChatMessage {
                role: Role::User,
                content: "Analyse the story.".into(),
            },
        ],
        max_tokens: 256,
        temperature: 0.2,
    }
}

fn openai(base: &str, timeout: Duration) -> OpenAiClient {
    OpenAiClient::openai(
        &format!("{base}/v1"),
        Some("sk-test-123"),
        "gpt-4o",
        timeout,
    )
    .unwrap()
}

#[tokio::test]
async fn openai_success_maps_usage_and_sends_the_real_request_shape() {
    let (base, fake) = start(vec![reply(200, ok_body("Acceptance criteria: ..."))]).await;
    let r = openai(&base, Duration::from_secs(5))
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(r.content, "Acceptance criteria: ...");
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (19, 10));
    assert_eq!(r.model, "gpt-4o-2024-08-06");
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    let seen = fake.seen.lock().unwrap();
    let (uri, headers, body) = &seen[0];
    assert_eq!(uri, "/v1/chat/completions");
    assert_eq!(headers["authorization"], "Bearer sk-test-123");
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are a Product Manager."})
    );
}

#[tokio::test]
async fn azure_uses_the_deployment_url_api_version_and_api_key_header() {
    let (base, fake) = start(vec![reply(200, ok_body("ok"))]).await;
    let client = OpenAiClient::azure(
        &base,
        "my-gpt4o",
        "2024-10-21",
        "azure-key",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(client.provider(), "azure-openai");
    client.chat(&request()).await.unwrap();
    let seen = fake.seen.lock().unwrap();
    let (uri, headers, body) = &seen[0];
    assert_eq!(
        uri,
        "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(headers["api-key"], "azure-key");
    assert!(headers.get("authorization").is_none());
    assert!(
        body.get("model").is_none(),
        "Azure takes the deployment from the URL"
    );
}

#[tokio::test]
async fn rate_limit_honours_retry_after_and_every_attempt_is_reported() {
    let limited = Reply {
        status: 429,
        headers: vec![("retry-after", "1")],
        body: json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded call rate limit. Please retry after 1 second."}}).to_string(),
        delay: Duration::ZERO,
    };
    let (base, _fake) = start(vec![limited, reply(200, ok_body("second time lucky"))]).await;
    let client = openai(&base, Duration::from_secs(5));
    let mut attempts = Vec::new();
    let started = std::time::Instant::now();
    let r = chat_with_retries(&client, &request(), RetryPolicy::default(), |a| {
        attempts.push(
            a.result
                .as_ref()
                .map(|_| ())
                .map_err(|e| (e.kind, e.code())),
        )
    })
    .await
    .unwrap();
    assert_eq!(r.content, "second time lucky");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After"
    );
    assert_eq!(
        attempts,
        [
            Err((
                LlmErrorKind::RateLimited {
                    retry_after: Some(Duration::from_secs(1))
                },
                "429".to_owned()
            )),
            Ok(())
        ]
    );
}

#[tokio::test]
async fn server_errors_are_retryable_and_retries_are_bounded() {
    let boom = || {
        reply(
            500,
            json!({"error": {"message": "The server had an error while processing your request."}})
                .to_string(),
        )
    };
    let (base, fake) = start(vec![boom(), boom(), boom(), boom()]).await;
    let client = openai(&base, Duration::from_secs(5));
    let policy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    let mut n = 0;
    let err = chat_with_retries(&client, &request(), policy, |_| n += 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Retryable);
    assert_eq!(err.status, Some(500));
    assert_eq!(n, 3);
    assert_eq!(fake.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_slow_server_times_out_as_retryable() {
    let slow = Reply {
        delay: Duration::from_secs(3),
        ..reply(200, ok_body("too late"))
    };
    let (base, _fake) = start(vec![slow]).await;
    let err = openai(&base, Duration::from_millis(300))
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Retryable);
    assert!(err.message.contains("timed out"), "{}", err.message);
    assert_eq!(err.code(), "retryable");
}

#[tokio::test]
async fn malformed_json_is_retryable_not_a_panic() {
    let (base, _fake) = start(vec![
        reply(200, "{\"choices\": [".into()),
        reply(200, json!({"choices": []}).to_string()),
    ])
    .await;
    let client = openai(&base, Duration::from_secs(5));
    for _ in 0..2 {
        let err = client.chat(&request()).await.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Retryable);
        assert!(err.message.contains("malformed"));
    }
}

#[tokio::test]
async fn context_overflow_and_auth_are_not_retried() {
    let overflow = json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 10383 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}).to_string();
    let auth = json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}).to_string();
    let (base, fake) = start(vec![reply(400, overflow), reply(401, auth)]).await;
    let client = openai(&base, Duration::from_secs(5));
    let policy = RetryPolicy {
        base_delay: Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let e1 = chat_with_retries(&client, &request(), policy, |_| {})
        .await
        .unwrap_err();
    assert_eq!(e1.kind, LlmErrorKind::ContextOverflow);
    let e2 = chat_with_retries(&client, &request(), policy, |_| {})
        .await
        .unwrap_err();
    assert_eq!(e2.kind, LlmErrorKind::Auth);
    assert_eq!(fake.seen.lock().unwrap().len(), 2, "one attempt each");
}
