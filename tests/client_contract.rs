//! What the original service's web client calls and reads (API.md), over
//! HTTP against the real router with a real engine, on SQLite and
//! PostgreSQL: the create form, the workflow page's fields, the status
//! service, agents, the conversation review, the compare route, plain
//! lists, unnamed SSE frames, WebSocket frames with the status, and a
//! workflow with a GitHub URL completing without GitHub.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::Duration;

use ai_team_functions::AppState;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::sse::SseClient;
use ai_team_tests::{Backend, TestApp, TestDb, config_with};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

struct World {
    app: TestApp,
    h: Harness,
    _llm: FakeLlm,
    db: TestDb,
}

async fn world(backend: Backend) -> World {
    let db = TestDb::new(backend).await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let data = h.data_dir.display().to_string();
    let state = AppState::new(
        db.store.clone(),
        config_with(&[("AI_TEAM_DATA_DIR", &data)]),
    )
    .with_engine(h.engine.clone())
    .with_events(Duration::from_millis(100));
    let app = TestApp::spawn_state(state).await;
    World {
        app,
        h,
        _llm: llm,
        db,
    }
}

async fn body(r: reqwest::Response) -> Value {
    r.json().await.expect("JSON body")
}

/// The original client's create form: no `name`.
fn form(story: &str, repository: &str) -> Value {
    json!({
        "jira_story_id": story,
        "jira_story_title": "Export orders as CSV",
        "jira_story_description": "As a shop owner I want to export my orders.",
        "repository_url": repository,
        "target_branch": "main",
    })
}

/// Creates the workflow, executes it over HTTP and drains the queue.
async fn executed(w: &World, story: &str, repository: &str) -> (i64, Value) {
    let r = w
        .app
        .post_json("/workflows", &form(story, repository))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = body(r).await["id"].as_i64().unwrap();
    let r = w
        .app
        .post_json(&format!("/workflows/{id}/execute"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let started = body(r).await;
    assert_eq!(started["id"], started["execution_id"], "{started}");
    w.h.drain().await;
    (id, started)
}

#[tokio::test]
async fn the_original_clients_create_form_makes_a_workflow_with_its_title() {
    let w = world(Backend::Sqlite).await;
    let r = w
        .app
        .post_json(
            "/workflows",
            &form("NEG-701", "https://github.com/acme/shop"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = body(r).await;
    assert_eq!(v["name"], "NEG-701: Export orders as CSV");
    assert_eq!(v["jira_story_title"], "Export orders as CSV");
    assert_eq!(
        v["jira_story_description"],
        "As a shop owner I want to export my orders."
    );
    assert_eq!(v["description"], v["jira_story_description"]);
    assert_eq!(v["target_branch"], "main");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["isTerminal"], false);
    assert_eq!(v["heartbeat_stale"], false);
    for field in ["started_at", "finished_at", "error", "last_heartbeat_at"] {
        assert!(v.get(field).is_some_and(Value::is_null), "{field} in {v}");
    }
}

/// Found by the contract fuzz: a title of 499 characters is valid, and so
/// must be the workflow made from it, though "ID: title" is longer than a
/// name may be.
#[tokio::test]
async fn a_title_as_long_as_allowed_makes_a_workflow_whose_name_is_cut() {
    let w = world(Backend::Sqlite).await;
    let title = "t".repeat(499);
    let r = w
        .app
        .post_json(
            "/workflows",
            &json!({"jira_story_id": "LONG-1", "jira_story_title": title}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = body(r).await;
    assert_eq!(v["jira_story_title"], title.as_str());
    let name = v["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 500);
    assert!(name.starts_with("LONG-1: ttt"), "{name}");
}

#[tokio::test]
async fn a_workflow_needs_a_story_id_and_a_name_or_a_title() {
    let w = world(Backend::Sqlite).await;
    let r = w
        .app
        .post_json("/workflows", &json!({"description": "x"}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v = body(r).await;
    let fields: Vec<&str> = v["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loc"][1].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["jira_story_id", "name"]);
    let r = w
        .app
        .post_json(
            "/workflows",
            &json!({"jira_story_id": "A-1", "target_branch": "--force"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_local_path_from_an_api_client_is_refused_and_nothing_is_written(backend: Backend) {
    let w = world(backend).await;
    let victim = std::env::temp_dir().join(format!("ai-team-victim-{}", uuid::Uuid::new_v4()));
    for url in [
        victim.display().to_string(),
        format!("file://{}", victim.display()),
        "./victim".to_owned(),
    ] {
        let r = w
            .app
            .post_json(
                "/workflows",
                &json!({"jira_story_id": "EVIL-1", "name": "x", "repository_url": url}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let v = body(r).await;
        assert_eq!(v["detail"][0]["loc"][1], "repository_url");
        assert!(
            v["detail"][0]["msg"]
                .as_str()
                .unwrap()
                .contains("local path"),
            "{v}"
        );
    }
    assert_eq!(w.db.count("workflows").await, 0);
    assert!(!victim.exists());
}

#[tokio::test]
async fn a_local_path_from_an_api_client_is_refused_and_nothing_is_written_on_sqlite() {
    a_local_path_from_an_api_client_is_refused_and_nothing_is_written(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_local_path_from_an_api_client_is_refused_and_nothing_is_written_on_postgres() {
    a_local_path_from_an_api_client_is_refused_and_nothing_is_written(Backend::Postgres).await;
}

async fn a_github_url_without_github_completes_and_records_the_pr_as_skipped(backend: Backend) {
    let w = world(backend).await;
    let (id, started) = executed(&w, "SHOP-7", "https://github.com/acme/shop").await;
    let eid = started["execution_id"].as_i64().unwrap();
    let execution = body(
        w.app
            .get(&format!("/workflows/{id}/executions/{eid}"))
            .await,
    )
    .await;
    assert_eq!(execution["status"], "completed", "{execution}");

    let r = w.app.get(&format!("/workflows/{id}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let detail = body(r).await;
    assert_eq!(detail["status"], "completed");
    assert_eq!(detail["isTerminal"], true);
    assert_eq!(detail["jira_story_title"], "Export orders as CSV");
    let pm = &detail["conversations"][0];
    assert_eq!(pm["agent"], "Product Manager");
    assert_eq!(pm["agent_id"], "pm");
    assert_eq!(pm["status"], "completed");
    assert!(pm["details"].as_str().unwrap().contains("tokens"), "{pm}");
    let messages = pm["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2]["role"], "assistant");
    assert!(pm["llm_calls"][0]["prompt_tokens"].is_number());
    let file = &detail["code_files"][0];
    assert_eq!(
        file["filename"].as_str().unwrap(),
        file["file_path"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
    );
    let agents: Vec<&str> = detail["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["agent"].as_str().unwrap())
        .collect();
    assert!(agents.contains(&"QA Tester") && agents.contains(&"Code Reviewer"));

    let not_modified = reqwest::Client::new()
        .get(w.app.url(&format!("/workflows/{id}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);

    let pr = w.app.get(&format!("/workflows/{id}/pr")).await;
    assert_eq!(pr.status(), StatusCode::NOT_FOUND);
    let detail = body(pr).await["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("skipped") && detail.contains("USE_REAL_GITHUB"),
        "{detail}"
    );

    let copy = w.h.data_dir.join("repos/github.com/acme/shop");
    let branches = std::process::Command::new("git")
        .args(["-C", copy.to_str().unwrap(), "branch", "--list"])
        .output()
        .unwrap();
    let branches = String::from_utf8_lossy(&branches.stdout).to_string();
    assert!(branches.contains("ai-team/shop-7-execution-"), "{branches}");
}

#[tokio::test]
async fn a_github_url_without_github_completes_and_records_the_pr_as_skipped_on_sqlite() {
    a_github_url_without_github_completes_and_records_the_pr_as_skipped(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_github_url_without_github_completes_and_records_the_pr_as_skipped_on_postgres() {
    a_github_url_without_github_completes_and_records_the_pr_as_skipped(Backend::Postgres).await;
}

#[tokio::test]
async fn the_status_service_describes_the_latest_execution() {
    let w = world(Backend::Sqlite).await;
    let r = w.app.get("/workflows/999/status").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (id, _) = executed(&w, "STAT-1", "https://github.com/acme/stat").await;
    let s = body(w.app.get(&format!("/workflows/{id}/status")).await).await;
    assert_eq!(s["workflow_id"], id);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["isTerminal"], true);
    assert!(s["finished_at"].is_string() && s["started_at"].is_string());
    assert!(s["message"].is_string());
    let running = body(w.app.get("/workflows/status/running").await).await;
    assert_eq!(running, json!([]));
    let r = w
        .app
        .post_json(&format!("/workflows/{id}/reconcile"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await["status"], "completed");
    let r = w
        .app
        .post_json(&format!("/workflows/{id}/resume"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_failed_execution_resumes_through_the_workflow_route() {
    let w = world(Backend::Sqlite).await;
    let wf = w.h.workflow("RES-1").await;
    let e = w.h.engine.start(wf.id).await.unwrap();
    w.h.engine.cancel(wf.id, e.id).await.unwrap();
    let s = body(w.app.get(&format!("/workflows/{}/status", wf.id)).await).await;
    assert_eq!(
        (s["status"].as_str(), s["isTerminal"].as_bool()),
        (Some("cancelled"), Some(true))
    );
    let r = w
        .app
        .post_json(&format!("/workflows/{}/resume", wf.id), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = body(r).await;
    assert_eq!(v["resumed"], true);
    assert_eq!(v["execution_id"], e.id);
    w.h.drain().await;
    let s = body(w.app.get(&format!("/workflows/{}/status", wf.id)).await).await;
    assert_eq!(s["status"], "completed");
}

#[tokio::test]
async fn agents_and_the_endpoint_index_come_from_the_team_and_the_routes() {
    let w = world(Backend::Sqlite).await;
    let agents = body(w.app.get("/agents").await).await;
    let names: Vec<&str> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Product Manager",
            "Solution Architect",
            "Backend Developer",
            "Frontend Developer",
            "QA Tester",
            "Code Reviewer"
        ]
    );
    let pm = body(w.app.get("/agents/pm").await).await;
    assert_eq!(pm["id"], "pm");
    assert!(pm["goal"].is_string() && pm["backstory"].is_string());
    assert!(!pm["capabilities"].as_array().unwrap().is_empty());
    let r = w.app.get("/agents/nobody").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body(r).await, json!({"detail": "Agent not found"}));
    let index = body(w.app.get("/").await).await;
    let paths: Vec<&str> = index["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for p in ["/agents", "/workflows/{workflow_id}/status", "/health"] {
        assert!(paths.contains(&p), "{p} in {paths:?}");
    }
}

#[tokio::test]
async fn executions_compare_by_query_and_lists_are_plain_arrays() {
    let w = world(Backend::Sqlite).await;
    let wf = w.h.workflow("CMP-1").await;
    let a = w.h.run_to_end(wf.id).await;
    let b = w.h.run_to_end(wf.id).await;
    let v = body(
        w.app
            .get(&format!(
                "/workflows/{}/executions/compare?execA={}&execB={}",
                wf.id, a.id, b.id
            ))
            .await,
    )
    .await;
    assert_eq!(v["left"]["id"], a.id);
    assert_eq!(v["right"]["id"], b.id);
    assert_eq!(
        v["deltas"]["total_calls"].as_i64().unwrap(),
        b.total_calls - a.total_calls
    );
    assert!(v["left"]["models"].is_array());
    let r = w
        .app
        .get(&format!(
            "/workflows/{}/executions/compare?execA={}",
            wf.id, a.id
        ))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for list in ["pr/checks", "diffs", "artifacts"] {
        let plain = body(w.app.get(&format!("/workflows/{}/{list}", wf.id)).await).await;
        assert!(plain.is_array(), "{list}: {plain}");
        let paged = body(
            w.app
                .get(&format!("/workflows/{}/{list}?page=1", wf.id))
                .await,
        )
        .await;
        assert!(paged["items"].is_array(), "{list}: {paged}");
    }
}

#[tokio::test]
async fn the_conversation_review_is_grounded_in_the_records() {
    let w = world(Backend::Sqlite).await;
    let wf = w.h.workflow("REV-1").await;
    w.h.run_to_end(wf.id).await;
    let r = w
        .app
        .post_json(
            &format!("/workflows/{}/conversation-review", wf.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = body(r).await;
    for field in [
        "workflow_recommendations",
        "prompt_recommendations",
        "code_change_suggestions",
        "risk_flags",
        "quick_wins",
    ] {
        assert!(v[field].is_array(), "{field}");
    }
    assert!(v["summary"].as_str().unwrap().contains("model call"));
    // A clean run claims no savings it cannot show.
    assert_eq!(v["estimated_savings"]["messages"], 0);
    assert_eq!(v["estimated_savings"]["cost_usd"], 0.0);
    let got = body(
        w.app
            .get(&format!("/workflows/{}/conversation-review", wf.id))
            .await,
    )
    .await;
    assert_eq!(got["summary"], v["summary"]);
}

#[tokio::test]
async fn sse_frames_reach_onmessage_and_the_status_stream_ends_when_terminal() {
    let w = world(Backend::Sqlite).await;
    let wf = w.h.workflow("SSE-1").await;
    let status_url = w.app.url(&format!("/events/workflows/{}", wf.id));
    let mut status = SseClient::connect(&status_url, None).await;
    let first = status.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.event, "message", "no event: line");
    assert_eq!(first.data["status"], "pending");
    assert_eq!(first.data["isTerminal"], false);
    w.h.run_to_end(wf.id).await;
    let mut last = first;
    while let Some(f) = status.next(Duration::from_secs(10)).await {
        if f.event == "heartbeat" {
            continue;
        }
        assert_eq!(f.event, "message");
        last = f;
    }
    assert!(
        status.ended,
        "the status stream ends after the terminal frame"
    );
    assert_eq!(last.data["status"], "completed");
    assert_eq!(last.data["isTerminal"], true);

    let stream_url = w.app.url(&format!("/events/workflows/{}/stream", wf.id));
    let mut all = SseClient::connect(&stream_url, Some(0)).await;
    let frames = all.events(20, Duration::from_secs(5)).await;
    assert!(frames.len() >= 10);
    assert!(
        frames
            .iter()
            .all(|f| f.event == "message" && f.data["type"].is_string())
    );
    let conversation = frames
        .iter()
        .find(|f| f.data["type"] == "conversation")
        .unwrap();
    assert_eq!(
        conversation.data["data"]["conversation"]["agent"],
        "Product Manager"
    );
    assert!(conversation.data["data"]["conversation"]["output"].is_string());
}

#[tokio::test]
async fn websocket_frames_carry_the_workflows_status() {
    let w = world(Backend::Sqlite).await;
    let wf = w.h.workflow("WS-1").await;
    w.h.run_to_end(wf.id).await;
    let url = w
        .app
        .url(&format!("/ws/workflows/{}", wf.id))
        .replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert!(v["id"].is_i64() && v["type"].is_string());
    assert_eq!(v["status"], "completed");
    assert_eq!(v["isTerminal"], true);
    assert_eq!(v["heartbeat_stale"], false);
}

#[tokio::test]
async fn a_secret_in_a_story_sent_by_a_client_is_never_stored() {
    let w = world(Backend::Sqlite).await;
    let key = "sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOp";
    let r = w
        .app
        .post_json(
            "/workflows",
            &json!({"jira_story_id": "SEC-1", "jira_story_title": "Keys",
                    "jira_story_description": format!("Use the key\n{key}\nto call the API.")}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = body(r).await;
    let stored = v["description"].as_str().unwrap();
    assert!(
        !stored.contains(key) && stored.contains("[REDACTED]"),
        "{stored}"
    );
}
