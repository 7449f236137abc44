//! The steps of an execution and how one leads to the next: story
//! retrieval → repository context → analysis → architecture →
//! implementation → frontend → testing → verification (failing tests go
//! back to the developer: fix → verification, bounded rounds) → review →
//! (rework → verification → final review, at most once) → integration.

use crate::models::Agent;

/// The most fix rounds a team file can ask for (each is a step name).
pub const MAX_FIX_ROUNDS: u8 = 3;

/// One step of an execution; its wire name (`as_str`) is the `step` of conversations, checkpoints and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// `story_retrieval`: read the story (no LLM).
    StoryRetrieval,
    /// `repository_context`: read the target repository (no LLM).
    RepositoryContext,
    /// `analysis`: the PM analyses the story.
    Analysis,
    /// `architecture`: the architect designs the change.
    Architecture,
    /// `implementation`: the developer writes the code.
    Implementation,
    /// `frontend`: the frontend developer writes the interface.
    Frontend,
    /// `testing`: the tester writes the tests.
    Testing,
    /// The n-th run of the repository's tests (1 after testing, n+1 after fix n).
    Verification(u8),
    /// The developer's n-th fix of failing tests.
    Fix(u8),
    /// `review`: the reviewer reviews the change.
    Review,
    /// `rework`: the developer applies the reviewer's changes (at most once).
    Rework,
    /// The tests again after the reviewer's rework.
    ReworkVerification,
    /// `final_review`: the reviewer's last look after rework.
    FinalReview,
    /// `integration`: commit, push and open the pull request (no LLM).
    Integration,
}

/// What the step just finished decided about the way on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transition {
    /// The reviewer asked for changes.
    pub changes_requested: bool,
    /// The verification found failing tests.
    pub tests_failed: bool,
    /// How many fix rounds failing tests get (`AI_TEAM_MAX_FIX_ROUNDS`).
    pub max_fix_rounds: u8,
}

impl Step {
    /// Every step, in the order a run may take them.
    pub const ALL: &'static [Step] = &[
        Step::StoryRetrieval,
        Step::RepositoryContext,
        Step::Analysis,
        Step::Architecture,
        Step::Implementation,
        Step::Frontend,
        Step::Testing,
        Step::Verification(1),
        Step::Fix(1),
        Step::Verification(2),
        Step::Fix(2),
        Step::Verification(3),
        Step::Fix(3),
        Step::Verification(4),
        Step::Review,
        Step::Rework,
        Step::ReworkVerification,
        Step::FinalReview,
        Step::Integration,
    ];

    /// Where every execution starts.
    pub const FIRST: Step = Step::StoryRetrieval;

    /// The wire name (`verification`, `verification_2`, `fix_1`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::StoryRetrieval => "story_retrieval",
            Step::RepositoryContext => "repository_context",
            Step::Analysis => "analysis",
            Step::Architecture => "architecture",
            Step::Implementation => "implementation",
            Step::Frontend => "frontend",
            Step::Testing => "testing",
            Step::Verification(1) => "verification",
            Step::Verification(2) => "verification_2",
            Step::Verification(3) => "verification_3",
            Step::Verification(_) => "verification_4",
            Step::Fix(1) => "fix_1",
            Step::Fix(2) => "fix_2",
            Step::Fix(_) => "fix_3",
            Step::Review => "review",
            Step::Rework => "rework",
            Step::ReworkVerification => "rework_verification",
            Step::FinalReview => "final_review",
            Step::Integration => "integration",
        }
    }

    /// The key of the step's task in the team file (every fix round is `fix`).
    pub fn spec_key(self) -> &'static str {
        match self {
            Step::Fix(_) => "fix",
            s => s.as_str(),
        }
    }

    /// The step with this wire name, if any.
    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.iter().copied().find(|step| step.as_str() == s)
    }

    /// Whether this step runs the repository's tests.
    pub fn is_verification(self) -> bool {
        matches!(self, Step::Verification(_) | Step::ReworkVerification)
    }

    /// The agent that works the step; `None` for the steps with no LLM.
    pub fn agent(self) -> Option<Agent> {
        Some(match self {
            Step::StoryRetrieval
            | Step::RepositoryContext
            | Step::Verification(_)
            | Step::ReworkVerification
            | Step::Integration => return None,
            Step::Analysis => Agent::Pm,
            Step::Architecture => Agent::Architect,
            Step::Implementation | Step::Rework | Step::Fix(_) => Agent::Developer,
            Step::Frontend => Agent::Frontend,
            Step::Testing => Agent::Tester,
            Step::Review | Step::FinalReview => Agent::Reviewer,
        })
    }

    /// The step after this one. The branches: failing tests get at most
    /// `max_fix_rounds` fixes, the reviewer's changes one rework.
    pub fn next(self, t: Transition) -> Option<Step> {
        let rounds = t.max_fix_rounds.min(MAX_FIX_ROUNDS);
        Some(match self {
            Step::StoryRetrieval => Step::RepositoryContext,
            Step::RepositoryContext => Step::Analysis,
            Step::Analysis => Step::Architecture,
            Step::Architecture => Step::Implementation,
            Step::Implementation => Step::Frontend,
            Step::Frontend => Step::Testing,
            Step::Testing => Step::Verification(1),
            Step::Verification(n) if t.tests_failed && n <= rounds => Step::Fix(n),
            Step::Verification(_) => Step::Review,
            Step::Fix(n) => Step::Verification(n + 1),
            Step::Review if t.changes_requested => Step::Rework,
            Step::Review => Step::Integration,
            Step::Rework => Step::ReworkVerification,
            Step::ReworkVerification => Step::FinalReview,
            Step::FinalReview => Step::Integration,
            Step::Integration => return None,
        })
    }
}

/// On the wire a step is its name, as `as_str` spells it.
impl serde::Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read back by its wire name too (checkpoints, run state); a name this
/// version does not know is an error, not a default.
impl<'de> serde::Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Step::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown step {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_stored_by_its_wire_name() {
        for step in Step::ALL {
            let json = serde_json::to_value(step).unwrap();
            assert_eq!(json, serde_json::json!(step.as_str()));
            assert_eq!(serde_json::from_value::<Step>(json).unwrap(), *step);
        }
        assert!(serde_json::from_value::<Step>(serde_json::json!("deploy")).is_err());
    }

    fn walk(t: Transition) -> Vec<&'static str> {
        let mut out = vec![];
        let mut s = Some(Step::FIRST);
        while let Some(step) = s {
            out.push(step.as_str());
            s = step.next(t);
            assert!(out.len() < 40, "the walk ends");
        }
        out
    }

    #[test]
    fn approved_passing_work_goes_straight_to_integration() {
        assert_eq!(
            walk(Transition {
                max_fix_rounds: 2,
                ..Default::default()
            }),
            [
                "story_retrieval",
                "repository_context",
                "analysis",
                "architecture",
                "implementation",
                "frontend",
                "testing",
                "verification",
                "review",
                "integration"
            ]
        );
    }

    #[test]
    fn failing_tests_get_bounded_fix_rounds_then_go_to_review() {
        let w = walk(Transition {
            tests_failed: true,
            max_fix_rounds: 2,
            ..Default::default()
        });
        assert_eq!(
            &w[7..],
            [
                "verification",
                "fix_1",
                "verification_2",
                "fix_2",
                "verification_3",
                "review",
                "integration"
            ]
        );
        let none = walk(Transition {
            tests_failed: true,
            max_fix_rounds: 0,
            ..Default::default()
        });
        assert_eq!(&none[7..9], ["verification", "review"]);
    }

    #[test]
    fn requested_changes_loop_back_once_and_are_verified() {
        let w = walk(Transition {
            changes_requested: true,
            max_fix_rounds: 2,
            ..Default::default()
        });
        assert_eq!(
            &w[8..],
            [
                "review",
                "rework",
                "rework_verification",
                "final_review",
                "integration"
            ]
        );
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Step::Fix(2).spec_key(), "fix");
    }
}
