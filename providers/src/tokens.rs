//! Token counting: tiktoken for OpenAI-family models (their exact BPE,
//! tables loaded on first use, never on the cold-start path), the
//! documented estimate of `ai_team_core::governance` for the rest.

use ai_team_core::catalog::ModelInfo;
use ai_team_core::governance::estimate_tokens;

/// Tokens of `text` under a catalog tokenizer name.
pub fn count(tokenizer: &str, text: &str) -> usize {
    match tokenizer {
        "cl100k_base" => tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(text)
            .len(),
        "o200k_base" => tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len(),
        _ => estimate_tokens(text),
    }
}

/// The counter for one model, for `governance::fit`.
pub fn counter_for(model: &ModelInfo) -> impl Fn(&str) -> usize + use<> {
    let tokenizer = model.tokenizer.clone();
    move |text: &str| count(&tokenizer, text)
}

/// The engine's counter: tiktoken where the catalog names its table.
pub struct TiktokenCounter;

impl ai_team_core::engine::TokenCounter for TiktokenCounter {
    fn count(&self, tokenizer: &str, text: &str) -> usize {
        count(tokenizer, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_team_core::catalog::Catalog;

    #[test]
    fn openai_models_are_counted_exactly() {
        assert_eq!(count("cl100k_base", "hello world"), 2);
        assert_eq!(count("o200k_base", "hello world"), 2);
        let gpt4o = Catalog::builtin().lookup("gpt-4o");
        assert_eq!(counter_for(&gpt4o)("hello world"), 2);
    }

    #[test]
    fn other_models_use_the_conservative_estimate() {
        assert_eq!(count("estimate", "hello world"), 4);
        let claude = Catalog::builtin().lookup("anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(counter_for(&claude)("abcdef"), 2);
    }

    #[test]
    fn the_two_openai_tables_are_distinct() {
        let text = "こんにちは世界、パスワードをリセットしてください。नमस्ते दुनिया";
        let a = count("cl100k_base", text);
        let b = count("o200k_base", text);
        assert_ne!(a, b, "cl100k {a} vs o200k {b}");
    }
}
