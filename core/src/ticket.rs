//! The `TicketSource` port: where a story comes from (Jira, a folder of
//! story files). An adapter turns its ticket into a [`Ticket`]: the text
//! already converted to Markdown, so the workflow's description is the
//! story the team reads, whatever tracker it came from.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Why a ticket could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The tracker says there is no such ticket (or it is not visible).
    #[error("ticket {0} not found")]
    NotFound(String),
    /// The tracker failed, refused the credentials, or cannot be reached.
    #[error("ticket source unavailable: {0}")]
    Unavailable(String),
    /// The key cannot name a ticket (empty, a path, …).
    #[error("invalid ticket key: {0}")]
    InvalidKey(String),
}

/// A story as the team reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket's key (`PROJ-12`).
    pub key: String,
    /// The ticket's title.
    pub summary: String,
    /// Markdown.
    pub description: String,
    /// Markdown, when the tracker has an acceptance-criteria field.
    pub acceptance_criteria: Option<String>,
    /// The ticket's labels; empty when it has none.
    pub labels: Vec<String>,
    /// The ticket's priority name, if it has one.
    pub priority: Option<String>,
    /// Where a person reads the ticket.
    pub url: Option<String>,
}

impl Ticket {
    /// `"{key}: {summary}"`, as the original named workflows made from Jira.
    pub fn workflow_name(&self) -> String {
        format!("{}: {}", self.key, self.summary)
    }

    /// The workflow's description: heading, text, acceptance criteria,
    /// priority and labels, in Markdown.
    pub fn story_text(&self) -> String {
        let mut out = format!("# {}\n", self.workflow_name());
        let body = self.description.trim();
        if !body.is_empty() {
            out.push('\n');
            out.push_str(body);
            out.push('\n');
        }
        if let Some(ac) = self
            .acceptance_criteria
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            out.push_str("\n## Acceptance criteria\n\n");
            out.push_str(ac);
            out.push('\n');
        }
        let mut facts = Vec::new();
        if let Some(p) = self.priority.as_deref().filter(|p| !p.is_empty()) {
            facts.push(format!("**Priority:** {p}"));
        }
        if !self.labels.is_empty() {
            facts.push(format!("**Labels:** {}", self.labels.join(", ")));
        }
        if !facts.is_empty() {
            out.push('\n');
            out.push_str(&facts.join("  \n"));
            out.push('\n');
        }
        out
    }
}

/// Where stories come from: Jira, or a folder of story files (adapters in `ai-team-providers`).
#[async_trait]
pub trait TicketSource: Send + Sync + 'static {
    /// `jira`, `files`, …
    fn kind(&self) -> &'static str;
    /// The ticket with this key, its text as Markdown.
    async fn fetch(&self, key: &str) -> Result<Ticket, TicketError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_text_holds_every_part_in_markdown() {
        let t = Ticket {
            key: "SHOP-7".into(),
            summary: "Password reset".into(),
            description: "As a user…\n\n- one\n- two".into(),
            acceptance_criteria: Some("- [ ] mail sent".into()),
            labels: vec!["auth".into(), "web".into()],
            priority: Some("High".into()),
            url: None,
        };
        assert_eq!(t.workflow_name(), "SHOP-7: Password reset");
        assert_eq!(
            t.story_text(),
            "# SHOP-7: Password reset\n\nAs a user…\n\n- one\n- two\n\n## Acceptance criteria\n\n- [ ] mail sent\n\n**Priority:** High  \n**Labels:** auth, web\n"
        );
        let bare = Ticket {
            description: String::new(),
            acceptance_criteria: None,
            labels: vec![],
            priority: None,
            ..t
        };
        assert_eq!(bare.story_text(), "# SHOP-7: Password reset\n");
    }
}
