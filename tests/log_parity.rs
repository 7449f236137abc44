//! Log parity (API.md "Real-time streaming"): every event that is
//! streamed is also one structured JSON log line with the same fields, and
//! nothing logged at info about the workflow is missing from the stream.
//! One test in its own binary, because it installs the global subscriber.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_team_functions::AppState;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::sse::SseClient;
use ai_team_tests::{Backend, TestApp, TestDb, config_with};
use serde_json::Value;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_streamed_event_is_one_log_line_with_the_same_fields() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter("info,sqlx=warn")
        .with_writer(move || writer.clone())
        .init();

    for backend in [Backend::Sqlite, Backend::Postgres] {
        captured.0.lock().unwrap().clear();
        let db = TestDb::new(backend).await;
        let llm = FakeLlm::start(Script {
            request_changes: true,
            ..Script::default()
        })
        .await;
        let h = Harness::new(&db, &llm.base_url(), &[]).await;
        let app = TestApp::spawn_state(
            AppState::new(db.store.clone(), config_with(&[]))
                .with_events(Duration::from_millis(100)),
        )
        .await;
        let wf = h.workflow(&format!("LOG-{backend:?}")).await;
        h.run_to_end(wf.id).await;

        let count = db.store.events_after(wf.id, 0, 10_000).await.unwrap().len();
        let mut sse = SseClient::connect(
            &app.url(&format!("/events/workflows/{}/stream", wf.id)),
            None,
        )
        .await;
        let streamed = sse.events(count, Duration::from_secs(10)).await;
        assert_eq!(streamed.len(), count);

        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let story = wf.jira_story_id.clone();
        let logged: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "ai_team::events" && v["workflow_id"] == wf.id)
            .collect();
        assert_eq!(
            logged.len(),
            streamed.len(),
            "one log line per streamed event ({story})"
        );
        for (line, frame) in logged.iter().zip(&streamed) {
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["event_id"].as_i64(), frame.id);
            assert_eq!(line["event_type"], frame.data["type"]);
            assert_eq!(line["workflow_id"], frame.data["workflow_id"]);
            assert_eq!(line["execution_id"], frame.data["execution_id"]);
            let data: Value = serde_json::from_str(line["data"].as_str().unwrap()).unwrap();
            assert_eq!(data, frame.data["data"]);
            let logged_at =
                chrono::DateTime::parse_from_rfc3339(line["created_at"].as_str().unwrap()).unwrap();
            let streamed_at =
                chrono::DateTime::parse_from_rfc3339(frame.data["created_at"].as_str().unwrap())
                    .unwrap();
            assert_eq!(logged_at, streamed_at);
        }
        // Nothing at info or above names this workflow without being an event.
        let stray: Vec<&str> = text
            .lines()
            .filter(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
                v["workflow_id"] == wf.id
                    && matches!(v["level"].as_str(), Some("INFO" | "WARN" | "ERROR"))
                    && v["target"] != "ai_team::events"
                    && v["message"] != "request"
            })
            .collect();
        assert!(stray.is_empty(), "logged but not streamed: {stray:?}");
    }
}
