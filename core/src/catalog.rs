//! The model catalog: context window, output limit, tokenizer and price
//! per model, read from `catalog/models.json` (data, not code). Prices are
//! turned into whole nano-dollars per 1K tokens at load, so cost math is
//! exact integer arithmetic. An unknown model gets the catalog's default
//! entry, marked so the caller can log it: never a silent zero cost.

use std::collections::HashMap;

use serde::Deserialize;

use crate::llm::Usage;
use crate::money::NANOS_PER_DOLLAR;

/// The catalog shipped with the binary.
pub const BUILTIN: &str = include_str!("../catalog/models.json");

/// One model's entry in the catalog, prices in whole nano-dollars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The catalog name (or `default`).
    pub name: String,
    /// The model's context window, in tokens.
    pub context_window: i64,
    /// Most tokens one answer may have.
    pub max_output_tokens: i64,
    /// `cl100k_base`, `o200k_base`, or `estimate`.
    pub tokenizer: String,
    /// Price of 1K prompt tokens, in nano-dollars.
    pub prompt_nanos_per_1k: i64,
    /// Price of 1K completion tokens, in nano-dollars.
    pub completion_nanos_per_1k: i64,
    /// False when the model was not in the catalog and the default applies.
    pub known: bool,
}

impl ModelInfo {
    /// Cost of a call in nano-dollars, rounded half up per side; saturates
    /// rather than overflowing.
    pub fn cost_nanos(&self, prompt_tokens: i64, completion_tokens: i64) -> i64 {
        per_1k(prompt_tokens, self.prompt_nanos_per_1k)
            .saturating_add(per_1k(completion_tokens, self.completion_nanos_per_1k))
    }

    /// A provider's usage as it is recorded and counted against budgets:
    /// never negative, the prompt within the context window, the
    /// completion within the output limit (so no total can exceed the
    /// window plus the output). A side the provider did not report
    /// (`reported.estimated`), or reported negative, is the estimate and
    /// the result says so.
    pub fn check_usage(
        &self,
        reported: Usage,
        prompt_estimate: i64,
        completion_estimate: i64,
    ) -> CheckedUsage {
        let mut estimated = reported.estimated;
        let mut clamped = false;
        let mut side = |value: i64, estimate: i64, limit: i64| {
            let value = if reported.estimated || value < 0 {
                estimated = true;
                estimate.max(0)
            } else {
                value
            };
            if value > limit {
                clamped = true;
            }
            value.min(limit)
        };
        let prompt_tokens = side(reported.prompt_tokens, prompt_estimate, self.context_window);
        let completion_tokens = side(
            reported.completion_tokens,
            completion_estimate,
            self.max_output_tokens,
        );
        CheckedUsage {
            usage: Usage {
                prompt_tokens,
                completion_tokens,
                estimated,
            },
            clamped,
        }
    }
}

/// Usage after `ModelInfo::check_usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedUsage {
    /// The numbers to record; `estimated` when a side was estimated.
    pub usage: Usage,
    /// A reported number was beyond the model's limits and was lowered.
    pub clamped: bool,
}

fn per_1k(tokens: i64, nanos_per_1k: i64) -> i64 {
    let product = i128::from(tokens.max(0)) * i128::from(nanos_per_1k);
    i64::try_from((product + 500) / 1000).unwrap_or(i64::MAX)
}

#[derive(Deserialize)]
struct RawEntry {
    context_window: i64,
    max_output_tokens: i64,
    tokenizer: String,
    prompt_per_1k: f64,
    completion_per_1k: f64,
}

#[derive(Deserialize)]
struct RawCatalog {
    default: RawEntry,
    models: HashMap<String, RawEntry>,
}

/// The model catalog: an entry per model and the default for unknown ones.
#[derive(Debug, Clone)]
pub struct Catalog {
    default: ModelInfo,
    models: HashMap<String, ModelInfo>,
}

fn info(name: &str, e: &RawEntry, known: bool) -> Result<ModelInfo, String> {
    if e.context_window <= 0 || e.max_output_tokens <= 0 {
        return Err(format!(
            "{name}: context_window and max_output_tokens must be positive"
        ));
    }
    if !(e.prompt_per_1k >= 0.0 && e.completion_per_1k >= 0.0) {
        return Err(format!("{name}: prices must be zero or more"));
    }
    let nanos = |usd: f64| (usd * NANOS_PER_DOLLAR as f64).round() as i64;
    Ok(ModelInfo {
        name: name.to_owned(),
        context_window: e.context_window,
        max_output_tokens: e.max_output_tokens,
        tokenizer: e.tokenizer.clone(),
        prompt_nanos_per_1k: nanos(e.prompt_per_1k),
        completion_nanos_per_1k: nanos(e.completion_per_1k),
        known,
    })
}

impl Catalog {
    /// Reads a catalog file (`catalog/models.json`'s shape); the error names the bad entry.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: RawCatalog =
            serde_json::from_str(json).map_err(|e| format!("model catalog: {e}"))?;
        let mut models = HashMap::new();
        for (name, entry) in &raw.models {
            models.insert(name.clone(), info(name, entry, true)?);
        }
        Ok(Self {
            default: info("default", &raw.default, false)?,
            models,
        })
    }

    /// The catalog shipped with the binary (`BUILTIN`).
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("the built-in catalog is valid (tested)")
    }

    /// The entry for `model`: exact name, else the longest catalog name
    /// the reported name starts with (`gpt-4o-2024-08-06` → `gpt-4o`),
    /// else the default, marked unknown.
    pub fn lookup(&self, model: &str) -> ModelInfo {
        if let Some(m) = self.models.get(model) {
            return m.clone();
        }
        let prefix = self
            .models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len());
        match prefix {
            Some((_, m)) => ModelInfo {
                name: model.to_owned(),
                ..m.clone()
            },
            None => ModelInfo {
                name: model.to_owned(),
                ..self.default.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads_and_prices_exactly() {
        let c = Catalog::builtin();
        let m = c.lookup("gpt-4o");
        assert!(m.known);
        assert_eq!(m.prompt_nanos_per_1k, 2_500_000);
        // 1,000 prompt + 1,000 completion tokens: $0.0025 + $0.01.
        assert_eq!(m.cost_nanos(1000, 1000), 12_500_000);
        assert_eq!(m.cost_nanos(1, 0), 2_500);
    }

    #[test]
    fn dated_names_match_their_family_and_unknown_models_are_marked() {
        let c = Catalog::builtin();
        let dated = c.lookup("gpt-4o-mini-2024-07-18");
        assert!(dated.known);
        assert_eq!(dated.prompt_nanos_per_1k, 150_000);
        let unknown = c.lookup("my-private-model");
        assert!(!unknown.known);
        assert!(unknown.cost_nanos(1000, 0) > 0, "never a silent zero cost");
    }

    #[test]
    fn cost_matches_the_formula_for_many_token_counts() {
        let c = Catalog::builtin();
        let mut x: u64 = 12345;
        for name in [
            "gpt-4o",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-lite-v1:0",
            "unknown",
        ] {
            let m = c.lookup(name);
            for _ in 0..1000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (p, q) = ((x >> 40) as i64 % 2_000_000, (x >> 20) as i64 % 100_000);
                let want = (i128::from(p) * i128::from(m.prompt_nanos_per_1k) + 500) / 1000
                    + (i128::from(q) * i128::from(m.completion_nanos_per_1k) + 500) / 1000;
                assert_eq!(i128::from(m.cost_nanos(p, q)), want);
            }
        }
    }

    #[test]
    fn usage_is_clamped_to_the_model_and_estimated_when_missing_or_negative() {
        let m = Catalog::builtin().lookup("gpt-4o");
        let reported = |p, c| Usage {
            prompt_tokens: p,
            completion_tokens: c,
            estimated: false,
        };
        let ok = m.check_usage(reported(100, 50), 90, 40);
        assert_eq!(ok.usage, reported(100, 50));
        assert!(!ok.clamped);

        let huge = m.check_usage(reported(i64::MAX, i64::MAX), 90, 40);
        assert_eq!(huge.usage.prompt_tokens, m.context_window);
        assert_eq!(huge.usage.completion_tokens, m.max_output_tokens);
        assert!(huge.clamped && !huge.usage.estimated);
        assert!(m.cost_nanos(huge.usage.prompt_tokens, huge.usage.completion_tokens) > 0);

        let negative = m.check_usage(reported(-5, i64::MIN), 90, 40);
        assert_eq!(
            (
                negative.usage.prompt_tokens,
                negative.usage.completion_tokens
            ),
            (90, 40)
        );
        assert!(negative.usage.estimated);

        let missing = m.check_usage(
            Usage {
                estimated: true,
                ..Usage::default()
            },
            90,
            40,
        );
        assert_eq!(
            (missing.usage.prompt_tokens, missing.usage.completion_tokens),
            (90, 40)
        );
        assert!(missing.usage.estimated);
        assert_eq!(m.cost_nanos(i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn bad_catalogs_are_refused() {
        assert!(Catalog::parse("{}").is_err());
        let negative = r#"{"default":{"context_window":1,"max_output_tokens":1,"tokenizer":"estimate","prompt_per_1k":-1,"completion_per_1k":0},"models":{}}"#;
        assert!(Catalog::parse(negative).is_err());
    }

    proptest::proptest! {
        /// Cost is exact against the catalog: whole thousands cost exactly
        /// their multiple of the price, splitting a call changes the cost by
        /// at most the rounding of each side, and it never decreases.
        #[test]
        fn cost_is_exact_against_the_catalog(
            model in proptest::sample::select(vec!["gpt-4o", "gpt-4o-mini", "gpt-4.1", "anthropic.claude-3-5-sonnet-20241022-v2:0", "amazon.nova-lite-v1:0", "unknown-model"]),
            k in 0i64..100_000,
            p in 0i64..10_000_000,
            q in 0i64..10_000_000,
        ) {
            let m = Catalog::builtin().lookup(model);
            proptest::prop_assert_eq!(m.cost_nanos(k * 1000, 0), k * m.prompt_nanos_per_1k);
            proptest::prop_assert_eq!(m.cost_nanos(0, k * 1000), k * m.completion_nanos_per_1k);
            let whole = m.cost_nanos(p + q, 0);
            let split = m.cost_nanos(p, 0) + m.cost_nanos(q, 0);
            proptest::prop_assert!((whole - split).abs() <= 1);
            proptest::prop_assert!(m.cost_nanos(p + 1, q) >= m.cost_nanos(p, q));
            let exact = (i128::from(p) * i128::from(m.prompt_nanos_per_1k) * 2 + 1000) / 2000;
            proptest::prop_assert_eq!(i128::from(m.cost_nanos(p, 0)), exact);
        }
    }
}
