//! A folder of story files as a `TicketSource` (`{dir}/{KEY}.md`, the
//! format of `ai-team run --story`): local runs and tests get stories
//! without a Jira site.

use std::path::PathBuf;

use ai_team_core::story;
use ai_team_core::ticket::{Ticket, TicketError, TicketSource};
use async_trait::async_trait;

use crate::jira::valid_key;

#[derive(Debug, Clone)]
pub struct StoryFiles {
    pub dir: PathBuf,
}

#[async_trait]
impl TicketSource for StoryFiles {
    fn kind(&self) -> &'static str {
        "files"
    }

    async fn fetch(&self, key: &str) -> Result<Ticket, TicketError> {
        if !valid_key(key) {
            return Err(TicketError::InvalidKey(key.chars().take(64).collect()));
        }
        let path = self.dir.join(format!("{key}.md"));
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TicketError::NotFound(key.to_owned()));
            }
            Err(e) => {
                return Err(TicketError::Unavailable(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let parsed = story::parse(&path, &text).map_err(TicketError::Unavailable)?;
        // The heading names the story; the ticket's own heading replaces it.
        let body = match text.trim_start().strip_prefix('#') {
            Some(rest) => rest.split_once('\n').map_or("", |(_, b)| b).trim(),
            None => text.trim(),
        };
        Ok(Ticket {
            key: key.to_owned(),
            summary: parsed.title,
            description: body.to_owned(),
            acceptance_criteria: None,
            labels: vec![],
            priority: None,
            url: Some(path.display().to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_story_file_is_a_ticket_and_a_missing_one_is_not_found() {
        let dir = std::env::temp_dir().join(format!("ai-team-stories-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("SHOP-3.md"), "# SHOP-3: Reset\n\nAs a user…\n").unwrap();
        let files = StoryFiles { dir: dir.clone() };
        let t = files.fetch("SHOP-3").await.unwrap();
        assert_eq!(t.workflow_name(), "SHOP-3: Reset");
        assert_eq!(t.description, "As a user…");
        assert!(matches!(
            files.fetch("SHOP-4").await,
            Err(TicketError::NotFound(_))
        ));
        assert!(matches!(
            files.fetch("../x").await,
            Err(TicketError::InvalidKey(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
