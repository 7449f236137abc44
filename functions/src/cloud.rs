//! Which cloud's adapters this process runs on (DESIGN.md, `CloudProvider`):
//! `CLOUD_PROVIDER` when set, else the settings that exist. AWS needs
//! `AI_TEAM_QUEUE_URL` (the SQS steps queue), `AI_TEAM_REFRESH_QUEUE_URL`
//! (the SQS refresh queue) and `AI_TEAM_BUCKET` (S3); Azure needs the
//! Service Bus queue and connection string and the Blob container and
//! connection string; both need a PostgreSQL `DATABASE_URL` (a SQLite file
//! does not outlive a function instance). Settings of both clouds at once,
//! or only some of one cloud's, stop start-up with an error naming what is
//! missing or what clashes. With none of them: local (the database queue,
//! files on disk).

use std::sync::Arc;

use ai_team_core::blob::BlobStore;
use ai_team_core::push::PushChannel;
use ai_team_core::queue::StepQueue;
#[cfg(feature = "aws")]
use ai_team_core::review::REFRESH_QUEUE;
use ai_team_providers::aws::AwsOverrides;
use ai_team_providers::azure_blob::{AzureBlobStore, ContainerName, StorageConnection};
use ai_team_providers::azure_service_bus::{ConnectionString, ServiceBusQueue};
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
    pub const SERVICE_BUS_QUEUE: &str = "AZURE_SERVICE_BUS_QUEUE";
    pub const SERVICE_BUS_CONNECTION: &str = "AZURE_SERVICE_BUS_CONNECTION_STRING";
    pub const STORAGE_CONTAINER: &str = "AZURE_STORAGE_CONTAINER";
    pub const STORAGE_CONNECTION: &str = "AZURE_STORAGE_CONNECTION_STRING";
}

const AWS_KEYS: [&str; 3] = [keys::QUEUE_URL, keys::REFRESH_QUEUE_URL, keys::BUCKET];
const AZURE_KEYS: [&str; 4] = [
    keys::SERVICE_BUS_QUEUE,
    keys::SERVICE_BUS_CONNECTION,
    keys::STORAGE_CONTAINER,
    keys::STORAGE_CONNECTION,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub queue_url: String,
    pub refresh_queue_url: String,
    pub bucket: String,
    pub ws_endpoint: Option<String>,
    pub overrides: AwsOverrides,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSettings {
    pub service_bus_queue: String,
    pub service_bus_connection: Secret,
    pub storage_container: String,
    pub storage_connection: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudProvider {
    Local,
    Aws(AwsSettings),
    Azure(AzureSettings),
}

impl CloudProvider {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::detect(&|k| std::env::var(k).ok())
    }

    /// Reads through `get`, so tests can pass a map.
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
        let (own, other) = match chosen {
            "aws" => (&AWS_KEYS[..], &azure_set),
            "azure" => (&AZURE_KEYS[..], &aws_set),
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
        if let Some(missing) = own.iter().find(|k| value(k).is_none()) {
            return Err(ConfigError {
                var: missing,
                reason: format!("is required on {chosen}"),
            });
        }
        let is_postgres = value(crate::configuration::keys::DATABASE_URL)
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
        if !is_postgres {
            return Err(ConfigError {
                var: crate::configuration::keys::DATABASE_URL,
                reason: format!(
                    "must be a PostgreSQL URL on {chosen} (a SQLite file does not outlive a function instance)"
                ),
            });
        }
        let req = |k: &str| value(k).unwrap_or_default();
        Ok(match chosen {
            "aws" => Self::Aws(AwsSettings {
                queue_url: req(keys::QUEUE_URL),
                refresh_queue_url: req(keys::REFRESH_QUEUE_URL),
                bucket: req(keys::BUCKET),
                ws_endpoint: value(keys::WS_ENDPOINT),
                overrides: AwsOverrides {
                    region: value(keys::AWS_REGION),
                    endpoint_url: value(keys::AWS_ENDPOINT_URL),
                },
            }),
            _ => Self::Azure(AzureSettings {
                service_bus_queue: req(keys::SERVICE_BUS_QUEUE),
                service_bus_connection: Secret::new(req(keys::SERVICE_BUS_CONNECTION)),
                storage_container: req(keys::STORAGE_CONTAINER),
                storage_connection: Secret::new(req(keys::STORAGE_CONNECTION)),
            }),
        })
    }
}

fn cloud_of(key: &str) -> &'static str {
    if AWS_KEYS.contains(&key) {
        "AWS"
    } else {
        "Azure"
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
}

/// Builds the adapters `provider` names; `local_queue` is the database's
/// queue, used when the provider is local.
pub async fn adapters(
    provider: &CloudProvider,
    config: &Config,
    local_queue: Arc<dyn StepQueue>,
) -> Result<CloudAdapters, ConfigError> {
    match provider {
        CloudProvider::Local => Ok(CloudAdapters {
            queue: local_queue,
            blobs: Some(Arc::new(LocalBlobStore::new(config.data_dir.join("blobs")))),
            #[cfg(feature = "aws")]
            sqs: None,
            push: None,
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
            })
        }
        CloudProvider::Azure(azure) => {
            let conn = ConnectionString::parse(azure.service_bus_connection.expose()).map_err(
                |reason| ConfigError {
                    var: keys::SERVICE_BUS_CONNECTION,
                    reason,
                },
            )?;
            let queue = ServiceBusQueue::connect(conn, &azure.service_bus_queue).map_err(|e| {
                ConfigError {
                    var: keys::SERVICE_BUS_CONNECTION,
                    reason: e.to_string(),
                }
            })?;
            let storage =
                StorageConnection::parse(azure.storage_connection.expose()).map_err(|reason| {
                    ConfigError {
                        var: keys::STORAGE_CONNECTION,
                        reason,
                    }
                })?;
            let container =
                ContainerName::parse(&azure.storage_container).map_err(|reason| ConfigError {
                    var: keys::STORAGE_CONTAINER,
                    reason,
                })?;
            let blobs = AzureBlobStore::connect(storage, container).map_err(|e| ConfigError {
                var: keys::STORAGE_CONNECTION,
                reason: e.to_string(),
            })?;
            Ok(CloudAdapters {
                queue: Arc::new(queue),
                blobs: Some(Arc::new(blobs)),
                #[cfg(feature = "aws")]
                sqs: None,
                push: None,
            })
        }
    }
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
        assert_eq!(e.var, "AZURE_SERVICE_BUS_CONNECTION_STRING");
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
}
