//! SSE load: 1,000 concurrent subscribers on one workflow and 100 on each
//! of 10 others, against a release `ai-team serve` on SQLite, while an
//! execution runs on every workflow (an instant scripted LLM). Reports
//! delivery latency from commit to receipt (p50/p99), server RSS per
//! subscriber, and checks that every subscriber got every event of its
//! workflow exactly once, in order.
//!
//! `bash scripts/sse-load` (raises the open-files limit, then runs
//! `cargo bench -p ai-team-tests --bench sse_load`).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::store::ports::EventStore;
use ai_team_providers::store::{DatabaseUrl, SqlStore};
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::sse::SseClient;
use serde_json::{Value, json};
use tokio::sync::Barrier;

const MAIN_SUBSCRIBERS: usize = 1000;
const OTHER_WORKFLOWS: usize = 10;
const OTHER_SUBSCRIBERS: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn release_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("ai-team");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "ai-team-functions",
            "--bin",
            "ai-team",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    bin
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = release_binary();
    let dir = std::env::temp_dir().join(format!(
        "ai_team_sse_load_{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db_path = dir.join("load.db");
    let llm = FakeLlm::start(Script::default()).await;
    let mut child = Command::new(&bin)
        .args(["serve", "--port", "0"])
        .env("DATABASE_URL", format!("sqlite:///{}", db_path.display()))
        .env("OPENAI_BASE_URL", llm.base_url())
        .env("OPENAI_MODEL", "gpt-4o-mini")
        .env("LLM_PROVIDER", "openai")
        .env("AI_TEAM_DATA_DIR", dir.join("data"))
        .env("AI_TEAM_LOG", "warn,ai_team=info")
        .env("AI_TEAM_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let address = {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let a = loop {
            let line = lines.next().unwrap().unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "listening" {
                break v["address"].as_str().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        a
    };
    let http = reqwest::Client::new();
    let mut workflows = Vec::new();
    for i in 0..=OTHER_WORKFLOWS {
        let wf: Value = http
            .post(format!("http://{address}/workflows"))
            .json(&json!({"name": format!("LOAD-{i}: Reset"), "jira_story_id": format!("LOAD-{i}"), "description": "As a user I reset my password."}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        workflows.push(wf["id"].as_i64().unwrap());
    }
    // Warm the server (first SSE connection, a tail) before the baseline.
    let mut warm = SseClient::connect(
        &format!("http://{address}/events/workflows/{}/stream", workflows[0]),
        None,
    )
    .await;
    let _ = warm.next(Duration::from_millis(100)).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);

    let total = MAIN_SUBSCRIBERS + OTHER_WORKFLOWS * OTHER_SUBSCRIBERS;
    let connected = Arc::new(Barrier::new(total + 1));
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let wf = if n < MAIN_SUBSCRIBERS {
            workflows[0]
        } else {
            workflows[1 + (n - MAIN_SUBSCRIBERS) / OTHER_SUBSCRIBERS]
        };
        let url = format!("http://{address}/events/workflows/{wf}/stream");
        let connected = connected.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = SseClient::connect(&url, None).await;
            connected.wait().await;
            let mut got: Vec<(i64, f64)> = Vec::new();
            loop {
                let Some(f) = c.next(Duration::from_secs(60)).await else {
                    break;
                };
                if f.event == "heartbeat" {
                    continue;
                }
                let at =
                    chrono::DateTime::parse_from_rfc3339(f.data["created_at"].as_str().unwrap())
                        .unwrap();
                let latency = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0;
                got.push((f.id.unwrap(), latency));
                if f.event == "workflow" && f.data["data"]["status"] == "completed" {
                    break;
                }
            }
            (wf, got)
        }));
    }
    let t = Instant::now();
    connected.wait().await;
    println!(
        "{total} subscribers connected in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = rss_kib(pid);

    let t = Instant::now();
    for wf in &workflows {
        let r = http
            .post(format!("http://{address}/workflows/{wf}/execute"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let mut latencies = Vec::new();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let wall = t.elapsed();
    let rss_peak = rss_kib(pid);
    let store = SqlStore::sqlite(&DatabaseUrl::SqliteFile(db_path.clone()))
        .await
        .unwrap();
    let mut exact = 0;
    for (wf, got) in &results {
        let log = store.events_after(*wf, 0, 100_000).await.unwrap();
        let ids: Vec<i64> = got.iter().map(|g| g.0).collect();
        if ids == log.iter().map(|e| e.id).collect::<Vec<_>>() {
            exact += 1;
        }
        // Latency counts live deliveries (replayed ones were committed before).
        latencies.extend(got.iter().map(|g| g.1));
    }
    latencies.sort_by(f64::total_cmp);
    let deliveries = latencies.len();
    println!(
        "11 executions in {:.2} s; {deliveries} deliveries; every event exactly once, in order, for {exact}/{total} subscribers",
        wall.as_secs_f64()
    );
    println!(
        "latency commit → receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
    println!(
        "server RSS: {} KiB before, {} KiB with {total} subscribers ({:.1} KiB per subscriber), {} KiB at the end",
        rss_before,
        rss_connected,
        (rss_connected.saturating_sub(rss_before)) as f64 / total as f64,
        rss_peak
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(exact, total, "some subscriber missed or doubled an event");
}
