//! Test support: a fresh database per test (a SQLite file in its own
//! directory, or a new PostgreSQL database on the machine's server), the
//! real router on a random port, a TCP proxy that can play a database
//! outage, deterministic seed data, and the cloud emulators (moto,
//! Azurite).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

pub mod azurite;
pub mod entra;
pub mod fake_github;
pub mod fake_jira;
pub mod fake_llm;
pub mod harness;
pub mod lambda_runtime_api;
pub mod moto;
pub mod proxy;
pub mod seed;
pub mod sse;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ai_team_core::Store;
use ai_team_functions::configuration::Config;
use ai_team_functions::{AppState, app};
use ai_team_providers::store::{DatabaseUrl, SqlStore};

/// The `ai-team` binary beside the running test's, built if missing
/// (`cargo test --workspace` builds it already).
pub fn binary() -> PathBuf {
    functions_binary("ai-team", "")
}

/// A binary of `ai-team-functions` beside the running test's, built with
/// `features` if missing (`cargo test --workspace` builds them all: this
/// crate turns `lambda` and `azure` on).
pub fn functions_binary(name: &str, features: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(name);
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "ai-team-functions", "--bin", name]);
        if !features.is_empty() {
            build.args(["--features", features]);
        }
        let status = build.status().expect("cargo build");
        assert!(status.success(), "building {name} failed");
    }
    bin
}

/// The server the PostgreSQL tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("AI_TEAM_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The concrete store, for raw checks the port does not offer.
#[derive(Clone)]
pub enum Raw {
    Sqlite(RawSqlite),
    Postgres(RawPostgres),
}

impl Raw {
    /// The store itself, whichever database it is on.
    pub fn store(&self) -> &SqlStore {
        match self {
            Raw::Sqlite(s) => &s.0,
            Raw::Postgres(s) => &s.0,
        }
    }
}

/// A store known to be on SQLite, with its pool.
#[derive(Clone)]
pub struct RawSqlite(SqlStore);

impl RawSqlite {
    pub fn pool(&self) -> &sqlx::SqlitePool {
        self.0.sqlite_pool().expect("opened on SQLite")
    }
}

/// A store known to be on PostgreSQL, with its pool.
#[derive(Clone)]
pub struct RawPostgres(SqlStore);

impl RawPostgres {
    pub fn pool(&self) -> &sqlx::PgPool {
        self.0.postgres_pool().expect("opened on PostgreSQL")
    }
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: DatabaseUrl,
    pub store: Arc<dyn Store>,
    pub raw: Raw,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Pg { name: String },
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(unique_name("ai_team_test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = DatabaseUrl::SqliteFile(dir.join("test.db"));
        let store = SqlStore::sqlite(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        Self {
            backend: Backend::Sqlite,
            url,
            store: Arc::new(store.clone()),
            raw: Raw::Sqlite(RawSqlite(store)),
            cleanup: Cleanup::Dir(dir),
        }
    }

    pub async fn postgres() -> Self {
        let name = unique_name("ai_team_test");
        let admin = sqlx::PgPool::connect(&pg_admin_url())
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (see README)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = DatabaseUrl::Postgres(database_url_for(&name));
        let DatabaseUrl::Postgres(u) = &url else {
            unreachable!()
        };
        let store = SqlStore::postgres(u).await.expect("connect postgres");
        store.migrate().await.expect("migrate postgres");
        Self {
            backend: Backend::Postgres,
            url,
            store: Arc::new(store.clone()),
            raw: Raw::Postgres(RawPostgres(store)),
            cleanup: Cleanup::Pg { name },
        }
    }

    /// Rows in a table, straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.raw {
            Raw::Sqlite(s) => sqlx::query_scalar(&sql).fetch_one(s.pool()).await,
            Raw::Postgres(s) => sqlx::query_scalar(&sql).fetch_one(s.pool()).await,
        }
        .expect("count")
    }

    /// A new workflow for story `key`, straight through the store.
    pub async fn workflow(&self, key: &str) -> ai_team_core::models::Workflow {
        let new =
            ai_team_core::query::NewWorkflow::parse(&format!("{key}: Reset"), key, None, None)
                .expect("a valid workflow");
        self.store
            .create_workflow(&new)
            .await
            .expect("create workflow")
            .into_inner()
    }

    /// Runs a statement with no parameters (test set-up only).
    pub async fn execute(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(s) => sqlx::query(sql).execute(s.pool()).await.map(|_| ()),
            Raw::Postgres(s) => sqlx::query(sql).execute(s.pool()).await.map(|_| ()),
        }
        .expect("execute");
    }
}

/// The admin URL with its database name replaced.
pub fn database_url_for(name: &str) -> String {
    let admin = pg_admin_url();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Pg { name } => {
                let name = name.clone();
                // Drop runs inside the test's runtime: use a thread of our own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        if let Ok(admin) = sqlx::PgPool::connect(&pg_admin_url()).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&admin)
                            .await;
                            admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// The service section of the settings, as `Settings` reads it from these
/// variables.
pub fn config_with(vars: &[(&str, &str)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).expect("test config")
}

/// The real router, served on a random port of 127.0.0.1.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub async fn spawn(store: Arc<dyn Store>, config: Config) -> Self {
        Self::spawn_state(AppState::new(store, config)).await
    }

    /// The router over a state built by the caller (with an engine, …).
    pub async fn spawn_state(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let router = app(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self {
            address,
            client: reqwest::Client::new(),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Generates one `#[tokio::test]` per backend for an async fn taking a
/// `TestDb`, so the same suite runs on SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::new($crate::Backend::Sqlite).await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDb::new($crate::Backend::Postgres).await).await;
                }
            )+
        }
    };
}
