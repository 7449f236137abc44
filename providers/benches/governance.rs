//! `cargo bench -p ai-team-providers --bench governance [-- --corpus-out PATH] [--count-only]`
//!
//! Token counting throughput (tokens/s, best of 3) with tiktoken's
//! cl100k_base and o200k_base on ~1M tokens of mixed prose and code, and
//! the time to shrink a 200,000-token prompt to fit an 8,000-token window.
//! `--corpus-out` writes the counted text to a file, so that another
//! tokenizer (Python's tiktoken, `scripts/bench-tiktoken`) counts the same
//! bytes; `--count-only` skips the shrink.

use std::time::Instant;

use ai_team_core::governance::{Section, Window, fit};
use ai_team_providers::tokens::count;

fn corpus(approx_chars: usize) -> String {
    let para = "As a user I want to reset my password so that I can log in again. \
        fn reset_password(user: &User, token: &str) -> Result<(), Error> { verify(token)?; Ok(()) }\n\
        The reviewer asks for tests: test_reset_sends_email, test_expired_token_is_refused. 42 ✓ ünïcode\n";
    let mut s = String::with_capacity(approx_chars + para.len());
    let mut i = 0u64;
    while s.len() < approx_chars {
        s.push_str(para);
        s.push_str(&i.to_string());
        i += 1;
    }
    s
}

const RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let corpus_out = args
        .iter()
        .position(|a| a == "--corpus-out")
        .map(|i| args.get(i + 1).expect("--corpus-out PATH"));
    let text = corpus(4_500_000);
    if let Some(path) = corpus_out {
        std::fs::write(path, &text).expect("write the corpus");
    }
    for tokenizer in ["cl100k_base", "o200k_base"] {
        let warm = Instant::now();
        count(tokenizer, "warm up");
        let load_ms = warm.elapsed().as_secs_f64() * 1000.0;
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            n = count(tokenizer, &text);
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{tokenizer}: {n} tokens in {:.1} ms = {:.2} M tokens/s (best of {RUNS}; tables loaded in {load_ms:.0} ms on first use)",
            best * 1000.0,
            n as f64 / best / 1e6
        );
    }
    if args.iter().any(|a| a == "--count-only") {
        return;
    }

    let counter = |t: &str| count("cl100k_base", t);
    let history = corpus(800_000);
    let sections = vec![
        Section {
            name: "system".into(),
            text: "You are a Backend Developer.".into(),
            priority: 255,
            required: true,
        },
        Section {
            name: "history".into(),
            text: history.clone(),
            priority: 1,
            required: false,
        },
        Section {
            name: "design".into(),
            text: history[..200_000].to_owned(),
            priority: 5,
            required: false,
        },
        Section {
            name: "task".into(),
            text: "Implement the password reset endpoint.".into(),
            priority: 255,
            required: true,
        },
    ];
    let before: usize = sections.iter().map(|s| counter(&s.text)).sum();
    let window = Window {
        context_window: 8_000,
        max_output_tokens: 1_024,
        safety_buffer: 256,
    };
    let start = Instant::now();
    let fitted = fit(sections, window, &counter, 8).expect("fits");
    println!(
        "shrink {before} tokens to an 8,000-token window: {:.0} ms, {} attempts, now {} tokens, cut: {}",
        start.elapsed().as_secs_f64() * 1000.0,
        fitted.attempts,
        fitted.prompt_tokens,
        fitted.truncated_sections.join(", ")
    );
}
