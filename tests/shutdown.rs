//! SIGTERM stops `ai-team serve` even while event streams are open: the
//! built binary is started over a scripted LLM that answers slowly (so a
//! step is in flight), an SSE client and a WebSocket client connect, and
//! SIGTERM must end the streams and the process within a few seconds,
//! with no step lease left held by the stopped worker.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_team_providers::store::DatabaseUrl;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::sse::SseClient;
use ai_team_tests::{Backend, TestDb, binary};
use serde_json::{Value, json};

fn url_of(db: &TestDb) -> String {
    match &db.url {
        DatabaseUrl::SqliteFile(p) => format!("sqlite:///{}", p.display()),
        DatabaseUrl::Postgres(u) => u.clone(),
        DatabaseUrl::SqliteMemory => unreachable!("a file is needed across processes"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(db_url: &str, llm: &str, data: &str, port: u16) -> Child {
    Command::new(binary())
        .args(["serve", "--port", &port.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("OPENAI_BASE_URL", llm)
        .env("OPENAI_MODEL", "meta.llama3-1-70b-instruct-v1:0")
        .env("AI_TEAM_DATA_DIR", data)
        .env("AI_TEAM_WORKER_ID", "terminated")
        .env("AI_TEAM_WORKER_CONCURRENCY", "2")
        .env("AI_TEAM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ai-team serve")
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    match &db.raw {
        ai_team_tests::Raw::Sqlite(s) => {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await
        }
        ai_team_tests::Raw::Postgres(s) => {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await
        }
    }
    .expect(sql)
}

async fn sigterm_stops_serve_with_open_streams(backend: Backend) {
    // Given `serve` running a slow execution, with an SSE and a WebSocket
    // client following the workflow
    let db = TestDb::new(backend).await;
    let llm = FakeLlm::start(Script {
        delay_ms: (1500, 2500),
        ..Script::default()
    })
    .await;
    let data =
        std::env::temp_dir().join(format!("ai_team_sigterm_{}", uuid::Uuid::new_v4().simple()));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn(
        &url_of(&db),
        &llm.base_url(),
        &data.display().to_string(),
        port,
    );
    let http = reqwest::Client::new();
    let up = Instant::now();
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wf: Value = http
        .post(format!("{base}/workflows"))
        .json(
            &json!({"name": "Reset", "jira_story_id": "TERM-1", "description": "Reset by e-mail."}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = wf["id"].as_i64().unwrap();
    let started = http
        .post(format!("{base}/workflows/{id}/execute"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let mut sse = SseClient::connect(&format!("{base}/events/workflows/{id}/stream"), None).await;
    assert!(
        !sse.events(1, Duration::from_secs(10)).await.is_empty(),
        "the stream is live"
    );
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/workflows/{id}"))
            .await
            .expect("WebSocket connects");
    // A step is in flight (the model answers in 1.5-2.5 s)
    let deadline = Instant::now() + Duration::from_secs(15);
    while llm.requests() == 0 {
        assert!(Instant::now() < deadline, "no step started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // When the process gets SIGTERM
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // Then it exits within a few seconds, cleanly
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("serve still running 5 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = sent.elapsed();
    println!("exited {exit} after {} ms", took.as_millis());
    assert!(exit.success(), "{exit}");
    // And the streams ended
    while sse.next(Duration::from_secs(2)).await.is_some() {}
    assert!(sse.ended, "the SSE stream was ended by the server");
    use futures_util::StreamExt;
    let ws_end = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ws_end.is_ok(), "the WebSocket was closed");
    // And no step is left leased to the stopped worker: another resumes at once
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM step_leases WHERE status = 'running' AND lease_owner = 'terminated'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM queue_jobs WHERE status = 'running' AND locked_by = 'terminated'"
        )
        .await,
        0
    );
    let _ = std::fs::remove_dir_all(data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serve_with_open_streams_on_sqlite() {
    sigterm_stops_serve_with_open_streams(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serve_with_open_streams_on_postgres() {
    sigterm_stops_serve_with_open_streams(Backend::Postgres).await;
}
