//! Which LLM adapter to build, from the environment (API.md): explicit
//! `LLM_PROVIDER`, else `CLOUD_PROVIDER` (azure → azure-openai, aws →
//! bedrock), else the settings that exist (`AZURE_OPENAI_ENDPOINT`,
//! `OPENAI_BASE_URL`), else the embedded model. A missing setting of the
//! chosen provider is a `ConfigError` naming it. Bedrock takes its region,
//! credentials and `AWS_ENDPOINT_URL` from the standard AWS chain, which
//! reads the process environment and profile itself; only the region is
//! also read here, so that a build given all its settings never waits on
//! instance metadata.

use std::sync::Arc;
use std::time::Duration;

use ai_team_core::llm::LlmClient;
use ai_team_providers::llm::{AzureAuth, OpenAiClient};
#[cfg(feature = "aws")]
use ai_team_providers::{aws::AwsOverrides, llm::BedrockClient};

use crate::configuration::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    AzureOpenAi,
    OpenAi,
    Bedrock,
    Embedded,
}

/// The GA Azure OpenAI REST version used when none is set.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Azure OpenAI without an API key: an Entra ID bearer token (the
/// credential `AZURE_CLIENT_SECRET`, a workload identity or the managed
/// identity make; `cloud::entra_settings`).
#[cfg(feature = "azure")]
fn azure_token(get: &dyn Fn(&str) -> Option<String>) -> Result<AzureAuth, ConfigError> {
    use ai_team_providers::azure_entra::{BearerToken, OPENAI_SCOPE};
    use ai_team_providers::azure_http;
    let entra = crate::cloud::entra_settings(get);
    if let Some(var) = entra.missing() {
        return Err(ConfigError {
            var,
            reason: format!(
                "is required for the {} of Azure OpenAI (or set AZURE_OPENAI_API_KEY)",
                entra.kind().as_str()
            ),
        });
    }
    let http = azure_http::client(azure_http::ca_file_from_env().as_deref()).map_err(|reason| {
        ConfigError {
            var: azure_http::CA_FILE_VAR,
            reason,
        }
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
fn azure_token(_get: &dyn Fn(&str) -> Option<String>) -> Result<AzureAuth, ConfigError> {
    Err(ConfigError {
        var: "AZURE_OPENAI_API_KEY",
        reason: "is required by the chosen LLM provider (Entra ID tokens need a build \
                 with `--features azure`, as the Azure handler is)"
            .into(),
    })
}

/// The LLM this configuration resolves to, for `ai-team cloud`: the
/// provider, where it is, how it is authenticated (never the key).
pub fn resolved(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::cloud::Resolved, ConfigError> {
    let optional = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let line = |endpoint: String, credential: String| crate::cloud::Resolved {
        service: "llm",
        endpoint,
        credential,
    };
    Ok(match choose(get)? {
        LlmProvider::AzureOpenAi => line(
            format!(
                "azure-openai {} deployment {}",
                azure_endpoint(&optional)?,
                optional("AZURE_OPENAI_DEPLOYMENT")
                    .unwrap_or_else(|| "(AZURE_OPENAI_DEPLOYMENT unset)".into())
            ),
            azure_openai_credential(get),
        ),
        LlmProvider::OpenAi => line(
            format!(
                "openai {} model {}",
                optional("OPENAI_BASE_URL").unwrap_or_default(),
                optional("OPENAI_MODEL").unwrap_or_default()
            ),
            if optional("OPENAI_API_KEY").is_some() {
                "api key (OPENAI_API_KEY)"
            } else {
                "none"
            }
            .into(),
        ),
        LlmProvider::Bedrock => line(
            format!(
                "bedrock {} in {}",
                optional("BEDROCK_MODEL_ID").unwrap_or_default(),
                optional("AWS_REGION")
                    .or_else(|| optional("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "(default region)".into())
            ),
            "AWS default credential chain".into(),
        ),
        LlmProvider::Embedded => line("embedded (in-process llama.cpp)".into(), "-".into()),
    })
}

/// How the Azure OpenAI client authenticates, for `ai-team cloud`.
pub fn azure_openai_credential(get: &dyn Fn(&str) -> Option<String>) -> String {
    match get("AZURE_OPENAI_API_KEY").filter(|k| !k.trim().is_empty()) {
        Some(_) => "api key (AZURE_OPENAI_API_KEY)".into(),
        None => crate::cloud::entra_settings(get).kind().as_str().into(),
    }
}

pub fn choose(get: &dyn Fn(&str) -> Option<String>) -> Result<LlmProvider, ConfigError> {
    let set = |k: &str| get(k).is_some_and(|v| !v.trim().is_empty());
    if let Some(p) = get("LLM_PROVIDER").filter(|v| !v.trim().is_empty()) {
        return match p.trim() {
            "azure-openai" => Ok(LlmProvider::AzureOpenAi),
            "openai" => Ok(LlmProvider::OpenAi),
            "bedrock" => Ok(LlmProvider::Bedrock),
            "embedded" => Ok(LlmProvider::Embedded),
            other => Err(ConfigError {
                var: "LLM_PROVIDER",
                reason: format!("{other:?}: use azure-openai, bedrock, openai or embedded"),
            }),
        };
    }
    Ok(match get("CLOUD_PROVIDER").as_deref().map(str::trim) {
        Some("azure") => LlmProvider::AzureOpenAi,
        Some("aws") => LlmProvider::Bedrock,
        _ if set("AZURE_OPENAI_ENDPOINT") || set("AZURE_OPENAI_RESOURCE_NAME") => {
            LlmProvider::AzureOpenAi
        }
        _ if set("OPENAI_BASE_URL") => LlmProvider::OpenAi,
        _ => LlmProvider::Embedded,
    })
}

/// The Azure OpenAI endpoint: `AZURE_OPENAI_ENDPOINT`, else the one the
/// original service derives from its `AZURE_OPENAI_RESOURCE_NAME`
/// (`https://NAME.openai.azure.com`), so that its configuration works
/// unchanged.
fn azure_endpoint(optional: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    if let Some(endpoint) = optional("AZURE_OPENAI_ENDPOINT") {
        return Ok(endpoint);
    }
    let Some(name) = optional("AZURE_OPENAI_RESOURCE_NAME") else {
        return Err(ConfigError {
            var: "AZURE_OPENAI_ENDPOINT",
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
            var: "AZURE_OPENAI_RESOURCE_NAME",
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
pub async fn build(
    get: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Arc<dyn LlmClient>, ConfigError> {
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
    let timeout = match get("LLM_TIMEOUT_SECONDS") {
        None => Duration::from_secs(120),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or(ConfigError {
                var: "LLM_TIMEOUT_SECONDS",
                reason: format!("{v:?} is not a positive number of seconds"),
            })?,
    };
    let built = |r: Result<OpenAiClient, String>, var: &'static str| {
        r.map(|c| Arc::new(c) as Arc<dyn LlmClient>)
            .map_err(|reason| ConfigError { var, reason })
    };
    match choose(get)? {
        LlmProvider::AzureOpenAi => {
            let endpoint = azure_endpoint(&optional)?;
            let deployment = required("AZURE_OPENAI_DEPLOYMENT")?;
            let version =
                get("AZURE_OPENAI_API_VERSION").unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.into());
            let auth = match optional("AZURE_OPENAI_API_KEY") {
                Some(key) => AzureAuth::ApiKey(key),
                None => azure_token(get)?,
            };
            built(
                OpenAiClient::azure(&endpoint, &deployment, &version, auth, timeout),
                "AZURE_OPENAI_ENDPOINT",
            )
        }
        LlmProvider::OpenAi => {
            let base = required("OPENAI_BASE_URL")?;
            let model = required("OPENAI_MODEL")?;
            let key = get("OPENAI_API_KEY");
            built(
                OpenAiClient::openai(&base, key.as_deref(), &model, timeout),
                "OPENAI_BASE_URL",
            )
        }
        #[cfg(not(feature = "aws"))]
        LlmProvider::Bedrock => Err(ConfigError {
            var: "LLM_PROVIDER",
            reason: "bedrock: this binary was built without the AWS adapters \
                     (build it with `--features aws`, as the Lambda builds are)"
                .into(),
        }),
        #[cfg(feature = "aws")]
        LlmProvider::Bedrock => {
            let model = required("BEDROCK_MODEL_ID")?;
            let overrides = AwsOverrides {
                region: optional("AWS_REGION").or_else(|| optional("AWS_DEFAULT_REGION")),
                endpoint_url: None,
            };
            let client = BedrockClient::load(&model, timeout, &overrides)
                .await
                .map_err(|reason| ConfigError {
                    var: "AWS_REGION",
                    reason,
                })?;
            Ok(Arc::new(client))
        }
        LlmProvider::Embedded => embedded(get),
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
        var: "LLM_PROVIDER",
        reason: "the embedded model is not in this build (built without the `embedded` feature); \
                 set OPENAI_BASE_URL, AZURE_OPENAI_ENDPOINT or CLOUD_PROVIDER"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        if cfg!(feature = "aws") {
            assert_eq!(e.var, "BEDROCK_MODEL_ID");
        } else {
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
