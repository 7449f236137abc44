//! Token governance before a call: does the prompt plus the requested
//! output fit the model's window with a safety buffer? If not, shrink the
//! prompt's sections lowest priority first (never the required ones: the
//! system prompt and the task), recording what was cut, in at most N
//! attempts; otherwise fail with the math and how to resume.

/// A part of the prompt. Higher `priority` is kept longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name recorded when the section is cut (`system`, a context section, ...).
    pub name: String,
    /// The section's text.
    pub text: String,
    /// Rank for shrinking: lower priorities are cut first.
    pub priority: u8,
    /// The system prompt and the task: never cut.
    pub required: bool,
}

/// The window a call must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The model's context window, in tokens.
    pub context_window: usize,
    /// Tokens reserved for the answer (`max_tokens`).
    pub max_output_tokens: usize,
    /// Tokens kept free for estimation error.
    pub safety_buffer: usize,
}

impl Window {
    /// Tokens the prompt may use.
    pub fn prompt_budget(&self) -> usize {
        self.context_window
            .saturating_sub(self.max_output_tokens)
            .saturating_sub(self.safety_buffer)
    }
}

/// A prompt that fits, and what was cut to make it fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The sections as they fit, in prompt order.
    pub sections: Vec<Section>,
    /// Estimated tokens of the fitted prompt.
    pub prompt_tokens: usize,
    /// `name (dropped)` or `name (truncated to N tokens)`, in cut order.
    pub truncated_sections: Vec<String>,
    /// Shrink attempts made; 0 when it fit as is.
    pub attempts: u32,
}

/// The prompt cannot be made to fit: the terminal message states the math.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "prompt does not fit: {prompt_tokens} prompt tokens + {max_output_tokens} max output tokens + \
     {safety_buffer} safety buffer > {context_window} context window after {attempts} shrink attempts \
     (cut: {cut}); required sections alone take {required_tokens} tokens. To resume, raise the model \
     (a larger window), lower max output tokens, or shorten the story, then resume the execution."
)]
pub struct DoesNotFit {
    /// Estimated tokens of the prompt after the last attempt.
    pub prompt_tokens: usize,
    /// Tokens reserved for the answer.
    pub max_output_tokens: usize,
    /// Tokens kept free for estimation error.
    pub safety_buffer: usize,
    /// The model's context window, in tokens.
    pub context_window: usize,
    /// Tokens the required sections alone take.
    pub required_tokens: usize,
    /// Shrink attempts made.
    pub attempts: u32,
    /// What was cut, comma-separated; `nothing` when nothing could be.
    pub cut: String,
}

/// The documented estimate for models without a known tokenizer: one
/// token per three characters, rounded up. English BPE averages about
/// four characters a token, so this over-counts on purpose: a prompt the
/// estimate passes fits.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(3)
}

const MARKER: &str = "\n[… truncated …]";

/// Shrinks `sections` until they fit `window` as counted by `count`.
/// Deterministic: the same input gives the same output.
pub fn fit(
    mut sections: Vec<Section>,
    window: Window,
    count: &dyn Fn(&str) -> usize,
    max_attempts: u32,
) -> Result<Fitted, DoesNotFit> {
    let budget = window.prompt_budget();
    let mut tokens: Vec<usize> = sections.iter().map(|s| count(&s.text)).collect();
    let mut truncated = Vec::new();
    let mut attempts = 0;
    loop {
        let total: usize = tokens.iter().sum();
        if total <= budget {
            return Ok(Fitted {
                sections,
                prompt_tokens: total,
                truncated_sections: truncated,
                attempts,
            });
        }
        // Lowest priority first; among equals, the later section first.
        let victim = (0..sections.len())
            .filter(|&i| !sections[i].required && tokens[i] > 0)
            .min_by_key(|&i| (sections[i].priority, std::cmp::Reverse(i)));
        let (Some(i), true) = (victim, attempts < max_attempts) else {
            let required_tokens = (0..sections.len())
                .filter(|&i| sections[i].required)
                .map(|i| tokens[i])
                .sum();
            return Err(DoesNotFit {
                prompt_tokens: total,
                max_output_tokens: window.max_output_tokens,
                safety_buffer: window.safety_buffer,
                context_window: window.context_window,
                required_tokens,
                attempts,
                cut: if truncated.is_empty() {
                    "nothing".into()
                } else {
                    truncated.join(", ")
                },
            });
        };
        attempts += 1;
        let excess = total - budget;
        let marker_tokens = count(MARKER);
        if tokens[i] <= excess + marker_tokens + 16 {
            sections[i].text.clear();
            tokens[i] = 0;
            truncated.push(format!("{} (dropped)", sections[i].name));
            continue;
        }
        // Keep the head in proportion, re-counted: one attempt.
        let target = tokens[i] - excess - marker_tokens;
        let chars = sections[i].text.chars().count();
        let keep = (chars as u128 * target as u128 / tokens[i] as u128) as usize * 9 / 10;
        let head: String = sections[i].text.chars().take(keep).collect();
        sections[i].text = format!("{head}{MARKER}");
        tokens[i] = count(&sections[i].text);
        truncated.push(format!(
            "{} (truncated to {} tokens)",
            sections[i].name, tokens[i]
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn section(name: &str, len: usize, priority: u8, required: bool) -> Section {
        Section {
            name: name.into(),
            text: "word ".repeat(len),
            priority,
            required,
        }
    }

    #[test]
    fn a_prompt_that_fits_is_untouched() {
        let s = vec![
            section("system", 10, 255, true),
            section("task", 10, 255, true),
        ];
        let w = Window {
            context_window: 1000,
            max_output_tokens: 100,
            safety_buffer: 50,
        };
        let f = fit(s.clone(), w, &estimate_tokens, 5).unwrap();
        assert_eq!(f.sections, s);
        assert!(f.truncated_sections.is_empty());
    }

    #[test]
    fn lowest_priority_goes_first_and_is_recorded() {
        let s = vec![
            section("system", 20, 255, true),
            section("history", 400, 1, false),
            section("design", 100, 5, false),
            section("task", 20, 255, true),
        ];
        let w = Window {
            context_window: 600,
            max_output_tokens: 200,
            safety_buffer: 50,
        };
        let f = fit(s, w, &estimate_tokens, 5).unwrap();
        assert!(f.prompt_tokens <= w.prompt_budget());
        assert!(f.truncated_sections[0].starts_with("history"));
        assert_eq!(
            f.sections[2].text,
            "word ".repeat(100),
            "design kept while history suffices"
        );
    }

    #[test]
    fn impossible_prompts_fail_with_the_math() {
        let s = vec![
            section("system", 900, 255, true),
            section("history", 50, 1, false),
        ];
        let w = Window {
            context_window: 1000,
            max_output_tokens: 500,
            safety_buffer: 100,
        };
        let e = fit(s, w, &estimate_tokens, 3).unwrap_err();
        assert_eq!(e.context_window, 1000);
        assert!(e.required_tokens > w.prompt_budget());
        let msg = e.to_string();
        assert!(
            msg.contains("1000 context window")
                && msg.contains("history (dropped)")
                && msg.contains("resume"),
            "{msg}"
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let s: Vec<_> = (0..10)
            .map(|i| section(&format!("s{i}"), 100, 1, false))
            .collect();
        let w = Window {
            context_window: 100,
            max_output_tokens: 10,
            safety_buffer: 10,
        };
        let e = fit(s, w, &estimate_tokens, 2).unwrap_err();
        assert_eq!(e.attempts, 2);
    }

    proptest! {
        #[test]
        fn fits_never_cuts_required_and_is_deterministic(
            lens in proptest::collection::vec((0usize..2000, 0u8..4, any::<bool>()), 1..8),
            window in 200usize..4000,
            output in 0usize..400,
        ) {
            let sections: Vec<Section> = lens.iter().enumerate()
                .map(|(i, (len, prio, req))| section(&format!("s{i}"), *len, *prio, *req))
                .collect();
            let w = Window { context_window: window, max_output_tokens: output, safety_buffer: 32 };
            let a = fit(sections.clone(), w, &estimate_tokens, 20);
            let b = fit(sections.clone(), w, &estimate_tokens, 20);
            prop_assert_eq!(&a, &b);
            if let Ok(f) = a {
                let total: usize = f.sections.iter().map(|s| estimate_tokens(&s.text)).sum();
                prop_assert!(total <= w.prompt_budget());
                prop_assert_eq!(total, f.prompt_tokens);
                for (before, after) in sections.iter().zip(&f.sections) {
                    if before.required {
                        prop_assert_eq!(before, after);
                    }
                }
            }
        }
    }
}
