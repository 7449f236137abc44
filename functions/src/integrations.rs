//! The outside systems a host talks to, read from the environment with
//! the original's names (API.md): Jira (`NEGISHI_JIRA_*`) as the ticket
//! source, GitHub (`USE_REAL_GITHUB`, `GITHUB_TOKEN`, `NEGISHI_GITHUB_REPO`,
//! `GITHUB_API_URL`) as the code host and review source. A half-configured
//! one stops start-up with the missing variable named; an absent one
//! leaves the local adapters (story files, the local git repository).

use std::sync::Arc;
use std::time::Duration;

use ai_team_core::codehost::CodeHost;
use ai_team_core::review::ReviewSource;
use ai_team_core::ticket::TicketSource;
use ai_team_providers::codehost::LocalGit;
use ai_team_providers::github::{DEFAULT_API_URL, GitHub, GitHubSettings, parse_repository};
use ai_team_providers::jira::{JiraClient, JiraSettings};
use ai_team_providers::stories::StoryFiles;

use crate::configuration::{Config, ConfigError, keys, parse, parse_bool};

/// GitHub's settings and the repository used when a workflow names none.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub settings: GitHubSettings,
    /// `owner/name` from `NEGISHI_GITHUB_REPO`.
    pub repository: String,
}

fn http_url(var: &'static str, raw: String) -> Result<String, ConfigError> {
    if raw.starts_with("https://") || raw.starts_with("http://") {
        Ok(raw.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError {
            var,
            reason: format!("{raw:?} is not an http(s) URL"),
        })
    }
}

/// Jira's settings when any of them is set; all three are then required.
pub fn jira_settings(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<JiraSettings>, ConfigError> {
    let names = [keys::JIRA_BASE_URL, keys::JIRA_EMAIL, keys::JIRA_API_TOKEN];
    if names.iter().all(|k| get(k).is_none()) {
        return Ok(None);
    }
    let required = |var: &'static str| {
        get(var).ok_or(ConfigError {
            var,
            reason: "is required when Jira is configured (NEGISHI_JIRA_BASE_URL, NEGISHI_JIRA_EMAIL, NEGISHI_JIRA_API_TOKEN)".into(),
        })
    };
    Ok(Some(JiraSettings {
        base_url: http_url(keys::JIRA_BASE_URL, required(keys::JIRA_BASE_URL)?)?,
        email: required(keys::JIRA_EMAIL)?,
        api_token: required(keys::JIRA_API_TOKEN)?,
        criteria_field: get(keys::JIRA_AC_FIELD),
        timeout: Duration::from_secs(20),
    }))
}

/// GitHub's settings when `USE_REAL_GITHUB` is true.
pub fn github_config(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<GitHubConfig>, ConfigError> {
    if !parse_bool(keys::USE_REAL_GITHUB, get(keys::USE_REAL_GITHUB))?.unwrap_or(false) {
        return Ok(None);
    }
    let required = |var: &'static str| {
        get(var).ok_or(ConfigError {
            var,
            reason: "is required when USE_REAL_GITHUB is true".into(),
        })
    };
    let token = required(keys::GITHUB_TOKEN)?;
    let repository = required(keys::GITHUB_REPO)?;
    let (owner, name) = parse_repository(&repository).ok_or_else(|| ConfigError {
        var: keys::GITHUB_REPO,
        reason: format!("{repository:?} is not owner/name or a repository URL"),
    })?;
    let api_url = http_url(
        keys::GITHUB_API_URL,
        get(keys::GITHUB_API_URL).unwrap_or_else(|| DEFAULT_API_URL.into()),
    )?;
    let mut settings = GitHubSettings::new(api_url, token);
    settings.allowed_repositories = std::iter::once(format!("{owner}/{name}"))
        .chain(
            get(keys::ALLOWED_REPOSITORIES)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| {
                    parse_repository(r)
                        .map(|(o, n)| format!("{o}/{n}"))
                        .ok_or_else(|| ConfigError {
                            var: keys::ALLOWED_REPOSITORIES,
                            reason: format!("{r:?} is not owner/name or a repository URL"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
        .map(|r| r.to_ascii_lowercase())
        .collect();
    if let Some(ms) = parse::<u64>(
        keys::GITHUB_WRITE_PAUSE_MS,
        get(keys::GITHUB_WRITE_PAUSE_MS),
    )? {
        settings.write_pause = Duration::from_millis(ms);
    }
    if let Some(s) = parse::<u64>(
        keys::GITHUB_MAX_WAIT_SECONDS,
        get(keys::GITHUB_MAX_WAIT_SECONDS),
    )? {
        settings.max_wait = Duration::from_secs(s);
    }
    if let Some(s) = parse::<u64>(
        keys::GITHUB_SECONDARY_WAIT_SECONDS,
        get(keys::GITHUB_SECONDARY_WAIT_SECONDS),
    )? {
        settings.secondary_wait = Duration::from_secs(s);
    }
    Ok(Some(GitHubConfig {
        settings,
        repository: format!("{owner}/{name}"),
    }))
}

/// The GitHub client, when configured.
pub fn github(config: &Config) -> Result<Option<GitHub>, ConfigError> {
    config
        .github
        .as_ref()
        .map(|g| {
            GitHub::new(g.settings.clone()).map_err(|reason| ConfigError {
                var: keys::GITHUB_TOKEN,
                reason,
            })
        })
        .transpose()
}

/// The code host: GitHub when configured, else local git repositories.
pub fn code_host(config: &Config) -> Result<Arc<dyn CodeHost>, ConfigError> {
    Ok(match github(config)? {
        Some(g) => Arc::new(g),
        None => Arc::new(LocalGit::new(
            config.data_dir.join("repos"),
            config.local_repositories.clone(),
        )),
    })
}

/// Where refresh jobs read pull requests back from (GitHub only).
pub fn review_source(config: &Config) -> Result<Option<Arc<dyn ReviewSource>>, ConfigError> {
    Ok(github(config)?.map(|g| Arc::new(g) as Arc<dyn ReviewSource>))
}

/// Everything the API state builds from the configuration that can still
/// be wrong after `Config::from_env` (a Jira client the URL cannot make, a
/// team file that does not read): checked at start-up so that it stops
/// the process with the variable's name instead of becoming a log line and
/// a 503 at the first request.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    ticket_source(config)?;
    crate::engine::team(config)?;
    Ok(())
}

/// The ticket source: Jira when configured, else the story folder.
pub fn ticket_source(config: &Config) -> Result<Option<Arc<dyn TicketSource>>, ConfigError> {
    if let Some(j) = &config.jira {
        let client = JiraClient::new(j.clone()).map_err(|reason| ConfigError {
            var: keys::JIRA_BASE_URL,
            reason,
        })?;
        return Ok(Some(Arc::new(client)));
    }
    Ok(config
        .stories_dir
        .clone()
        .map(|dir| Arc::new(StoryFiles { dir }) as Arc<dyn TicketSource>))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn github_needs_its_token_and_repository_when_enabled() {
        assert!(github_config(&lookup(&[])).unwrap().is_none());
        assert!(
            github_config(&lookup(&[("USE_REAL_GITHUB", "false")]))
                .unwrap()
                .is_none()
        );
        let e = github_config(&lookup(&[("USE_REAL_GITHUB", "true")])).unwrap_err();
        assert_eq!(e.var, "GITHUB_TOKEN");
        let e = github_config(&lookup(&[
            ("USE_REAL_GITHUB", "true"),
            ("GITHUB_TOKEN", "t"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "NEGISHI_GITHUB_REPO");
        let e = github_config(&lookup(&[
            ("USE_REAL_GITHUB", "true"),
            ("GITHUB_TOKEN", "t"),
            ("NEGISHI_GITHUB_REPO", "not a repo"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "NEGISHI_GITHUB_REPO");
        let g = github_config(&lookup(&[
            ("USE_REAL_GITHUB", "1"),
            ("GITHUB_TOKEN", "t"),
            ("NEGISHI_GITHUB_REPO", "https://github.com/octo/app.git"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(g.repository, "octo/app");
        assert_eq!(g.settings.api_url, "https://api.github.com");
        assert!(!format!("{g:?}").contains("\"t\""));
    }

    #[test]
    fn jira_is_all_or_nothing() {
        assert!(jira_settings(&lookup(&[])).unwrap().is_none());
        let e = jira_settings(&lookup(&[(
            "NEGISHI_JIRA_BASE_URL",
            "https://x.atlassian.net",
        )]))
        .unwrap_err();
        assert_eq!(e.var, "NEGISHI_JIRA_EMAIL");
        let e = jira_settings(&lookup(&[
            ("NEGISHI_JIRA_BASE_URL", "x.atlassian.net"),
            ("NEGISHI_JIRA_EMAIL", "a@b"),
            ("NEGISHI_JIRA_API_TOKEN", "t"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "NEGISHI_JIRA_BASE_URL");
    }
}
