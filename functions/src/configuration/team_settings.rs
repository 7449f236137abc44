//! The team section: the agents' roles and step tasks, from the file
//! `AI_TEAM_AGENTS_FILE` names (with `grammars/NAME.gbnf` beside it
//! replacing a built-in grammar), else the built-in team. The file is read
//! and parsed with the rest of the settings, so that a bad one stops
//! start-up with the variable's name instead of reaching a handler.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ai_team_core::agents::Team;

use super::{ConfigError, keys};

#[derive(Debug, Clone)]
pub struct TeamSettings {
    /// `AI_TEAM_AGENTS_FILE`, when set.
    pub file: Option<PathBuf>,
    /// The team it holds, parsed.
    pub team: Arc<Team>,
}

impl Default for TeamSettings {
    fn default() -> Self {
        Self {
            file: None,
            team: Arc::new(Team::builtin()),
        }
    }
}

impl TeamSettings {
    /// Reads through `get` (trimmed, blank as unset), then the file.
    pub fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match get(keys::AGENTS_FILE).map(PathBuf::from) {
            None => Ok(Self::default()),
            Some(path) => Ok(Self {
                team: Arc::new(team_file(&path)?),
                file: Some(path),
            }),
        }
    }
}

fn team_file(path: &Path) -> Result<Team, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        var: keys::AGENTS_FILE,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let dir = path.parent().map(|d| d.join("grammars"));
    let own = |name: &str| {
        let dir = dir.as_ref()?;
        std::fs::read_to_string(dir.join(format!("{name}.gbnf"))).ok()
    };
    Team::parse_with(&text, &own).map_err(|reason| ConfigError {
        var: keys::AGENTS_FILE,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_team_file_names_its_variable() {
        let get = |k: &str| (k == keys::AGENTS_FILE).then(|| "/nonexistent/team.yaml".to_owned());
        let e = TeamSettings::read(&get).unwrap_err();
        assert_eq!(e.var, "AI_TEAM_AGENTS_FILE");
        assert!(e.reason.contains("/nonexistent/team.yaml"), "{e}");
        assert!(TeamSettings::read(&|_| None).unwrap().file.is_none());
    }
}
