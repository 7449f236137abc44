//! The steps of an execution and how one leads to the next: story
//! retrieval → analysis → architecture → implementation → frontend →
//! testing → review → (rework → final review, at most once) → integration.

use crate::models::Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    StoryRetrieval,
    Analysis,
    Architecture,
    Implementation,
    Frontend,
    Testing,
    Review,
    Rework,
    FinalReview,
    Integration,
}

impl Step {
    pub const ALL: &'static [Step] = &[
        Step::StoryRetrieval,
        Step::Analysis,
        Step::Architecture,
        Step::Implementation,
        Step::Frontend,
        Step::Testing,
        Step::Review,
        Step::Rework,
        Step::FinalReview,
        Step::Integration,
    ];

    pub const FIRST: Step = Step::StoryRetrieval;

    pub fn as_str(self) -> &'static str {
        match self {
            Step::StoryRetrieval => "story_retrieval",
            Step::Analysis => "analysis",
            Step::Architecture => "architecture",
            Step::Implementation => "implementation",
            Step::Frontend => "frontend",
            Step::Testing => "testing",
            Step::Review => "review",
            Step::Rework => "rework",
            Step::FinalReview => "final_review",
            Step::Integration => "integration",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.iter().copied().find(|step| step.as_str() == s)
    }

    /// The agent that works the step; `None` for the steps with no LLM.
    pub fn agent(self) -> Option<Agent> {
        Some(match self {
            Step::StoryRetrieval | Step::Integration => return None,
            Step::Analysis => Agent::Pm,
            Step::Architecture => Agent::Architect,
            Step::Implementation | Step::Rework => Agent::Developer,
            Step::Frontend => Agent::Frontend,
            Step::Testing => Agent::Tester,
            Step::Review | Step::FinalReview => Agent::Reviewer,
        })
    }

    /// The step after this one; `changes_requested` is the reviewer's
    /// verdict (the only branch: one round of rework, never more).
    pub fn next(self, changes_requested: bool) -> Option<Step> {
        Some(match self {
            Step::StoryRetrieval => Step::Analysis,
            Step::Analysis => Step::Architecture,
            Step::Architecture => Step::Implementation,
            Step::Implementation => Step::Frontend,
            Step::Frontend => Step::Testing,
            Step::Testing => Step::Review,
            Step::Review if changes_requested => Step::Rework,
            Step::Review => Step::Integration,
            Step::Rework => Step::FinalReview,
            Step::FinalReview => Step::Integration,
            Step::Integration => return None,
        })
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(changes: bool) -> Vec<&'static str> {
        let mut out = vec![];
        let mut s = Some(Step::FIRST);
        while let Some(step) = s {
            out.push(step.as_str());
            s = step.next(changes);
        }
        out
    }

    #[test]
    fn approved_work_goes_straight_to_integration() {
        assert_eq!(
            walk(false),
            [
                "story_retrieval",
                "analysis",
                "architecture",
                "implementation",
                "frontend",
                "testing",
                "review",
                "integration"
            ]
        );
    }

    #[test]
    fn requested_changes_loop_back_once_only() {
        let w = walk(true);
        assert_eq!(&w[6..], ["review", "rework", "final_review", "integration"]);
        for s in Step::ALL {
            assert_eq!(Step::parse(s.as_str()), Some(*s));
        }
    }
}
