//! Live streaming from the event log (API.md "Real-time streaming"), on
//! SQLite and PostgreSQL: replay from `Last-Event-ID`, live events during
//! an execution with nothing lost or doubled between replay and live,
//! heartbeats, the end of the stream on delete, WebSocket frames, the
//! status-only stream, a slow subscriber cut without slowing the others,
//! and events written by another process (two `ai-team serve` on one
//! PostgreSQL database).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::Duration;

use ai_team_core::ledger::{EventKind, NewEvent};
use ai_team_functions::AppState;
use ai_team_functions::event_hub::{Filter, Frame};
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::sse::SseClient;
use ai_team_tests::{Backend, TestApp, TestDb, binary, config_with, on_both_databases};
use futures_util::StreamExt;
use serde_json::{Value, json};

on_both_databases!(
    a_late_client_replays_the_log_and_resumes_after_its_last_event,
    a_live_client_gets_every_event_of_an_execution_once_in_order,
    heartbeats_arrive_and_the_stream_ends_when_the_workflow_is_deleted,
    websocket_frames_resume_after_the_given_id,
    the_status_stream_sends_the_status_info_and_ends_when_terminal,
    a_slow_subscriber_is_cut_and_the_others_get_everything,
    bad_requests_to_the_streams_are_refused_clearly,
);

async fn app_for(db: &TestDb, h: &Harness, vars: &[(&str, &str)]) -> TestApp {
    let state = AppState::new(db.store.clone(), config_with(vars))
        .with_engine(h.engine.clone())
        .with_events(Duration::from_millis(200));
    TestApp::spawn_state(state).await
}

async fn setup(db: &TestDb) -> (FakeLlm, Harness) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(db, &llm.base_url(), &[]).await;
    (llm, h)
}

const WAIT: Duration = Duration::from_secs(10);

async fn a_late_client_replays_the_log_and_resumes_after_its_last_event(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let app = app_for(&db, &h, &[]).await;
    let wf = h.workflow("SSE-1").await;
    h.run_to_end(wf.id).await;
    let log = db.store.events_after(wf.id, 0, 10_000).await.unwrap();
    assert!(log.len() > 20);

    // No Last-Event-ID: the whole log, in order, ids as in the store.
    let url = app.url(&format!("/events/workflows/{}/stream", wf.id));
    let mut c = SseClient::connect(&url, None).await;
    let frames = c.events(log.len(), WAIT).await;
    let ids: Vec<i64> = frames.iter().map(|f| f.id.unwrap()).collect();
    assert_eq!(ids, log.iter().map(|e| e.id).collect::<Vec<_>>());
    for (f, e) in frames.iter().zip(&log) {
        assert_eq!(f.event, "message", "unnamed, so onmessage receives it");
        assert_eq!(f.data["data"], e.data);
        assert_eq!(f.data["type"], e.event_type);
    }
    // Nothing more until something happens.
    assert!(c.events(1, Duration::from_millis(500)).await.is_empty());

    // Reconnecting after id 10 gets 11.. and nothing twice.
    let mut again = SseClient::connect(&url, Some(10)).await;
    let rest = again.events(log.len() - 10, WAIT).await;
    assert_eq!(rest.first().and_then(|f| f.id), Some(11));
    assert_eq!(rest.len(), log.len() - 10);
    // Last-Event-ID: 0 replays the whole log.
    let mut zero = SseClient::connect(&url, Some(0)).await;
    assert_eq!(zero.events(log.len(), WAIT).await.len(), log.len());
}

async fn a_live_client_gets_every_event_of_an_execution_once_in_order(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let app = app_for(&db, &h, &[]).await;
    let wf = h.workflow("SSE-2").await;
    db.store
        .append_events(
            wf.id,
            None,
            &[NewEvent::new(
                EventKind::Workflow,
                json!({"note": "before"}),
            )],
        )
        .await
        .unwrap();
    let url = app.url(&format!("/events/workflows/{}/stream", wf.id));
    let mut early = SseClient::connect(&url, None).await;
    assert_eq!(
        early.events(1, WAIT).await[0].data["data"]["note"],
        "before"
    );
    // A second client joins while the execution runs.
    let run = {
        let h_engine = h.engine.clone();
        let worker = h.worker.clone();
        tokio::spawn(async move {
            h_engine.start(wf.id).await.unwrap();
            while worker.try_execute_next().await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    let mut late = SseClient::connect(&url, Some(1)).await;
    run.await.unwrap();
    let log = db.store.events_after(wf.id, 0, 10_000).await.unwrap();
    let got_early = early.events(log.len() - 1, WAIT).await;
    let got_late = late.events(log.len() - 1, WAIT).await;
    let expect: Vec<i64> = log.iter().skip(1).map(|e| e.id).collect();
    assert_eq!(
        got_early.iter().map(|f| f.id.unwrap()).collect::<Vec<_>>(),
        expect
    );
    assert_eq!(
        got_late.iter().map(|f| f.id.unwrap()).collect::<Vec<_>>(),
        expect
    );
    assert_eq!(got_late.last().unwrap().data["data"]["status"], "completed");
    let types: std::collections::BTreeSet<&str> = got_early
        .iter()
        .map(|f| f.data["type"].as_str().unwrap())
        .collect();
    for t in [
        "workflow",
        "execution",
        "conversation",
        "message",
        "llm_call",
        "governance",
    ] {
        assert!(types.contains(t), "{t} missing from {types:?}");
    }
}

async fn heartbeats_arrive_and_the_stream_ends_when_the_workflow_is_deleted(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let app = app_for(&db, &h, &[("HEARTBEAT_INTERVAL_SECONDS", "1")]).await;
    let wf = h.workflow("SSE-3").await;
    let url = app.url(&format!("/events/workflows/{}/stream", wf.id));
    let mut c = SseClient::connect(&url, None).await;
    let beat = c.next(Duration::from_secs(3)).await.expect("a heartbeat");
    assert_eq!(beat.event, "heartbeat");
    assert_eq!(beat.id, None, "heartbeats do not move Last-Event-ID");
    assert!(chrono::DateTime::parse_from_rfc3339(beat.data["time"].as_str().unwrap()).is_ok());
    assert_eq!(
        app.delete(&format!("/workflows/{}", wf.id)).await.status(),
        200
    );
    let deadline = std::time::Instant::now() + WAIT;
    while !c.ended && std::time::Instant::now() < deadline {
        c.next(Duration::from_secs(1)).await;
    }
    assert!(c.ended, "the stream ends when its workflow is gone");
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
}

async fn websocket_frames_resume_after_the_given_id(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let app = app_for(&db, &h, &[]).await;
    let wf = h.workflow("SSE-4").await;
    h.run_to_end(wf.id).await;
    let log = db.store.events_after(wf.id, 0, 10_000).await.unwrap();
    let url = format!("ws://{}/ws/workflows/{}?after=5", app.address, wf.id);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    let mut ids = Vec::new();
    while ids.len() < log.len() - 5 {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("frame in time")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v["type"] == "heartbeat" {
            continue;
        }
        assert!(v["data"].is_object());
        ids.push(v["id"].as_i64().unwrap());
    }
    assert_eq!(ids, log.iter().skip(5).map(|e| e.id).collect::<Vec<_>>());
    let _ = ws.close(None).await;
}

async fn the_status_stream_sends_the_status_info_and_ends_when_terminal(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let app = app_for(&db, &h, &[]).await;
    let wf = h.workflow("SSE-5").await;
    h.run_to_end(wf.id).await;
    let head = db.store.last_event_id(wf.id).await.unwrap();
    let mut c = SseClient::connect(&app.url(&format!("/events/workflows/{}", wf.id)), None).await;
    let got = c.events(3, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1, "one frame: the status as it is, terminal");
    assert!(c.ended, "the stream ends after the terminal frame");
    assert_eq!(got[0].id, Some(head));
    assert_eq!(got[0].data["workflow_id"], wf.id);
    assert_eq!(got[0].data["status"], "completed");
    assert_eq!(got[0].data["isTerminal"], true);
    assert!(got[0].data["finished_at"].is_string());
}

async fn a_slow_subscriber_is_cut_and_the_others_get_everything(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let wf = h.workflow("SSE-6").await;
    let hub = ai_team_functions::event_hub::EventHub::new(
        db.store.clone(),
        Duration::from_millis(100),
        Duration::from_secs(60),
        Duration::from_secs(120),
    );
    let mut slow = hub.subscribe(wf.id, 0, Filter::All).await.unwrap();
    let mut fast = hub.subscribe(wf.id, 0, Filter::All).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < 300 {
            match tokio::time::timeout(Duration::from_secs(20), fast.recv()).await {
                Ok(Some(Frame::Event(e, _))) => ids.push(e.id),
                Ok(Some(Frame::Heartbeat(_))) => {}
                _ => break,
            }
        }
        ids
    });
    let started = std::time::Instant::now();
    for i in 0..300 {
        db.store
            .append_events(
                wf.id,
                None,
                &[NewEvent::new(EventKind::Message, json!({"i": i}))],
            )
            .await
            .unwrap();
    }
    let writes = started.elapsed();
    let ids = reader.await.unwrap();
    assert_eq!(
        ids,
        (1..=300).collect::<Vec<i64>>(),
        "the reading subscriber got every event once"
    );
    assert!(
        writes < Duration::from_secs(10),
        "writers were not held back ({writes:?})"
    );
    // The slow one was never read: after the send timeout it is cut; what
    // it buffered is bounded, then the stream ends.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut buffered = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(1), slow.recv()).await {
        buffered += 1;
    }
    assert!(buffered <= 65, "bounded buffer, got {buffered}");
    assert!(slow.recv().await.is_none(), "the slow subscriber was cut");
}

async fn bad_requests_to_the_streams_are_refused_clearly(db: TestDb) {
    let (_llm, h) = setup(&db).await;
    let app = app_for(&db, &h, &[]).await;
    assert_eq!(app.get("/events/workflows/999/stream").await.status(), 404);
    assert_eq!(app.get("/events/workflows/abc/stream").await.status(), 422);
    let wf = h.workflow("SSE-7").await;
    let bad = app
        .client
        .get(app.url(&format!("/events/workflows/{}/stream", wf.id)))
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.json::<Value>().await.unwrap()["detail"].is_array());
}

/// Two `ai-team serve` processes on one PostgreSQL database: one serves
/// the API only, the other runs the steps; a client of the first sees
/// every event the second writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_by_another_process_reach_the_stream() {
    let db = TestDb::new(Backend::Postgres).await;
    let llm = FakeLlm::start(Script::default()).await;
    let ai_team_providers::store::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let data = std::env::temp_dir().join(format!("ai_team_two_{}", uuid::Uuid::new_v4().simple()));
    let serve = |concurrency: &str, worker: &str| {
        let mut child = std::process::Command::new(binary())
            .args(["serve", "--port", "0"])
            .env("DATABASE_URL", url)
            .env("OPENAI_BASE_URL", llm.base_url())
            .env("OPENAI_MODEL", "gpt-4o-mini")
            .env("LLM_PROVIDER", "openai")
            .env("AI_TEAM_DATA_DIR", &data)
            .env("AI_TEAM_WORKER_CONCURRENCY", concurrency)
            .env("AI_TEAM_WORKER_ID", worker)
            .env("AI_TEAM_LOG_FORMAT", "json")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn serve");
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines.next().expect("a log line").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "listening" {
                break v["address"].as_str().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (child, address)
    };
    let (mut api, api_addr) = serve("0", "api-only");
    let (mut worker, _) = serve("2", "worker-b");
    let client = reqwest::Client::new();
    let wf: Value = client
        .post(format!("http://{api_addr}/workflows"))
        .json(&json!({"name": "TWO-1: Reset", "jira_story_id": "TWO-1", "description": "Reset a password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = wf["id"].as_i64().unwrap();
    let mut stream = SseClient::connect(
        &format!("http://{api_addr}/events/workflows/{id}/stream"),
        None,
    )
    .await;
    let started = client
        .post(format!("http://{api_addr}/workflows/{id}/execute"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let Some(f) = stream.next(Duration::from_secs(5)).await else {
            continue;
        };
        if f.event == "heartbeat" {
            continue;
        }
        let done = f.data["type"] == "workflow" && f.data["data"]["status"] == "completed";
        frames.push(f);
        if done {
            break;
        }
    }
    let log = db.store.events_after(id, 0, 10_000).await.unwrap();
    assert_eq!(
        frames.iter().map(|f| f.id.unwrap()).collect::<Vec<_>>(),
        log.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert!(
        frames.iter().any(|f| f.data["type"] == "conversation"),
        "steps ran in the other process"
    );
    let _ = api.kill();
    let _ = worker.kill();
    let _ = api.wait();
    let _ = worker.wait();
    let _ = std::fs::remove_dir_all(data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_about_a_workflow_are_log_events_on_its_stream() {
    let db = TestDb::new(Backend::Sqlite).await;
    let llm = FakeLlm::start(Script {
        fail_with: Some(500),
        ..Script::default()
    })
    .await;
    let ai_team_providers::store::DatabaseUrl::SqliteFile(path) = &db.url else {
        unreachable!()
    };
    let url = format!("sqlite:///{}", path.display());
    let data = std::env::temp_dir().join(format!("ai_team_logs_{}", uuid::Uuid::new_v4().simple()));
    let mut child = std::process::Command::new(binary())
        .args(["serve", "--port", "0"])
        .env("DATABASE_URL", &url)
        .env("OPENAI_BASE_URL", llm.base_url())
        .env("OPENAI_MODEL", "gpt-4o-mini")
        .env("LLM_PROVIDER", "openai")
        .env("AI_TEAM_DATA_DIR", &data)
        .env("AI_TEAM_LLM_MAX_ATTEMPTS", "1")
        .env("AI_TEAM_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("a log line").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["message"] == "listening" {
            break v["address"].as_str().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let client = reqwest::Client::new();
    let wf: Value = client
        .post(format!("http://{address}/workflows"))
        .json(&json!({"name": "LOG-1: x", "jira_story_id": "LOG-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = wf["id"].as_i64().unwrap();
    let mut stream = SseClient::connect(
        &format!("http://{address}/events/workflows/{id}/stream"),
        None,
    )
    .await;
    client
        .post(format!("http://{address}/workflows/{id}/execute"))
        .send()
        .await
        .unwrap();
    let mut log = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log.is_none() && std::time::Instant::now() < deadline {
        if let Some(f) = stream.next(Duration::from_secs(2)).await
            && f.data["type"] == "log"
        {
            log = Some(f);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(data);
    let log = log.expect("a log event");
    assert_eq!(log.event, "message");
    assert_eq!(log.data["data"]["level"], "warning");
    assert_eq!(log.data["data"]["message"], "execution failed");
    assert!(log.data["data"]["timestamp"].is_string());
}
