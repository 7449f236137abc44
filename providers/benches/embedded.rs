//! `cargo bench -p ai-team-providers --features embedded --bench embedded`
//!
//! The embedded model (SmolLM2-135M-Instruct Q4_1, 2 threads): load time,
//! prompt processing and generation speed in tokens/s, the cost of making a
//! context per call, and the process's peak resident memory. Needs the
//! weights (`scripts/fetch-model`). `EMBEDDED_THREADS=n` overrides the 2 threads.

use std::time::Instant;

use ai_team_core::llm::{ChatMessage, ChatRequest};
use ai_team_core::models::Role;
use ai_team_providers::llm::{EmbeddedClient, EmbeddedConfig};

fn request(user: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "You are a helpful assistant.".into(),
            },
            ChatMessage {
                role: Role::User,
                content: user.into(),
            },
        ],
        max_tokens,
        temperature: 0.0,
        grammar: None,
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (kib("VmHWM:"), kib("VmRSS:"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut config = EmbeddedConfig::from_env(&|k| std::env::var(k).ok()).expect("config");
    config.download = false;
    println!("threads: {}", config.threads);
    assert!(
        config.location.existing().is_some(),
        "no model at {}: run scripts/fetch-model",
        config.location.path().display()
    );
    let client = EmbeddedClient::new(config);
    let (hwm, _) = memory();
    println!("before load: peak RSS {hwm:.0} MiB");

    let started = Instant::now();
    let (r, t) = client
        .chat_timed(&request("Say hello", 16))
        .await
        .expect("first call");
    println!(
        "first call: {:.0} ms in all, model load {:.0} ms, context {:.1} ms; answer {:?}",
        started.elapsed().as_secs_f64() * 1000.0,
        t.load_ms,
        t.context_ms,
        r.content
    );

    // Prompt processing: a long prompt, one token out.
    let long = "The reviewer asks for tests of the password reset flow. ".repeat(90);
    for _ in 0..3 {
        let (r, t) = client.chat_timed(&request(&long, 1)).await.expect("prompt");
        println!(
            "prompt processing: {} tokens in {:.0} ms = {:.0} tokens/s (context {:.1} ms)",
            r.usage.prompt_tokens,
            t.prompt_ms,
            r.usage.prompt_tokens as f64 / t.prompt_ms * 1000.0,
            t.context_ms
        );
    }

    // Generation: a request that makes it talk, greedy, up to 256 tokens.
    let ask = "Write a detailed story about a robot who learns to paint.";
    for _ in 0..3 {
        let (r, t) = client
            .chat_timed(&request(ask, 256))
            .await
            .expect("generate");
        // The first sampled token comes from the prompt's logits; each
        // following one costs one decode.
        println!(
            "generation: {} tokens ({}) in {:.0} ms = {:.1} tokens/s (prompt {} tokens in {:.0} ms)",
            r.usage.completion_tokens,
            r.finish_reason.as_deref().unwrap_or("?"),
            t.generate_ms,
            r.usage.completion_tokens as f64 / t.generate_ms * 1000.0,
            r.usage.prompt_tokens,
            t.prompt_ms
        );
    }

    // The same generation under the developer's grammar (code_files,
    // fitted to the files the story names) and without it: what the
    // grammar sampler costs per token.
    let team = ai_team_core::agents::Team::builtin();
    let story = include_str!("../../examples/slugify.md");
    let task = team
        .step("implementation")
        .map(|s| s.task.clone())
        .unwrap_or_default();
    let ask = format!("## Story\n{story}\n\n## Your task\n{task}");
    let named = ai_team_core::engine::grammar::named_paths(&[story]);
    let grammar = team
        .grammar("implementation")
        .map(|g| ai_team_core::engine::grammar::fit("code_files", g, &named));
    for (label, grammar) in [("without grammar", None), ("with grammar", grammar)] {
        for _ in 0..2 {
            let mut r = request(&ask, 256);
            r.grammar = grammar.clone();
            let (r, t) = client.chat_timed(&r).await.expect("generate");
            println!(
                "code step {label}: {} tokens ({}) in {:.0} ms = {:.1} tokens/s; \
                 the grammar filtered the whole vocabulary for {} of them",
                r.usage.completion_tokens,
                r.finish_reason.as_deref().unwrap_or("?"),
                t.generate_ms,
                r.usage.completion_tokens as f64 / t.generate_ms * 1000.0,
                t.grammar_filtered,
            );
        }
    }

    let (hwm, rss) = memory();
    println!("memory: peak RSS {hwm:.0} MiB, RSS now {rss:.0} MiB");
}
