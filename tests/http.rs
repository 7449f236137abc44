//! The HTTP contract of API.md against the real router on a random port,
//! over real SQLite and PostgreSQL databases.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::Store;
use ai_team_providers::store::{self as stores, DatabaseUrl};
use ai_team_tests::proxy::Proxy;
use ai_team_tests::seed::{self, Lcg};
use ai_team_tests::{Backend, TestApp, TestDb, config_with};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn app_on(backend: Backend) -> (TestApp, TestDb) {
    let db = TestDb::new(backend).await;
    let app = TestApp::spawn(db.store.clone(), config_with(&[])).await;
    (app, db)
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("JSON body")
}

fn story(id: &str) -> Value {
    json!({"name": "Reset password", "jira_story_id": id, "description": "As a user…"})
}

#[tokio::test]
async fn health_reports_the_database() {
    let (app, _db) = app_on(Backend::Sqlite).await;
    let r = app.get("/health").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert!(body["version"].is_string());
}

async fn concurrent_creates_make_one_workflow(backend: Backend) {
    let (app, db) = app_on(backend).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let r = app.post_json("/workflows", &story("PROJ-50")).await;
                let status = r.status();
                (status, json_of(r).await["id"].as_i64().unwrap())
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
        ids.push(id);
    }
    assert_eq!(created, 1);
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(db.count("workflows").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_of_one_story_on_sqlite_make_one_row() {
    concurrent_creates_make_one_workflow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_of_one_story_on_postgres_make_one_row() {
    concurrent_creates_make_one_workflow(Backend::Postgres).await;
}

#[tokio::test]
async fn workflow_lifecycle_create_get_list_delete() {
    let (app, db) = app_on(Backend::Postgres).await;
    let r = app.post_json("/workflows", &story("LIFE-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = json_of(r).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "pending");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let again = app.post_json("/workflows", &story("LIFE-1")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(json_of(again).await, created);

    let conv = seed::conversation(&*db.store, id, None, "analysis").await;
    let mut rng = Lcg::new(9);
    db.store
        .record_llm_calls(&[seed::call(&mut rng, conv, None)])
        .await
        .unwrap();
    let detail = json_of(app.get(&format!("/workflows/{id}")).await).await;
    assert_eq!(detail["jira_story_id"], "LIFE-1");
    assert_eq!(detail["conversations"][0]["id"], conv);
    assert_eq!(detail["conversations"][0]["messages"], json!([]));
    assert_eq!(
        detail["conversations"][0]["llm_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(detail["conversations"][0]["total_cost"].is_number());
    assert!(detail["code_files"].is_array());

    let plain = json_of(app.get("/workflows").await).await;
    assert_eq!(
        plain.as_array().unwrap().len(),
        1,
        "plain array without page params"
    );
    let paged = json_of(app.get("/workflows?page_size=10").await).await;
    assert_eq!(paged["total"], 1);
    assert_eq!(paged["page"], 1);
    assert_eq!(paged["items"][0]["id"], id);

    let deleted = app.delete(&format!("/workflows/{id}")).await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(json_of(deleted).await["message"].is_string());
    assert_eq!(db.count("conversations").await, 0);
    assert_eq!(db.count("llm_calls").await, 0);
    assert_eq!(
        app.get(&format!("/workflows/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/workflows/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_a_running_workflow_is_a_conflict() {
    let (app, db) = app_on(Backend::Sqlite).await;
    let id = seed::workflow(&*db.store, "RUN-1").await;
    db.store.create_execution(id).await.unwrap();
    let r = app.delete(&format!("/workflows/{id}")).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(json_of(r).await["detail"].is_string());
    assert_eq!(db.count("workflows").await, 1);
}

#[tokio::test]
async fn executions_list_and_get_scoped_to_their_workflow() {
    let (app, db) = app_on(Backend::Sqlite).await;
    let a = seed::workflow(&*db.store, "EX-A").await;
    let b = seed::workflow(&*db.store, "EX-B").await;
    let e = db.store.create_execution(a).await.unwrap();
    let list = json_of(app.get(&format!("/workflows/{a}/executions")).await).await;
    assert_eq!(list[0]["id"], e.id);
    assert_eq!(list[0]["models"], json!([]));
    assert_eq!(list[0]["total_cost"], 0.0);
    let paged = json_of(app.get(&format!("/workflows/{a}/executions?page=1")).await).await;
    assert_eq!(paged["total"], 1);
    let one = app
        .get(&format!("/workflows/{a}/executions/{}", e.id))
        .await;
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(json_of(one).await["status"], "pending");
    let other = app
        .get(&format!("/workflows/{b}/executions/{}", e.id))
        .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/workflows/999/executions").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn execute_says_the_engine_is_not_available_rather_than_pretending() {
    let (app, db) = app_on(Backend::Sqlite).await;
    let id = seed::workflow(&*db.store, "ENG-1").await;
    for path in [
        format!("/workflows/{id}/execute"),
        format!("/workflows/{id}/executions/start"),
    ] {
        let r = app.client.post(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json_of(r).await["detail"], "engine not available");
    }
    assert_eq!(db.count("executions").await, 0);
    let missing = app
        .client
        .post(app.url("/workflows/999/execute"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn non_integer_and_out_of_range_ids_are_422() {
    let (app, _db) = app_on(Backend::Sqlite).await;
    for path in [
        "/workflows/abc",
        "/workflows/0",
        "/workflows/-4",
        "/workflows/99999999999999999999999",
        "/workflows/1.5/executions",
        "/workflows/1/executions/x",
        "/conversations/abc/llm-calls",
        "/conversations/abc/messages",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body = json_of(r).await;
        assert_eq!(body["detail"][0]["loc"][0], "path", "{path}");
        assert!(body["detail"][0]["msg"].is_string());
    }
    let r = app.delete("/workflows/abc").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn invalid_query_parameters_are_422_and_unknown_ones_ignored() {
    let (app, db) = app_on(Backend::Sqlite).await;
    let wf = seed::workflow(&*db.store, "Q-1").await;
    let conv = seed::conversation(&*db.store, wf, None, "analysis").await;
    for query in [
        "page=0",
        "page=abc",
        "page_size=0",
        "page_size=201",
        "sort_by=price",
        "sort_dir=sideways",
        "date_from=yesterday",
        "date_to=2026-13-01",
    ] {
        let r = app
            .get(&format!("/conversations/{conv}/llm-calls?{query}"))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(json_of(r).await["detail"][0]["loc"][0], "query");
    }
    assert_eq!(
        app.get("/workflows?page_size=500").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get(&format!("/conversations/{conv}/messages?page=-1"))
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let ok = app
        .get(&format!(
            "/conversations/{conv}/llm-calls?whatever=1&page_size=200"
        ))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

/// A NUL reached PostgreSQL as text (500, "invalid byte sequence") and cut
/// SQLite's pattern short (every call matched); it is a 422 on both.
async fn a_nul_in_a_text_filter_is_422(backend: Backend) {
    let (app, db) = app_on(backend).await;
    let wf = seed::workflow(&*db.store, "NUL-1").await;
    let conv = seed::conversation(&*db.store, wf, None, "analysis").await;
    for (path, field) in [
        (format!("/conversations/{conv}/llm-calls?q=%00"), "q"),
        (
            format!("/conversations/{conv}/llm-calls?q=pass%00word"),
            "q",
        ),
        (
            format!("/conversations/{conv}/llm-calls?model=gpt%00"),
            "model",
        ),
        (format!("/workflows/{wf}/diffs?path=app%00"), "path"),
        (format!("/workflows/{wf}/artifacts?kind=%00x"), "kind"),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body = json_of(r).await;
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{path}");
    }
    let ok = app
        .get(&format!("/conversations/{conv}/llm-calls?q=pass%20word"))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_nul_in_a_text_filter_is_422_on_sqlite() {
    a_nul_in_a_text_filter_is_422(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_nul_in_a_text_filter_is_422_on_postgres() {
    a_nul_in_a_text_filter_is_422(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_bodies_are_422_and_oversized_ones_413() {
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(
        db.store.clone(),
        config_with(&[("AI_TEAM_MAX_BODY_BYTES", "2048")]),
    )
    .await;
    let post = |body: &'static str, ctype: &'static str| {
        app.client
            .post(app.url("/workflows"))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    for (body, ctype) in [
        ("{not json", "application/json"),
        ("{\"name\": \"x\"}", "application/json"),
        (
            "{\"name\": 5, \"jira_story_id\": \"A-1\"}",
            "application/json",
        ),
        (
            "{\"name\": \"x\", \"jira_story_id\": \"   \"}",
            "application/json",
        ),
        (
            "{\"name\": \"x\", \"jira_story_id\": \"A-1\"}",
            "text/plain",
        ),
        ("[]", "application/json"),
    ] {
        let r = post(body, ctype).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} as {ctype}"
        );
        assert!(json_of(r).await["detail"].is_array());
    }
    let missing = json_of(post("{\"name\": \"x\"}", "application/json").await.unwrap()).await;
    assert_eq!(
        missing["detail"][0]["loc"],
        json!(["body", "jira_story_id"])
    );
    assert_eq!(missing["detail"][0]["type"], "missing");

    let big = json!({"name": "x", "jira_story_id": "BIG-1", "description": "x".repeat(4096)});
    let r = app.post_json("/workflows", &big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(r).await["detail"], "Request body too large");
    assert_eq!(db.count("workflows").await, 0, "nothing half-written");
}

#[tokio::test]
async fn unknown_routes_and_records_are_404_in_fastapi_shape() {
    let (app, _db) = app_on(Backend::Sqlite).await;
    for path in [
        "/nope",
        "/workflows/77",
        "/conversations/77/llm-calls",
        "/conversations/77/messages",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(json_of(r).await["detail"].is_string(), "{path}");
    }
    let r = app.client.put(app.url("/workflows")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(json_of(r).await["detail"].is_string());
}

#[tokio::test]
async fn bearer_token_guards_everything_but_health_docs_and_webhooks() {
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(
        db.store.clone(),
        config_with(&[("AI_TEAM_API_TOKEN", "s3cret-token")]),
    )
    .await;
    let r = app.get("/workflows").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(json_of(r).await["detail"], "Not authenticated");
    let wrong = app
        .client
        .get(app.url("/workflows"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ok = app
        .client
        .get(app.url("/workflows"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    assert_eq!(app.get("/openapi.json").await.status(), StatusCode::OK);
    assert_eq!(app.get("/docs/").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn clients_over_the_rate_limit_get_429_with_retry_after() {
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(
        db.store.clone(),
        config_with(&[("AI_TEAM_RATE_LIMIT_PER_MINUTE", "5")]),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = app.get("/workflows").await;
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
            assert!(json_of(r).await["detail"].is_string());
        }
    }
    assert_eq!(statuses[..5], [StatusCode::OK; 5]);
    assert_eq!(statuses[5..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    assert_eq!(
        app.get("/health").await.status(),
        StatusCode::OK,
        "health is never limited"
    );
}

/// GET /workflows as a client whose request carries `x-forwarded-for`.
async fn get_forwarded(app: &TestApp, forwarded: &str) -> StatusCode {
    app.client
        .get(app.url("/workflows"))
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .expect("GET")
        .status()
}

#[tokio::test]
async fn a_client_cannot_escape_the_rate_limit_by_choosing_x_forwarded_for() {
    // Given a limit of 3 a minute and no trusted proxy
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(
        db.store.clone(),
        config_with(&[("AI_TEAM_RATE_LIMIT_PER_MINUTE", "3")]),
    )
    .await;

    // When one client sends a new X-Forwarded-For with every request
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(get_forwarded(&app, &format!("198.51.100.{i}")).await);
    }

    // Then it is limited on its own address all the same
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 2]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_clients_are_limited_on_the_hop_the_proxy_wrote() {
    // Given a limit of 2 a minute behind one trusted proxy (the test
    // client plays the proxy: it is the socket peer)
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(
        db.store.clone(),
        config_with(&[
            ("AI_TEAM_RATE_LIMIT_PER_MINUTE", "2"),
            ("AI_TEAM_TRUSTED_PROXIES", "1"),
        ]),
    )
    .await;

    // When client A spends its two requests, then tries again with a
    // forged left-most hop
    assert_eq!(get_forwarded(&app, "203.0.113.1").await, StatusCode::OK);
    assert_eq!(
        get_forwarded(&app, "6.6.6.6, 203.0.113.1").await,
        StatusCode::OK
    );
    let forged = get_forwarded(&app, "7.7.7.7, 203.0.113.1").await;

    // Then A is limited, while client B behind the same proxy is not
    // (one shared key for every client of a proxy is gone)
    assert_eq!(forged, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(get_forwarded(&app, "203.0.113.2").await, StatusCode::OK);
    assert_eq!(
        get_forwarded(&app, "203.0.113.2:50312").await,
        StatusCode::OK,
        "Azure's front end adds the port"
    );
    assert_eq!(
        get_forwarded(&app, "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_and_requests_carry_an_id() {
    let db = TestDb::sqlite().await;
    let app = TestApp::spawn(
        db.store.clone(),
        config_with(&[("AI_TEAM_CORS_ORIGINS", "http://ui.test")]),
    )
    .await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/workflows"))
        .header("origin", "http://ui.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "http://ui.test");
    let other = app
        .client
        .get(app.url("/workflows"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    assert!(!other.headers()["x-request-id"].is_empty());
    let mine = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn openapi_describes_every_route_and_docs_need_no_network() {
    let (app, _db) = app_on(Backend::Sqlite).await;
    let spec = json_of(app.get("/openapi.json").await).await;
    for path in [
        "/health",
        "/workflows",
        "/workflows/{workflow_id}",
        "/workflows/{workflow_id}/execute",
        "/workflows/{workflow_id}/executions",
        "/workflows/{workflow_id}/executions/start",
        "/workflows/{workflow_id}/executions/{execution_id}",
        "/conversations/{conversation_id}/llm-calls",
        "/conversations/{conversation_id}/messages",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
    assert!(spec["components"]["schemas"]["LlmCallPage"].is_object());
    let page = app.get("/docs/").await.text().await.unwrap();
    assert!(page.contains("swagger-ui"));
    let assets = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(
        assets.status(),
        StatusCode::OK,
        "Swagger UI assets are served locally"
    );
    assert!(!page.contains("https://unpkg.com") && !page.contains("cdn.jsdelivr"));
}

#[tokio::test]
async fn llm_calls_endpoint_answers_filters_sorts_and_whole_conversation_totals() {
    let (app, db) = app_on(Backend::Postgres).await;
    let wf = seed::workflow(&*db.store, "CALLS-HTTP").await;
    let conv = seed::conversation(&*db.store, wf, None, "implementation").await;
    let mut rng = Lcg::new(5);
    let calls: Vec<_> = (0..120).map(|_| seed::call(&mut rng, conv, None)).collect();
    db.store.record_llm_calls(&calls).await.unwrap();
    let total_tokens: i64 = calls
        .iter()
        .map(|c| c.prompt_tokens + c.completion_tokens)
        .sum();
    let total_cost: i64 = calls.iter().map(|c| c.cost).sum();

    let body = json_of(
        app.get(&format!(
            "/conversations/{conv}/llm-calls?model=gpt-4o&sort_by=cost&sort_dir=asc&page_size=10&q=PASS&date_from=2026-11-02"
        ))
        .await,
    )
    .await;
    let expected: Vec<_> = {
        let mut v: Vec<_> = calls
            .iter()
            .filter(|c| c.model == "gpt-4o")
            .filter(|c| c.timestamp >= seed::base_time() + chrono::Duration::days(1))
            .filter(|c| {
                c.request_data.to_string().to_lowercase().contains("pass")
                    || c.response_data.to_string().to_lowercase().contains("pass")
            })
            .map(|c| c.cost)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(body["conversation_id"], conv);
    assert_eq!(body["total"], expected.len() as i64);
    assert!(!expected.is_empty());
    let costs: Vec<f64> = body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cost"].as_f64().unwrap())
        .collect();
    let want: Vec<f64> = expected.iter().take(10).map(|n| *n as f64 / 1e9).collect();
    assert_eq!(costs, want);
    assert_eq!(body["total_tokens_used"], total_tokens);
    assert!((body["total_cost"].as_f64().unwrap() - total_cost as f64 / 1e9).abs() < 1e-9);
    let call = &body["calls"][0];
    for field in [
        "id",
        "conversation_id",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "max_tokens",
        "total_tokens_requested",
        "response_time_ms",
        "status",
        "error_code",
        "truncated_sections",
        "prompt_hash",
        "response_hash",
        "budget_snapshot",
        "cost",
        "timestamp",
        "request_data",
        "response_data",
    ] {
        assert!(call.get(field).is_some(), "call lacks {field}");
    }
}

/// The database goes away behind a proxy: requests answer 503 (never a
/// hang or a 500), and the service recovers by itself when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_and_the_service_recovers() {
    let db = TestDb::postgres().await;
    let upstream: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let DatabaseUrl::Postgres(direct) = &db.url else {
        unreachable!()
    };
    let via_proxy = direct.replace("127.0.0.1:5432", &proxy.address.to_string());
    assert_ne!(
        &via_proxy, direct,
        "test database URL must go through the proxy"
    );
    let store: Arc<dyn Store> = stores::connect(&DatabaseUrl::Postgres(via_proxy), false)
        .await
        .unwrap();
    let app = TestApp::spawn(store, config_with(&[])).await;
    assert_eq!(
        app.post_json("/workflows", &story("UP-1")).await.status(),
        StatusCode::CREATED
    );

    proxy.take_down();
    let started = Instant::now();
    let r = app.get("/workflows").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(15), "fails fast");
    let body = json_of(r).await;
    assert!(body["detail"].as_str().unwrap().contains("database"));
    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(health).await["status"], "degraded");
    let write = app.post_json("/workflows", &story("DOWN-1")).await;
    assert_eq!(write.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.bring_back();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get("/workflows").await;
        if r.status() == StatusCode::OK {
            assert_eq!(json_of(r).await.as_array().unwrap().len(), 1);
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    assert_eq!(
        app.post_json("/workflows", &story("UP-2")).await.status(),
        StatusCode::CREATED
    );
}
