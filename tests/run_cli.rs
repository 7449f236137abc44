//! `ai-team run`, the main job, as a user runs it: the real binary on a
//! story file, over the scripted LLM (the OpenAI-compatible provider),
//! committing into a fresh git repository; and its failures, each one
//! clear line and a non-zero exit.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use ai_team_tests::binary;
use ai_team_tests::fake_llm::{FakeLlm, Script};

fn run(dir: &Path, llm: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("OPENAI_BASE_URL", llm)
        .env("OPENAI_MODEL", "gpt-4o-mini")
        .output()
        .expect("run ai-team")
}

fn temp() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ai_team_run_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn story_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/password-reset.md")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_implements_a_story_file_into_a_git_branch_and_prints_a_summary() {
    let llm = FakeLlm::start(Script::default()).await;
    let dir = temp();
    let repo = dir.join("repo");
    let story = story_path();
    let repo_arg = repo.display().to_string();
    let dir2 = dir.clone();
    let base = llm.base_url();
    let out = tokio::task::spawn_blocking(move || {
        run(
            &dir2,
            &base,
            &["run", "--story", &story, "--repo", &repo_arg],
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert!(
        stdout.contains("SHOP-101: Password reset by e-mail"),
        "{stdout}"
    );
    for step in [
        "story_retrieval",
        "analysis",
        "architecture",
        "implementation",
        "frontend",
        "testing",
        "review",
        "integration",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    assert!(stdout.contains("== done =="), "{stdout}");
    assert!(
        stdout.contains(
            "files      4 (app/__init__.py, app/reset.py, tests/test_reset.py, web/reset.html)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("calls      6 · tokens"), "{stdout}");
    assert!(
        stdout.contains("branch     ai-team/shop-101-execution-1"),
        "{stdout}"
    );
    let count = Command::new("git")
        .args([
            "-C",
            &repo.display().to_string(),
            "rev-list",
            "--count",
            "ai-team/shop-101-execution-1",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "3");
    // The default database is the file of API.md, in the working directory.
    assert!(dir.join("ai_team.db").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fails_clearly_on_a_missing_story_and_on_a_dead_provider() {
    let llm = FakeLlm::start(Script {
        fail_with: Some(503),
        ..Script::default()
    })
    .await;
    let dir = temp();
    let base = llm.base_url();
    let d = dir.clone();
    let missing =
        tokio::task::spawn_blocking(move || run(&d, &base, &["run", "--story", "nope.md"]))
            .await
            .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ai-team: cannot read nope.md"), "{err}");

    let story = story_path();
    let base = llm.base_url();
    let d = dir.clone();
    let dead = tokio::task::spawn_blocking(move || run(&d, &base, &["run", "--story", &story]))
        .await
        .unwrap();
    assert_eq!(dead.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&dead.stdout);
    assert!(stdout.contains("== failed =="), "{stdout}");
    assert!(
        stdout.contains("error      step analysis (pm) failed: the model call failed (503"),
        "{stdout}"
    );
    assert!(stdout.contains("/resume"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
