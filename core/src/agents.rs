//! The agent team as data: each role's name, goal and backstory, and each
//! step's agent, context sections, task and optional output grammar
//! (`core/agents/team.toml` and `core/agents/grammars/*.gbnf`, built in; a
//! copy named by `AI_TEAM_AGENTS_FILE` replaces it without a rebuild, and
//! `grammars/NAME.gbnf` beside that copy replaces a built-in grammar).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::models::Agent;

/// The built-in team.
pub const BUILTIN_TEAM: &str = include_str!("../agents/team.toml");

/// The built-in output grammars (GBNF, llama.cpp's grammar format) a step
/// may name with `grammar = "..."`: they constrain the embedded model's
/// sampling to the answer shape the engine's parsers read.
pub const BUILTIN_GRAMMARS: &[(&str, &str)] = &[
    ("analysis", include_str!("../agents/grammars/analysis.gbnf")),
    ("design", include_str!("../agents/grammars/design.gbnf")),
    (
        "code_files",
        include_str!("../agents/grammars/code_files.gbnf"),
    ),
    ("frontend", include_str!("../agents/grammars/frontend.gbnf")),
    (
        "test_files",
        include_str!("../agents/grammars/test_files.gbnf"),
    ),
    ("verdict", include_str!("../agents/grammars/verdict.gbnf")),
];

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

/// One role of the team, as the team file declares it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Display name ("Product Manager").
    pub name: String,
    /// What the role aims at, in its system prompt.
    pub goal: String,
    /// Who the role is, in its system prompt.
    pub backstory: String,
    /// Most tokens the role's answers may have (the calls' `max_tokens`).
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

/// One step's task, as the team file declares it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The agent that works the step.
    pub agent: Agent,
    /// Context sections the prompt includes (names from `SECTIONS`).
    pub context: Vec<String>,
    /// The task text of the prompt.
    pub task: String,
    /// The grammar (a name in [`Team::grammars`]) the answer of a model
    /// that supports constrained sampling must follow; none: free text.
    #[serde(default)]
    pub grammar: Option<String>,
}

/// The team file, parsed: its roles, its steps and the grammars they name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Each agent's role.
    pub roles: BTreeMap<Agent, Role>,
    /// Each step's task, by `Step::spec_key`.
    pub steps: BTreeMap<String, StepSpec>,
    /// Grammar texts by name: the built-in ones, and those the loader found.
    #[serde(skip)]
    pub grammars: BTreeMap<String, String>,
}

impl Team {
    /// Parses and checks a team file with the built-in grammars.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_with(text, &|_| None)
    }

    /// Parses and checks a team file: every agent step of the workflow is
    /// described, its role exists, its context sections and grammar are
    /// known. `grammar` gives the text of a grammar by name when the
    /// caller has one of its own (a file beside the team file); otherwise
    /// the built-in one of that name is used.
    pub fn parse_with(
        text: &str,
        grammar: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let mut team: Team = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, spec) in &team.steps {
            let Some(g) = &spec.grammar else { continue };
            let text = grammar(g)
                .or_else(|| {
                    BUILTIN_GRAMMARS
                        .iter()
                        .find(|(n, _)| n == g)
                        .map(|(_, t)| (*t).to_owned())
                })
                .ok_or_else(|| format!("step {name}: unknown grammar {g}"))?;
            let has_root = text.lines().any(|l| {
                l.strip_prefix("root")
                    .is_some_and(|rest| rest.trim_start().starts_with("::="))
            });
            if !has_root {
                return Err(format!("step {name}: grammar {g} has no root rule"));
            }
            team.grammars.insert(g.clone(), text);
        }
        for step in crate::steps::Step::ALL {
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

    /// The built-in team (`BUILTIN_TEAM`).
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_TEAM).expect("the built-in team file is valid")
    }

    /// The role of `agent`, if the team declares it.
    pub fn role(&self, agent: Agent) -> Option<&Role> {
        self.roles.get(&agent)
    }

    /// The task of the step with this spec key, if the team declares it.
    pub fn step(&self, step: &str) -> Option<&StepSpec> {
        self.steps.get(step)
    }

    /// The grammar text the answer of `step` must follow, if it names one.
    pub fn grammar(&self, step: &str) -> Option<&str> {
        let name = self.steps.get(step)?.grammar.as_ref()?;
        self.grammars.get(name).map(String::as_str)
    }

    /// The steps `agent` works, in the order of the workflow.
    pub fn steps_of(&self, agent: Agent) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = crate::steps::Step::ALL
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
        let bad_grammar = BUILTIN_TEAM.replace("grammar = \"verdict\"", "grammar = \"poem\"");
        assert!(Team::parse(&bad_grammar).unwrap_err().contains("poem"));
    }

    #[test]
    fn code_steps_and_structured_steps_name_a_grammar_found_beside_the_team_or_built_in() {
        let team = Team::builtin();
        for (step, grammar) in [
            ("analysis", "analysis"),
            ("architecture", "design"),
            ("implementation", "code_files"),
            ("frontend", "frontend"),
            ("testing", "test_files"),
            ("review", "verdict"),
            ("rework", "code_files"),
            ("final_review", "verdict"),
        ] {
            assert_eq!(
                team.step(step).unwrap().grammar.as_deref(),
                Some(grammar),
                "{step}"
            );
            assert!(team.grammar(step).unwrap().contains("::="), "{step}");
        }
        let own = Team::parse_with(BUILTIN_TEAM, &|name| {
            (name == "verdict").then(|| "root ::= \"VERDICT: APPROVED\\n\"".to_owned())
        })
        .unwrap();
        assert_eq!(
            own.grammar("review"),
            Some("root ::= \"VERDICT: APPROVED\\n\"")
        );
        assert_eq!(own.grammar("testing"), team.grammar("testing"));
        let rootless = Team::parse_with(BUILTIN_TEAM, &|name| {
            (name == "verdict").then(|| "start ::= \"x\"".to_owned())
        });
        assert!(rootless.unwrap_err().contains("root"));
    }
}
