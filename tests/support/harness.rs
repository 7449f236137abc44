//! The engine over a test database and the scripted LLM, with the local
//! worker to drain the queue step by step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::engine::{Engine, Outcome};
use ai_team_core::models::{Execution, ExecutionStatus, Workflow};
use ai_team_core::query::NewWorkflow;
use ai_team_core::queue::{JobSource, StepQueue};
use ai_team_functions::worker::Worker;
use ai_team_functions::{engine_wiring, llm_config};

use crate::{TestDb, config_with};

pub struct Harness {
    pub engine: Engine,
    pub worker: Worker,
    pub data_dir: std::path::PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The queue ports of the test database.
pub fn queue_of(db: &TestDb) -> (Arc<dyn StepQueue>, Arc<dyn JobSource>) {
    let store = db.raw.store();
    (Arc::new(store.clone()), Arc::new(store.clone()))
}

/// The next step message on the database queue (which must have one).
pub async fn queued_step(jobs: &dyn JobSource) -> ai_team_core::queue::ReceivedJob {
    jobs.receive(
        ai_team_core::queue::STEPS_QUEUE,
        "test",
        Duration::from_secs(60),
    )
    .await
    .expect("the queue answers")
    .expect("a queued step")
}

impl Harness {
    /// `vars` are extra settings (budgets, …) on top of the scripted LLM.
    pub async fn new(db: &TestDb, llm_base_url: &str, vars: &[(&str, &str)]) -> Self {
        let (queue, jobs) = queue_of(db);
        Self::with_queue(db, llm_base_url, vars, queue, jobs).await
    }

    pub async fn with_queue(
        db: &TestDb,
        llm_base_url: &str,
        vars: &[(&str, &str)],
        queue: Arc<dyn StepQueue>,
        jobs: Arc<dyn JobSource>,
    ) -> Self {
        let data_dir =
            std::env::temp_dir().join(format!("ai_team_engine_{}", uuid::Uuid::new_v4().simple()));
        let data = data_dir.display().to_string();
        let mut all: Vec<(&str, &str)> = vec![("OPENAI_BASE_URL", llm_base_url)];
        if !vars.iter().any(|(k, _)| *k == "OPENAI_MODEL") {
            all.push(("OPENAI_MODEL", "gpt-4o-mini"));
        }
        all.extend([
            ("AI_TEAM_DATA_DIR", data.as_str()),
            ("AI_TEAM_LLM_MAX_ATTEMPTS", "2"),
        ]);
        all.extend_from_slice(vars);
        let config = config_with(&all);
        let map: std::collections::HashMap<String, String> = all
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let llm = llm_config::LlmSettings::read(&|k| map.get(k).cloned()).expect("llm settings");
        let llm = llm_config::build(&llm).await.expect("llm");
        let mut engine =
            engine_wiring::build(&config, db.store.clone(), queue, llm).expect("engine");
        let mut engine_config = (*engine.config).clone();
        engine_config.retry.base_delay = Duration::from_millis(10);
        engine_config.retry.max_delay = Duration::from_millis(50);
        engine.config = Arc::new(engine_config);
        let worker = Worker::new(engine.clone(), jobs);
        Self {
            engine,
            worker,
            data_dir,
        }
    }

    pub async fn workflow(&self, key: &str) -> Workflow {
        let new = NewWorkflow::parse(
            &format!("{key}: Password reset"),
            key,
            None,
            Some(&format!("# {key}: Password reset\nAs a user who forgot my password I want to reset it by e-mail.")),
        )
        .unwrap();
        self.engine
            .store
            .create_workflow(&new)
            .await
            .unwrap()
            .into_inner()
    }

    /// Runs queued messages until none is left (or the deadline passes);
    /// returns the outcomes in order.
    pub async fn drain(&self) -> Vec<Outcome> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut outcomes = Vec::new();
        while Instant::now() < deadline {
            match self.worker.try_execute_next().await.expect("worker") {
                Some(o) => outcomes.push(o),
                None => break,
            }
        }
        outcomes
    }

    pub async fn execution(&self, e: &Execution) -> Execution {
        self.engine.store.execution_by_id(e.id).await.unwrap()
    }

    /// Resumes the execution from its last checkpoint and runs what is queued.
    pub async fn resume_and_drain(&self, e: &Execution) -> Vec<Outcome> {
        self.engine
            .resume(e.workflow_id, e.id, Default::default())
            .await
            .expect("resume");
        self.drain().await
    }

    pub async fn run_to_end(&self, workflow_id: i64) -> Execution {
        let e = self.engine.start(workflow_id).await.expect("start");
        self.drain().await;
        let done = self.execution(&e).await;
        assert!(
            !matches!(
                done.status,
                ExecutionStatus::Pending | ExecutionStatus::Running
            ),
            "execution still {}",
            done.status
        );
        done
    }
}
