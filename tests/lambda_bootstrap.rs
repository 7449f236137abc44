//! The real Lambda bootstraps, run as Lambda runs them: the process
//! starts against a runtime API (a local one here, `support::lambda_runtime_api`),
//! asks for events and posts its answers. The events function streams:
//! its answer arrives in pieces while the request is open, live events
//! included, and ends by itself; the health function answers buffered and
//! mounts only its own routes.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use ai_team_core::ledger::{EventKind, NewEvent};
use ai_team_tests::TestDb;
use ai_team_tests::lambda_runtime_api::{RuntimeApi, Seen, lambda_binary};
use serde_json::{Value, json};

const FUNCTION_URL: &str = include_str!("fixtures/lambda/function_url_get_workflows.json");

/// A function URL event for `GET path`.
fn get(path: &str) -> Vec<u8> {
    let mut event: Value = serde_json::from_str(FUNCTION_URL).unwrap();
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = json!({});
    event["requestContext"]["http"]["path"] = json!(path);
    serde_json::to_vec(&event).unwrap()
}

fn env_for(db: &TestDb, data_dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.redacted()),
        ("AI_TEAM_DATA_DIR", data_dir.display().to_string()),
        ("AI_TEAM_LOG_FORMAT", "json".into()),
        ("AI_TEAM_LOG", "warn".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_bootstrap_streams_its_response_to_the_runtime() {
    // Given a workflow with one event in a database file the function shares
    let db = TestDb::sqlite().await;
    let wf = db.workflow("SHOP-40").await;
    db.store
        .append_events(
            wf.id,
            None,
            &[NewEvent::new(EventKind::Workflow, json!({"n": "first"}))],
        )
        .await
        .unwrap();
    let data = tempdir("events");

    // When lambda-events runs against the runtime API and gets a function
    // URL request for the workflow's stream, capped at 3 seconds
    let mut api =
        RuntimeApi::start(vec![get(&format!("/events/workflows/{}/stream", wf.id))]).await;
    let mut env = env_for(&db, &data);
    env.push(("AI_TEAM_STREAM_MAX_SECONDS", "3".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    api.spawn(&lambda_binary("lambda-events"), &env);

    // Then it is ready, and answers in streaming mode
    assert!(matches!(api.next_seen("ready").await, Seen::Ready(_)));
    match api.next_seen("a response").await {
        Seen::ResponseStarted { streaming } => assert!(streaming, "not streaming"),
        other => panic!("{other:?}"),
    }
    // With the prelude (status, headers), eight NUL bytes, then the log so far
    let mut body = Vec::new();
    let mut appended = false;
    let mut pieces_before_live = 0;
    let ended = loop {
        match api.next_seen("a chunk").await {
            Seen::Chunk(_, bytes) => {
                body.extend_from_slice(&bytes);
                let text = String::from_utf8_lossy(&body);
                if !appended && text.contains("\"n\":\"first\"") {
                    // And an event written by another process while the
                    // response is open arrives on it
                    pieces_before_live = body.len();
                    db.store
                        .append_events(
                            wf.id,
                            None,
                            &[NewEvent::new(EventKind::Workflow, json!({"n": "live"}))],
                        )
                        .await
                        .unwrap();
                    appended = true;
                }
            }
            Seen::ResponseEnded(at) => break at,
            Seen::Error(e) => panic!("the function reported: {e}"),
            Seen::Ready(_) => panic!("asked for the next event before answering"),
            other => panic!("{other:?}"),
        }
    };
    let split = body
        .windows(8)
        .position(|w| w == [0u8; 8])
        .expect("the prelude's NUL separator");
    let prelude: Value = serde_json::from_slice(&body[..split]).expect("a JSON prelude");
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(
        prelude["headers"]["content-type"], "text/event-stream",
        "{prelude}"
    );
    let sse = String::from_utf8_lossy(&body[split + 8..]);
    assert!(sse.contains("\"n\":\"first\""), "{sse}");
    assert!(
        appended && body.len() > pieces_before_live,
        "nothing after the first event"
    );
    assert!(sse.contains("\"n\":\"live\""), "the live event: {sse}");
    // And the stream ended by itself, then the function waits for the next event
    assert!(matches!(api.next_seen("ready again").await, Seen::Ready(at) if at >= ended));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_bootstrap_answers_buffered_and_only_its_routes() {
    // Given lambda-health over a fresh database
    let db = TestDb::sqlite().await;
    let data = tempdir("health");
    let mut api = RuntimeApi::start(vec![get("/health"), get("/workflows")]).await;
    let env = env_for(&db, &data);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = Instant::now();
    api.spawn(&lambda_binary("lambda-health"), &env);

    // When it gets GET /health, then GET /workflows (another group's route)
    let mut answers = Vec::new();
    while answers.len() < 2 {
        match api.next_seen("an answer").await {
            Seen::ResponseStarted { streaming } => {
                assert!(!streaming);
                answers.push(Vec::new());
            }
            Seen::Chunk(_, bytes) => answers.last_mut().unwrap().extend_from_slice(&bytes),
            Seen::Error(e) => panic!("the function reported: {e}"),
            Seen::Ready(_) | Seen::ResponseEnded(_) => {}
        }
    }
    // Wait for the second body to be complete
    loop {
        match api.next_seen("the end").await {
            Seen::Chunk(_, bytes) => answers.last_mut().unwrap().extend_from_slice(&bytes),
            Seen::ResponseEnded(_) => break,
            _ => {}
        }
    }

    // Then /health is 200 and /workflows is the API's 404
    let health: Value = serde_json::from_slice(&answers[0]).unwrap();
    assert_eq!(health["statusCode"], 200, "{health}");
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    let other: Value = serde_json::from_slice(&answers[1]).unwrap();
    assert_eq!(other["statusCode"], 404, "{other}");
    assert_eq!(other["body"], r#"{"detail":"Not Found"}"#);
    assert!(started.elapsed() < Duration::from_secs(60));
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ai_team_{name}_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
