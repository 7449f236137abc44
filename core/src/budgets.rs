//! The token budgets of an execution (a step, an agent, the whole run),
//! the patch a resume may carry, and the check made before every call.

use serde::{Deserialize, Serialize};

/// Token budgets of an execution: one step (prompt plus output of its
/// calls), one agent across the execution, the whole execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Tokens (prompt plus output) one step's calls may use.
    pub step_tokens: i64,
    /// Tokens one agent's calls may use across the execution.
    pub agent_tokens: i64,
    /// Tokens the whole execution's calls may use.
    pub execution_tokens: i64,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            step_tokens: 16_000,
            agent_tokens: 48_000,
            execution_tokens: 200_000,
        }
    }
}

/// Raised (or lowered) budgets, as a resume body carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPatch {
    /// New step budget, in tokens; `None` keeps the current one.
    #[serde(default, deserialize_with = "whole_number")]
    pub step_tokens: Option<i64>,
    /// New agent budget, in tokens; `None` keeps the current one.
    #[serde(default, deserialize_with = "whole_number")]
    pub agent_tokens: Option<i64>,
    /// New execution budget, in tokens; `None` keeps the current one.
    #[serde(default, deserialize_with = "whole_number")]
    pub execution_tokens: Option<i64>,
}

/// A JSON integer, also written as a number without a fraction (`1440.0`
/// is an integer to JSON Schema).
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number"))),
    }
}

impl BudgetPatch {
    /// Checks every given budget is within 1..=100,000,000 tokens; the error names the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("step_tokens", self.step_tokens),
            ("agent_tokens", self.agent_tokens),
            ("execution_tokens", self.execution_tokens),
        ] {
            if let Some(v) = v
                && !(1..=100_000_000).contains(&v)
            {
                return Err(format!("{name} must be between 1 and 100000000, got {v}"));
            }
        }
        Ok(())
    }

    /// `b` with the given budgets replaced.
    pub fn apply(&self, b: Budgets) -> Budgets {
        Budgets {
            step_tokens: self.step_tokens.unwrap_or(b.step_tokens),
            agent_tokens: self.agent_tokens.unwrap_or(b.agent_tokens),
            execution_tokens: self.execution_tokens.unwrap_or(b.execution_tokens),
        }
    }
}

/// Tokens already spent, against which a call is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    /// Tokens spent by the current step.
    pub step: i64,
    /// Tokens spent by the agent in this execution.
    pub agent: i64,
    /// Tokens spent by the whole execution.
    pub execution: i64,
}

/// A call the budgets do not allow: the step stops and escalates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    /// Which budget (`step`, `agent` or `execution`).
    pub budget: &'static str,
    /// The budget, in tokens.
    pub limit: i64,
    /// Tokens already spent against it.
    pub spent: i64,
    /// Tokens the call needs (prompt plus the smallest useful output).
    pub needed: i64,
}

impl OverBudget {
    /// The refusal in words: needed, limit, spent and what is left.
    pub fn math(&self) -> String {
        format!(
            "needs {} tokens but the {} budget is {} with {} already spent ({} left)",
            self.needed,
            self.budget,
            self.limit,
            self.spent,
            self.limit.saturating_sub(self.spent).max(0)
        )
    }
}

/// The smallest output worth asking for: below it a call is refused
/// rather than made with a uselessly short answer.
pub const MIN_OUTPUT_TOKENS: i64 = 128;

/// Checks a call of `prompt_tokens` asking for `max_output` against the
/// budgets; lowers the output to what is left when at least
/// `MIN_OUTPUT_TOKENS` remain, else refuses with the math. Saturating
/// throughout: no recorded spend, however large (or negative), overflows
/// or refunds a budget.
pub fn check_budgets(
    budgets: Budgets,
    spent: Spent,
    prompt_tokens: i64,
    max_output: i64,
) -> Result<i64, OverBudget> {
    let prompt_tokens = prompt_tokens.max(0);
    let mut output = max_output;
    for (budget, limit, used) in [
        ("step", budgets.step_tokens, spent.step),
        ("agent", budgets.agent_tokens, spent.agent),
        ("execution", budgets.execution_tokens, spent.execution),
    ] {
        let used = used.max(0);
        let left = limit.saturating_sub(used).saturating_sub(prompt_tokens);
        if left < MIN_OUTPUT_TOKENS.min(max_output) {
            return Err(OverBudget {
                budget,
                limit,
                spent: used,
                needed: prompt_tokens.saturating_add(MIN_OUTPUT_TOKENS.min(max_output)),
            });
        }
        output = output.min(left);
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_lowered_to_what_is_left_then_refused() {
        let b = Budgets {
            step_tokens: 1000,
            agent_tokens: 5000,
            execution_tokens: 10_000,
        };
        assert_eq!(check_budgets(b, Spent::default(), 300, 500), Ok(500));
        assert_eq!(check_budgets(b, Spent::default(), 600, 500), Ok(400));
        let e = check_budgets(
            b,
            Spent {
                step: 0,
                agent: 4800,
                execution: 0,
            },
            100,
            500,
        )
        .unwrap_err();
        assert_eq!(e.budget, "agent");
        assert_eq!(e.needed, 228);
        assert!(
            e.math()
                .contains("agent budget is 5000 with 4800 already spent (200 left)")
        );
    }

    #[test]
    fn huge_or_negative_spend_neither_overflows_nor_refunds() {
        let b = Budgets::default();
        let huge = Spent {
            step: 0,
            agent: i64::MAX,
            execution: i64::MAX,
        };
        let e = check_budgets(b, huge, i64::MAX, 500).unwrap_err();
        assert_eq!(e.budget, "step");
        assert_eq!(e.needed, i64::MAX);
        assert!(e.math().contains("(16000 left)"), "{}", e.math());
        let e = check_budgets(b, huge, 10, 500).unwrap_err();
        assert_eq!(e.budget, "agent");
        assert!(e.math().contains("(0 left)"), "{}", e.math());
        let negative = Spent {
            step: -1_000_000,
            agent: i64::MIN,
            execution: -5,
        };
        // A negative spend counts as none: it cannot buy more than the budget.
        assert_eq!(
            check_budgets(
                Budgets {
                    step_tokens: 1000,
                    ..b
                },
                negative,
                600,
                500
            ),
            Ok(400)
        );
    }

    #[test]
    fn patches_apply_and_validate() {
        let p = BudgetPatch {
            step_tokens: Some(50_000),
            ..Default::default()
        };
        assert_eq!(p.apply(Budgets::default()).step_tokens, 50_000);
        assert!(
            BudgetPatch {
                agent_tokens: Some(0),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
