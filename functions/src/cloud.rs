//! Which cloud's adapters this process runs on (DESIGN.md, `CloudProvider`):
//! `CLOUD_PROVIDER` when set, else the settings that exist. AWS needs
//! `AI_TEAM_QUEUE_URL` (the SQS steps queue), `AI_TEAM_REFRESH_QUEUE_URL`
//! (the SQS refresh queue) and `AI_TEAM_BUCKET` (S3). Azure reads the
//! original service's names: Service Bus from `AZURE_SERVICE_BUS_NAMESPACE`
//! (or a connection string), Blob Storage from `AZURE_STORAGE_ACCOUNT` (or
//! a connection string), authenticated with Entra ID (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, a workload identity's token
//! file, or the host's managed identity) wherever no key is given. Both
//! need a PostgreSQL `DATABASE_URL` (a SQLite file does not outlive a
//! function instance). Settings of both clouds at once, or only some of
//! one cloud's, stop start-up with an error naming what is missing or what
//! clashes. With none of them: local (the database queue, files on disk).
//! The original's names that name services AI Team does not call (Cognitive
//! Search, SQL Database, OpenSearch, the subscription) are resolved and
//! shown by `ai-team cloud`, with what is used instead. This is the cloud
//! section of the settings (`settings::Settings::cloud`), parsed from the
//! lookup `settings` gives it; the adapters are built from it.

use std::sync::Arc;

use ai_team_core::Store;
use ai_team_core::blob::BlobStore;
use ai_team_core::push::PushChannel;
use ai_team_core::queue::StepQueue;
#[cfg(feature = "aws")]
use ai_team_core::refresh::REFRESH_QUEUE;
use ai_team_providers::aws::AwsOverrides;
#[cfg(feature = "azure")]
use ai_team_providers::azure_blob::{
    AzureBlobStore, ContainerName, StorageAuth, StorageConnection,
};
pub use ai_team_providers::azure_entra::{EntraKind, EntraSettings};
#[cfg(feature = "azure")]
use ai_team_providers::azure_service_bus::{
    ConnectionString, MessageKey, ServiceBusAuth, ServiceBusQueue,
};
use ai_team_providers::blob::LocalBlobStore;
#[cfg(feature = "aws")]
use ai_team_providers::{aws, aws_apigw::ApiGatewayPush, aws_s3::S3BlobStore, aws_sqs::SqsQueue};

use crate::configuration::{Config, ConfigError, Secret};

pub mod keys {
    pub const CLOUD_PROVIDER: &str = "CLOUD_PROVIDER";
    pub const QUEUE_URL: &str = "AI_TEAM_QUEUE_URL";
    pub const REFRESH_QUEUE_URL: &str = "AI_TEAM_REFRESH_QUEUE_URL";
    /// Optional: the API Gateway WebSocket stage URL events are pushed to.
    pub const WS_ENDPOINT: &str = "AI_TEAM_WS_ENDPOINT";
    pub const BUCKET: &str = "AI_TEAM_BUCKET";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    /// The original's: shown, not used (calls are searched in PostgreSQL).
    pub const AWS_OPENSEARCH_DOMAIN: &str = "AWS_OPENSEARCH_DOMAIN";
    pub const SERVICE_BUS_QUEUE: &str = "AZURE_SERVICE_BUS_QUEUE";
    pub const SERVICE_BUS_CONNECTION: &str = "AZURE_SERVICE_BUS_CONNECTION_STRING";
    /// The original's: `{namespace}.servicebus.windows.net`.
    pub const SERVICE_BUS_NAMESPACE: &str = "AZURE_SERVICE_BUS_NAMESPACE";
    /// The namespace's URL as given (private endpoints, a local fake).
    pub const SERVICE_BUS_ENDPOINT: &str = "AZURE_SERVICE_BUS_ENDPOINT";
    pub const STORAGE_CONTAINER: &str = "AZURE_STORAGE_CONTAINER";
    pub const STORAGE_CONNECTION: &str = "AZURE_STORAGE_CONNECTION_STRING";
    /// The original's: `{account}.blob.core.windows.net`.
    pub const STORAGE_ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
    /// The account key (the Azure CLI's name), instead of Entra ID.
    pub const STORAGE_KEY: &str = "AZURE_STORAGE_KEY";
    /// A SAS token, instead of Entra ID.
    pub const STORAGE_SAS_TOKEN: &str = "AZURE_STORAGE_SAS_TOKEN";
    /// The Blob service's URL as given (Azurite, private endpoints).
    pub const STORAGE_BLOB_ENDPOINT: &str = "AZURE_STORAGE_BLOB_ENDPOINT";
    pub const SUBSCRIPTION_ID: &str = "AZURE_SUBSCRIPTION_ID";
    pub const RESOURCE_GROUP: &str = "AZURE_RESOURCE_GROUP";
    pub const SEARCH_SERVICE_NAME: &str = "AZURE_SEARCH_SERVICE_NAME";
    pub const SQL_SERVER_NAME: &str = "AZURE_SQL_SERVER_NAME";
    pub const TENANT_ID: &str = "AZURE_TENANT_ID";
    pub const CLIENT_ID: &str = "AZURE_CLIENT_ID";
    pub const CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
    pub const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
    pub const AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
    /// Extra roots the Azure calls trust (`azure_http::CA_FILE_VAR`).
    pub const CA_FILE: &str = "SSL_CERT_FILE";
}

/// The queue and container an Azure deployment gets when it does not name
/// them (the original's configuration names neither).
pub const DEFAULT_SERVICE_BUS_QUEUE: &str = "ai-team-steps";
pub const DEFAULT_STORAGE_CONTAINER: &str = "ai-team";
/// The `service_secrets` row holding the queue messages' signing key where
/// Service Bus has no shared key (Entra ID).
pub const MESSAGE_KEY_SECRET: &str = "queue-message-key";

const AWS_KEYS: [&str; 3] = [keys::QUEUE_URL, keys::REFRESH_QUEUE_URL, keys::BUCKET];
/// The settings that say "this is Azure" (not the Entra ones: a local run
/// may hold `AZURE_CLIENT_ID` for Azure OpenAI alone).
const AZURE_KEYS: [&str; 14] = [
    keys::SERVICE_BUS_QUEUE,
    keys::SERVICE_BUS_CONNECTION,
    keys::SERVICE_BUS_NAMESPACE,
    keys::SERVICE_BUS_ENDPOINT,
    keys::STORAGE_CONTAINER,
    keys::STORAGE_CONNECTION,
    keys::STORAGE_ACCOUNT,
    keys::STORAGE_KEY,
    keys::STORAGE_SAS_TOKEN,
    keys::STORAGE_BLOB_ENDPOINT,
    keys::SUBSCRIPTION_ID,
    keys::RESOURCE_GROUP,
    keys::SEARCH_SERVICE_NAME,
    keys::SQL_SERVER_NAME,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub queue_url: String,
    pub refresh_queue_url: String,
    pub bucket: String,
    pub ws_endpoint: Option<String>,
    pub overrides: AwsOverrides,
    /// `AWS_OPENSEARCH_DOMAIN`, shown only.
    pub opensearch_domain: Option<String>,
}

/// How the Service Bus namespace is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceBusKey {
    /// Its SAS key, from `AZURE_SERVICE_BUS_CONNECTION_STRING`.
    ConnectionString(Secret),
    /// Entra ID.
    Entra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceBusSettings {
    /// `https://{namespace}.servicebus.windows.net`; with a connection
    /// string and no override, `None` (its `Endpoint` says).
    pub endpoint: Option<String>,
    pub queue: String,
    pub key: ServiceBusKey,
}

/// How the storage account is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKey {
    /// `AZURE_STORAGE_CONNECTION_STRING` (its `AccountKey`).
    ConnectionString(Secret),
    /// `AZURE_STORAGE_KEY` with `AZURE_STORAGE_ACCOUNT`.
    AccountKey(Secret),
    /// `AZURE_STORAGE_SAS_TOKEN`.
    Sas(Secret),
    /// Entra ID.
    Entra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// `https://{account}.blob.core.windows.net`; with a connection
    /// string and no override, `None` (it says).
    pub endpoint: Option<String>,
    pub account: Option<String>,
    pub container: String,
    pub key: StorageKey,
}

/// The original's Azure names AI Team resolves but does not call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AzureNames {
    pub subscription_id: Option<String>,
    pub resource_group: Option<String>,
    pub search_service: Option<String>,
    pub sql_server: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    pub service_bus: ServiceBusSettings,
    pub storage: StorageSettings,
    /// Used by every service given no key of its own.
    pub entra: EntraSettings,
    pub names: AzureNames,
    /// `SSL_CERT_FILE`: extra roots the Azure calls trust.
    pub ca_file: Option<std::path::PathBuf>,
}

impl AzureSettings {
    /// Whether any service authenticates with Entra ID.
    pub fn uses_entra(&self) -> bool {
        self.service_bus.key == ServiceBusKey::Entra || self.storage.key == StorageKey::Entra
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudProvider {
    Local,
    Aws(AwsSettings),
    Azure(Box<AzureSettings>),
}

/// The Entra ID settings (also the Azure OpenAI client's, without an API key).
pub fn entra_settings(get: &dyn Fn(&str) -> Option<String>) -> EntraSettings {
    let value = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    EntraSettings {
        tenant_id: value(keys::TENANT_ID),
        client_id: value(keys::CLIENT_ID),
        client_secret: value(keys::CLIENT_SECRET),
        federated_token_file: value(keys::FEDERATED_TOKEN_FILE).map(Into::into),
        authority_host: value(keys::AUTHORITY_HOST),
    }
}

/// A name given as a bare name, a host or a URL, made a URL on `suffix`.
fn service_url(given: &str, suffix: &str) -> String {
    if given.contains("://") {
        given.trim_end_matches('/').to_owned()
    } else if given.contains('.') {
        format!("https://{}", given.trim_end_matches('/'))
    } else {
        format!("https://{given}.{suffix}")
    }
}

/// `SSL_CERT_FILE` when set and not blank: a PEM bundle of extra roots
/// the Azure calls trust.
pub fn ca_file(get: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    get(keys::CA_FILE).filter(|v| !v.is_empty()).map(Into::into)
}

impl CloudProvider {
    /// Reads through `get` (`settings`' snapshot, or a test's map).
    pub fn detect(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let value = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let present = |ks: &[&'static str]| -> Vec<&'static str> {
            ks.iter().copied().filter(|k| value(k).is_some()).collect()
        };
        let (aws_set, azure_set) = (present(&AWS_KEYS), present(&AZURE_KEYS));
        let chosen = match value(keys::CLOUD_PROVIDER).as_deref() {
            Some("aws") => "aws",
            Some("azure") => "azure",
            Some("local") => "local",
            Some(other) => {
                return Err(ConfigError {
                    var: keys::CLOUD_PROVIDER,
                    reason: format!("{other:?}: use aws, azure or local"),
                });
            }
            None if !aws_set.is_empty() && !azure_set.is_empty() => {
                return Err(ConfigError {
                    var: keys::CLOUD_PROVIDER,
                    reason: format!(
                        "both AWS ({}) and Azure ({}) settings are present: set CLOUD_PROVIDER or remove one cloud's",
                        aws_set.join(", "),
                        azure_set.join(", ")
                    ),
                });
            }
            None if !aws_set.is_empty() => "aws",
            None if !azure_set.is_empty() => "azure",
            None => "local",
        };
        let other = match chosen {
            "aws" => &azure_set,
            "azure" => &aws_set,
            _ => return Ok(Self::Local),
        };
        if let Some(clash) = other.first() {
            return Err(ConfigError {
                var: clash,
                reason: format!(
                    "is an {} setting but the cloud is {chosen}",
                    cloud_of(clash)
                ),
            });
        }
        let provider = if chosen == "aws" {
            if let Some(missing) = AWS_KEYS.iter().find(|k| value(k).is_none()) {
                return Err(ConfigError {
                    var: missing,
                    reason: "is required on aws".into(),
                });
            }
            let req = |k: &str| value(k).unwrap_or_default();
            Self::Aws(AwsSettings {
                queue_url: req(keys::QUEUE_URL),
                refresh_queue_url: req(keys::REFRESH_QUEUE_URL),
                bucket: req(keys::BUCKET),
                ws_endpoint: value(keys::WS_ENDPOINT),
                overrides: AwsOverrides {
                    region: value(keys::AWS_REGION),
                    endpoint_url: value(keys::AWS_ENDPOINT_URL),
                },
                opensearch_domain: value(keys::AWS_OPENSEARCH_DOMAIN),
            })
        } else {
            Self::Azure(Box::new(azure_settings(&value, ca_file(get))?))
        };
        let is_postgres = value(crate::configuration::keys::DATABASE_URL)
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
        if !is_postgres {
            let sql_server = match &provider {
                Self::Azure(a) => a.names.sql_server.as_deref(),
                _ => None,
            };
            return Err(ConfigError {
                var: crate::configuration::keys::DATABASE_URL,
                reason: match sql_server {
                    Some(server) => format!(
                        "must be a PostgreSQL URL on azure: AZURE_SQL_SERVER_NAME ({server}) names an Azure SQL server, \
                         which AI Team does not use; give the PostgreSQL database (e.g. Azure Database for PostgreSQL) as DATABASE_URL"
                    ),
                    None => format!(
                        "must be a PostgreSQL URL on {chosen} (a SQLite file does not outlive a function instance)"
                    ),
                },
            });
        }
        Ok(provider)
    }
}

fn azure_settings(
    value: &dyn Fn(&str) -> Option<String>,
    ca_file: Option<std::path::PathBuf>,
) -> Result<AzureSettings, ConfigError> {
    let service_bus = {
        let connection = value(keys::SERVICE_BUS_CONNECTION);
        let endpoint = value(keys::SERVICE_BUS_ENDPOINT)
            .map(|e| e.trim_end_matches('/').to_owned())
            .or_else(|| {
                value(keys::SERVICE_BUS_NAMESPACE)
                    .map(|ns| service_url(&ns, "servicebus.windows.net"))
            });
        if connection.is_none() && endpoint.is_none() {
            return Err(ConfigError {
                var: keys::SERVICE_BUS_NAMESPACE,
                reason: format!(
                    "is required on azure (or {}; {} names a namespace's URL as is)",
                    keys::SERVICE_BUS_CONNECTION,
                    keys::SERVICE_BUS_ENDPOINT
                ),
            });
        }
        ServiceBusSettings {
            endpoint,
            queue: value(keys::SERVICE_BUS_QUEUE)
                .unwrap_or_else(|| DEFAULT_SERVICE_BUS_QUEUE.into()),
            key: match connection {
                Some(c) => ServiceBusKey::ConnectionString(Secret::new(c)),
                None => ServiceBusKey::Entra,
            },
        }
    };
    let storage = {
        let connection = value(keys::STORAGE_CONNECTION);
        let account = value(keys::STORAGE_ACCOUNT);
        let endpoint = value(keys::STORAGE_BLOB_ENDPOINT)
            .map(|e| e.trim_end_matches('/').to_owned())
            .or_else(|| {
                account
                    .as_deref()
                    .map(|a| service_url(a, "blob.core.windows.net"))
            });
        if connection.is_none() && endpoint.is_none() {
            return Err(ConfigError {
                var: keys::STORAGE_ACCOUNT,
                reason: format!(
                    "is required on azure (or {}; {} names the Blob service's URL as is)",
                    keys::STORAGE_CONNECTION,
                    keys::STORAGE_BLOB_ENDPOINT
                ),
            });
        }
        let key = match (
            connection,
            value(keys::STORAGE_KEY),
            value(keys::STORAGE_SAS_TOKEN),
        ) {
            (Some(c), _, _) => StorageKey::ConnectionString(Secret::new(c)),
            (None, Some(k), _) => {
                if account.is_none() {
                    return Err(ConfigError {
                        var: keys::STORAGE_ACCOUNT,
                        reason: format!(
                            "is required with {} (the key's account)",
                            keys::STORAGE_KEY
                        ),
                    });
                }
                StorageKey::AccountKey(Secret::new(k))
            }
            (None, None, Some(sas)) => StorageKey::Sas(Secret::new(sas)),
            (None, None, None) => StorageKey::Entra,
        };
        StorageSettings {
            endpoint,
            account,
            container: value(keys::STORAGE_CONTAINER)
                .unwrap_or_else(|| DEFAULT_STORAGE_CONTAINER.into()),
            key,
        }
    };
    let settings = AzureSettings {
        service_bus,
        storage,
        entra: entra_settings(&|k| value(k)),
        names: AzureNames {
            subscription_id: value(keys::SUBSCRIPTION_ID),
            resource_group: value(keys::RESOURCE_GROUP),
            search_service: value(keys::SEARCH_SERVICE_NAME),
            sql_server: value(keys::SQL_SERVER_NAME),
        },
        ca_file,
    };
    if settings.uses_entra()
        && let Some(var) = settings.entra.missing()
    {
        return Err(ConfigError {
            var,
            reason: format!("is required for the {}", settings.entra.kind().as_str()),
        });
    }
    Ok(settings)
}

fn cloud_of(key: &str) -> &'static str {
    if AWS_KEYS.contains(&key) {
        "AWS"
    } else {
        "Azure"
    }
}

/// One line of `ai-team cloud`: a service, where it is, how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub service: &'static str,
    pub endpoint: String,
    pub credential: String,
}

impl CloudProvider {
    pub fn name(&self) -> &'static str {
        match self {
            CloudProvider::Local => "local",
            CloudProvider::Aws(_) => "aws",
            CloudProvider::Azure(_) => "azure",
        }
    }

    /// Each service this configuration names, its endpoint and the kind of
    /// credential it uses: never a secret.
    pub fn resolved(&self, config: &Config) -> Vec<Resolved> {
        let line = |service, endpoint: String, credential: &str| Resolved {
            service,
            endpoint,
            credential: credential.to_owned(),
        };
        match self {
            CloudProvider::Local => vec![
                line("queue", "the database's queue_jobs table".into(), "-"),
                line(
                    "blobs",
                    config.data_dir.join("blobs").display().to_string(),
                    "-",
                ),
            ],
            CloudProvider::Aws(a) => {
                let region = a
                    .overrides
                    .region
                    .as_deref()
                    .unwrap_or("(the SDK's default region)");
                let mut out = vec![
                    line(
                        "sqs steps",
                        a.queue_url.clone(),
                        "AWS default credential chain",
                    ),
                    line(
                        "sqs refresh",
                        a.refresh_queue_url.clone(),
                        "AWS default credential chain",
                    ),
                    line(
                        "s3",
                        format!("s3://{} ({region})", a.bucket),
                        "AWS default credential chain",
                    ),
                ];
                if let Some(ws) = &a.ws_endpoint {
                    out.push(line(
                        "websocket push",
                        ws.clone(),
                        "AWS default credential chain",
                    ));
                }
                if let Some(d) = &a.opensearch_domain {
                    out.push(line(
                        "opensearch",
                        d.clone(),
                        "not used: calls are searched in PostgreSQL (pg_trgm)",
                    ));
                }
                out
            }
            CloudProvider::Azure(a) => {
                let entra = a.entra.kind().as_str();
                let sb_endpoint = a
                    .service_bus
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "(the connection string's Endpoint)".into());
                let blob_endpoint = a
                    .storage
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "(the connection string's BlobEndpoint)".into());
                let mut out = vec![
                    line(
                        "service bus",
                        format!("{sb_endpoint}/{}", a.service_bus.queue),
                        match a.service_bus.key {
                            ServiceBusKey::ConnectionString(_) => "SAS key (connection string)",
                            ServiceBusKey::Entra => entra,
                        },
                    ),
                    line(
                        "blob storage",
                        format!("{blob_endpoint}/{}", a.storage.container),
                        match a.storage.key {
                            StorageKey::ConnectionString(_) => "account key (connection string)",
                            StorageKey::AccountKey(_) => "account key (AZURE_STORAGE_KEY)",
                            StorageKey::Sas(_) => "SAS token",
                            StorageKey::Entra => entra,
                        },
                    ),
                ];
                if let Some(n) = &a.names.search_service {
                    out.push(line(
                        "cognitive search",
                        service_url(n, "search.windows.net"),
                        "not used: calls are searched in PostgreSQL (pg_trgm)",
                    ));
                }
                if let Some(n) = &a.names.sql_server {
                    out.push(line(
                        "sql database",
                        format!(
                            "{}.database.windows.net",
                            n.trim_end_matches(".database.windows.net")
                        ),
                        "not used: the database is DATABASE_URL (PostgreSQL)",
                    ));
                }
                if a.names.subscription_id.is_some() || a.names.resource_group.is_some() {
                    out.push(line(
                        "resource group",
                        format!(
                            "/subscriptions/{}/resourceGroups/{}",
                            a.names.subscription_id.as_deref().unwrap_or("?"),
                            a.names.resource_group.as_deref().unwrap_or("?")
                        ),
                        "not used: no management-plane call is made",
                    ));
                }
                out
            }
        }
    }
}

/// The queue and blob adapters of one cloud, built once at start-up. Every
/// provider has a blob adapter (files on disk, S3, Azure Blob Storage), so
/// `blobs` is always `Some` here; the engine still takes `None`, where
/// large bodies stay in their rows.
pub struct CloudAdapters {
    pub queue: Arc<dyn StepQueue>,
    pub blobs: Option<Arc<dyn BlobStore>>,
    /// The SQS adapter itself on AWS, for the consumers' visibility changes.
    #[cfg(feature = "aws")]
    pub sqs: Option<SqsQueue>,
    /// Where events are pushed to WebSocket clients a gateway holds (API
    /// Gateway WebSocket APIs); `None` where clients connect to us.
    pub push: Option<Arc<dyn PushChannel>>,
    /// On Azure, the key the queue's messages are signed with (the queue
    /// route runs only signed ones).
    #[cfg(feature = "azure")]
    pub message_key: Option<MessageKey>,
}

/// Builds the adapters `provider` names; `local_queue` is the database's
/// queue, used when the provider is local; `store` keeps what instances
/// share (the message key where Service Bus has no shared key).
pub async fn adapters(
    provider: &CloudProvider,
    config: &Config,
    local_queue: Arc<dyn StepQueue>,
    store: &Arc<dyn Store>,
) -> Result<CloudAdapters, ConfigError> {
    // Only the Azure adapters keep something in the database.
    #[cfg(not(feature = "azure"))]
    let _ = store;
    match provider {
        CloudProvider::Local => Ok(CloudAdapters {
            queue: local_queue,
            blobs: Some(Arc::new(LocalBlobStore::new(config.data_dir.join("blobs")))),
            #[cfg(feature = "aws")]
            sqs: None,
            push: None,
            #[cfg(feature = "azure")]
            message_key: None,
        }),
        #[cfg(not(feature = "aws"))]
        CloudProvider::Aws(_) => Err(ConfigError {
            var: keys::CLOUD_PROVIDER,
            reason: "aws: this binary was built without the AWS adapters \
                     (build it with `--features aws`, as the Lambda builds are)"
                .into(),
        }),
        #[cfg(feature = "aws")]
        CloudProvider::Aws(aws_settings) => {
            let sdk = aws::load_config(&aws_settings.overrides).await;
            let sqs = SqsQueue::from_config(&sdk, &aws_settings.queue_url)
                .route(REFRESH_QUEUE, &aws_settings.refresh_queue_url);
            Ok(CloudAdapters {
                queue: Arc::new(sqs.clone()),
                blobs: Some(Arc::new(S3BlobStore::from_config(
                    &sdk,
                    &aws_settings.bucket,
                ))),
                sqs: Some(sqs),
                push: aws_settings.ws_endpoint.as_deref().map(|endpoint| {
                    Arc::new(ApiGatewayPush::from_config(&sdk, endpoint)) as Arc<dyn PushChannel>
                }),
                #[cfg(feature = "azure")]
                message_key: None,
            })
        }
        #[cfg(not(feature = "azure"))]
        CloudProvider::Azure(_) => Err(ConfigError {
            var: keys::CLOUD_PROVIDER,
            reason: "azure: this binary was built without the Azure adapters \
                     (build it with `--features azure`, as the Azure handler is)"
                .into(),
        }),
        #[cfg(feature = "azure")]
        CloudProvider::Azure(azure) => azure_adapters(azure, store).await,
    }
}

/// The Entra credential a service without a key of its own uses (made
/// above whenever `uses_entra`).
#[cfg(feature = "azure")]
fn entra(
    credential: &Option<Arc<dyn ai_team_providers::azure_entra::TokenCredential>>,
) -> Result<Arc<dyn ai_team_providers::azure_entra::TokenCredential>, ConfigError> {
    credential.clone().ok_or_else(|| ConfigError {
        var: keys::CLIENT_ID,
        reason: "no Entra ID credential was made for a service that needs one".into(),
    })
}

#[cfg(feature = "azure")]
async fn azure_adapters(
    azure: &AzureSettings,
    store: &Arc<dyn Store>,
) -> Result<CloudAdapters, ConfigError> {
    let http =
        ai_team_providers::azure_http::client(azure.ca_file.as_deref()).map_err(|reason| {
            ConfigError {
                var: ai_team_providers::azure_http::CA_FILE_VAR,
                reason,
            }
        })?;
    let credential = if azure.uses_entra() {
        Some(
            azure
                .entra
                .credential(&http)
                .map_err(|reason| ConfigError {
                    var: keys::CLIENT_ID,
                    reason,
                })?,
        )
    } else {
        None
    };
    let sb = &azure.service_bus;
    let (queue, message_key) = match &sb.key {
        ServiceBusKey::ConnectionString(c) => {
            let conn = ConnectionString::parse(c.expose()).map_err(|reason| ConfigError {
                var: keys::SERVICE_BUS_CONNECTION,
                reason,
            })?;
            let endpoint = sb.endpoint.clone().unwrap_or_else(|| conn.endpoint.clone());
            let key = conn.message_key();
            let queue = ServiceBusQueue::new(
                &http,
                &endpoint,
                &sb.queue,
                ServiceBusAuth::Sas(conn),
                key.clone(),
            );
            (queue, key)
        }
        ServiceBusKey::Entra => {
            let candidate = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let key = store
                .service_secret(MESSAGE_KEY_SECRET, &candidate)
                .await
                .map_err(|e| ConfigError {
                    var: crate::configuration::keys::DATABASE_URL,
                    reason: format!("cannot read the queue's message key: {e}"),
                })?;
            let key = MessageKey::new(key.into_bytes());
            let endpoint = sb.endpoint.clone().unwrap_or_default();
            let auth = ServiceBusAuth::Entra(entra(&credential)?);
            (
                ServiceBusQueue::new(&http, &endpoint, &sb.queue, auth, key.clone()),
                key,
            )
        }
    };
    let st = &azure.storage;
    let container = ContainerName::parse(&st.container).map_err(|reason| ConfigError {
        var: keys::STORAGE_CONTAINER,
        reason,
    })?;
    let endpoint_of = |given: &Option<String>| -> Result<ai_team_providers::azure_blob::EndpointUrl, ConfigError> {
        given
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| ConfigError {
                var: keys::STORAGE_BLOB_ENDPOINT,
                reason: format!("{:?} is not a URL: {e}", given.as_deref().unwrap_or_default()),
            })
    };
    let blobs = match &st.key {
        StorageKey::ConnectionString(c) => {
            let mut conn = StorageConnection::parse(c.expose()).map_err(|reason| ConfigError {
                var: keys::STORAGE_CONNECTION,
                reason,
            })?;
            if st.endpoint.is_some() {
                conn.blob_endpoint = endpoint_of(&st.endpoint)?;
            }
            AzureBlobStore::with_connection(http.clone(), conn, container)
        }
        StorageKey::AccountKey(k) => {
            let key = ai_team_providers::azure_blob::AccountKey::from_base64(k.expose()).map_err(
                |reason| ConfigError {
                    var: keys::STORAGE_KEY,
                    reason,
                },
            )?;
            let auth = StorageAuth::SharedKey {
                account: st.account.clone().unwrap_or_default(),
                key,
            };
            AzureBlobStore::new(http.clone(), &endpoint_of(&st.endpoint)?, container, auth)
        }
        StorageKey::Sas(sas) => AzureBlobStore::new(
            http.clone(),
            &endpoint_of(&st.endpoint)?,
            container,
            StorageAuth::Sas(sas.expose().to_owned()),
        ),
        StorageKey::Entra => {
            let auth = StorageAuth::Entra(entra(&credential)?);
            AzureBlobStore::new(http.clone(), &endpoint_of(&st.endpoint)?, container, auth)
        }
    };
    Ok(CloudAdapters {
        queue: Arc::new(queue),
        blobs: Some(Arc::new(blobs)),
        #[cfg(feature = "aws")]
        sqs: None,
        push: None,
        message_key: Some(message_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn detect(vars: &[(&str, &str)]) -> Result<CloudProvider, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CloudProvider::detect(&|k| map.get(k).cloned())
    }

    const PG: (&str, &str) = ("DATABASE_URL", "postgres://u@db/ai_team");

    #[test]
    fn no_cloud_setting_is_local() {
        assert_eq!(detect(&[]).unwrap(), CloudProvider::Local);
        assert_eq!(
            detect(&[("CLOUD_PROVIDER", "local")]).unwrap(),
            CloudProvider::Local
        );
    }

    #[test]
    fn aws_settings_pick_aws() {
        let p = detect(&[
            PG,
            (
                "AI_TEAM_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/steps",
            ),
            (
                "AI_TEAM_REFRESH_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/refresh",
            ),
            ("AI_TEAM_BUCKET", "artifacts"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        let CloudProvider::Aws(s) = p else {
            panic!("{p:?}")
        };
        assert_eq!(s.bucket, "artifacts");
        assert_eq!(s.overrides.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn incomplete_aws_names_the_missing_setting() {
        let e = detect(&[PG, ("AI_TEAM_QUEUE_URL", "https://q")]).unwrap_err();
        assert_eq!(e.var, "AI_TEAM_REFRESH_QUEUE_URL");
        let e = detect(&[
            PG,
            ("AI_TEAM_QUEUE_URL", "https://q"),
            ("AI_TEAM_REFRESH_QUEUE_URL", "https://r"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "AI_TEAM_BUCKET");
        let e = detect(&[PG, ("CLOUD_PROVIDER", "aws")]).unwrap_err();
        assert_eq!(e.var, "AI_TEAM_QUEUE_URL");
        let e = detect(&[
            ("AI_TEAM_QUEUE_URL", "https://q"),
            ("AI_TEAM_REFRESH_QUEUE_URL", "https://r"),
            ("AI_TEAM_BUCKET", "b"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        let e = detect(&[
            ("DATABASE_URL", "sqlite:///./x.db"),
            ("AI_TEAM_QUEUE_URL", "https://q"),
            ("AI_TEAM_REFRESH_QUEUE_URL", "https://r"),
            ("AI_TEAM_BUCKET", "b"),
        ])
        .unwrap_err();
        assert!(e.reason.contains("PostgreSQL"), "{e}");
    }

    #[test]
    fn mixed_clouds_are_refused() {
        let e = detect(&[
            PG,
            ("AI_TEAM_BUCKET", "b"),
            ("AZURE_STORAGE_CONTAINER", "c"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "CLOUD_PROVIDER");
        assert!(
            e.reason.contains("AI_TEAM_BUCKET") && e.reason.contains("AZURE_STORAGE_CONTAINER")
        );
        let e = detect(&[
            PG,
            ("CLOUD_PROVIDER", "aws"),
            ("AI_TEAM_QUEUE_URL", "https://q"),
            ("AI_TEAM_REFRESH_QUEUE_URL", "https://r"),
            ("AI_TEAM_BUCKET", "b"),
            ("AZURE_SERVICE_BUS_QUEUE", "steps"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "AZURE_SERVICE_BUS_QUEUE");
        assert_eq!(
            detect(&[("CLOUD_PROVIDER", "gcp")]).unwrap_err().var,
            "CLOUD_PROVIDER"
        );
    }

    #[test]
    fn azure_needs_all_four_settings_and_hides_secrets() {
        let e = detect(&[PG, ("AZURE_SERVICE_BUS_QUEUE", "steps")]).unwrap_err();
        assert_eq!(e.var, "AZURE_SERVICE_BUS_NAMESPACE");
        assert!(
            e.reason.contains("AZURE_SERVICE_BUS_CONNECTION_STRING"),
            "{e}"
        );
        let p = detect(&[
            PG,
            ("AZURE_SERVICE_BUS_QUEUE", "steps"),
            (
                "AZURE_SERVICE_BUS_CONNECTION_STRING",
                "Endpoint=sb://x/;SharedAccessKey=k1",
            ),
            ("AZURE_STORAGE_CONTAINER", "c"),
            ("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=k2"),
        ])
        .unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("k1") && !shown.contains("k2"), "{shown}");
    }

    /// The original README's Azure block, plus a tenant id.
    const ORIGINAL: [(&str, &str); 11] = [
        ("CLOUD_PROVIDER", "azure"),
        (
            "AZURE_SUBSCRIPTION_ID",
            "00000000-1111-2222-3333-444444444444",
        ),
        ("AZURE_RESOURCE_GROUP", "ai-team-rg"),
        ("AZURE_OPENAI_RESOURCE_NAME", "acme-openai"),
        ("AZURE_SEARCH_SERVICE_NAME", "acme-search"),
        ("AZURE_SQL_SERVER_NAME", "acme-sql"),
        ("AZURE_SERVICE_BUS_NAMESPACE", "acme-bus"),
        ("AZURE_STORAGE_ACCOUNT", "acmestore"),
        ("AZURE_CLIENT_ID", "app-id"),
        ("AZURE_CLIENT_SECRET", "the-client-secret"),
        ("AZURE_TENANT_ID", "tenant-id"),
    ];

    #[test]
    fn the_originals_azure_block_resolves_every_name() {
        let mut vars = ORIGINAL.to_vec();
        vars.push(PG);
        let p = detect(&vars).unwrap();
        let CloudProvider::Azure(a) = &p else {
            panic!("{p:?}")
        };
        assert_eq!(a.entra.kind(), EntraKind::ClientSecret);
        assert_eq!(a.service_bus.key, ServiceBusKey::Entra);
        assert_eq!(a.storage.key, StorageKey::Entra);
        let lines = p.resolved(&config_for_tests());
        let text = format!("{lines:?}");
        for expected in [
            "https://acme-bus.servicebus.windows.net/ai-team-steps",
            "https://acmestore.blob.core.windows.net/ai-team",
            "https://acme-search.search.windows.net",
            "acme-sql.database.windows.net",
            "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/ai-team-rg",
            "Entra ID client secret",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
        assert!(
            !text.contains("the-client-secret") && !format!("{p:?}").contains("the-client-secret")
        );
    }

    #[test]
    fn the_sql_server_name_alone_says_the_database_comes_from_database_url() {
        let e = detect(&ORIGINAL).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        assert!(e.reason.contains("AZURE_SQL_SERVER_NAME"), "{e}");
    }

    #[test]
    fn a_client_secret_without_its_tenant_is_named() {
        let vars: Vec<_> = ORIGINAL
            .iter()
            .copied()
            .filter(|(k, _)| *k != "AZURE_TENANT_ID")
            .chain([PG])
            .collect();
        assert_eq!(detect(&vars).unwrap_err().var, "AZURE_TENANT_ID");
        // With keys for both services, Entra is not needed.
        let vars: Vec<_> = vars
            .into_iter()
            .chain([
                (
                    "AZURE_SERVICE_BUS_CONNECTION_STRING",
                    "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey=b",
                ),
                ("AZURE_STORAGE_KEY", "a2V5"),
            ])
            .collect();
        assert!(detect(&vars).is_ok());
    }

    #[test]
    fn a_storage_key_needs_its_account() {
        let e = detect(&[
            PG,
            ("AZURE_SERVICE_BUS_NAMESPACE", "bus"),
            (
                "AZURE_STORAGE_BLOB_ENDPOINT",
                "http://127.0.0.1:10000/devstoreaccount1",
            ),
            ("AZURE_STORAGE_KEY", "a2V5"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "AZURE_STORAGE_ACCOUNT");
    }

    fn config_for_tests() -> Config {
        Config::from_lookup(|_| None).expect("defaults")
    }
}
