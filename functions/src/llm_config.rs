//! The LLM section of the settings (`settings::Settings::llm`) and the
//! adapter it builds (API.md): explicit `LLM_PROVIDER`, else
//! `CLOUD_PROVIDER` (azure → azure-openai, aws → bedrock), else the
//! settings that exist (`AZURE_OPENAI_ENDPOINT`, `OPENAI_BASE_URL`), else
//! the embedded model. A missing setting of the chosen provider is a
//! `ConfigError` naming it, found when the settings are read. Bedrock takes
//! its credentials and `AWS_ENDPOINT_URL` from the standard AWS chain,
//! which reads the process environment and profile itself (the SDK's own
//! convention); only the region is also read here, so that a build given
//! all its settings never waits on instance metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ai_team_core::llm::LlmClient;
use ai_team_providers::llm::{AzureAuth, OpenAiClient};
#[cfg(feature = "aws")]
use ai_team_providers::{aws::AwsOverrides, llm::BedrockClient};

use crate::cloud::EntraSettings;
use crate::configuration::{ConfigError, Secret};

/// Variable names, in one place.
pub mod keys {
    pub const LLM_PROVIDER: &str = "LLM_PROVIDER";
    pub const LLM_TIMEOUT_SECONDS: &str = "LLM_TIMEOUT_SECONDS";
    pub const AZURE_OPENAI_ENDPOINT: &str = "AZURE_OPENAI_ENDPOINT";
    /// The original's: the endpoint is `https://NAME.openai.azure.com`.
    pub const AZURE_OPENAI_RESOURCE_NAME: &str = "AZURE_OPENAI_RESOURCE_NAME";
    pub const AZURE_OPENAI_DEPLOYMENT: &str = "AZURE_OPENAI_DEPLOYMENT";
    pub const AZURE_OPENAI_API_VERSION: &str = "AZURE_OPENAI_API_VERSION";
    pub const AZURE_OPENAI_API_KEY: &str = "AZURE_OPENAI_API_KEY";
    pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
    pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
    pub const OPENAI_MODEL: &str = "OPENAI_MODEL";
    pub const BEDROCK_MODEL_ID: &str = "BEDROCK_MODEL_ID";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
    /// What the embedded model's configuration reads (its file, whether
    /// it may be fetched, its threads, and the cache the file goes to).
    pub const EMBEDDED: [&str; 5] = [
        "EMBEDDED_MODEL_PATH",
        "EMBEDDED_MODEL_DOWNLOAD",
        "EMBEDDED_THREADS",
        "XDG_CACHE_HOME",
        "HOME",
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    AzureOpenAi,
    OpenAi,
    Bedrock,
    Embedded,
}

/// The GA Azure OpenAI REST version used when none is set.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// How Azure OpenAI is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureOpenAiAuth {
    /// `AZURE_OPENAI_API_KEY`.
    ApiKey(Secret),
    /// An Entra ID bearer token (the credential `AZURE_CLIENT_SECRET`, a
    /// workload identity or the managed identity make), over an HTTP
    /// client trusting `SSL_CERT_FILE`'s roots too.
    Entra {
        entra: EntraSettings,
        ca_file: Option<PathBuf>,
    },
}

/// The chosen provider and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmBackend {
    AzureOpenAi {
        endpoint: String,
        deployment: String,
        api_version: String,
        auth: AzureOpenAiAuth,
    },
    OpenAi {
        base_url: String,
        model: String,
        api_key: Option<Secret>,
    },
    Bedrock {
        model_id: String,
        region: Option<String>,
    },
    /// The in-process model: the values of `keys::EMBEDDED` that are set,
    /// resolved into a file only when the model is built (a host that
    /// never calls it needs no cache directory).
    Embedded {
        vars: BTreeMap<&'static str, String>,
    },
}

/// The LLM section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmSettings {
    /// `LLM_TIMEOUT_SECONDS`: every request's limit.
    pub timeout: Duration,
    pub backend: LlmBackend,
}

impl LlmSettings {
    /// Reads through `get`: the chosen provider and its settings, each
    /// missing or malformed one named.
    pub fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let optional = |var: &str| {
            get(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |var: &'static str| {
            optional(var).ok_or(ConfigError {
                var,
                reason: "is required by the chosen LLM provider".into(),
            })
        };
        let timeout = match get(keys::LLM_TIMEOUT_SECONDS) {
            None => Duration::from_secs(120),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or(ConfigError {
                    var: keys::LLM_TIMEOUT_SECONDS,
                    reason: format!("{v:?} is not a positive number of seconds"),
                })?,
        };
        let backend = match choose(get)? {
            LlmProvider::AzureOpenAi => LlmBackend::AzureOpenAi {
                endpoint: azure_endpoint(&optional)?,
                deployment: required(keys::AZURE_OPENAI_DEPLOYMENT)?,
                api_version: get(keys::AZURE_OPENAI_API_VERSION)
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.into()),
                auth: match optional(keys::AZURE_OPENAI_API_KEY) {
                    Some(key) => AzureOpenAiAuth::ApiKey(Secret::new(key)),
                    None => AzureOpenAiAuth::Entra {
                        entra: crate::cloud::entra_settings(get),
                        ca_file: crate::cloud::ca_file(get),
                    },
                },
            },
            LlmProvider::OpenAi => LlmBackend::OpenAi {
                base_url: required(keys::OPENAI_BASE_URL)?,
                model: required(keys::OPENAI_MODEL)?,
                api_key: get(keys::OPENAI_API_KEY).map(Secret::new),
            },
            LlmProvider::Bedrock => LlmBackend::Bedrock {
                model_id: required(keys::BEDROCK_MODEL_ID)?,
                region: optional(keys::AWS_REGION).or_else(|| optional(keys::AWS_DEFAULT_REGION)),
            },
            LlmProvider::Embedded => LlmBackend::Embedded {
                vars: keys::EMBEDDED
                    .iter()
                    .filter_map(|k| get(k).map(|v| (*k, v)))
                    .collect(),
            },
        };
        Ok(Self { timeout, backend })
    }

    pub fn provider(&self) -> LlmProvider {
        match self.backend {
            LlmBackend::AzureOpenAi { .. } => LlmProvider::AzureOpenAi,
            LlmBackend::OpenAi { .. } => LlmProvider::OpenAi,
            LlmBackend::Bedrock { .. } => LlmProvider::Bedrock,
            LlmBackend::Embedded { .. } => LlmProvider::Embedded,
        }
    }
}

/// Azure OpenAI's Entra ID bearer token.
#[cfg(feature = "azure")]
fn azure_token(
    entra: &EntraSettings,
    ca_file: Option<&std::path::Path>,
) -> Result<AzureAuth, ConfigError> {
    use ai_team_providers::azure_entra::{BearerToken, OPENAI_SCOPE};
    use ai_team_providers::azure_http;
    if let Some(var) = entra.missing() {
        return Err(ConfigError {
            var,
            reason: format!(
                "is required for the {} of Azure OpenAI (or set AZURE_OPENAI_API_KEY)",
                entra.kind().as_str()
            ),
        });
    }
    let http = azure_http::client(ca_file).map_err(|reason| ConfigError {
        var: azure_http::CA_FILE_VAR,
        reason,
    })?;
    let credential = entra.credential(&http).map_err(|reason| ConfigError {
        var: crate::cloud::keys::CLIENT_ID,
        reason,
    })?;
    Ok(AzureAuth::Token(Arc::new(BearerToken::new(
        credential,
        OPENAI_SCOPE,
    ))))
}

#[cfg(not(feature = "azure"))]
fn azure_token(
    _entra: &EntraSettings,
    _ca_file: Option<&std::path::Path>,
) -> Result<AzureAuth, ConfigError> {
    Err(ConfigError {
        var: keys::AZURE_OPENAI_API_KEY,
        reason: "is required by the chosen LLM provider (Entra ID tokens need a build \
                 with `--features azure`, as the Azure handler is)"
            .into(),
    })
}

/// The LLM these settings resolve to, for `ai-team cloud`: the provider,
/// where it is, how it is authenticated (never the key).
pub fn resolved(llm: &LlmSettings) -> crate::cloud::Resolved {
    let line = |endpoint: String, credential: String| crate::cloud::Resolved {
        service: "llm",
        endpoint,
        credential,
    };
    match &llm.backend {
        LlmBackend::AzureOpenAi {
            endpoint,
            deployment,
            auth,
            ..
        } => line(
            format!("azure-openai {endpoint} deployment {deployment}"),
            match auth {
                AzureOpenAiAuth::ApiKey(_) => "api key (AZURE_OPENAI_API_KEY)".into(),
                AzureOpenAiAuth::Entra { entra, .. } => entra.kind().as_str().into(),
            },
        ),
        LlmBackend::OpenAi {
            base_url,
            model,
            api_key,
        } => line(
            format!("openai {base_url} model {model}"),
            if api_key
                .as_ref()
                .is_some_and(|k| !k.expose().trim().is_empty())
            {
                "api key (OPENAI_API_KEY)"
            } else {
                "none"
            }
            .into(),
        ),
        LlmBackend::Bedrock { model_id, region } => line(
            format!(
                "bedrock {model_id} in {}",
                region.as_deref().unwrap_or("(default region)")
            ),
            "AWS default credential chain".into(),
        ),
        LlmBackend::Embedded { .. } => line("embedded (in-process llama.cpp)".into(), "-".into()),
    }
}

pub fn choose(get: &dyn Fn(&str) -> Option<String>) -> Result<LlmProvider, ConfigError> {
    let set = |k: &str| get(k).is_some_and(|v| !v.trim().is_empty());
    if let Some(p) = get(keys::LLM_PROVIDER).filter(|v| !v.trim().is_empty()) {
        return match p.trim() {
            "azure-openai" => Ok(LlmProvider::AzureOpenAi),
            "openai" => Ok(LlmProvider::OpenAi),
            "bedrock" => Ok(LlmProvider::Bedrock),
            "embedded" => Ok(LlmProvider::Embedded),
            other => Err(ConfigError {
                var: keys::LLM_PROVIDER,
                reason: format!("{other:?}: use azure-openai, bedrock, openai or embedded"),
            }),
        };
    }
    Ok(
        match get(crate::cloud::keys::CLOUD_PROVIDER)
            .as_deref()
            .map(str::trim)
        {
            Some("azure") => LlmProvider::AzureOpenAi,
            Some("aws") => LlmProvider::Bedrock,
            _ if set(keys::AZURE_OPENAI_ENDPOINT) || set(keys::AZURE_OPENAI_RESOURCE_NAME) => {
                LlmProvider::AzureOpenAi
            }
            _ if set(keys::OPENAI_BASE_URL) => LlmProvider::OpenAi,
            _ => LlmProvider::Embedded,
        },
    )
}

/// The Azure OpenAI endpoint: `AZURE_OPENAI_ENDPOINT`, else the one the
/// original service derives from its `AZURE_OPENAI_RESOURCE_NAME`
/// (`https://NAME.openai.azure.com`), so that its configuration works
/// unchanged.
fn azure_endpoint(optional: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    if let Some(endpoint) = optional(keys::AZURE_OPENAI_ENDPOINT) {
        return Ok(endpoint);
    }
    let Some(name) = optional(keys::AZURE_OPENAI_RESOURCE_NAME) else {
        return Err(ConfigError {
            var: keys::AZURE_OPENAI_ENDPOINT,
            reason: "is required by the chosen LLM provider (or AZURE_OPENAI_RESOURCE_NAME, \
                     from which https://NAME.openai.azure.com is made)"
                .into(),
        });
    };
    // Azure resource names: letters, digits and hyphens, 2 to 64.
    let valid = (2..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(ConfigError {
            var: keys::AZURE_OPENAI_RESOURCE_NAME,
            reason: format!(
                "{name:?} is not an Azure resource name (2-64 letters, digits, hyphens)"
            ),
        });
    }
    Ok(format!(
        "https://{}.openai.azure.com",
        name.to_ascii_lowercase()
    ))
}

/// Builds the chosen adapter, once, at start-up (async: the AWS chain is
/// loaded for Bedrock).
pub async fn build(llm: &LlmSettings) -> Result<Arc<dyn LlmClient>, ConfigError> {
    let timeout = llm.timeout;
    let built = |r: Result<OpenAiClient, String>, var: &'static str| {
        r.map(|c| Arc::new(c) as Arc<dyn LlmClient>)
            .map_err(|reason| ConfigError { var, reason })
    };
    match &llm.backend {
        LlmBackend::AzureOpenAi {
            endpoint,
            deployment,
            api_version,
            auth,
        } => {
            let auth = match auth {
                AzureOpenAiAuth::ApiKey(key) => AzureAuth::ApiKey(key.expose().to_owned()),
                AzureOpenAiAuth::Entra { entra, ca_file } => {
                    azure_token(entra, ca_file.as_deref())?
                }
            };
            built(
                OpenAiClient::azure(endpoint, deployment, api_version, auth, timeout),
                keys::AZURE_OPENAI_ENDPOINT,
            )
        }
        LlmBackend::OpenAi {
            base_url,
            model,
            api_key,
        } => built(
            OpenAiClient::openai(
                base_url,
                api_key.as_ref().map(Secret::expose),
                model,
                timeout,
            ),
            keys::OPENAI_BASE_URL,
        ),
        #[cfg(not(feature = "aws"))]
        LlmBackend::Bedrock { .. } => Err(ConfigError {
            var: keys::LLM_PROVIDER,
            reason: "bedrock: this binary was built without the AWS adapters \
                     (build it with `--features aws`, as the Lambda builds are)"
                .into(),
        }),
        #[cfg(feature = "aws")]
        LlmBackend::Bedrock { model_id, region } => {
            let overrides = AwsOverrides {
                region: region.clone(),
                endpoint_url: None,
            };
            let client = BedrockClient::load(model_id, timeout, &overrides)
                .await
                .map_err(|reason| ConfigError {
                    var: keys::AWS_REGION,
                    reason,
                })?;
            Ok(Arc::new(client))
        }
        LlmBackend::Embedded { vars } => embedded(&|k| vars.get(k).cloned()),
    }
}

/// The in-process model; nothing is read or loaded until its first call.
#[cfg(feature = "embedded")]
fn embedded(get: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn LlmClient>, ConfigError> {
    use ai_team_providers::llm::model_fetch::MODEL_PATH_VAR;
    use ai_team_providers::llm::{EmbeddedClient, EmbeddedConfig};
    let config = EmbeddedConfig::from_env(get).map_err(|e| ConfigError {
        var: MODEL_PATH_VAR,
        reason: e.to_string(),
    })?;
    Ok(Arc::new(EmbeddedClient::new(config)))
}

#[cfg(not(feature = "embedded"))]
fn embedded(_: &dyn Fn(&str) -> Option<String>) -> Result<Arc<dyn LlmClient>, ConfigError> {
    Err(ConfigError {
        var: keys::LLM_PROVIDER,
        reason: "the embedded model is not in this build (built without the `embedded` feature); \
                 set OPENAI_BASE_URL, AZURE_OPENAI_ENDPOINT or CLOUD_PROVIDER"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The settings of `get`, built: what a host does at start-up.
    async fn build(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<dyn LlmClient>, ConfigError> {
        super::build(&LlmSettings::read(get)?).await
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_follow_api_md() {
        assert_eq!(choose(&env(&[])), Ok(LlmProvider::Embedded));
        assert_eq!(
            choose(&env(&[("CLOUD_PROVIDER", "azure")])),
            Ok(LlmProvider::AzureOpenAi)
        );
        assert_eq!(
            choose(&env(&[("CLOUD_PROVIDER", "aws")])),
            Ok(LlmProvider::Bedrock)
        );
        assert_eq!(
            choose(&env(&[("AZURE_OPENAI_ENDPOINT", "https://x")])),
            Ok(LlmProvider::AzureOpenAi)
        );
        assert_eq!(
            choose(&env(&[("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")])),
            Ok(LlmProvider::OpenAi)
        );
        assert_eq!(
            choose(&env(&[
                ("LLM_PROVIDER", "openai"),
                ("CLOUD_PROVIDER", "azure")
            ])),
            Ok(LlmProvider::OpenAi),
            "explicit wins"
        );
        assert_eq!(
            choose(&env(&[("LLM_PROVIDER", "gpt")])).unwrap_err().var,
            "LLM_PROVIDER"
        );
    }

    #[test]
    fn the_original_azure_resource_name_gives_the_endpoint() {
        assert_eq!(
            azure_endpoint(&env(&[("AZURE_OPENAI_RESOURCE_NAME", "Acme-OpenAI")])),
            Ok("https://acme-openai.openai.azure.com".to_owned())
        );
        assert_eq!(
            azure_endpoint(&env(&[
                ("AZURE_OPENAI_ENDPOINT", "https://e.example"),
                ("AZURE_OPENAI_RESOURCE_NAME", "acme")
            ])),
            Ok("https://e.example".to_owned()),
            "the endpoint wins"
        );
        for bad in ["a", "-acme", "acme.evil.com/x", "acme openai"] {
            assert_eq!(
                azure_endpoint(&env(&[("AZURE_OPENAI_RESOURCE_NAME", bad)]))
                    .unwrap_err()
                    .var,
                "AZURE_OPENAI_RESOURCE_NAME",
                "{bad}"
            );
        }
        assert_eq!(
            azure_endpoint(&env(&[])).unwrap_err().var,
            "AZURE_OPENAI_ENDPOINT"
        );
        assert_eq!(
            choose(&env(&[("AZURE_OPENAI_RESOURCE_NAME", "acme")])),
            Ok(LlmProvider::AzureOpenAi)
        );
    }

    #[tokio::test]
    async fn missing_settings_are_named() {
        let e = build(&env(&[
            ("AZURE_OPENAI_ENDPOINT", "https://x"),
            ("AZURE_OPENAI_API_KEY", "k"),
        ]))
        .await
        .err()
        .unwrap();
        assert_eq!(e.var, "AZURE_OPENAI_DEPLOYMENT");
        let e = build(&env(&[("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")]))
            .await
            .err()
            .unwrap();
        assert_eq!(e.var, "OPENAI_MODEL");
        let e = build(&env(&[
            ("OPENAI_BASE_URL", "http://h/v1"),
            ("OPENAI_MODEL", "m"),
            ("LLM_TIMEOUT_SECONDS", "0"),
        ]))
        .await
        .err()
        .unwrap();
        assert_eq!(e.var, "LLM_TIMEOUT_SECONDS");
        let e = build(&env(&[
            ("LLM_PROVIDER", "bedrock"),
            ("AWS_REGION", "us-east-1"),
        ]))
        .await
        .err()
        .unwrap();
        assert_eq!(e.var, "BEDROCK_MODEL_ID");
        // The settings are complete; this build cannot make the client.
        if cfg!(not(feature = "aws")) {
            let e = build(&env(&[
                ("LLM_PROVIDER", "bedrock"),
                ("BEDROCK_MODEL_ID", "m"),
                ("AWS_REGION", "us-east-1"),
            ]))
            .await
            .err()
            .unwrap();
            assert_eq!(e.var, "LLM_PROVIDER");
            assert!(e.reason.contains("--features aws"), "{}", e.reason);
        }
    }

    #[tokio::test]
    async fn configured_providers_are_built() {
        let c = build(&env(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("OPENAI_MODEL", "smollm2"),
        ]))
        .await
        .unwrap();
        assert_eq!((c.provider(), c.model()), ("openai", "smollm2"));
        let a = build(&env(&[
            ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
            ("AZURE_OPENAI_API_KEY", "k"),
            ("AZURE_OPENAI_DEPLOYMENT", "gpt4o"),
        ]))
        .await
        .unwrap();
        assert_eq!((a.provider(), a.model()), ("azure-openai", "gpt4o"));
        // The original's name for it.
        let o = build(&env(&[
            ("AZURE_OPENAI_RESOURCE_NAME", "acme-openai"),
            ("AZURE_OPENAI_API_KEY", "k"),
            ("AZURE_OPENAI_DEPLOYMENT", "gpt4o"),
        ]))
        .await
        .unwrap();
        assert_eq!(o.provider(), "azure-openai");
        #[cfg(feature = "aws")]
        let b = build(&env(&[
            ("CLOUD_PROVIDER", "aws"),
            ("BEDROCK_MODEL_ID", "anthropic.claude-3-haiku-20240307-v1:0"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .await
        .unwrap();
        #[cfg(feature = "aws")]
        assert_eq!(
            (b.provider(), b.model()),
            ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0")
        );
    }

    #[cfg(feature = "embedded")]
    #[tokio::test]
    async fn embedded_is_built_without_touching_the_model() {
        let c = build(&env(&[("EMBEDDED_MODEL_PATH", "/nonexistent/model.gguf")]))
            .await
            .unwrap();
        assert_eq!(
            (c.provider(), c.model()),
            ("embedded", "smollm2-135m-instruct")
        );
        let e = build(&env(&[("LLM_PROVIDER", "embedded")]))
            .await
            .err()
            .unwrap();
        assert_eq!(
            e.var, "EMBEDDED_MODEL_PATH",
            "no HOME, no cache: {}",
            e.reason
        );
    }

    #[cfg(not(feature = "embedded"))]
    #[tokio::test]
    async fn embedded_says_it_is_not_in_this_build() {
        let e = build(&env(&[])).await.err().unwrap();
        assert!(e.reason.contains("not in this build"), "{}", e.reason);
    }
}
