//! The product's main job on an existing repository (issue: "The team
//! changes an existing repository without breaking it, and proves the
//! change by running its tests"): a small Python repository with `add()`
//! and its unittest, and the story "add subtract(a, b) next to add". A
//! scripted OpenAI-compatible model plays a capable one: it keeps `add()`
//! only when the prompt shows it the current file, its first `subtract()`
//! is wrong, and it fixes it only when shown the failing output. On SQLite
//! and PostgreSQL.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;

use ai_team_core::models::ExecutionStatus;
use ai_team_core::query::NewWorkflow;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::{TestDb, on_both_databases};

on_both_databases!(
    the_calc_story_keeps_add_fixes_a_wrong_subtract_and_passes_the_repositorys_tests,
    a_repository_without_tests_is_verified_as_skipped_never_passed,
);

const OPS: &str = "\"\"\"Arithmetic.\"\"\"\n\n\ndef add(a, b):\n    return a + b\n";
const TEST_ADD: &str = "import unittest\n\nfrom calc.ops import add\n\n\nclass AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";
const AGENTS: &str = "# calc\n\nA tiny arithmetic package.\n\n## Testing\n\nRun `python3 -m unittest discover -s tests` from the repository root.\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The calc repository, committed, under the engine's working copies.
fn calc_repo(root: &Path, with_tests: bool) -> std::path::PathBuf {
    let dir = root.join("repos").join("calc");
    std::fs::create_dir_all(dir.join("calc")).unwrap();
    std::fs::write(dir.join("calc/__init__.py"), "").unwrap();
    std::fs::write(dir.join("calc/ops.py"), OPS).unwrap();
    std::fs::write(dir.join("README.md"), "# calc\n").unwrap();
    if with_tests {
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::write(dir.join("tests/test_ops.py"), TEST_ADD).unwrap();
        std::fs::write(dir.join("AGENTS.md"), AGENTS).unwrap();
    }
    git(&dir, &["init", "-q", "-b", "main"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "calc with add"]);
    dir
}

/// A capable model for this one story.
fn calc_model(role: &str, user: &str) -> Option<String> {
    let sees_ops = user.contains("def add(a, b):");
    Some(match role {
        "Product Manager" => "## Scope\nAdd subtraction to calc.\n\n## Acceptance Criteria\n- subtract(a, b) returns a minus b\n- add(a, b) keeps working\n".into(),
        "Solution Architect" => "## Design\nAdd subtract next to add in the existing module.\n\n## Files\n- calc/ops.py (change): add subtract(a, b)\n- tests/test_subtract.py (new): its unittest\n".into(),
        "Backend Developer" if user.contains("tests fail") && user.contains("AssertionError") => {
            "The sign was wrong.\n```python calc/ops.py\n\"\"\"Arithmetic.\"\"\"\n\n\ndef add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n```\n".into()
        }
        // Without the current file a model can only write a new one:
        // the bug the repository context prevents.
        "Backend Developer" if !sees_ops => {
            "```python calc/ops.py\ndef subtract(a, b):\n    return a - b\n```\n".into()
        }
        "Backend Developer" => "```python calc/ops.py\n\"\"\"Arithmetic.\"\"\"\n\n\ndef add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a + b\n```\n".into(),
        "Frontend Developer" => "This story has no user-facing part.".into(),
        "QA Tester" => "```python tests/test_subtract.py\nimport unittest\n\nfrom calc.ops import add, subtract\n\n\nclass SubtractTest(unittest.TestCase):\n    def test_subtract(self):\n        self.assertEqual(subtract(5, 3), 2)\n\n    def test_add_still_works(self):\n        self.assertEqual(add(2, 3), 5)\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n```\n".into(),
        "Code Reviewer" => "VERDICT: APPROVED\n## Changes\n".into(),
        _ => return None,
    })
}

async fn calc_workflow(h: &Harness, repo: &Path, key: &str) -> i64 {
    let new = NewWorkflow::parse(
        &format!("{key}: subtract"),
        key,
        Some(&repo.display().to_string()),
        Some("Add `subtract(a, b)` next to `add` in calc/ops.py."),
    )
    .unwrap();
    h.engine
        .store
        .create_workflow(&new)
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn the_calc_story_keeps_add_fixes_a_wrong_subtract_and_passes_the_repositorys_tests(
    db: TestDb,
) {
    let llm = FakeLlm::start(Script {
        responder: Some(calc_model),
        record_prompts: true,
        ..Script::default()
    })
    .await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let repo = calc_repo(&h.data_dir, true);
    let wf = calc_workflow(&h, &repo, "CALC-1").await;
    let done = h.run_to_end(wf).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);

    // The branch keeps add(), has a correct subtract() and its test, and
    // files no step named are as they were.
    let branch = format!("ai-team/calc-1-execution-{}", done.id);
    let ops = git(&repo, &["show", &format!("{branch}:calc/ops.py")]);
    assert!(ops.contains("def add(a, b):\n    return a + b"), "{ops}");
    assert!(
        ops.contains("def subtract(a, b):\n    return a - b"),
        "{ops}"
    );
    assert_eq!(
        git(&repo, &["show", &format!("{branch}:tests/test_ops.py")]),
        TEST_ADD
    );
    assert_eq!(
        git(&repo, &["show", &format!("{branch}:AGENTS.md")]),
        AGENTS
    );
    assert!(
        git(
            &repo,
            &["show", &format!("{branch}:tests/test_subtract.py")]
        )
        .contains("subtract(5, 3)")
    );

    // The repository's tests pass when run by hand on the branch.
    let by_hand = h.data_dir.join("by-hand");
    std::fs::create_dir_all(&by_hand).unwrap();
    git(
        &repo,
        &["worktree", "add", "-q", by_hand.to_str().unwrap(), &branch],
    );
    let run = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(&by_hand)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("Ran 3 tests"));

    // The failed verification, the fix made with its output, the pass.
    let events = db.store.events_after(wf, 0, 10_000).await.unwrap();
    let verifications: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.event_type == "verification")
        .map(|e| {
            (
                e.data["step"].as_str().unwrap(),
                e.data["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verifications,
        [("verification", "failed"), ("verification_2", "passed")]
    );
    let fix_prompt = llm
        .prompts()
        .into_iter()
        .find(|(role, user)| role == "Backend Developer" && user.contains("tests fail"))
        .expect("a fix prompt")
        .1;
    assert!(
        fix_prompt.contains("AssertionError"),
        "the fix saw the failure output"
    );
    let first = events
        .iter()
        .find(|e| e.event_type == "verification")
        .unwrap();
    assert_eq!(
        first.data["command"],
        "python3 -m unittest discover -s tests"
    );
    assert_eq!(first.data["command_source"], "AGENTS.md");
    assert_eq!(
        (first.data["passed"].as_u64(), first.data["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let review = llm
        .prompts()
        .into_iter()
        .find(|(role, _)| role == "Code Reviewer")
        .unwrap()
        .1;
    assert!(
        review.contains("## Test results"),
        "the reviewer sees the tests"
    );

    // Each verification is a check run and a test-log artifact.
    let checks = db
        .store
        .list_checks(
            wf,
            &ai_team_core::delivery::CheckQuery::parse(None, None, None).unwrap(),
        )
        .await
        .unwrap();
    let mut conclusions: Vec<Option<String>> = checks
        .items
        .iter()
        .filter(|c| c.name == "ai-team tests")
        .map(|c| c.conclusion.clone())
        .collect();
    conclusions.sort();
    assert_eq!(
        conclusions,
        [Some("failure".into()), Some("success".into())]
    );
    let artifacts = db
        .store
        .list_artifacts(
            wf,
            &ai_team_core::delivery::FilteredPage::parse(None, None, "kind", Some("test-log"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(artifacts.total, 2);
}

async fn a_repository_without_tests_is_verified_as_skipped_never_passed(db: TestDb) {
    let llm = FakeLlm::start(Script {
        responder: Some(|role, user| match role {
            // Nothing to test with: the tester writes documentation only.
            "QA Tester" => {
                Some("```markdown docs/testing.md\nNo automated tests yet.\n```\n".into())
            }
            _ => calc_model(role, user),
        }),
        ..Script::default()
    })
    .await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let repo = calc_repo(&h.data_dir, false);
    let wf = calc_workflow(&h, &repo, "CALC-2").await;
    let done = h.run_to_end(wf).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let events = db.store.events_after(wf, 0, 10_000).await.unwrap();
    let v: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "verification")
        .collect();
    assert_eq!(v.len(), 1, "a skip is not a failure: no fix round");
    assert_eq!(v[0].data["status"], "skipped");
    assert!(
        v[0].data["reason"]
            .as_str()
            .unwrap()
            .contains("no test command")
    );
    let checks = db
        .store
        .list_checks(
            wf,
            &ai_team_core::delivery::CheckQuery::parse(None, None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(checks.items[0].conclusion.as_deref(), Some("skipped"));
}
