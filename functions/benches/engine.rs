//! The engine's own overhead per step, and executions completed per
//! second with 100 running at once, over an instant in-process LLM (no
//! network, no model time), on SQLite and PostgreSQL.
//!
//! `cargo bench -p ai-team-functions --bench engine [-- --backend sqlite|postgres]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::Store;
use ai_team_core::engine::Outcome;
use ai_team_core::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, Usage};
use ai_team_core::query::NewWorkflow;
use ai_team_core::queue::{JobSource, StepQueue};
use ai_team_functions::configuration::Config;
use ai_team_functions::engine;
use ai_team_functions::worker::Worker;
use ai_team_providers::store::{DatabaseUrl, PostgresStore, SqliteStore};
use async_trait::async_trait;

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
        let s = SqliteStore::connect(&DatabaseUrl::SqliteFile(dir.join("bench.db")))
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
    let s = PostgresStore::connect(&format!("{base}/{name}"))
        .await
        .unwrap();
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
    let engine = engine::build(
        &config,
        db.store.clone(),
        db.queue.clone(),
        Arc::new(InstantLlm),
    )
    .unwrap();
    let worker = Worker::new(engine.clone(), db.jobs.clone());

    // 1. Overhead per step: one execution at a time, each message timed.
    let mut agent_steps = Vec::new();
    let mut all_steps = Vec::new();
    let mut integration = Vec::new();
    for i in 0..20 {
        let wf = workflow(db.store.as_ref(), &format!("SEQ-{i}")).await;
        engine.start(wf).await.unwrap();
        loop {
            let t = Instant::now();
            let Some(outcome) = worker.try_execute_next().await.unwrap() else {
                break;
            };
            let took = t.elapsed();
            if i < 2 {
                continue; // warm-up: tokenizer tables, connections
            }
            all_steps.push(took);
            if let Outcome::Completed { step, .. } = outcome {
                match step.as_str() {
                    "integration" => integration.push(took),
                    "story_retrieval" => {}
                    _ => agent_steps.push(took),
                }
            }
        }
    }
    for v in [&mut agent_steps, &mut all_steps, &mut integration] {
        v.sort_unstable();
    }
    println!(
        "{backend:8} per step (all {} steps): median {:.2} ms, p99 {:.2} ms | agent steps: median {:.2} ms, p99 {:.2} ms | integration (git): median {:.2} ms",
        all_steps.len(),
        ms(&all_steps, 0.5),
        ms(&all_steps, 0.99),
        ms(&agent_steps, 0.5),
        ms(&agent_steps, 0.99),
        ms(&integration, 0.5)
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
