//! Jira Cloud as a `TicketSource`: `GET {base}/rest/api/3/issue/{key}`
//! with basic auth (e-mail and API token) and `expand=names` (to find the
//! acceptance-criteria field by its name), the issue turned into a
//! Markdown story by `issue` and `adf`. A 404 is `NotFound`; anything else
//! that is not a 200 (bad credentials, 5xx, timeouts) is `Unavailable`,
//! which the HTTP layer answers as the original did.

pub mod adf;
pub mod issue;

use std::fmt;
use std::time::Duration;

use ai_team_core::ticket::{Ticket, TicketError, TicketSource};
use async_trait::async_trait;

/// What the adapter needs, read once at start-up.
#[derive(Clone)]
pub struct JiraSettings {
    pub base_url: String,
    pub email: String,
    pub api_token: String,
    /// `NEGISHI_JIRA_AC_FIELD`: the acceptance-criteria field's id.
    pub criteria_field: Option<String>,
    pub timeout: Duration,
}

impl fmt::Debug for JiraSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JiraSettings")
            .field("base_url", &self.base_url)
            .field("email", &self.email)
            .field("api_token", &"***")
            .field("criteria_field", &self.criteria_field)
            .finish()
    }
}

/// The Jira Cloud REST v3 client; one per process.
#[derive(Debug, Clone)]
pub struct JiraClient {
    http: reqwest::Client,
    settings: JiraSettings,
}

/// A key Jira could hold (`PROJ-12`, or a numeric id): anything else could
/// change the request path and is refused before any request.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl JiraClient {
    pub fn new(settings: JiraSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("ai-team/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { http, settings })
    }

    fn issue_url(&self, key: &str) -> String {
        format!(
            "{}/rest/api/3/issue/{key}",
            self.settings.base_url.trim_end_matches('/')
        )
    }
}

#[async_trait]
impl TicketSource for JiraClient {
    fn kind(&self) -> &'static str {
        "jira"
    }

    #[tracing::instrument(skip(self))]
    async fn fetch(&self, key: &str) -> Result<Ticket, TicketError> {
        if !valid_key(key) {
            return Err(TicketError::InvalidKey(key.chars().take(64).collect()));
        }
        let response = self
            .http
            .get(self.issue_url(key))
            .query(&[("expand", "names")])
            .basic_auth(&self.settings.email, Some(&self.settings.api_token))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| TicketError::Unavailable(format!("Jira unreachable: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(TicketError::NotFound(key.to_owned()));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let messages = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["errorMessages"].as_array().cloned())
                .map(|m| {
                    m.iter()
                        .filter_map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            return Err(TicketError::Unavailable(format!(
                "Jira answered {status}{}",
                if messages.is_empty() {
                    String::new()
                } else {
                    format!(": {messages}")
                }
            )));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| TicketError::Unavailable(format!("Jira sent unreadable JSON: {e}")))?;
        issue::ticket(
            &body,
            &self.settings.base_url,
            self.settings.criteria_field.as_deref(),
        )
        .ok_or_else(|| TicketError::Unavailable("Jira's answer is not an issue".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_that_could_change_the_path_are_refused() {
        assert!(valid_key("SHOP-12"));
        assert!(valid_key("10001"));
        for bad in ["", "../x", "A/B", "A?b", "A B", "A%2F"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
