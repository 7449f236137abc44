//! The agent team as data: each role's name, goal and backstory, and each
//! step's agent, context sections and task (`core/agents/team.toml`, built
//! in; a copy named by `AI_TEAM_AGENTS_FILE` replaces it without a rebuild).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::models::Agent;

/// The built-in team.
pub const BUILTIN_TEAM: &str = include_str!("../agents/team.toml");

/// The context sections a step may ask for, with their priority when a
/// prompt must shrink (higher is kept longer).
pub const SECTIONS: &[(&str, u8)] = &[
    ("story", 90),
    ("acceptance_criteria", 80),
    ("verification", 78),
    ("existing_files", 75),
    ("review", 70),
    ("design", 60),
    ("repository", 40),
    ("files", 30),
    ("summary", 10),
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    pub goal: String,
    pub backstory: String,
    pub max_output_tokens: u32,
    /// What the role can do, as `GET /agents/{id}` lists it.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

impl Role {
    /// The system prompt, naming the role as the original did.
    pub fn system_prompt(&self) -> String {
        format!(
            "You are the {}. {}\nYour goal: {}",
            self.name, self.backstory, self.goal
        )
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub agent: Agent,
    pub context: Vec<String>,
    pub task: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub roles: BTreeMap<Agent, Role>,
    pub steps: BTreeMap<String, StepSpec>,
}

impl Team {
    /// Parses and checks a team file: every agent step of the workflow is
    /// described, its role exists, its context sections are known.
    pub fn parse(text: &str) -> Result<Self, String> {
        let team: Team = toml::from_str(text).map_err(|e| e.to_string())?;
        for step in crate::engine::steps::Step::ALL {
            if step.agent().is_none() {
                continue;
            }
            let key = step.spec_key();
            let spec = team
                .steps
                .get(key)
                .ok_or_else(|| format!("step {key} is not described"))?;
            if !team.roles.contains_key(&spec.agent) {
                return Err(format!("step {key}: no role {}", spec.agent));
            }
            if let Some(bad) = spec
                .context
                .iter()
                .find(|c| !SECTIONS.iter().any(|(n, _)| n == c))
            {
                return Err(format!("step {key}: unknown context section {bad}"));
            }
        }
        Ok(team)
    }

    pub fn builtin() -> Self {
        Self::parse(BUILTIN_TEAM).expect("the built-in team file is valid")
    }

    pub fn role(&self, agent: Agent) -> Option<&Role> {
        self.roles.get(&agent)
    }

    pub fn step(&self, step: &str) -> Option<&StepSpec> {
        self.steps.get(step)
    }

    /// The steps `agent` works, in the order of the workflow.
    pub fn steps_of(&self, agent: Agent) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = crate::engine::steps::Step::ALL
            .iter()
            .map(|s| s.spec_key())
            .filter(|s| self.steps.get(*s).is_some_and(|spec| spec.agent == agent))
            .collect();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_team_describes_every_agent_step_with_the_original_role_names() {
        let team = Team::builtin();
        let names: Vec<&str> = Agent::ALL
            .iter()
            .map(|a| team.role(*a).unwrap().name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Product Manager",
                "Solution Architect",
                "Backend Developer",
                "Frontend Developer",
                "QA Tester",
                "Code Reviewer"
            ]
        );
        assert!(
            team.role(Agent::Pm)
                .unwrap()
                .system_prompt()
                .starts_with("You are the Product Manager.")
        );
    }

    #[test]
    fn a_broken_team_file_is_refused_with_the_reason() {
        let without_review = BUILTIN_TEAM.replace("[steps.review]", "[steps.reviewx]");
        assert!(Team::parse(&without_review).unwrap_err().contains("review"));
        let bad_section = BUILTIN_TEAM.replace(
            "context = [\"story\", \"repository\"]",
            "context = [\"history\"]",
        );
        assert!(Team::parse(&bad_section).unwrap_err().contains("history"));
    }
}
