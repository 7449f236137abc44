//! The service's own section of the settings (`settings::Settings::config`):
//! the server, the database, the engine, and the two sections it carries
//! to the handlers (the integrations, the team), parsed from a lookup with
//! the names of API.md. It never reads the process environment itself:
//! `settings` takes the one snapshot. Every failure names its variable;
//! secrets never print.

mod integration_settings;
mod team_settings;

pub use integration_settings::{GitHubConfig, IntegrationSettings, github_config, jira_settings};
pub use team_settings::TeamSettings;

use std::fmt;
use std::time::Duration;

use ai_team_providers::store::DatabaseUrl;

/// Variable names, in one place.
pub mod keys {
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const HOST: &str = "HOST";
    pub const PORT: &str = "PORT";
    pub const API_TOKEN: &str = "AI_TEAM_API_TOKEN";
    pub const CORS_ORIGINS: &str = "AI_TEAM_CORS_ORIGINS";
    pub const RATE_LIMIT_PER_MINUTE: &str = "AI_TEAM_RATE_LIMIT_PER_MINUTE";
    pub const MAX_BODY_BYTES: &str = "AI_TEAM_MAX_BODY_BYTES";
    pub const REDACT_SENSITIVE: &str = "AI_TEAM_REDACT_SENSITIVE";
    pub const HEARTBEAT_INTERVAL_SECONDS: &str = "HEARTBEAT_INTERVAL_SECONDS";
    pub const HEARTBEAT_TIMEOUT_SECONDS: &str = "HEARTBEAT_TIMEOUT_SECONDS";
    pub const STREAM_MAX_SECONDS: &str = "AI_TEAM_STREAM_MAX_SECONDS";
    pub const LOG_FORMAT: &str = "AI_TEAM_LOG_FORMAT";
    pub const DATA_DIR: &str = "AI_TEAM_DATA_DIR";
    pub const WORKER_ID: &str = "AI_TEAM_WORKER_ID";
    pub const WORKER_CONCURRENCY: &str = "AI_TEAM_WORKER_CONCURRENCY";
    pub const STEP_LEASE_SECONDS: &str = "AI_TEAM_STEP_LEASE_SECONDS";
    pub const STEP_TOKEN_BUDGET: &str = "AI_TEAM_STEP_TOKEN_BUDGET";
    pub const AGENT_TOKEN_BUDGET: &str = "AI_TEAM_AGENT_TOKEN_BUDGET";
    pub const EXECUTION_TOKEN_BUDGET: &str = "AI_TEAM_EXECUTION_TOKEN_BUDGET";
    pub const AGENTS_FILE: &str = "AI_TEAM_AGENTS_FILE";
    pub const SPILL_BYTES: &str = "AI_TEAM_SPILL_BYTES";
    pub const LLM_MAX_ATTEMPTS: &str = "AI_TEAM_LLM_MAX_ATTEMPTS";
    pub const JIRA_BASE_URL: &str = "NEGISHI_JIRA_BASE_URL";
    pub const JIRA_EMAIL: &str = "NEGISHI_JIRA_EMAIL";
    pub const JIRA_API_TOKEN: &str = "NEGISHI_JIRA_API_TOKEN";
    pub const JIRA_AC_FIELD: &str = "NEGISHI_JIRA_AC_FIELD";
    pub const STORIES_DIR: &str = "AI_TEAM_STORIES_DIR";
    pub const USE_REAL_GITHUB: &str = "USE_REAL_GITHUB";
    pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
    pub const GITHUB_REPO: &str = "NEGISHI_GITHUB_REPO";
    pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
    pub const GITHUB_WEBHOOK_SECRET: &str = "GITHUB_WEBHOOK_SECRET";
    pub const GITHUB_WRITE_PAUSE_MS: &str = "AI_TEAM_GITHUB_WRITE_PAUSE_MS";
    pub const GITHUB_MAX_WAIT_SECONDS: &str = "AI_TEAM_GITHUB_MAX_WAIT_SECONDS";
    pub const GITHUB_SECONDARY_WAIT_SECONDS: &str = "AI_TEAM_GITHUB_SECONDARY_WAIT_SECONDS";
    pub const ALLOWED_REPOSITORIES: &str = "AI_TEAM_ALLOWED_REPOSITORIES";
    pub const TEST_COMMAND: &str = "AI_TEAM_TEST_COMMAND";
    pub const TEST_TIMEOUT_SECONDS: &str = "AI_TEAM_TEST_TIMEOUT_SECONDS";
    pub const MAX_FIX_ROUNDS: &str = "AI_TEAM_MAX_FIX_ROUNDS";
    pub const TEST_RUNNER: &str = "AI_TEAM_TEST_RUNNER";
    pub const LOCAL_REPOSITORIES: &str = "AI_TEAM_LOCAL_REPOSITORIES";
    pub const ALLOW_CI_PATHS: &str = "AI_TEAM_ALLOW_CI_PATHS";
    pub const TRUSTED_PROXIES: &str = "AI_TEAM_TRUSTED_PROXIES";
    pub const MAX_STREAMS_PER_WORKFLOW: &str = "AI_TEAM_MAX_STREAMS_PER_WORKFLOW";
    pub const MAX_STREAMS: &str = "AI_TEAM_MAX_STREAMS";
}

/// A value that must never reach a log or a response.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

/// Where the repository's tests run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestRunnerKind {
    /// On this machine, in a throw-away working copy.
    Local,
    /// Nowhere: every verification is skipped with this reason.
    None(String),
}

impl TestRunnerKind {
    /// `AI_TEAM_TEST_RUNNER` (`local`, `none`); unset: local, except on a
    /// serverless host, which has no toolchain for a repository's tests.
    fn from_setting(
        raw: Option<&str>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        match raw {
            Some("local") => Ok(Self::Local),
            Some("none") => Ok(Self::None(
                "AI_TEAM_TEST_RUNNER=none: this deployment runs no tests".into(),
            )),
            Some(other) => Err(ConfigError {
                var: keys::TEST_RUNNER,
                reason: format!("{other:?} is not local or none"),
            }),
            None if get("AWS_LAMBDA_FUNCTION_NAME").is_some() => Ok(Self::None(
                "this AWS Lambda function has no toolchain for the repository's tests \
                 (set AI_TEAM_TEST_RUNNER=local on a container-image function that has one)"
                    .into(),
            )),
            None if get("FUNCTIONS_CUSTOMHANDLER_PORT").is_some() => Ok(Self::None(
                "this Azure Functions host has no toolchain for the repository's tests \
                 (set AI_TEAM_TEST_RUNNER=local on a container that has one)"
                    .into(),
            )),
            None => Ok(Self::Local),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub host: String,
    pub port: u16,
    pub api_token: Option<Secret>,
    pub cors_origins: Vec<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub max_body_bytes: usize,
    pub redact_sensitive: bool,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// How long one SSE response lasts before it ends and the client
    /// reconnects with `Last-Event-ID`; unset, it lasts until the client
    /// leaves. On Lambda it is set below the function's timeout, so a
    /// stream ends cleanly instead of being cut.
    pub stream_max: Option<Duration>,
    pub log_format: LogFormat,
    /// Blobs and default repositories live under it.
    pub data_dir: std::path::PathBuf,
    /// Local repositories workflows may name besides the working copies
    /// under `data_dir` (the CLI adds its `--repo`); never chosen by an
    /// API client.
    pub local_repositories: Vec<std::path::PathBuf>,
    /// `AI_TEAM_TEST_COMMAND`: the tests when a workflow names none.
    pub test_command: Option<String>,
    pub test_timeout: Duration,
    pub max_fix_rounds: u8,
    /// Where verification runs: this machine, or nowhere (serverless).
    pub test_runner: TestRunnerKind,
    /// This process's name on step leases and queue jobs. A restarted
    /// process frees what the same name held; processes sharing one
    /// database need distinct names.
    pub worker_id: String,
    pub worker_concurrency: usize,
    pub step_lease: Duration,
    pub budgets: ai_team_core::budgets::Budgets,
    pub spill_bytes: usize,
    pub llm_max_attempts: u32,
    /// Jira, the story folder, GitHub and its webhook secret.
    pub integrations: IntegrationSettings,
    /// The agent team (`AI_TEAM_AGENTS_FILE`, else the built-in one).
    pub team: TeamSettings,
    /// Whether the agents may write `.github/workflows/…`, `.gitmodules`,
    /// `.gitattributes` (`AI_TEAM_ALLOW_CI_PATHS`, default off).
    pub allow_ci_paths: bool,
    /// How many `X-Forwarded-For` hops, counted from the right, were
    /// appended by proxies this service trusts (`AI_TEAM_TRUSTED_PROXIES`,
    /// default 0: the header is ignored and the peer address is the client).
    pub trusted_proxies: usize,
    /// Open event streams (SSE and WebSocket) per workflow and in all;
    /// past them a new stream is refused with 503.
    pub max_streams_per_workflow: usize,
    pub max_streams: usize,
}

impl Config {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    pub const DEFAULT_MAX_STREAMS_PER_WORKFLOW: usize = 1000;
    pub const DEFAULT_MAX_STREAMS: usize = 5000;

    /// Reads through `get` (`settings` passes its snapshot of the process
    /// environment; tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let database_url = DatabaseUrl::parse(
            get(keys::DATABASE_URL)
                .as_deref()
                .unwrap_or(DatabaseUrl::DEFAULT),
        )
        .map_err(|reason| ConfigError {
            var: keys::DATABASE_URL,
            reason,
        })?;
        Ok(Self {
            database_url,
            host: get(keys::HOST).unwrap_or_else(|| "127.0.0.1".into()),
            port: parse(keys::PORT, get(keys::PORT))?.unwrap_or(8000),
            api_token: get(keys::API_TOKEN).map(Secret::new),
            cors_origins: get(keys::CORS_ORIGINS)
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            rate_limit_per_minute: match parse::<u32>(
                keys::RATE_LIMIT_PER_MINUTE,
                get(keys::RATE_LIMIT_PER_MINUTE),
            )? {
                Some(0) | None => None,
                Some(n) => Some(n),
            },
            max_body_bytes: parse(keys::MAX_BODY_BYTES, get(keys::MAX_BODY_BYTES))?
                .unwrap_or(Self::DEFAULT_MAX_BODY_BYTES),
            redact_sensitive: parse_bool(keys::REDACT_SENSITIVE, get(keys::REDACT_SENSITIVE))?
                .unwrap_or(true),
            heartbeat_interval: seconds(
                keys::HEARTBEAT_INTERVAL_SECONDS,
                get(keys::HEARTBEAT_INTERVAL_SECONDS),
                15,
            )?,
            heartbeat_timeout: seconds(
                keys::HEARTBEAT_TIMEOUT_SECONDS,
                get(keys::HEARTBEAT_TIMEOUT_SECONDS),
                120,
            )?,
            stream_max: match get(keys::STREAM_MAX_SECONDS) {
                Some(raw) => Some(seconds(keys::STREAM_MAX_SECONDS, Some(raw), 0)?),
                None => None,
            },
            data_dir: get(keys::DATA_DIR)
                .unwrap_or_else(|| "./data".into())
                .into(),
            local_repositories: get(keys::LOCAL_REPOSITORIES)
                .map(|v| std::env::split_paths(&v).collect())
                .unwrap_or_default(),
            test_command: get(keys::TEST_COMMAND),
            test_timeout: seconds(
                keys::TEST_TIMEOUT_SECONDS,
                get(keys::TEST_TIMEOUT_SECONDS),
                300,
            )?,
            max_fix_rounds: match parse::<u8>(keys::MAX_FIX_ROUNDS, get(keys::MAX_FIX_ROUNDS))? {
                None => 2,
                Some(n) if n <= ai_team_core::engine::steps::MAX_FIX_ROUNDS => n,
                Some(n) => {
                    return Err(ConfigError {
                        var: keys::MAX_FIX_ROUNDS,
                        reason: format!(
                            "{n} is more than {}",
                            ai_team_core::engine::steps::MAX_FIX_ROUNDS
                        ),
                    });
                }
            },
            test_runner: TestRunnerKind::from_setting(get(keys::TEST_RUNNER).as_deref(), &get)?,
            worker_id: get(keys::WORKER_ID).unwrap_or_else(|| "local".into()),
            // 0: this process serves the API only (another one runs the steps).
            worker_concurrency: parse::<usize>(
                keys::WORKER_CONCURRENCY,
                get(keys::WORKER_CONCURRENCY),
            )?
            // Steps wait on the model most of their time: 4 capped a burst
            // at 2.6 executions/s with 0.2 s answers (scripts/bench-vs-python).
            .unwrap_or(16),
            step_lease: seconds(keys::STEP_LEASE_SECONDS, get(keys::STEP_LEASE_SECONDS), 60)?,
            budgets: {
                let d = ai_team_core::budgets::Budgets::default();
                ai_team_core::budgets::Budgets {
                    step_tokens: positive(keys::STEP_TOKEN_BUDGET, get(keys::STEP_TOKEN_BUDGET))?
                        .unwrap_or(d.step_tokens),
                    agent_tokens: positive(
                        keys::AGENT_TOKEN_BUDGET,
                        get(keys::AGENT_TOKEN_BUDGET),
                    )?
                    .unwrap_or(d.agent_tokens),
                    execution_tokens: positive(
                        keys::EXECUTION_TOKEN_BUDGET,
                        get(keys::EXECUTION_TOKEN_BUDGET),
                    )?
                    .unwrap_or(d.execution_tokens),
                }
            },
            spill_bytes: parse(keys::SPILL_BYTES, get(keys::SPILL_BYTES))?.unwrap_or(64 * 1024),
            llm_max_attempts: match parse::<u32>(
                keys::LLM_MAX_ATTEMPTS,
                get(keys::LLM_MAX_ATTEMPTS),
            )? {
                Some(0) => {
                    return Err(ConfigError {
                        var: keys::LLM_MAX_ATTEMPTS,
                        reason: "must be at least 1".into(),
                    });
                }
                Some(n) => n,
                None => 5,
            },
            integrations: IntegrationSettings::read(&get)?,
            team: TeamSettings::read(&get)?,
            allow_ci_paths: parse_bool(keys::ALLOW_CI_PATHS, get(keys::ALLOW_CI_PATHS))?
                .unwrap_or(false),
            trusted_proxies: match parse::<usize>(
                keys::TRUSTED_PROXIES,
                get(keys::TRUSTED_PROXIES),
            )? {
                Some(n) if n > 16 => {
                    return Err(ConfigError {
                        var: keys::TRUSTED_PROXIES,
                        reason: format!("{n} hops: at most 16"),
                    });
                }
                other => other.unwrap_or(0),
            },
            max_streams_per_workflow: positive(
                keys::MAX_STREAMS_PER_WORKFLOW,
                get(keys::MAX_STREAMS_PER_WORKFLOW),
            )?
            .map_or(Self::DEFAULT_MAX_STREAMS_PER_WORKFLOW, |n| n as usize),
            max_streams: positive(keys::MAX_STREAMS, get(keys::MAX_STREAMS))?
                .map_or(Self::DEFAULT_MAX_STREAMS, |n| n as usize),
            log_format: match get(keys::LOG_FORMAT).as_deref() {
                None | Some("json") => LogFormat::Json,
                Some("pretty") => LogFormat::Pretty,
                Some(other) => {
                    return Err(ConfigError {
                        var: keys::LOG_FORMAT,
                        reason: format!("{other:?} is neither json nor pretty"),
                    });
                }
            },
        })
    }
}

pub(crate) fn parse<T: std::str::FromStr>(
    var: &'static str,
    raw: Option<String>,
) -> Result<Option<T>, ConfigError>
where
    T::Err: fmt::Display,
{
    raw.map(|v| {
        v.parse::<T>().map_err(|e| ConfigError {
            var,
            reason: format!("{v:?}: {e}"),
        })
    })
    .transpose()
}

pub(crate) fn parse_bool(
    var: &'static str,
    raw: Option<String>,
) -> Result<Option<bool>, ConfigError> {
    raw.map(|v| match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError {
            var,
            reason: format!("{v:?} is not a boolean (1/0, true/false)"),
        }),
    })
    .transpose()
}

fn positive(var: &'static str, raw: Option<String>) -> Result<Option<i64>, ConfigError> {
    match parse::<i64>(var, raw)? {
        Some(n) if n < 1 => Err(ConfigError {
            var,
            reason: "must be at least 1".into(),
        }),
        other => Ok(other),
    }
}

fn seconds(var: &'static str, raw: Option<String>, default: u64) -> Result<Duration, ConfigError> {
    match parse::<u64>(var, raw)? {
        Some(0) => Err(ConfigError {
            var,
            reason: "must be at least 1".into(),
        }),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Ok(Duration::from_secs(default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_settings() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.host, "127.0.0.1");
        assert!(c.redact_sensitive);
        assert_eq!(c.rate_limit_per_minute, None);
        assert_eq!(
            c.database_url,
            DatabaseUrl::parse(DatabaseUrl::DEFAULT).unwrap()
        );
    }

    #[test]
    fn malformed_settings_name_their_variable() {
        assert_eq!(config(&[("PORT", "eighty")]).unwrap_err().var, "PORT");
        assert_eq!(
            config(&[("DATABASE_URL", "mysql://x/y")]).unwrap_err().var,
            "DATABASE_URL"
        );
        assert_eq!(
            config(&[("AI_TEAM_REDACT_SENSITIVE", "maybe")])
                .unwrap_err()
                .var,
            "AI_TEAM_REDACT_SENSITIVE"
        );
        assert_eq!(
            config(&[("HEARTBEAT_TIMEOUT_SECONDS", "0")])
                .unwrap_err()
                .var,
            "HEARTBEAT_TIMEOUT_SECONDS"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let c = config(&[("AI_TEAM_API_TOKEN", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.api_token.unwrap().expose(), "hunter2");
    }

    #[test]
    fn hostile_input_settings_have_safe_defaults_and_name_their_variable() {
        let c = config(&[]).unwrap();
        assert!(!c.allow_ci_paths);
        assert_eq!(c.trusted_proxies, 0);
        assert_eq!(c.max_streams_per_workflow, 1000);
        let c = config(&[
            ("AI_TEAM_ALLOW_CI_PATHS", "on"),
            ("AI_TEAM_TRUSTED_PROXIES", "2"),
            ("AI_TEAM_MAX_STREAMS", "10"),
        ])
        .unwrap();
        assert!(c.allow_ci_paths);
        assert_eq!((c.trusted_proxies, c.max_streams), (2, 10));
        for (var, bad) in [
            ("AI_TEAM_ALLOW_CI_PATHS", "perhaps"),
            ("AI_TEAM_TRUSTED_PROXIES", "-1"),
            ("AI_TEAM_TRUSTED_PROXIES", "99"),
            ("AI_TEAM_MAX_STREAMS_PER_WORKFLOW", "0"),
            ("AI_TEAM_MAX_STREAMS", "many"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }

    #[test]
    fn cors_origins_are_a_comma_list() {
        let c = config(&[("AI_TEAM_CORS_ORIGINS", "http://a.test, http://b.test,")]).unwrap();
        assert_eq!(c.cors_origins, ["http://a.test", "http://b.test"]);
    }
}
