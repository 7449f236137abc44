//! The AWS Lambda side (feature `lambda`): the handlers the Lambda
//! binaries run, exposed here so that tests invoke them in-process with
//! recorded event payloads, and the start-up wiring they share. Every
//! client and pool is built once, in `wire`, before the runtime loop;
//! the handlers only borrow them.

pub mod http;
pub mod steps;

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::engine::Engine;
use ai_team_providers::store;

use crate::cloud::{self, CloudProvider};
use crate::configuration::{Config, keys};
use crate::{engine, llm_config, telemetry};

pub use http::api_handler;
pub use steps::steps_handler;

/// What a Lambda function holds for its lifetime.
pub struct Wired {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
}

/// Reads the environment and builds the adapters: the database (its
/// migrations applied; sqlx serialises concurrent cold starts with an
/// advisory lock), the cloud's queue and blobs, the LLM, the engine.
/// The error is one line naming what is wrong.
pub async fn wire() -> Result<Wired, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    telemetry::init(config.log_format);
    let provider = CloudProvider::from_env().map_err(|e| e.to_string())?;
    let db = config.database_url.clone();
    let backend = store::connect_backend(&db, true).await.map_err(|e| {
        format!(
            "invalid {}: cannot open {}: {e}",
            keys::DATABASE_URL,
            db.redacted()
        )
    })?;
    let adapters = cloud::adapters(&provider, &config, backend.queue.clone())
        .await
        .map_err(|e| e.to_string())?;
    let llm = llm_config::build(&|k| std::env::var(k).ok())
        .await
        .map_err(|e| e.to_string())?;
    let engine = engine::build_with(
        &config,
        backend.store.clone(),
        adapters.queue,
        adapters.blobs,
        llm,
    )
    .map_err(|e| e.to_string())?;
    Ok(Wired {
        config,
        store: backend.store,
        engine,
    })
}
