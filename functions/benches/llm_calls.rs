//! `cargo bench -p ai-team-functions --bench llm_calls [-- --rows N --backend sqlite|postgres]`
//!
//! Seeds one conversation with N llm_calls (default 1,000,000) and 100
//! conversations of N/100, then measures the latency of
//! `GET /conversations/{id}/llm-calls` over real HTTP on loopback for every
//! sort_by, for the filters, and for the model+date+q combination: p50 and
//! p99 of 100 requests each after a warm-up. PostgreSQL runs on
//! `AI_TEAM_TEST_PG` (default the machine's server); its bench database is
//! dropped at the end.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::Store;
use ai_team_core::models::{Agent, NewConversation};
use ai_team_core::query::NewWorkflow;
use ai_team_functions::configuration::Config;
use ai_team_functions::{AppState, app};
use ai_team_providers::store::{DatabaseUrl, SqlStore};
use chrono::Utc;

const ITERATIONS: usize = 100;

/// The columns every seeded row fills, shared by both databases; `{TS}`
/// and `{HASH}` differ per database.
const SEED_SQL: &str = "WITH RECURSIVE s(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM s WHERE i < $2) \
    INSERT INTO llm_calls (conversation_id, model, prompt_tokens, completion_tokens, total_tokens, max_tokens, \
    total_tokens_requested, response_time_ms, status, error_code, truncated_sections, prompt_hash, response_hash, \
    budget_snapshot, cost_nanos, timestamp, request_data, response_data) \
    SELECT $1 + (i % $3), \
      CASE i % 4 WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'gpt-4o-mini' WHEN 2 THEN 'claude-3-5-sonnet' ELSE 'smollm2-135m' END, \
      (i * 31) % 4000, (i * 17) % 1000, (i * 31) % 4000 + (i * 17) % 1000, 1024, (i * 31) % 4000 + 1024, \
      (i * 7919) % 5000, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'success' END, \
      CASE WHEN i % 10 = 0 THEN '429' ELSE NULL END, '[]', {HASH}, {HASH}, '{}', (i * 104729) % 50000000, {TS}, \
      '{\"messages\":[{\"role\":\"user\",\"content\":\"' || \
        CASE (i * 13) % 5 WHEN 0 THEN 'Reset the password' WHEN 1 THEN 'Login flow' WHEN 2 THEN 'Token refresh' \
        WHEN 3 THEN 'Email change' ELSE 'Audit log' END || ' #' || i || '\"}]}', \
      '{\"content\":\"answer ' || i || '\"}' \
    FROM s";

const TOTALS_SQL: &str = "UPDATE conversations SET \
    call_count = (SELECT COUNT(*) FROM llm_calls WHERE conversation_id = conversations.id), \
    total_tokens_used = (SELECT COALESCE(SUM(total_tokens), 0) FROM llm_calls WHERE conversation_id = conversations.id), \
    total_cost_nanos = (SELECT COALESCE(SUM(cost_nanos), 0) FROM llm_calls WHERE conversation_id = conversations.id)";

const MODEL_COUNTS_SQL: &str = "INSERT INTO llm_call_model_counts (conversation_id, model, calls) \
    SELECT conversation_id, model, COUNT(*) FROM llm_calls GROUP BY conversation_id, model";

enum Bench {
    Sqlite(SqlStore, std::path::PathBuf),
    Postgres(SqlStore, String),
}

impl Bench {
    fn name(&self) -> &'static str {
        match self {
            Bench::Sqlite(..) => "sqlite",
            Bench::Postgres(..) => "postgres",
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Bench::Sqlite(s, _) => Arc::new(s.clone()),
            Bench::Postgres(s, _) => Arc::new(s.clone()),
        }
    }

    /// Runs the seed statement for `count` rows spread over `spread`
    /// conversations starting at `first`.
    async fn seed(&self, first: i64, count: i64, spread: i64) {
        match self {
            Bench::Sqlite(s, _) => {
                let sql = SEED_SQL
                    .replace("{HASH}", "printf('%064x', i * 2654435761)")
                    .replace(
                        "{TS}",
                        "strftime('%Y-%m-%dT%H:%M:%S', 1767225600 + i * 3, 'unixepoch') || '+00:00'",
                    );
                sqlx::query(&sql)
                    .bind(first)
                    .bind(count)
                    .bind(spread)
                    .execute(s.sqlite_pool().expect("sqlite"))
                    .await
                    .unwrap();
            }
            Bench::Postgres(s, _) => {
                let sql = SEED_SQL
                    .replace("{HASH}", "md5(i::text) || md5(i::text)")
                    .replace(
                        "{TS}",
                        "TIMESTAMPTZ '2026-01-01 00:00:00+00' + make_interval(secs => i * 3)",
                    );
                sqlx::query(&sql)
                    .bind(first)
                    .bind(count)
                    .bind(spread)
                    .execute(s.postgres_pool().expect("postgres"))
                    .await
                    .unwrap();
            }
        }
    }

    async fn finish_seed(&self) {
        match self {
            Bench::Sqlite(s, _) => {
                sqlx::query(TOTALS_SQL)
                    .execute(s.sqlite_pool().expect("sqlite"))
                    .await
                    .unwrap();
                sqlx::query(MODEL_COUNTS_SQL)
                    .execute(s.sqlite_pool().expect("sqlite"))
                    .await
                    .unwrap();
                sqlx::query("ANALYZE")
                    .execute(s.sqlite_pool().expect("sqlite"))
                    .await
                    .unwrap();
            }
            Bench::Postgres(s, _) => {
                sqlx::query(TOTALS_SQL)
                    .execute(s.postgres_pool().expect("postgres"))
                    .await
                    .unwrap();
                sqlx::query(MODEL_COUNTS_SQL)
                    .execute(s.postgres_pool().expect("postgres"))
                    .await
                    .unwrap();
                sqlx::query("VACUUM ANALYZE")
                    .execute(s.postgres_pool().expect("postgres"))
                    .await
                    .unwrap();
            }
        }
    }

    async fn cleanup(self) {
        match self {
            Bench::Sqlite(s, dir) => {
                s.sqlite_pool().expect("sqlite").close().await;
                let _ = std::fs::remove_dir_all(dir);
            }
            Bench::Postgres(s, name) => {
                s.postgres_pool().expect("postgres").close().await;
                let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
            }
        }
    }
}

fn pg_admin_url() -> String {
    std::env::var("AI_TEAM_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn open(backend: &str) -> Bench {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("ai_team_bench_{nonce}"));
            std::fs::create_dir_all(&dir).unwrap();
            let store = SqlStore::sqlite(&DatabaseUrl::SqliteFile(dir.join("bench.db")))
                .await
                .unwrap();
            store.migrate().await.unwrap();
            Bench::Sqlite(store, dir)
        }
        _ => {
            let name = format!("ai_team_bench_{nonce}");
            let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .unwrap();
            let admin_url = pg_admin_url();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            let store = SqlStore::postgres(&format!("{base}/{name}")).await.unwrap();
            store.migrate().await.unwrap();
            Bench::Postgres(store, name)
        }
    }
}

async fn conversation(store: &dyn Store, workflow_id: i64, step: String) -> i64 {
    store
        .create_conversation(&NewConversation {
            workflow_id,
            execution_id: None,
            agent: Agent::Developer,
            step,
            prompt: "bench".into(),
            output: None,
            details: serde_json::json!({}),
            timestamp: Utc::now(),
        })
        .await
        .unwrap()
        .id
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

async fn measure(client: &reqwest::Client, url: &str) -> (f64, f64, u64) {
    for _ in 0..5 {
        client.get(url).send().await.unwrap().bytes().await.unwrap();
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    let mut total = 0;
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let r = client.get(url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let body: serde_json::Value = r.json().await.unwrap();
        samples.push(start.elapsed());
        total = body["total"].as_u64().unwrap_or_default();
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), total)
}

async fn run(backend: &str, rows: i64) {
    let bench = open(backend).await;
    let store = bench.store();
    let wf = store
        .create_workflow(&NewWorkflow::parse("bench", "BENCH-1", None, None).unwrap())
        .await
        .unwrap()
        .into_inner()
        .id;
    let big = conversation(&*store, wf, "big".into()).await;
    let mut small = Vec::new();
    for i in 0..100 {
        small.push(conversation(&*store, wf, format!("small-{i}")).await);
    }
    let started = Instant::now();
    bench.seed(big, rows, 1).await;
    bench.seed(small[0], rows, 100).await;
    bench.finish_seed().await;
    println!(
        "\n## {} — seeded {} calls in one conversation and {} in 100 conversations of {} in {:.1} s",
        bench.name(),
        rows,
        rows,
        rows / 100,
        started.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    let router = app(AppState::new(store.clone(), config));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    let base = format!("http://{addr}/conversations");
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for sort in [
        "timestamp",
        "model",
        "total_tokens",
        "response_time_ms",
        "cost",
        "id",
    ] {
        for dir in ["desc", "asc"] {
            cases.push((
                format!("sort_by={sort}&sort_dir={dir}"),
                format!("{base}/{big}/llm-calls?sort_by={sort}&sort_dir={dir}"),
                "index",
            ));
        }
    }
    let filters = [
        (
            "page=200 (offset 9,950)",
            "page=200",
            "index, walks the offset",
        ),
        ("model=gpt-4o", "model=gpt-4o", "index"),
        (
            "one-day date range",
            "date_from=2026-01-10&date_to=2026-01-10",
            "index",
        ),
        (
            "model+date (1 day)",
            "model=gpt-4o&date_from=2026-01-10&date_to=2026-01-10",
            "index",
        ),
        (
            "model+date (1 day)+q",
            "model=gpt-4o&date_from=2026-01-10&date_to=2026-01-10&q=password",
            "index, q checked in the range",
        ),
        (
            "model+sort_by=cost",
            "model=gpt-4o&sort_by=cost",
            "partly: model range sorted",
        ),
        (
            "q alone, frequent (1 row in 5)",
            "q=password",
            "listing index, q checked per row; the count scans",
        ),
        (
            "q alone, rare",
            "q=answer%20123456",
            "text index (FTS5 / pg_trgm)",
        ),
        (
            "q alone, rare, + model",
            "q=answer%20123456&model=gpt-4o",
            "text index (FTS5 / pg_trgm)",
        ),
        (
            "q alone, two letters",
            "q=zz",
            "no: shorter than a trigram, a scan",
        ),
    ];
    for (label, query, served) in filters {
        cases.push((
            label.to_owned(),
            format!("{base}/{big}/llm-calls?{query}"),
            served,
        ));
    }
    cases.push((
        "small conversation (10k), default".into(),
        format!("{base}/{}/llm-calls", small[37]),
        "index",
    ));
    cases.push((
        "small conversation (10k), model+date+q".into(),
        format!(
            "{base}/{}/llm-calls?model=gpt-4o-mini&date_from=2026-01-01&date_to=2026-01-20&q=login",
            small[37]
        ),
        "index, q scans the range",
    ));
    println!("| query | served by an index | total matched | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|");
    for (label, url, served) in cases {
        let (p50, p99, total) = measure(&client, &url).await;
        println!("| {label} | {served} | {total} | {p50:.2} | {p99:.2} |");
    }
    server.abort();
    drop(store);
    bench.cleanup().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows: i64 = value("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let backends = match value("--backend").as_deref() {
        Some("sqlite") => vec!["sqlite"],
        Some("postgres") => vec!["postgres"],
        _ => vec!["sqlite", "postgres"],
    };
    for backend in backends {
        run(backend, rows).await;
    }
}
