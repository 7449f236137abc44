//! The start-up wiring every serverless host shares (the Lambda functions,
//! the Azure custom handler): configuration, the cloud's adapters chosen by
//! `CloudProvider`, the database, the LLM, the engine, built once.

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::engine::Engine;
use ai_team_core::push::PushChannel;
#[cfg(feature = "aws")]
use ai_team_providers::aws_sqs::SqsQueue;
use ai_team_providers::store;

use crate::cloud::{self, CloudProvider};
use crate::configuration::{Config, ConfigError, keys};
use crate::{engine, llm_config, telemetry};

/// Everything the API state builds from the configuration that can still
/// be wrong after `Config::from_env` (a Jira client the URL cannot make, a
/// team file that does not read): checked at start-up so that it stops
/// the process with the variable's name instead of becoming a log line and
/// a 503 at the first request.
pub fn check_configuration(config: &Config) -> Result<(), ConfigError> {
    crate::integrations::ticket_source(config)?;
    crate::engine::team(config)?;
    Ok(())
}

/// What a host that only reads the database holds (the health function).
pub struct WiredStore {
    pub config: Config,
    pub store: Arc<dyn Store>,
}

/// The configuration (all of it checked, the cloud's settings included)
/// and the database with its migrations applied: what every host needs.
async fn wire_database() -> Result<(Config, CloudProvider, store::Backend), String> {
    let mut config = Config::from_env().map_err(|e| e.to_string())?;
    // Many instances of one function run at once: each needs its own name
    // on step leases, so a late instance cannot finish a lease another
    // instance took over after expiry.
    config.worker_id = format!("{}-{}", config.worker_id, uuid::Uuid::new_v4().simple());
    telemetry::init(config.log_format);
    check_configuration(&config).map_err(|e| e.to_string())?;
    let provider = CloudProvider::from_env().map_err(|e| e.to_string())?;
    let db = config.database_url.clone();
    let backend = store::connect_backend(&db, true).await.map_err(|e| {
        format!(
            "invalid {}: cannot open {}: {e}",
            keys::DATABASE_URL,
            db.redacted()
        )
    })?;
    Ok((config, provider, backend))
}

/// Only the database: no cloud adapters, no LLM client, no engine (the
/// health function answers from a ping; building the rest would only
/// lengthen its cold start).
pub async fn wire_store() -> Result<WiredStore, String> {
    let (config, _, backend) = wire_database().await?;
    Ok(WiredStore {
        config,
        store: backend.store,
    })
}

/// What a serverless host holds for its lifetime.
pub struct Wired {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    /// The SQS adapter on AWS, for the consumers' visibility changes.
    #[cfg(feature = "aws")]
    pub sqs: Option<SqsQueue>,
    /// Where events are pushed to gateway-held WebSocket clients.
    pub push: Option<Arc<dyn PushChannel>>,
    /// On Azure, the key queue messages are signed with.
    #[cfg(feature = "azure")]
    pub message_key: Option<ai_team_providers::azure_service_bus::MessageKey>,
    /// What the cloud configuration resolved to, one line per service.
    pub resolved: Vec<cloud::Resolved>,
}

/// Reads the environment and builds the adapters: the database (its
/// migrations applied; sqlx serialises concurrent cold starts with an
/// advisory lock), the cloud's queue and blobs, the LLM, the engine.
/// The error is one line naming what is wrong.
pub async fn wire() -> Result<Wired, String> {
    let (config, provider, backend) = wire_database().await?;
    let adapters = cloud::adapters(&provider, &config, backend.queue.clone(), &backend.store)
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
    crate::log_stream::start(backend.store.clone());
    let resolved = provider.resolved(&config);
    tracing::info!(
        provider = provider.name(),
        services = %resolved
            .iter()
            .map(|r| format!("{}: {} ({})", r.service, r.endpoint, r.credential))
            .collect::<Vec<_>>()
            .join("; "),
        "cloud configuration"
    );
    Ok(Wired {
        config,
        store: backend.store,
        engine,
        #[cfg(feature = "aws")]
        sqs: adapters.sqs,
        push: adapters.push,
        #[cfg(feature = "azure")]
        message_key: adapters.message_key,
        resolved,
    })
}
