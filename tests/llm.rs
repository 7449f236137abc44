//! The OpenAI-wire adapters against a local server that answers in the
//! real shapes of OpenAI and Azure OpenAI: usage mapping, request shape,
//! 429 with Retry-After, 500, timeout, malformed JSON, context overflow,
//! auth failure, and every retry attempt reported; Bedrock's Converse
//! API in `llm/bedrock.rs`.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

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
        grammar: None,
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
        ai_team_providers::llm::AzureAuth::ApiKey("azure-key".into()),
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
        );
        std::future::ready(())
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
    let err = chat_with_retries(&client, &request(), policy, |_| {
        n += 1;
        std::future::ready(())
    })
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
    let e1 = chat_with_retries(&client, &request(), policy, |_| std::future::ready(()))
        .await
        .unwrap_err();
    assert_eq!(e1.kind, LlmErrorKind::ContextOverflow);
    let e2 = chat_with_retries(&client, &request(), policy, |_| std::future::ready(()))
        .await
        .unwrap_err();
    assert_eq!(e2.kind, LlmErrorKind::Auth);
    assert_eq!(fake.seen.lock().unwrap().len(), 2, "one attempt each");
}

#[path = "llm/bedrock.rs"]
mod bedrock;

mod tracking {
    use super::*;
    use ai_team_core::catalog::Catalog;
    use ai_team_core::tracking::{CallContext, tracked_chat};
    use ai_team_tests::seed;
    use ai_team_tests::{Backend, TestDb};

    const PLANTED: &str = "sk-planted-SECRET-0123456789abcdef";

    async fn every_attempt_is_a_row_and_a_paid_response_is_reused(backend: Backend) {
        let db = TestDb::new(backend).await;
        let wf = seed::workflow(&*db.store, "TRACK-1").await;
        let exec = db.store.create_execution(wf).await.unwrap();
        let conv = seed::conversation(&*db.store, wf, Some(exec.id), "analysis").await;
        let limited = Reply {
            status: 429,
            headers: vec![("retry-after-ms", "20")],
            body: json!({"error": {"code": "429", "message": "Rate limit reached"}}).to_string(),
            delay: Duration::ZERO,
        };
        let (base, fake) = start(vec![limited, reply(200, ok_body("The criteria are ..."))]).await;
        let client = OpenAiClient::openai(
            &format!("{base}/v1"),
            Some(PLANTED),
            "gpt-4o",
            Duration::from_secs(5),
        )
        .unwrap();
        let catalog = Catalog::builtin();
        let ctx = CallContext {
            conversation_id: conv,
            execution_id: Some(exec.id),
            catalog: &catalog,
            budget_snapshot: json!({"step_tokens_left": 5000}),
            truncated_sections: vec!["history (dropped)".into()],
            prompt_tokens_estimate: Some(20),
            redact: true,
            spill: None,
        };
        let mut req = request();
        req.messages[1].content =
            format!("Analyse the story. api_key={PLANTED} Authorization: Bearer {PLANTED}");
        let first = tracked_chat(&db.store, &client, &ctx, &req, RetryPolicy::default())
            .await
            .unwrap();
        assert!(!first.cached);
        assert_eq!(
            first.call_ids.len(),
            2,
            "the 429 and the success are both rows"
        );

        let page = db
            .store
            .list_llm_calls(conv, &Default::default())
            .await
            .unwrap();
        let mut calls = page.calls.clone();
        calls.sort_by_key(|c| c.id);
        assert_eq!(calls[0].status.as_str(), "failed");
        assert_eq!(calls[0].error_code.as_deref(), Some("429"));
        assert_eq!(calls[0].cost, 0);
        assert_eq!(calls[1].status.as_str(), "success");
        assert_eq!(
            (calls[1].prompt_tokens, calls[1].completion_tokens),
            (19, 10)
        );
        assert_eq!(
            calls[1].cost,
            catalog.lookup("gpt-4o-2024-08-06").cost_nanos(19, 10)
        );
        assert_eq!(calls[1].prompt_hash, calls[0].prompt_hash);
        assert_eq!(calls[1].response_hash.as_deref().map(str::len), Some(64));
        assert_eq!(calls[1].truncated_sections, ["history (dropped)"]);
        assert_eq!(calls[1].budget_snapshot["step_tokens_left"], 5000);
        assert_eq!(calls[1].total_tokens_requested, Some(20 + 256));
        assert_eq!(page.total_cost, calls[1].cost);

        // The step is retried: the paid response comes from the store.
        let again = tracked_chat(&db.store, &client, &ctx, &req, RetryPolicy::default())
            .await
            .unwrap();
        assert!(again.cached);
        assert_eq!(again.response.content, "The criteria are ...");
        assert_eq!(fake.seen.lock().unwrap().len(), 2, "no request sent twice");
        assert_eq!(db.count("llm_calls").await, 2);

        // The planted secret reached the provider but nothing written.
        let written = serde_json::to_string(
            &db.store
                .list_llm_calls(conv, &Default::default())
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(!written.contains(PLANTED), "secret in the call rows");
        assert!(written.contains("[REDACTED]"));
        if let ai_team_tests::Raw::Sqlite(s) = &db.raw {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(s.pool())
                .await
                .unwrap();
            let ai_team_providers::store::DatabaseUrl::SqliteFile(path) = &db.url else {
                unreachable!()
            };
            let bytes = std::fs::read(path).unwrap();
            let needle = PLANTED.as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "secret in the database file"
            );
        }
    }

    #[tokio::test]
    async fn large_bodies_move_to_the_blob_store_with_a_checksum() {
        use ai_team_core::blob::BlobStore;
        use ai_team_core::tracking::Spill;
        use ai_team_providers::blob::LocalBlobStore;

        let db = TestDb::sqlite().await;
        let wf = seed::workflow(&*db.store, "BLOB-1").await;
        let conv = seed::conversation(&*db.store, wf, None, "analysis").await;
        let long_answer = format!("needle {}", "x".repeat(5000));
        let (base, fake) = start(vec![reply(200, ok_body(&long_answer))]).await;
        let client = openai(&base, Duration::from_secs(5));
        let dir =
            std::env::temp_dir().join(format!("ai_team_blobs_{}", uuid::Uuid::new_v4().simple()));
        let blobs = LocalBlobStore::new(&dir);
        let catalog = Catalog::builtin();
        let exec = db.store.create_execution(wf).await.unwrap();
        let ctx = CallContext {
            conversation_id: conv,
            execution_id: Some(exec.id),
            catalog: &catalog,
            budget_snapshot: json!({}),
            truncated_sections: vec![],
            prompt_tokens_estimate: None,
            redact: true,
            spill: Some(Spill {
                blobs: &blobs,
                threshold: 1024,
            }),
        };
        tracked_chat(&db.store, &client, &ctx, &request(), RetryPolicy::default())
            .await
            .unwrap();
        let call = db
            .store
            .list_llm_calls(conv, &Default::default())
            .await
            .unwrap()
            .calls
            .remove(0);
        assert!(
            call.request_data.get("messages").is_some(),
            "small request stays inline"
        );
        let uri = call.response_data["blob_uri"]
            .as_str()
            .expect("response moved to a blob");
        let bytes = blobs.get(uri).await.unwrap();
        assert_eq!(call.response_data["size_bytes"], bytes.len());
        assert_eq!(
            call.response_data["sha256"],
            ai_team_core::tracking::sha256_hex(&bytes)
        );
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["content"], long_answer);
        // The row keeps the start of the body, which `q` searches
        let preview = call.response_data["preview"].as_str().expect("a preview");
        assert_eq!(
            preview.chars().count(),
            ai_team_core::tracking::SPILL_PREVIEW_CHARS
        );
        assert!(String::from_utf8_lossy(&bytes).starts_with(preview));
        for (q, found) in [("NEEDLE", 1), ("haystack", 0)] {
            let query = ai_team_core::query::LlmCallQuery {
                q: Some(q.into()),
                ..Default::default()
            };
            let page = db.store.list_llm_calls(conv, &query).await.unwrap();
            assert_eq!(page.calls.len(), found, "q={q}");
        }
        let again = tracked_chat(&db.store, &client, &ctx, &request(), RetryPolicy::default())
            .await
            .unwrap();
        assert!(again.cached, "a spilled response is still reused");
        assert_eq!(again.response.content, long_answer);
        assert_eq!(fake.seen.lock().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A context for one conversation of a fresh execution.
    async fn context_for(db: &TestDb, key: &str) -> (i64, i64) {
        let wf = seed::workflow(&*db.store, key).await;
        let exec = db.store.create_execution(wf).await.unwrap();
        let conv = seed::conversation(&*db.store, wf, Some(exec.id), "implementation").await;
        (exec.id, conv)
    }

    fn ctx<'a>(catalog: &'a Catalog, exec: i64, conv: i64) -> CallContext<'a> {
        CallContext {
            conversation_id: conv,
            execution_id: Some(exec),
            catalog,
            budget_snapshot: json!({}),
            truncated_sections: vec![],
            prompt_tokens_estimate: Some(20),
            redact: true,
            spill: None,
        }
    }

    #[tokio::test]
    async fn an_answer_holding_a_secret_is_stored_redacted_and_asked_again_not_replayed() {
        // Given an answer that quotes a key
        let db = TestDb::sqlite().await;
        let (exec, conv) = context_for(&db, "SECRET-1").await;
        let answer = format!("```python app/config.py\nKEY = \"{PLANTED}\"\n```");
        let (base, fake) = start(vec![
            reply(200, ok_body(&answer)),
            reply(200, ok_body(&answer)),
        ])
        .await;
        let client = openai(&base, Duration::from_secs(5));
        let catalog = Catalog::builtin();
        let ctx = ctx(&catalog, exec, conv);

        // When the step asks, then asks the same again (a retried step)
        let first = tracked_chat(&db.store, &client, &ctx, &request(), RetryPolicy::default())
            .await
            .unwrap();
        let again = tracked_chat(&db.store, &client, &ctx, &request(), RetryPolicy::default())
            .await
            .unwrap();

        // Then the row holds no secret and says it was redacted, and the
        // retry gets the real answer from the provider, not "[REDACTED]"
        assert_eq!(first.response.content, answer);
        let calls = db
            .store
            .list_llm_calls(conv, &Default::default())
            .await
            .unwrap()
            .calls;
        assert!(calls.iter().all(|c| c.response_data["redacted"] == true));
        assert!(!serde_json::to_string(&calls).unwrap().contains(PLANTED));
        assert!(!again.cached, "a redacted answer is not replayed");
        assert_eq!(again.response.content, answer);
        assert_eq!(fake.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn an_answer_whose_prose_only_was_redacted_is_still_replayed() {
        let db = TestDb::sqlite().await;
        let (exec, conv) = context_for(&db, "SECRET-2").await;
        let answer = format!(
            "Use the key {PLANTED} from the vault.\n```python app/a.py\ntoken = email[::-1]\n```"
        );
        let (base, fake) = start(vec![reply(200, ok_body(&answer))]).await;
        let client = openai(&base, Duration::from_secs(5));
        let catalog = Catalog::builtin();
        let ctx = ctx(&catalog, exec, conv);
        tracked_chat(&db.store, &client, &ctx, &request(), RetryPolicy::default())
            .await
            .unwrap();
        let again = tracked_chat(&db.store, &client, &ctx, &request(), RetryPolicy::default())
            .await
            .unwrap();
        assert!(again.cached, "paid once");
        assert!(!again.response.content.contains(PLANTED));
        assert!(again.response.content.contains("token = email[::-1]"));
        assert_eq!(fake.seen.lock().unwrap().len(), 1);
    }

    fn body_with_usage(usage: Value) -> String {
        let mut body: Value = serde_json::from_str(&ok_body("The criteria are ...")).unwrap();
        match usage {
            Value::Null => {
                body.as_object_mut().unwrap().remove("usage");
            }
            u => body["usage"] = u,
        }
        body.to_string()
    }

    #[tokio::test]
    async fn absurd_negative_or_missing_usage_is_clamped_or_estimated_and_marked() {
        let db = TestDb::sqlite().await;
        let catalog = Catalog::builtin();
        let model = catalog.lookup("gpt-4o-2024-08-06");
        let cases = [
            (
                json!({"prompt_tokens": i64::MAX, "completion_tokens": i64::MAX}),
                (model.context_window, model.max_output_tokens),
                "usage_clamped",
            ),
            (
                json!({"prompt_tokens": -1000, "completion_tokens": -1}),
                (20, 7),
                "usage_estimated",
            ),
            (Value::Null, (20, 7), "usage_estimated"),
            (
                json!({"prompt_tokens": 1e30, "completion_tokens": "10"}),
                (20, 7),
                "usage_estimated",
            ),
        ];
        for (i, (usage, (prompt, completion), flag)) in cases.into_iter().enumerate() {
            let (exec, conv) = context_for(&db, &format!("USAGE-{i}")).await;
            let (base, _fake) = start(vec![reply(200, body_with_usage(usage.clone()))]).await;
            let client = openai(&base, Duration::from_secs(5));
            let t = tracked_chat(
                &db.store,
                &client,
                &ctx(&catalog, exec, conv),
                &request(),
                RetryPolicy::default(),
            )
            .await
            .unwrap();
            assert_eq!(
                (
                    t.response.usage.prompt_tokens,
                    t.response.usage.completion_tokens
                ),
                (prompt, completion),
                "{usage}"
            );
            let call = db
                .store
                .list_llm_calls(conv, &Default::default())
                .await
                .unwrap()
                .calls
                .remove(0);
            assert_eq!(
                (call.prompt_tokens, call.completion_tokens),
                (prompt, completion)
            );
            assert_eq!(
                call.budget_snapshot[flag], true,
                "{usage}: {}",
                call.budget_snapshot
            );
            assert!(call.cost >= 0);
            let e = db.store.execution_by_id(exec).await.unwrap();
            assert_eq!(e.total_tokens, prompt + completion);
        }
    }

    #[tokio::test]
    async fn a_response_body_over_8_mib_is_refused_without_reading_it_whole() {
        let db = TestDb::sqlite().await;
        let (exec, conv) = context_for(&db, "BIG-1").await;
        let big = ok_body(&"x".repeat(9 * 1024 * 1024));
        let (base, fake) = start(vec![reply(200, big.clone()), reply(200, big)]).await;
        let client = openai(&base, Duration::from_secs(30));
        let catalog = Catalog::builtin();
        let err = tracked_chat(
            &db.store,
            &client,
            &ctx(&catalog, exec, conv),
            &request(),
            RetryPolicy::default(),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        assert_eq!(fake.seen.lock().unwrap().len(), 1, "not retried");
    }

    #[tokio::test]
    async fn tracked_calls_on_sqlite() {
        every_attempt_is_a_row_and_a_paid_response_is_reused(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn tracked_calls_on_postgres() {
        every_attempt_is_a_row_and_a_paid_response_is_reused(Backend::Postgres).await;
    }
}
