//! The outside systems' settings, read with the original's names (API.md):
//! Jira (`NEGISHI_JIRA_*`) and GitHub (`USE_REAL_GITHUB`, `GITHUB_TOKEN`,
//! `NEGISHI_GITHUB_REPO`, `GITHUB_API_URL`). A half-configured one stops
//! start-up with the missing variable named. The `integrations` module builds
//! the clients from them, once, at start-up.

use std::time::Duration;

use ai_team_providers::github::{DEFAULT_API_URL, GitHubSettings, parse_repository};
use ai_team_providers::jira::JiraSettings;

use super::{ConfigError, Secret, keys, parse, parse_bool};

/// The integrations section: where stories come from, where code goes.
#[derive(Debug, Clone, Default)]
pub struct IntegrationSettings {
    /// Jira Cloud, when `NEGISHI_JIRA_BASE_URL` and its credentials are set.
    pub jira: Option<JiraSettings>,
    /// A folder of `{KEY}.md` stories, the ticket source without Jira.
    pub stories_dir: Option<std::path::PathBuf>,
    /// GitHub as the code host, when `USE_REAL_GITHUB` is true.
    pub github: Option<GitHubConfig>,
    /// `GITHUB_WEBHOOK_SECRET`; without it every delivery is refused.
    pub webhook_secret: Option<Secret>,
}

impl IntegrationSettings {
    /// Reads through `get` (trimmed, blank as unset).
    pub fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            jira: jira_settings(get)?,
            stories_dir: get(keys::STORIES_DIR).map(Into::into),
            github: github_config(get)?,
            webhook_secret: get(keys::GITHUB_WEBHOOK_SECRET).map(Secret::new),
        })
    }
}

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
