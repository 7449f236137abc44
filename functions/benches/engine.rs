//! The engine's own overhead per step, and executions completed per
//! second with 100 running at once, over an instant in-process LLM (no
//! network, no model time), on SQLite and PostgreSQL.
//!
//! Also counts the SQL statements each step sends (sqlx's `sqlx::query`
//! events: every statement is a round trip, `BEGIN`/`COMMIT` included),
//! and times execute -> first step running on an idle worker.
//!
//! `cargo bench -p ai-team-functions --bench engine [-- --backend sqlite|postgres]`

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ai_team_core::Store;
use ai_team_core::engine::Outcome;
use ai_team_core::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, Usage};
use ai_team_core::query::NewWorkflow;
use ai_team_core::queue::{JobSource, StepQueue};
use ai_team_functions::configuration::Config;
use ai_team_functions::engine_wiring;
use ai_team_functions::worker::Worker;
use ai_team_providers::store::{DatabaseUrl, SqlStore};
use async_trait::async_trait;

/// SQL statements sent since start: sqlx logs each one under
/// `sqlx::query` (at debug, which this layer alone enables).
static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

struct CountStatements;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Answers each role at once with what it is asked for.
struct InstantLlm;

#[async_trait]
impl LlmClient for InstantLlm {
    fn provider(&self) -> &'static str {
        "openai"
    }
    fn model(&self) -> &str {
        "gpt-4o-mini"
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let system = &request.messages[0].content;
        let content = if system.contains("Product Manager") {
            "## Acceptance Criteria\n- a\n- b\n- c\n"
        } else if system.contains("Architect") {
            "## Design\nA service.\n## Files\n- app/a.py: it\n"
        } else if system.contains("Backend") {
            "```python app/a.py\nx = 1\n```\n```python app/b.py\ny = 2\n```\n"
        } else if system.contains("Frontend") {
            "```html web/a.html\n<p>hi</p>\n```\n"
        } else if system.contains("QA") {
            "```python tests/test_a.py\ndef test(): pass\n```\n"
        } else {
            "VERDICT: APPROVED\n"
        };
        Ok(ChatResponse {
            content: content.into(),
            model: "gpt-4o-mini".into(),
            usage: Usage {
                prompt_tokens: 300,
                completion_tokens: 40,
                estimated: false,
            },
            latency_ms: 0,
            finish_reason: Some("stop".into()),
        })
    }
}

fn pg_admin_url() -> String {
    std::env::var("AI_TEAM_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

struct Db {
    store: Arc<dyn Store>,
    queue: Arc<dyn StepQueue>,
    jobs: Arc<dyn JobSource>,
    /// The PostgreSQL database to drop afterwards.
    pg_name: Option<String>,
}

async fn open(backend: &str, dir: &std::path::Path) -> Db {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    if backend == "sqlite" {
        let s = SqlStore::sqlite(&DatabaseUrl::SqliteFile(dir.join("bench.db")))
            .await
            .unwrap();
        s.migrate().await.unwrap();
        return Db {
            store: Arc::new(s.clone()),
            queue: Arc::new(s.clone()),
            jobs: Arc::new(s),
            pg_name: None,
        };
    }
    let name = format!("ai_team_bench_{nonce}");
    let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = pg_admin_url();
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(b, _)| b)
        .to_owned();
    let s = SqlStore::postgres(&format!("{base}/{name}")).await.unwrap();
    s.migrate().await.unwrap();
    Db {
        store: Arc::new(s.clone()),
        queue: Arc::new(s.clone()),
        jobs: Arc::new(s),
        pg_name: Some(name),
    }
}

fn ms(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

async fn workflow(store: &dyn Store, key: &str) -> i64 {
    let new = NewWorkflow::parse(
        &format!("{key}: Bench"),
        key,
        None,
        Some("As a user I want a thing."),
    )
    .unwrap();
    store.create_workflow(&new).await.unwrap().into_inner().id
}

async fn bench(backend: &str) {
    let dir = std::env::temp_dir().join(format!(
        "ai_team_engine_bench_{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = open(backend, &dir).await;
    let data = dir.display().to_string();
    let config = Config::from_lookup(|k| match k {
        "AI_TEAM_DATA_DIR" => Some(data.clone()),
        "AI_TEAM_REDACT_SENSITIVE" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let engine = engine_wiring::build(
        &config,
        db.store.clone(),
        db.queue.clone(),
        Arc::new(InstantLlm),
    )
    .unwrap();
    let worker = Worker::new(engine.clone(), db.jobs.clone());

    // 1. Overhead per step: one execution at a time, each message timed.
    // Agent steps, and the engine's own steps but integration and verification.
    let mut agent_steps = Vec::new();
    let mut all_steps = Vec::new();
    let mut integration = Vec::new();
    let mut executions = Vec::new();
    let mut statements = Vec::new();
    let mut verification = Vec::new();
    for i in 0..20 {
        let wf = workflow(db.store.as_ref(), &format!("SEQ-{i}")).await;
        engine.start(wf).await.unwrap();
        let mut execution = Duration::ZERO;
        loop {
            let t = Instant::now();
            let sent = STATEMENTS.load(Ordering::Relaxed);
            let Some(outcome) = worker.try_execute_next().await.unwrap() else {
                break;
            };
            let took = t.elapsed();
            let sent = STATEMENTS.load(Ordering::Relaxed) - sent;
            if i < 2 {
                continue; // warm-up: tokenizer tables, connections
            }
            all_steps.push(took);
            if let Outcome::Completed { step, .. } = outcome {
                match step.as_str() {
                    "integration" => integration.push(took),
                    // Running the repository's tests (python3 under the
                    // sandbox) is the product's work, not overhead.
                    s if s.contains("verification") => verification.push(took),
                    "story_retrieval" => execution += took,
                    _ => {
                        agent_steps.push(took);
                        execution += took;
                        if matches!(
                            step.as_str(),
                            "analysis" | "architecture" | "implementation"
                        ) {
                            statements.push(sent);
                        }
                    }
                }
            }
        }
        if i >= 2 {
            executions.push(execution);
        }
    }
    for v in [
        &mut agent_steps,
        &mut all_steps,
        &mut integration,
        &mut executions,
        &mut verification,
    ] {
        v.sort_unstable();
    }
    statements.sort_unstable();
    println!(
        "{backend:8} SQL statements per agent step (analysis, architecture, implementation; the message's queue receive and ack included): median {}, min {}, max {}",
        statements[statements.len() / 2],
        statements[0],
        statements[statements.len() - 1]
    );
    println!(
        "{backend:8} per step (all {} steps): median {:.2} ms, p99 {:.2} ms | agent steps: median {:.2} ms, p99 {:.2} ms | integration (git): median {:.2} ms",
        all_steps.len(),
        ms(&all_steps, 0.5),
        ms(&all_steps, 0.99),
        ms(&agent_steps, 0.5),
        ms(&agent_steps, 0.99),
        ms(&integration, 0.5)
    );
    println!(
        "{backend:8} one execution's overhead (every step but integration's git commit and the test runs, LLM time 0): median {:.2} ms, p95 {:.2} ms over {} | a verification step (runs the tests): median {:.2} ms",
        ms(&executions, 0.5),
        ms(&executions, 0.95),
        executions.len(),
        ms(&verification, 0.5)
    );

    // 2a. Execute -> first step running, on an idle worker (as in `serve`):
    // the queue's signal wakes it, no poll interval is waited.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let background = tokio::spawn(worker.clone().run(1, Duration::from_secs(120), stop_rx));
    let mut to_running = Vec::new();
    for i in 0..30 {
        tokio::time::sleep(Duration::from_millis(50)).await; // idle, waiting
        let wf = workflow(db.store.as_ref(), &format!("IDLE-{i}")).await;
        let mut events = db.store.event_signal().expect("the store signals events");
        let t = Instant::now();
        let execution = engine.start(wf).await.unwrap().id;
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(5), events.recv()).await;
            let status = engine
                .store
                .execution_by_id(execution)
                .await
                .unwrap()
                .status;
            if status.as_str() != "pending" {
                break;
            }
        }
        to_running.push(t.elapsed());
        while !matches!(
            engine
                .store
                .execution_by_id(execution)
                .await
                .unwrap()
                .status
                .as_str(),
            "completed" | "failed" | "cancelled"
        ) {
            let _ = tokio::time::timeout(Duration::from_millis(20), events.recv()).await;
        }
    }
    let _ = stop_tx.send(true);
    let _ = background.await;
    to_running.sort_unstable();
    println!(
        "{backend:8} execute -> first step running, idle worker: median {:.2} ms, p95 {:.2} ms over {}",
        ms(&to_running, 0.5),
        ms(&to_running, 0.95),
        to_running.len()
    );

    // 2. 100 executions at once, drained by 8 concurrent workers.
    let mut ids = Vec::new();
    for i in 0..100 {
        let wf = workflow(db.store.as_ref(), &format!("PAR-{i}")).await;
        ids.push(engine.start(wf).await.unwrap().id);
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let w = worker.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(_o) = w.try_execute_next().await.unwrap() {
                n += 1;
            }
            n
        }));
    }
    let mut steps = 0;
    for task in tasks {
        steps += task.await.unwrap();
    }
    let wall = t.elapsed();
    let mut completed = 0;
    for id in &ids {
        if engine
            .store
            .execution_by_id(*id)
            .await
            .unwrap()
            .status
            .as_str()
            == "completed"
        {
            completed += 1;
        }
    }
    println!(
        "{backend:8} 100 at once, 8 workers: {completed}/100 completed in {:.2} s = {:.1} executions/s ({steps} messages, {:.0} steps/s)",
        wall.as_secs_f64(),
        f64::from(completed) / wall.as_secs_f64(),
        steps as f64 / wall.as_secs_f64()
    );
    if let Some(name) = db.pg_name {
        let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, filter};
    let counting = CountStatements
        .with_filter(filter::Targets::new().with_target("sqlx::query", tracing::Level::DEBUG));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(counting))
        .expect("the only subscriber");
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--backend")
        .and_then(|i| args.get(i + 1))
        .cloned();
    for backend in ["sqlite", "postgres"] {
        if only.as_deref().is_none_or(|o| o == backend) {
            bench(backend).await;
        }
    }
}
