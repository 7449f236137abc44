//! Run comparison (API.md "compare"): the aggregates of two workflows' or
//! executions' calls — counts, tokens, exact cost, average and p95
//! latency, models, per agent and per step — and their deltas, computed
//! from the call rows themselves, never from kept totals.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::money::nanos_to_dollars;

/// One call row, reduced to what comparison needs.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFact {
    /// The agent's wire name.
    pub agent: String,
    /// The step's wire name.
    pub step: String,
    /// The model that answered.
    pub model: String,
    /// The call's status (`success`, `failed`, ...).
    pub status: String,
    /// Tokens in the prompt.
    pub prompt_tokens: i64,
    /// Tokens in the answer.
    pub completion_tokens: i64,
    /// Cost of the call, in nano-dollars.
    pub cost: i64,
    /// Wall time of the call, in ms.
    pub latency_ms: i64,
    /// Hash of the request (see `models::LlmCall::prompt_hash`).
    pub prompt_hash: String,
}

/// One agent's totals in a comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentTotals {
    /// Number of calls (every attempt).
    pub calls: i64,
    /// Prompt plus completion tokens.
    pub tokens: i64,
    /// Cost: nano-dollars in memory, dollars on the wire.
    #[serde(serialize_with = "dollars")]
    pub cost: i64,
}

fn dollars<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(nanos_to_dollars(*v))
}

/// The totals of one workflow's or execution's calls: `a` or `b` of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregates {
    /// The workflow's or execution's row id.
    pub id: i64,
    /// Number of calls (every attempt).
    pub total_calls: i64,
    /// Prompt tokens over all calls.
    pub prompt_tokens: i64,
    /// Completion tokens over all calls.
    pub completion_tokens: i64,
    /// Prompt plus completion tokens over all calls.
    pub total_tokens: i64,
    /// Cost over all calls: nano-dollars in memory, dollars on the wire.
    #[serde(serialize_with = "dollars")]
    pub total_cost: i64,
    /// Mean call latency, in ms; 0 without calls.
    pub avg_latency_ms: f64,
    /// Nearest-rank 95th percentile of call latency, in ms; 0 without calls.
    pub p95_latency_ms: f64,
    /// Distinct models, sorted.
    pub models: Vec<String>,
    /// Totals per agent wire name.
    pub per_agent: BTreeMap<String, AgentTotals>,
    /// Totals per step wire name; not serialised, used for the per-step differences of executions.
    #[serde(skip)]
    pub per_step: BTreeMap<String, StepTotals>,
}

/// One step's totals in an execution comparison.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepTotals {
    /// The agent of the step's first call.
    pub agent: String,
    /// Prompt plus completion tokens.
    pub tokens: i64,
    /// Cost, in nano-dollars.
    pub cost: i64,
    /// The prompt hash of the step's last successful call.
    pub prompt_hash: Option<String>,
}

/// Nearest-rank percentile of latencies (0 when there are none).
pub fn percentile(values: &mut [i64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable();
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1] as f64
}

/// Totals of `calls`, reported under `id`.
pub fn aggregate(id: i64, calls: &[CallFact]) -> Aggregates {
    let mut a = Aggregates {
        id,
        total_calls: calls.len() as i64,
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
        total_cost: 0,
        avg_latency_ms: 0.0,
        p95_latency_ms: 0.0,
        models: Vec::new(),
        per_agent: BTreeMap::new(),
        per_step: BTreeMap::new(),
    };
    let mut latencies = Vec::with_capacity(calls.len());
    for c in calls {
        let tokens = c.prompt_tokens + c.completion_tokens;
        a.prompt_tokens += c.prompt_tokens;
        a.completion_tokens += c.completion_tokens;
        a.total_tokens += tokens;
        a.total_cost += c.cost;
        latencies.push(c.latency_ms);
        if !a.models.contains(&c.model) {
            a.models.push(c.model.clone());
        }
        let agent = a.per_agent.entry(c.agent.clone()).or_default();
        agent.calls += 1;
        agent.tokens += tokens;
        agent.cost += c.cost;
        let step = a
            .per_step
            .entry(c.step.clone())
            .or_insert_with(|| StepTotals {
                agent: c.agent.clone(),
                ..Default::default()
            });
        step.tokens += tokens;
        step.cost += c.cost;
        if c.status == "success" || c.status == "truncated" {
            step.prompt_hash = Some(c.prompt_hash.clone());
        }
    }
    if !calls.is_empty() {
        a.avg_latency_ms = latencies.iter().sum::<i64>() as f64 / calls.len() as f64;
    }
    a.p95_latency_ms = percentile(&mut latencies, 0.95);
    a.models.sort();
    a
}

/// `{a, b, delta}`; with `steps` for executions.
pub fn compare(a: &Aggregates, b: &Aggregates, with_steps: bool) -> Value {
    let mut agents: Vec<&String> = a.per_agent.keys().chain(b.per_agent.keys()).collect();
    agents.sort();
    agents.dedup();
    let per_agent: BTreeMap<&String, Value> = agents
        .into_iter()
        .map(|name| {
            let (x, y) = (a.per_agent.get(name).cloned().unwrap_or_default(), b.per_agent.get(name).cloned().unwrap_or_default());
            (name, json!({"calls": y.calls - x.calls, "tokens": y.tokens - x.tokens, "cost": nanos_to_dollars(y.cost - x.cost)}))
        })
        .collect();
    let mut out = json!({
        "a": a,
        "b": b,
        "delta": {
            "total_calls": b.total_calls - a.total_calls,
            "prompt_tokens": b.prompt_tokens - a.prompt_tokens,
            "completion_tokens": b.completion_tokens - a.completion_tokens,
            "total_tokens": b.total_tokens - a.total_tokens,
            "total_cost": nanos_to_dollars(b.total_cost - a.total_cost),
            "avg_latency_ms": b.avg_latency_ms - a.avg_latency_ms,
            "p95_latency_ms": b.p95_latency_ms - a.p95_latency_ms,
            "models_added": b.models.iter().filter(|m| !a.models.contains(m)).collect::<Vec<_>>(),
            "models_removed": a.models.iter().filter(|m| !b.models.contains(m)).collect::<Vec<_>>(),
            "per_agent": per_agent,
        }
    });
    if with_steps {
        let order = crate::steps::Step::ALL;
        let mut names: Vec<&String> = a.per_step.keys().chain(b.per_step.keys()).collect();
        names.sort_by_key(|n| {
            order
                .iter()
                .position(|s| s.as_str() == n.as_str())
                .unwrap_or(usize::MAX)
        });
        names.dedup();
        let steps: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let (x, y) = (a.per_step.get(name), b.per_step.get(name));
                let agent = x.or(y).map(|s| s.agent.clone()).unwrap_or_default();
                json!({
                    "step": name,
                    "agent": agent,
                    "tokens_a": x.map_or(0, |s| s.tokens),
                    "tokens_b": y.map_or(0, |s| s.tokens),
                    "cost_a": nanos_to_dollars(x.map_or(0, |s| s.cost)),
                    "cost_b": nanos_to_dollars(y.map_or(0, |s| s.cost)),
                    "prompt_hash_a": x.and_then(|s| s.prompt_hash.clone()),
                    "prompt_hash_b": y.and_then(|s| s.prompt_hash.clone()),
                    "prompt_hash_changed": x.and_then(|s| s.prompt_hash.as_ref()) != y.and_then(|s| s.prompt_hash.as_ref()),
                })
            })
            .collect();
        out["steps"] = json!(steps);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(agent: &str, step: &str, p: i64, c: i64, cost: i64, ms: i64, hash: &str) -> CallFact {
        CallFact {
            agent: agent.into(),
            step: step.into(),
            model: "gpt-4o".into(),
            status: "success".into(),
            prompt_tokens: p,
            completion_tokens: c,
            cost,
            latency_ms: ms,
            prompt_hash: hash.into(),
        }
    }

    #[test]
    fn p95_is_nearest_rank() {
        let mut v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.95), 95.0);
        assert_eq!(percentile(&mut [7], 0.95), 7.0);
        assert_eq!(percentile(&mut [], 0.95), 0.0);
    }

    #[test]
    fn deltas_are_b_minus_a_and_changed_prompts_are_flagged() {
        let a = aggregate(
            1,
            &[
                fact("pm", "analysis", 100, 10, 1000, 50, "h1"),
                fact("developer", "implementation", 200, 20, 3000, 150, "h2"),
            ],
        );
        let b = aggregate(
            2,
            &[
                fact("pm", "analysis", 100, 30, 1500, 70, "h1"),
                fact("developer", "implementation", 250, 20, 3500, 100, "h3"),
            ],
        );
        let v = compare(&a, &b, true);
        assert_eq!(v["delta"]["total_tokens"], 70);
        assert_eq!(v["delta"]["total_calls"], 0);
        assert_eq!(v["delta"]["per_agent"]["pm"]["tokens"], 20);
        assert_eq!(v["a"]["p95_latency_ms"], 150.0);
        assert_eq!(v["steps"][0]["step"], "analysis");
        assert_eq!(v["steps"][0]["prompt_hash_changed"], false);
        assert_eq!(v["steps"][1]["prompt_hash_changed"], true);
        assert_eq!(v["a"]["total_cost"], 0.000004);
    }
}
