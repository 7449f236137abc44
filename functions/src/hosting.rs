//! The start-up wiring every serverless host shares (the Lambda functions,
//! the Azure custom handler): the settings, read once, then as much as the
//! host uses, built once — the database alone (the health function); the
//! database and the cloud's adapters (the functions that read, stream or
//! enqueue without running steps); all of that, the LLM and the engine
//! (the workflows function, the step executor, the Azure handler).

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::engine::Engine;
use ai_team_core::push::PushChannel;
use ai_team_core::queue::StepQueue;
#[cfg(feature = "aws")]
use ai_team_providers::aws_sqs::SqsQueue;
use ai_team_providers::store;

use crate::cloud::{self, CloudProvider};
use crate::configuration::{Config, keys};
use crate::llm_config::LlmSettings;
use crate::settings::{HostSettings, Settings};
use crate::{engine_wiring, llm_config, telemetry};

/// Reads the settings (the process's one read of its environment) and
/// installs the log subscriber. Many instances of one function run at
/// once: each gets its own name on step leases, so a late instance cannot
/// finish a lease another instance took over after expiry.
pub fn settings() -> Result<Settings, String> {
    let mut settings = Settings::from_process_env().map_err(|e| e.to_string())?;
    let config = &mut settings.config;
    config.worker_id = format!("{}-{}", config.worker_id, uuid::Uuid::new_v4().simple());
    telemetry::init(config.log_format);
    Ok(settings)
}

/// Opens the database named by `DATABASE_URL` and applies the migrations
/// (sqlx serialises concurrent cold starts with an advisory lock).
pub async fn connect(config: &Config) -> Result<store::Backend, String> {
    let db = &config.database_url;
    store::connect_backend(db, true).await.map_err(|e| {
        format!(
            "invalid {}: cannot open {}: {e}",
            keys::DATABASE_URL,
            db.redacted()
        )
    })
}

/// What a host that only reads the database holds (the health function).
pub struct WiredStore {
    pub config: Config,
    pub store: Arc<dyn Store>,
}

/// Only the database: no cloud adapters, no LLM client, no engine (the
/// health function answers from a ping; building the rest would only
/// lengthen its cold start).
pub async fn wire_store(settings: Settings) -> Result<WiredStore, String> {
    let backend = connect(&settings.config).await?;
    Ok(WiredStore {
        config: settings.config,
        store: backend.store,
    })
}

/// The database and the cloud's adapters, without the LLM or the engine.
pub struct WiredCloud {
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// The cloud's queue (the database's when local): steps and refresh jobs.
    pub queue: Arc<dyn StepQueue>,
    /// Large bodies and test logs, in the cloud's blob store.
    pub blobs: Option<Arc<dyn ai_team_core::blob::BlobStore>>,
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
    /// The sections not built yet, for `wire`.
    llm: LlmSettings,
    pub host: HostSettings,
}

/// The database and the adapters of the cloud the settings name; the log
/// stream is started. The error is one line naming what is wrong.
pub async fn wire_cloud(settings: Settings) -> Result<WiredCloud, String> {
    let Settings {
        config,
        cloud: provider,
        llm,
        host,
    } = settings;
    let backend = connect(&config).await?;
    let adapters = cloud::adapters(&provider, &config, backend.queue.clone(), &backend.store)
        .await
        .map_err(|e| e.to_string())?;
    crate::log_stream::start(backend.store.clone());
    let resolved = log_resolved(&provider, &config);
    Ok(WiredCloud {
        config,
        store: backend.store,
        queue: adapters.queue,
        blobs: adapters.blobs,
        #[cfg(feature = "aws")]
        sqs: adapters.sqs,
        push: adapters.push,
        #[cfg(feature = "azure")]
        message_key: adapters.message_key,
        resolved,
        llm,
        host,
    })
}

fn log_resolved(provider: &CloudProvider, config: &Config) -> Vec<cloud::Resolved> {
    let resolved = provider.resolved(config);
    tracing::info!(
        provider = provider.name(),
        services = %resolved
            .iter()
            .map(|r| format!("{}: {} ({})", r.service, r.endpoint, r.credential))
            .collect::<Vec<_>>()
            .join("; "),
        "cloud configuration"
    );
    resolved
}

/// What a host that runs steps holds for its lifetime.
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
    pub host: HostSettings,
}

/// Everything: the database, the cloud's adapters, the LLM and the engine
/// over them (its code host and test runner from the settings).
pub async fn wire(settings: Settings) -> Result<Wired, String> {
    let cloud = wire_cloud(settings).await?;
    let llm = llm_config::build(&cloud.llm)
        .await
        .map_err(|e| e.to_string())?;
    let engine = engine_wiring::build_with(
        &cloud.config,
        cloud.store.clone(),
        cloud.queue,
        cloud.blobs,
        llm,
    )
    .map_err(|e| e.to_string())?;
    Ok(Wired {
        config: cloud.config,
        store: cloud.store,
        engine,
        #[cfg(feature = "aws")]
        sqs: cloud.sqs,
        push: cloud.push,
        #[cfg(feature = "azure")]
        message_key: cloud.message_key,
        resolved: cloud.resolved,
        host: cloud.host,
    })
}
