//! What an execution's `meta` holds: the run it is in, the budgets it runs
//! under, where a resume continued from and how to resume it, its last
//! checkpoint. One type, so the engine, the store and the API read the
//! same names; what it does not know (written by an earlier version or by
//! hand) is kept as it was.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::budgets::Budgets;

/// An execution's metadata, as stored and returned by the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionMeta {
    /// The run the execution is in: 1, then one more per resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u32>,
    /// The budgets of this run, when a resume set them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,
    /// The step the latest resume continued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
    /// How to go on after a failure or a cancel (the resume call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_hint: Option<String>,
    /// The newest step with a checkpoint (null until the first).
    #[serde(default)]
    pub checkpoint: Option<String>,
    /// What the execution was started with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// Anything else found in the stored object, written back unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The model and code host an execution was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The LLM provider (`azure-openai`, `openai`, `bedrock`, `embedded`, ...).
    pub provider: String,
    /// The model (or deployment) the calls went to.
    pub model: String,
    /// The code host kind (`git`, `github`, ...).
    pub code_host: String,
    /// Sampling temperature of the calls.
    pub temperature: f32,
}

impl ExecutionMeta {
    /// The stored JSON read leniently: a field of an unexpected type is
    /// kept under its name in `other` rather than failing the record.
    pub fn from_value(value: Value) -> Self {
        let Value::Object(map) = value else {
            return Self::default();
        };
        let mut meta = Self::default();
        for (key, value) in map {
            let kept = match key.as_str() {
                "run" => serde_json::from_value(value.clone()).map(|v| meta.run = Some(v)),
                "budgets" => serde_json::from_value(value.clone()).map(|v| meta.budgets = Some(v)),
                "resumed_from" => {
                    serde_json::from_value(value.clone()).map(|v| meta.resumed_from = Some(v))
                }
                "resume_hint" => {
                    serde_json::from_value(value.clone()).map(|v| meta.resume_hint = Some(v))
                }
                "checkpoint" => serde_json::from_value(value.clone()).map(|v| meta.checkpoint = v),
                "config" => serde_json::from_value(value.clone()).map(|v| meta.config = Some(v)),
                _ => {
                    meta.other.insert(key, value);
                    continue;
                }
            };
            if kept.is_err() {
                meta.other.insert(key, value);
            }
        }
        meta
    }

    /// The run the execution is in (1 before any resume).
    pub fn run(&self) -> u32 {
        self.run.unwrap_or(1)
    }

    /// The budgets of this run, or `default` where none were set.
    pub fn budgets_or(&self, default: Budgets) -> Budgets {
        self.budgets.unwrap_or(default)
    }

    /// The stored JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn known_fields_are_typed_and_the_rest_is_kept() {
        let stored = json!({"run": 2, "budgets": {"step_tokens": 1, "agent_tokens": 2, "execution_tokens": 3},
                            "resume_hint": "POST …/resume", "note": "by hand", "checkpoint": null,
                            "config": {"provider": "openai", "model": "m", "code_host": "local", "temperature": 0.5}});
        let meta = ExecutionMeta::from_value(stored.clone());
        assert_eq!(meta.run(), 2);
        assert_eq!(meta.budgets.map(|b| b.agent_tokens), Some(2));
        assert_eq!(meta.other["note"], "by hand");
        assert_eq!(meta.to_value(), stored);
    }

    #[test]
    fn a_field_of_another_type_is_kept_not_lost() {
        let stored = json!({"run": "two", "checkpoint": "analysis"});
        let meta = ExecutionMeta::from_value(stored.clone());
        assert_eq!(meta.run(), 1);
        assert_eq!(meta.checkpoint.as_deref(), Some("analysis"));
        assert_eq!(meta.to_value(), stored);
        assert_eq!(
            ExecutionMeta::from_value(json!(null)),
            ExecutionMeta::default()
        );
        let odd = json!({"checkpoint": 7, "config": "x"});
        assert_eq!(ExecutionMeta::from_value(odd.clone()).other["config"], "x");
        assert_eq!(ExecutionMeta::from_value(odd).other["checkpoint"], 7);
    }
}
