//! The conversation review of a workflow (API.md "Agents and their
//! output"), computed from what the store recorded: every call attempt
//! (failed ones are retries paid for), prompts cut to fit the window,
//! identical prompts bought more than once, spend and time per step, and
//! the reviewer's open points. Savings are only what those records show:
//! the cost and time of failed attempts and of repeated identical prompts.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::compare::CallFact;
use crate::money::nanos_to_dollars;

/// What a conversation contributes besides its calls.
#[derive(Debug, Clone)]
pub struct ConversationFacts {
    /// The step's wire name.
    pub step: String,
    /// The agent's wire name.
    pub agent: String,
    /// The conversation's structured record (`truncated_sections`, `verdict`…).
    pub details: Value,
}

/// What the records show could have been saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Savings {
    /// Calls that need not have been made: failed attempts and repeats.
    pub messages: i64,
    /// Cost of those calls, in dollars.
    pub cost_usd: f64,
    /// Time those calls took, in minutes.
    pub duration_minutes: f64,
}

/// The review, in the original's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationReview {
    /// The workflow reviewed.
    pub workflow_id: i64,
    /// One line of totals: conversations, calls, failures, tokens, cost.
    pub summary: String,
    /// Steps whose calls failed or that dominate the cost.
    pub workflow_recommendations: Vec<String>,
    /// Prompts shrunk to fit the model's window.
    pub prompt_recommendations: Vec<String>,
    /// The changes the reviewer asked for, by step.
    pub code_change_suggestions: Vec<String>,
    /// Unapproved reviews and answers cut at their output limit.
    pub risk_flags: Vec<String>,
    /// Repeated prompts and failed attempts, with what they cost.
    pub quick_wins: Vec<String>,
    /// What failed attempts and repeats cost.
    pub estimated_savings: Savings,
    /// The figures the text is made from.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub facts: Value,
}

#[derive(Default)]
struct StepTotals {
    calls: i64,
    failed: i64,
    tokens: i64,
    cost: i64,
    latency_ms: i64,
}

/// Reviews the workflow's records.
///
/// Long because it is one list of rules over the same per-step totals:
/// each rule is a short paragraph that reads them and adds a finding, and
/// the list reads best in one place, in the order the review reports it.
pub fn review(
    workflow_id: i64,
    calls: &[CallFact],
    conversations: &[ConversationFacts],
) -> ConversationReview {
    let mut per_step: BTreeMap<String, StepTotals> = BTreeMap::new();
    for c in calls {
        let t = per_step.entry(c.step.clone()).or_default();
        t.calls += 1;
        t.tokens = t
            .tokens
            .saturating_add(c.prompt_tokens.saturating_add(c.completion_tokens));
        t.cost = t.cost.saturating_add(c.cost);
        t.latency_ms = t.latency_ms.saturating_add(c.latency_ms);
        if c.status == "failed" {
            t.failed += 1;
        }
    }
    let failed: Vec<&CallFact> = calls.iter().filter(|c| c.status == "failed").collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut repeats: Vec<&CallFact> = Vec::new();
    for c in calls.iter().filter(|c| c.status == "success") {
        let n = seen.entry(c.prompt_hash.as_str()).or_default();
        *n += 1;
        if *n > 1 {
            repeats.push(c);
        }
    }
    let waste = failed.iter().chain(repeats.iter());
    let (waste_cost, waste_ms) = waste.fold((0i64, 0i64), |(c, ms), f| {
        (c.saturating_add(f.cost), ms.saturating_add(f.latency_ms))
    });
    let total_cost: i64 = calls.iter().fold(0i64, |a, c| a.saturating_add(c.cost));
    let total_tokens: i64 = calls.iter().fold(0i64, |a, c| {
        a.saturating_add(c.prompt_tokens.saturating_add(c.completion_tokens))
    });

    let mut workflow_recommendations = Vec::new();
    let mut prompt_recommendations = Vec::new();
    let mut code_change_suggestions = Vec::new();
    let mut risk_flags = Vec::new();
    let mut quick_wins = Vec::new();

    for (step, t) in per_step.iter().filter(|(_, t)| t.failed > 0) {
        workflow_recommendations.push(format!(
            "Step {step}: {} of {} model calls failed and were retried; check the provider's limits or raise AI_TEAM_LLM_MAX_ATTEMPTS' backoff.",
            t.failed, t.calls
        ));
    }
    if let Some((step, t)) = per_step.iter().max_by_key(|(_, t)| t.cost) {
        if total_cost > 0 && t.cost.saturating_mul(2) > total_cost {
            workflow_recommendations.push(format!(
                "Step {step} spent {:.0}% of the workflow's cost (${:.6}); it is the first place to look for savings.",
                t.cost as f64 * 100.0 / total_cost as f64,
                nanos_to_dollars(t.cost)
            ));
        }
        if total_cost == 0 && t.tokens > 0 {
            workflow_recommendations
                .push(format!("Step {step} used the most tokens ({}).", t.tokens));
        }
    }
    for c in conversations {
        if let Some(cut) = c.details["truncated_sections"]
            .as_array()
            .filter(|a| !a.is_empty())
        {
            let names: Vec<&str> = cut.iter().filter_map(Value::as_str).collect();
            prompt_recommendations.push(format!(
                "The prompt of step {} ({}) was shrunk to fit the model's window; cut: {}. A model with a larger window, or a shorter story, keeps that context.",
                c.step,
                c.agent,
                names.join(", ")
            ));
        }
        if let Some(changes) = c.details["verdict"]["changes"]
            .as_array()
            .filter(|_| c.details["verdict"]["approved"].as_bool() == Some(false))
        {
            for change in changes.iter().filter_map(Value::as_str) {
                code_change_suggestions.push(format!("{} ({}): {change}", c.step, c.agent));
            }
            risk_flags.push(format!("The reviewer did not approve at step {}.", c.step));
        }
        if c.details["finish_reason"].as_str() == Some("length") {
            risk_flags.push(format!(
                "The answer of step {} ({}) stopped at its output limit and may be incomplete.",
                c.step, c.agent
            ));
        }
    }
    if !repeats.is_empty() {
        quick_wins.push(format!(
            "{} identical prompt(s) were sent again after a successful answer (${:.6}); answers are reused within an execution, so these come from separate executions of the same story.",
            repeats.len(),
            nanos_to_dollars(repeats.iter().fold(0i64, |a, c| a.saturating_add(c.cost)))
        ));
    }
    if !failed.is_empty() {
        quick_wins.push(format!(
            "{} failed attempt(s) cost ${:.6} and {:.1} s.",
            failed.len(),
            nanos_to_dollars(failed.iter().fold(0i64, |a, c| a.saturating_add(c.cost))),
            failed
                .iter()
                .fold(0i64, |a, c| a.saturating_add(c.latency_ms)) as f64
                / 1000.0
        ));
    }
    let summary = if calls.is_empty() {
        "No model calls are recorded for this workflow yet.".to_owned()
    } else {
        format!(
            "{} conversation(s), {} model call(s) ({} failed, {} repeated prompt(s)), {} tokens, ${:.6} over {} step(s).",
            conversations.len(),
            calls.len(),
            failed.len(),
            repeats.len(),
            total_tokens,
            nanos_to_dollars(total_cost),
            per_step.len()
        )
    };
    let facts = serde_json::json!({
        "calls": calls.len(),
        "failed_calls": failed.len(),
        "repeated_prompts": repeats.len(),
        "total_tokens": total_tokens,
        "total_cost": nanos_to_dollars(total_cost),
        "per_step": per_step.iter().map(|(s, t)| (s.clone(), serde_json::json!({
            "calls": t.calls, "failed": t.failed, "tokens": t.tokens,
            "cost": nanos_to_dollars(t.cost), "latency_ms": t.latency_ms,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    ConversationReview {
        workflow_id,
        summary,
        workflow_recommendations,
        prompt_recommendations,
        code_change_suggestions,
        risk_flags,
        quick_wins,
        estimated_savings: Savings {
            messages: (failed.len() + repeats.len()) as i64,
            cost_usd: nanos_to_dollars(waste_cost),
            duration_minutes: waste_ms as f64 / 60_000.0,
        },
        facts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(step: &str, status: &str, hash: &str, cost: i64, ms: i64) -> CallFact {
        CallFact {
            agent: "developer".into(),
            step: step.into(),
            model: "gpt-4o".into(),
            status: status.into(),
            prompt_tokens: 100,
            completion_tokens: 50,
            cost,
            latency_ms: ms,
            prompt_hash: hash.into(),
        }
    }

    #[test]
    fn savings_are_only_failed_attempts_and_repeated_prompts() {
        let calls = [
            call("implementation", "failed", "h1", 0, 30_000),
            call("implementation", "success", "h1", 2_000_000, 1_000),
            call("testing", "success", "h2", 1_000_000, 1_000),
            call("testing", "success", "h2", 1_000_000, 2_000),
        ];
        let r = review(1, &calls, &[]);
        assert_eq!(r.estimated_savings.messages, 2);
        assert!((r.estimated_savings.cost_usd - 0.001).abs() < 1e-12);
        assert!((r.estimated_savings.duration_minutes - 32_000.0 / 60_000.0).abs() < 1e-9);
        assert!(r.workflow_recommendations[0].contains("implementation"));
    }

    #[test]
    fn a_clean_run_claims_no_savings() {
        let calls = [call("analysis", "success", "a", 10, 5)];
        let r = review(1, &calls, &[]);
        assert_eq!(r.estimated_savings.messages, 0);
        assert_eq!(r.estimated_savings.cost_usd, 0.0);
        assert!(r.quick_wins.is_empty());
    }

    #[test]
    fn truncations_and_open_review_points_are_reported() {
        let conv = [
            ConversationFacts {
                step: "testing".into(),
                agent: "tester".into(),
                details: serde_json::json!({"truncated_sections": ["files"]}),
            },
            ConversationFacts {
                step: "review".into(),
                agent: "reviewer".into(),
                details: serde_json::json!({"verdict": {"approved": false, "changes": ["validate the e-mail"]}}),
            },
        ];
        let r = review(1, &[], &conv);
        assert!(r.prompt_recommendations[0].contains("files"));
        assert!(r.code_change_suggestions[0].contains("validate the e-mail"));
        assert_eq!(r.risk_flags.len(), 1);
        assert!(r.summary.contains("No model calls"));
    }
}
