//! `cargo bench -p ai-team-functions --bench webhooks [-- --seconds S --concurrency C --pg]`
//!
//! Webhook ingestion throughput on loopback: signed `check_run` deliveries
//! (the recorded GitHub payload, a new `X-GitHub-Delivery` each) posted to
//! the real router — signature check, parse, one transaction that records
//! the delivery, upserts the check and appends the event — over SQLite
//! (and PostgreSQL with `--pg`); then a hello-world axum route on the same
//! machine, in the same process and run, with the same load generator, for
//! the fraction. The generator is C keep-alive connections looping for S
//! seconds each (defaults 32 and 10); it shares the 2 cores with the
//! server, equally for both measurements.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ai_team_core::delivery::PullRequestUpdate;
use ai_team_core::query::NewWorkflow;
use ai_team_functions::configuration::Config;
use ai_team_functions::{AppState, app};
use ai_team_providers::github::webhook::sign;
use ai_team_providers::store::{self, DatabaseUrl};
use axum::Router;
use axum::routing::get;

const SECRET: &str = "bench-secret";
const PAYLOAD: &str = include_str!("../../tests/fixtures/github/webhooks/check_run_completed.json");

/// Builds the n-th request of a load run.
type MakeRequest = dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync;

struct Args {
    seconds: u64,
    concurrency: usize,
    pg: bool,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 10,
        concurrency: 32,
        pg: false,
    };
    let raw: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < raw.len() {
        match raw[i].as_str() {
            "--seconds" => {
                a.seconds = raw.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(10);
                i += 1;
            }
            "--concurrency" => {
                a.concurrency = raw.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(32);
                i += 1;
            }
            "--pg" => a.pg = true,
            _ => {}
        }
        i += 1;
    }
    a
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

struct Result {
    ok: u64,
    errors: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// C connections sending `make_request` for `seconds`; counts 2xx whose
/// body contains `expect`.
async fn load(
    seconds: u64,
    concurrency: usize,
    build: Arc<MakeRequest>,
    expect: &'static str,
) -> Result {
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (ok, errors, seq, build) = (ok.clone(), errors.clone(), seq.clone(), build.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match build(&client, n).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        if status.is_success() && body.contains(expect) {
                            ok.fetch_add(1, Ordering::Relaxed);
                            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                        } else if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!(
                                "unexpected answer {status}: {}",
                                body.chars().take(200).collect::<String>()
                            );
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("request failed: {e}");
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all[((all.len() as f64 * p) as usize).min(all.len() - 1)]
        }
    };
    let ok = ok.load(Ordering::Relaxed);
    Result {
        ok,
        errors: errors.load(Ordering::Relaxed),
        per_second: ok as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

async fn webhook_target(url: &DatabaseUrl) -> (SocketAddr, Arc<dyn ai_team_core::Store>) {
    let store = store::connect(url, true).await.expect("database");
    let wf = store
        .create_workflow(
            &NewWorkflow::parse(
                "BENCH-1: hooks",
                &format!("BENCH-{}", std::process::id()),
                None,
                None,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner();
    store
        .upsert_pull_request(
            wf.id,
            &PullRequestUpdate {
                repository: "Codertocat/Hello-World".into(),
                number: 2,
                url: "https://github.com/Codertocat/Hello-World/pull/2".into(),
                state: "open".into(),
                title: "bench".into(),
                head_branch: "changes".into(),
                base_branch: "master".into(),
                head_sha: None,
                merged: false,
                draft: false,
                updated_at: chrono::Utc::now(),
            },
            &[],
        )
        .await
        .unwrap();
    let config = Config::from_lookup(|k| match k {
        "GITHUB_WEBHOOK_SECRET" => Some(SECRET.into()),
        "AI_TEAM_LOG_FORMAT" => Some("json".into()),
        _ => None,
    })
    .unwrap();
    (
        serve(app(AppState::new(store.clone(), config))).await,
        store,
    )
}

fn report(name: &str, r: &Result) {
    println!(
        "{name:<28} {:>9.0} /s  ok {:>7}  errors {:>3}  p50 {:>6.2} ms  p99 {:>6.2} ms",
        r.per_second, r.ok, r.errors, r.p50_ms, r.p99_ms
    );
}

async fn webhooks(addr: SocketAddr, a: &Args) -> Result {
    let url = format!("http://{addr}/webhooks/github");
    let signature = sign(SECRET.as_bytes(), PAYLOAD.as_bytes());
    // Distinct delivery ids across runs (warm-up included): a repeated id
    // would take the cheaper "already processed" path.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let build: Arc<MakeRequest> = Arc::new(move |c: &reqwest::Client, n: u64| {
        c.post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "check_run")
            .header("x-github-delivery", format!("bench-{run}-{n}"))
            .header("x-hub-signature-256", &signature)
            .body(PAYLOAD)
    });
    load(a.seconds, a.concurrency, build, "Delivery applied").await
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir =
            std::env::temp_dir().join(format!("ai-team-bench-webhooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        println!(
            "{} s per measurement, {} connections, {} cores, payload {} bytes",
            a.seconds,
            a.concurrency,
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            PAYLOAD.len()
        );
        let hello = serve(Router::new().route("/", get(|| async { "Hello, World!" }))).await;
        let hello_url = format!("http://{hello}/");
        let hello_build: Arc<MakeRequest> =
            Arc::new(move |c: &reqwest::Client, _| c.get(&hello_url));

        let sqlite = DatabaseUrl::SqliteFile(dir.join("bench.db"));
        let (addr, store) = webhook_target(&sqlite).await;
        // Warm-up: connections, caches, the first SQLite pages.
        let warm = Args { seconds: 1, ..a };
        let _ = webhooks(addr, &warm).await;
        let hooks_sqlite = webhooks(addr, &a).await;
        report("webhooks (SQLite)", &hooks_sqlite);
        drop(store);

        let mut hooks_pg = None;
        if a.pg {
            let name = format!("ai_team_bench_{}", std::process::id());
            let admin = std::env::var("AI_TEAM_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let pool = sqlx::PgPool::connect(&admin).await.expect("PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .unwrap();
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(b, _)| b)
                .to_owned();
            let (addr, store) =
                webhook_target(&DatabaseUrl::Postgres(format!("{base}/{name}"))).await;
            let _ = webhooks(addr, &warm).await;
            let r = webhooks(addr, &a).await;
            report("webhooks (PostgreSQL)", &r);
            hooks_pg = Some(r);
            drop(store);
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await;
        }

        let _ = load(1, a.concurrency, hello_build.clone(), "Hello").await;
        let hello_r = load(a.seconds, a.concurrency, hello_build, "Hello").await;
        report("hello-world axum route", &hello_r);
        println!(
            "fraction of hello-world: SQLite {:.1} %{}",
            100.0 * hooks_sqlite.per_second / hello_r.per_second,
            hooks_pg
                .map(|r| format!(
                    ", PostgreSQL {:.1} %",
                    100.0 * r.per_second / hello_r.per_second
                ))
                .unwrap_or_default()
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
