//! Crash safety of the step executor: `ai-team serve` runs ten
//! executions over the scripted LLM and is SIGKILLed at random moments
//! 50 times, restarted each time. Every execution must complete; no
//! conversation, message, success call or file row may be duplicated;
//! and no prompt whose response was stored may reach the model again.
//! The seed of the kill moments is printed (`AI_TEAM_KILL_SEED` replays it).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ai_team_core::models::ExecutionStatus;
use ai_team_providers::store::DatabaseUrl;
use ai_team_tests::fake_llm::{FakeLlm, Script, prompt_key};
use ai_team_tests::harness::Harness;
use ai_team_tests::{Backend, TestDb, binary};
use chrono::{DateTime, Utc};

/// Kills and executions per run: 50 over 10 by default;
/// `AI_TEAM_KILLS` and `AI_TEAM_KILL_EXECUTIONS` change them (README's
/// fault-injection run: 30 over 30).
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
const MODEL: &str = "meta.llama3-1-70b-instruct-v1:0";

fn url_of(db: &TestDb) -> String {
    match &db.url {
        // SQLAlchemy's form: four slashes for an absolute path.
        DatabaseUrl::SqliteFile(p) => format!("sqlite:///{}", p.display()),
        DatabaseUrl::Postgres(u) => u.clone(),
        DatabaseUrl::SqliteMemory => unreachable!("a file is needed across processes"),
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo + 1)
    }
}

fn spawn(bin: &PathBuf, db_url: &str, llm: &str, data: &str) -> Child {
    Command::new(bin)
        .args(["serve", "--port", "0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("OPENAI_BASE_URL", llm)
        // A catalog model counted by the estimate: no tokenizer tables to
        // load, so each short life gets to work at once.
        .env("OPENAI_MODEL", MODEL)
        .env("AI_TEAM_DATA_DIR", data)
        .env("AI_TEAM_WORKER_ID", "crashy")
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

async fn killed_fifty_times_every_execution_completes_exactly_once(backend: Backend) {
    let seed: u64 = std::env::var("AI_TEAM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("AI_TEAM_KILL_SEED={seed}");
    let (kills, executions_n) = (
        setting("AI_TEAM_KILLS", 50),
        setting("AI_TEAM_KILL_EXECUTIONS", 10),
    );
    let mut rng = Rng(seed);
    let db = TestDb::new(backend).await;
    let llm = FakeLlm::start(Script {
        delay_ms: (200, 900),
        ..Script::default()
    })
    .await;
    let h = Harness::new(&db, &llm.base_url(), &[("OPENAI_MODEL", MODEL)]).await;
    let data = h.data_dir.display().to_string();
    let mut executions = Vec::new();
    for n in 1..=executions_n {
        let wf = h.workflow(&format!("KILL-{n}")).await;
        executions.push(h.engine.start(wf.id).await.unwrap());
    }
    let bin = binary();
    let db_url = url_of(&db);
    assert_eq!(
        DatabaseUrl::parse(&db_url).unwrap(),
        db.url,
        "the server opens the test's database"
    );
    let mut kills_with_work_left = 0;
    for _ in 0..kills {
        let mut child = spawn(&bin, &db_url, &llm.base_url(), &data);
        tokio::time::sleep(Duration::from_millis(rng.next(150, 1200))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        if db.count("checkpoints").await < 10 * executions.len() as i64 {
            kills_with_work_left += 1;
        }
    }
    println!("{kills_with_work_left} of {kills} kills landed while steps were left to run");
    assert!(
        kills_with_work_left >= kills / 2,
        "the kills must interrupt the work, not an idle server"
    );
    let progress_at_last_kill = db.count("checkpoints").await;
    let mut child = spawn(&bin, &db_url, &llm.base_url(), &data);
    let deadline = Instant::now() + Duration::from_secs(120 + 4 * executions_n as u64);
    loop {
        let mut live = 0;
        for e in &executions {
            let now = db.store.execution_by_id(e.id).await.unwrap();
            if matches!(
                now.status,
                ExecutionStatus::Pending | ExecutionStatus::Running
            ) {
                live += 1;
            }
        }
        if live == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    println!(
        "checkpoints written before the last restart: {progress_at_last_kill} of {}",
        10 * executions_n
    );

    for e in &executions {
        let done = db.store.execution_by_id(e.id).await.unwrap();
        assert_eq!(
            done.status,
            ExecutionStatus::Completed,
            "execution {}: {:?}",
            e.id,
            done.error
        );
        let id = e.id;
        assert_eq!(
            scalar(
                &db,
                &format!("SELECT COUNT(*) FROM conversations WHERE execution_id = {id}")
            )
            .await,
            6
        );
        assert_eq!(
            scalar(
                &db,
                &format!("SELECT COUNT(*) FROM checkpoints WHERE execution_id = {id}")
            )
            .await,
            10
        );
        assert_eq!(
            scalar(
                &db,
                &format!("SELECT COUNT(*) FROM code_files WHERE execution_id = {id}")
            )
            .await,
            4
        );
        assert_eq!(
            scalar(&db, &format!("SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.execution_id = {id}")).await,
            18,
            "three messages per conversation, none twice"
        );
        if scalar(
            &db,
            &format!(
                "SELECT COUNT(*) FROM llm_calls WHERE execution_id = {id} AND status = 'success'"
            ),
        )
        .await
            != 6
        {
            let d = db.store.workflow_detail(done.workflow_id).await.unwrap();
            for c in d
                .conversations
                .iter()
                .filter(|c| c.conversation.execution_id == Some(id))
            {
                let calls = db
                    .store
                    .list_llm_calls(
                        c.conversation.id,
                        &ai_team_core::query::LlmCallQuery::parse(Default::default()).unwrap(),
                    )
                    .await
                    .unwrap();
                for call in calls.calls {
                    eprintln!(
                        "paid twice? step {} call {} prompt {} at {} max={:?} prompt_tokens={}",
                        c.conversation.step,
                        call.status,
                        call.prompt_hash,
                        call.timestamp,
                        call.max_tokens,
                        call.prompt_tokens
                    );
                }
            }
        }
        assert_eq!(
            scalar(&db, &format!("SELECT COUNT(*) FROM llm_calls WHERE execution_id = {id} AND status = 'success'")).await,
            6,
            "one paid response per step"
        );
        // The kept totals still equal the rows.
        assert_eq!(
            done.total_calls,
            scalar(
                &db,
                &format!("SELECT COUNT(*) FROM llm_calls WHERE execution_id = {id}")
            )
            .await
        );
        assert_eq!(
            done.total_tokens,
            scalar(&db, &format!("SELECT CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) FROM llm_calls WHERE execution_id = {id}")).await
        );
    }
    // No prompt reached the model after its response was stored.
    let stored: Vec<(String, DateTime<Utc>)> = {
        let sql = "SELECT request_data, timestamp FROM llm_calls WHERE status = 'success'";
        match &db.raw {
            ai_team_tests::Raw::Sqlite(s) => sqlx::query_as(sql).fetch_all(s.pool()).await,
            ai_team_tests::Raw::Postgres(s) => sqlx::query_as(sql).fetch_all(s.pool()).await,
        }
        .expect("calls")
    };
    let seen = llm.seen();
    let mut resent_after_kill = 0;
    let mut per_prompt: HashMap<&str, usize> = HashMap::new();
    for s in &seen {
        *per_prompt.entry(s.body_sha.as_str()).or_default() += 1;
    }
    for (request, at) in &stored {
        let request: serde_json::Value = serde_json::from_str(request).unwrap();
        let key = prompt_key(
            request["messages"][0]["content"].as_str().unwrap(),
            request["messages"][1]["content"].as_str().unwrap(),
        );
        let stored_at = SystemTime::from(*at);
        let later: Vec<_> = seen
            .iter()
            .filter(|s| s.body_sha == key && s.at > stored_at)
            .collect();
        assert!(
            later.is_empty(),
            "a stored response was bought again: {later:?}"
        );
        resent_after_kill += per_prompt
            .get(key.as_str())
            .copied()
            .unwrap_or(0)
            .saturating_sub(1);
    }
    println!(
        "{kills} kills: {} requests to the model for {} steps; {resent_after_kill} re-sent because a kill cut the call before its response was stored",
        seen.len(),
        6 * executions_n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_killed_fifty_times_every_execution_completes_exactly_once() {
    killed_fifty_times_every_execution_completes_exactly_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_fifty_times_every_execution_completes_exactly_once() {
    killed_fifty_times_every_execution_completes_exactly_once(Backend::Postgres).await;
}
