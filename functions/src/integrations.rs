//! The outside systems a host talks to, built from the integrations
//! section of the settings (API.md's names): Jira (`NEGISHI_JIRA_*`) as the ticket
//! source, GitHub (`USE_REAL_GITHUB`, `GITHUB_TOKEN`, `NEGISHI_GITHUB_REPO`,
//! `GITHUB_API_URL`) as the code host and review source. A half-configured
//! one stops start-up with the missing variable named; an absent one
//! leaves the local adapters (story files, the local git repository).

use std::sync::Arc;

use ai_team_core::codehost::CodeHost;
use ai_team_core::refresh::ReviewSource;
use ai_team_core::ticket::TicketSource;
use ai_team_providers::codehost::LocalGit;
use ai_team_providers::github::GitHub;
use ai_team_providers::jira::JiraClient;
use ai_team_providers::stories::StoryFiles;

use crate::configuration::{Config, ConfigError, keys};

/// The GitHub client, when configured.
pub fn github(config: &Config) -> Result<Option<GitHub>, ConfigError> {
    config
        .integrations
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

/// The ticket source: Jira when configured, else the story folder.
pub fn ticket_source(config: &Config) -> Result<Option<Arc<dyn TicketSource>>, ConfigError> {
    if let Some(j) = &config.integrations.jira {
        let client = JiraClient::new(j.clone()).map_err(|reason| ConfigError {
            var: keys::JIRA_BASE_URL,
            reason,
        })?;
        return Ok(Some(Arc::new(client)));
    }
    Ok(config
        .integrations
        .stories_dir
        .clone()
        .map(|dir| Arc::new(StoryFiles { dir }) as Arc<dyn TicketSource>))
}
