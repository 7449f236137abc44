//! The one reader of the process environment for the service's settings:
//! every host (`ai-team`, the Lambda functions, the Azure handler) calls
//! [`Settings::from_process_env`] once at start-up, which takes a snapshot
//! of the environment and parses it into typed sections with the names of
//! API.md. Nothing else in `functions/src` reads a variable of its own;
//! the sections' parsers take a lookup, so tests pass a map instead of
//! changing the process environment. The exceptions are conventions
//! owned by libraries: the tracing filter (`AI_TEAM_LOG`/`RUST_LOG`, in
//! `telemetry`), the AWS SDK's credential chain and `azure_identity`'s
//! managed-identity endpoint, which read the environment themselves.
//!
//! Every error names the variable and what is wrong with it; a host
//! prints it as one line and exits with code 2 before it serves anything.

use std::collections::HashMap;

use crate::cloud::CloudProvider;
use crate::configuration::{Config, ConfigError, keys};
use crate::llm_config::LlmSettings;

/// Variables only one host reads.
pub mod host_keys {
    /// The port the Azure Functions host gives its custom handler.
    pub const FUNCTIONS_CUSTOMHANDLER_PORT: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
}

/// All of the service's settings, by section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server, the database, the engine, and the sections the
    /// handlers carry with it: `config.integrations` (Jira, the story
    /// folder, GitHub, the webhook secret) and `config.team` (the agents).
    pub config: Config,
    /// Which cloud's queue, blobs and push channel (`CLOUD_PROVIDER`).
    pub cloud: CloudProvider,
    /// The LLM provider and its settings (`LLM_PROVIDER`).
    pub llm: LlmSettings,
    /// What one host reads besides.
    pub host: HostSettings,
}

/// The settings of one host only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT` (default 8080): where the Azure
    /// handler listens.
    pub azure_handler_port: String,
    /// Whether `AI_TEAM_TRUSTED_PROXIES` was given at all: the Azure
    /// handler trusts one hop when it was not.
    pub trusted_proxies_given: bool,
}

impl HostSettings {
    fn read(raw: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            azure_handler_port: raw(host_keys::FUNCTIONS_CUSTOMHANDLER_PORT)
                .unwrap_or_else(|| "8080".into()),
            trusted_proxies_given: raw(keys::TRUSTED_PROXIES).is_some(),
        }
    }
}

impl Settings {
    /// Reads the process environment, once: a snapshot, then `read`.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        let snapshot = Snapshot::capture();
        Self::read(&|k| snapshot.get(k))
    }

    /// Parses every section from `get` (a variable's raw value, `None`
    /// when unset). The first malformed or missing setting is the error.
    pub fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            config: Config::from_lookup(get)?,
            cloud: CloudProvider::detect(get)?,
            llm: LlmSettings::read(get)?,
            host: HostSettings::read(get),
        })
    }

    /// `read` over a map (tests, benches).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::read(&|k| vars.get(k).cloned())
    }
}

/// The process environment at one moment. A variable whose name or value
/// is not Unicode is left out, as `std::env::var` treats it as unset.
struct Snapshot(HashMap<String, String>);

impl Snapshot {
    fn capture() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<String> {
        self.0.get(k).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_map(&map)
    }

    #[test]
    fn every_section_has_defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.cloud, CloudProvider::Local);
        assert_eq!(s.config.port, 8000);
        assert!(s.config.integrations.jira.is_none());
        assert!(s.config.integrations.github.is_none());
        assert!(s.config.team.file.is_none());
        assert_eq!(s.llm.provider(), crate::llm_config::LlmProvider::Embedded);
        assert_eq!(s.host.azure_handler_port, "8080");
        assert!(!s.host.trusted_proxies_given);
    }

    #[test]
    fn an_error_in_any_section_names_its_variable() {
        for (var, bad) in [
            ("PORT", "eighty"),
            ("CLOUD_PROVIDER", "gcp"),
            ("LLM_PROVIDER", "gpt"),
            ("LLM_TIMEOUT_SECONDS", "0"),
            ("NEGISHI_JIRA_BASE_URL", "x.atlassian.net"),
            ("USE_REAL_GITHUB", "perhaps"),
            ("AI_TEAM_AGENTS_FILE", "/nonexistent/team.yaml"),
        ] {
            let mut vars = vec![(var, bad)];
            if var.starts_with("NEGISHI_JIRA") {
                vars.extend([
                    ("NEGISHI_JIRA_EMAIL", "a@b"),
                    ("NEGISHI_JIRA_API_TOKEN", "t"),
                ]);
            }
            let e = settings(&vars).unwrap_err();
            assert_eq!(e.var, var, "{var}={bad}: {e}");
        }
        let e = settings(&[("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")]).unwrap_err();
        assert_eq!(e.var, "OPENAI_MODEL");
        let e = settings(&[("USE_REAL_GITHUB", "true")]).unwrap_err();
        assert_eq!(e.var, "GITHUB_TOKEN");
    }

    #[test]
    fn the_host_settings_are_read_as_given() {
        let s = settings(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "7071"),
            ("AI_TEAM_TRUSTED_PROXIES", "0"),
        ])
        .unwrap();
        assert_eq!(s.host.azure_handler_port, "7071");
        assert!(s.host.trusted_proxies_given);
        assert_eq!(s.config.trusted_proxies, 0);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = settings(&[
            ("AI_TEAM_API_TOKEN", "hunter2"),
            ("OPENAI_BASE_URL", "http://h/v1"),
            ("OPENAI_MODEL", "m"),
            ("OPENAI_API_KEY", "sk-very-secret"),
            ("GITHUB_WEBHOOK_SECRET", "whsec"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        for secret in ["hunter2", "sk-very-secret", "whsec"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
