//! Wires the engine from the configuration: the LLM chosen by
//! `LLM_PROVIDER`, the code host (GitHub with `USE_REAL_GITHUB`, else
//! local git), blobs under the data directory or in the cloud's store
//! (`cloud`), the team the settings read, tiktoken counting, the model
//! catalog.

use std::sync::Arc;
use std::time::Duration;

use ai_team_core::Store;
use ai_team_core::blob::BlobStore;
use ai_team_core::catalog::Catalog;
use ai_team_core::engine::{Engine, EngineConfig};
use ai_team_core::llm::{LlmClient, RetryPolicy};
use ai_team_core::queue::StepQueue;
use ai_team_providers::blob::LocalBlobStore;
use ai_team_providers::tokens::TiktokenCounter;

use ai_team_core::verification::{NoRunner, TestRunner};
use ai_team_providers::verify::{Isolation, LocalTestRunner};

use crate::configuration::{Config, ConfigError, TestRunnerKind};

/// The engine's settings from the configuration.
pub fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        lease: config.step_lease,
        retry: RetryPolicy {
            max_attempts: config.llm_max_attempts,
            ..RetryPolicy::default()
        },
        redact: config.redact_sensitive,
        spill_threshold: config.spill_bytes,
        budgets: config.budgets,
        worker_id: config.worker_id.clone(),
        paths: ai_team_core::engine::parse::PathPolicy {
            allow_ci_paths: config.allow_ci_paths,
        },
        // With GitHub, a workflow without a repository_url goes to
        // NEGISHI_GITHUB_REPO; locally, to a repository per story.
        default_repository: match &config.integrations.github {
            Some(g) => g.repository.clone(),
            None => config
                .data_dir
                .join("repos")
                .join("{story}")
                .display()
                .to_string(),
        },
        test_command: config.test_command.clone(),
        max_fix_rounds: config.max_fix_rounds,
        ..EngineConfig::default()
    }
}

/// Where verifications run: here (with the best isolation this machine
/// has), or nowhere with the reason.
pub fn test_runner(
    config: &Config,
    code_host: Arc<dyn ai_team_core::codehost::CodeHost>,
) -> Arc<dyn TestRunner> {
    match &config.test_runner {
        TestRunnerKind::Local => Arc::new(LocalTestRunner::new(
            code_host,
            config.test_timeout,
            Isolation::detect(),
        )),
        TestRunnerKind::None(reason) => Arc::new(NoRunner {
            reason: reason.clone(),
        }),
    }
}

/// Builds the engine over `store` and `queue` with `llm`, blobs on disk.
pub fn build(
    config: &Config,
    store: Arc<dyn Store>,
    queue: Arc<dyn StepQueue>,
    llm: Arc<dyn LlmClient>,
) -> Result<Engine, ConfigError> {
    let blobs = Arc::new(LocalBlobStore::new(config.data_dir.join("blobs")));
    build_with(config, store, queue, Some(blobs), llm)
}

/// Builds the engine over the given adapters (a cloud's queue and blobs).
pub fn build_with(
    config: &Config,
    store: Arc<dyn Store>,
    queue: Arc<dyn StepQueue>,
    blobs: Option<Arc<dyn BlobStore>>,
    llm: Arc<dyn LlmClient>,
) -> Result<Engine, ConfigError> {
    let code_host = crate::integrations::code_host(config)?;
    Ok(Engine {
        store,
        llm,
        queue,
        blobs,
        tests: test_runner(config, code_host.clone()),
        code_host,
        catalog: Arc::new(Catalog::builtin()),
        team: config.team.team.clone(),
        counter: Arc::new(TiktokenCounter),
        config: Arc::new(engine_config(config)),
    })
}

/// How often an idle worker looks for work.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
