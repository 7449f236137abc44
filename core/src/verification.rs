//! Proof that the change works (API.md "The repository, and proof that the
//! change works"): the `TestRunner` port runs the repository's own tests
//! on the branch's tree in a throw-away working copy; this module holds
//! what crosses it, how the test command is found in a repository, and
//! how the pass/fail counts are read from the runners' summaries.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::codehost::FileChange;

/// One verification to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    /// The workflow's repository (as `CodeHost::deliver` takes it).
    pub repository: String,
    /// The team's files, written over the base tree.
    pub files: Vec<FileChange>,
    /// The workflow's `test_command`, else `AI_TEAM_TEST_COMMAND`; `None`:
    /// found in the repository.
    pub command: Option<String>,
}

/// How a verification ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// The command exited 0 in time and ran tests (`success` as a check conclusion).
    Passed,
    /// The command exited non-zero or hit its time limit (`failure`).
    Failed,
    /// It could not run (no command, no runtime): never reported as passed.
    Skipped,
}

impl TestStatus {
    /// The check run's conclusion.
    pub fn conclusion(self) -> &'static str {
        match self {
            TestStatus::Passed => "success",
            TestStatus::Failed => "failure",
            TestStatus::Skipped => "skipped",
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// How it ended.
    pub status: TestStatus,
    /// The command that ran; `None` when none could be found.
    pub command: Option<String>,
    /// Where the command came from: `workflow`, `AI_TEAM_TEST_COMMAND`,
    /// `AGENTS.md`, `package.json`, …
    pub command_source: Option<String>,
    /// The command's exit code; `None` when it did not exit on its own or never ran.
    pub exit_code: Option<i32>,
    /// Tests that passed, when the output said.
    pub passed: Option<u32>,
    /// Tests that failed, when the output said.
    pub failed: Option<u32>,
    /// Wall time of the run, in ms.
    pub duration_ms: u64,
    /// Whether the run was stopped at its time limit.
    pub timed_out: bool,
    /// Why it was skipped, or what stopped it.
    pub reason: Option<String>,
    /// How the run was isolated (`bubblewrap: read-only root, no network`…).
    pub isolation: String,
    /// The hash of the tree tested (base and files), so a repeat is known.
    pub tree_hash: String,
    /// The last lines of the output (bounded), for prompts and the PR.
    pub tail: String,
    /// The whole output as kept (bounded), for the test-log artifact.
    pub log: String,
}

impl TestOutcome {
    /// An outcome that did not run.
    pub fn skipped(reason: impl Into<String>, isolation: &str) -> Self {
        Self {
            status: TestStatus::Skipped,
            command: None,
            command_source: None,
            exit_code: None,
            passed: None,
            failed: None,
            duration_ms: 0,
            timed_out: false,
            reason: Some(reason.into()),
            isolation: isolation.to_owned(),
            tree_hash: String::new(),
            tail: String::new(),
            log: String::new(),
        }
    }

    /// One line: `passed: 3 passed, 0 failed (python3 -m unittest, 0.4 s)`.
    pub fn summary(&self) -> String {
        let counts = match (self.passed, self.failed) {
            (Some(p), Some(f)) => format!("{p} passed, {f} failed"),
            (Some(p), None) => format!("{p} passed"),
            (None, Some(f)) => format!("{f} failed"),
            (None, None) => String::new(),
        };
        let what = match self.status {
            TestStatus::Passed => "passed",
            TestStatus::Failed if self.timed_out => "timed out",
            TestStatus::Failed => "failed",
            TestStatus::Skipped => "skipped",
        };
        let mut s = what.to_owned();
        if !counts.is_empty() {
            s.push_str(&format!(": {counts}"));
        }
        if let Some(c) = &self.command {
            s.push_str(&format!(
                " (`{c}`, {:.1} s)",
                self.duration_ms as f64 / 1000.0
            ));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(" — {r}"));
        }
        s
    }
}

/// Runs a repository's tests.
#[async_trait]
pub trait TestRunner: Send + Sync + 'static {
    /// `local`, `none`, …
    fn kind(&self) -> &'static str;
    /// Never errors: what went wrong is in the outcome.
    async fn run(&self, run: &TestRun) -> TestOutcome;
}

/// A runner for hosts without a toolchain (serverless functions): every
/// verification is skipped, with the reason.
pub struct NoRunner {
    /// Why tests cannot run on this host, recorded with every skipped verification.
    pub reason: String,
}

#[async_trait]
impl TestRunner for NoRunner {
    fn kind(&self) -> &'static str {
        "none"
    }

    async fn run(&self, _run: &TestRun) -> TestOutcome {
        TestOutcome::skipped(self.reason.clone(), "none")
    }
}

/// Reads a repository file (base tree with the team's files over it).
pub trait RepoFiles {
    /// The file's text; `None` when it is absent or not text.
    fn read(&self, path: &str) -> Option<String>;
    /// Whether the path exists.
    fn exists(&self, path: &str) -> bool;
    /// Paths under `dir` (one level), for `tests/test_*.py`.
    fn list(&self, dir: &str) -> Vec<String>;
}

/// The repository's test command, and where it was found (API.md's order
/// after the workflow and `AI_TEAM_TEST_COMMAND`): `AGENTS.md` under a
/// Testing heading, `package.json` `scripts.test`, `Cargo.toml`, `go.mod`,
/// a pytest configuration, `tests/test_*.py` with unittest.
pub fn find_test_command(files: &dyn RepoFiles) -> Option<(String, &'static str)> {
    if let Some(cmd) = files.read("AGENTS.md").and_then(|t| agents_md_command(&t)) {
        return Some((cmd, "AGENTS.md"));
    }
    if let Some(pkg) = files.read("package.json")
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&pkg)
        && v["scripts"]["test"]
            .as_str()
            .is_some_and(|t| !t.trim().is_empty())
    {
        return Some(("npm test".into(), "package.json"));
    }
    if files.exists("Cargo.toml") {
        return Some(("cargo test".into(), "Cargo.toml"));
    }
    if files.exists("go.mod") {
        return Some(("go test ./...".into(), "go.mod"));
    }
    let pytest = files.exists("pytest.ini")
        || files.exists("conftest.py")
        || files
            .read("pyproject.toml")
            .is_some_and(|t| t.contains("[tool.pytest"))
        || files
            .read("setup.cfg")
            .is_some_and(|t| t.contains("[tool:pytest]"));
    if pytest {
        return Some(("python3 -m pytest -q".into(), "pytest configuration"));
    }
    let py_tests = files.list("tests").iter().any(|p| {
        let name = p.rsplit('/').next().unwrap_or(p);
        name.starts_with("test") && name.ends_with(".py")
    });
    if py_tests {
        return Some((
            "python3 -m unittest discover -s tests".into(),
            "tests/test_*.py",
        ));
    }
    None
}

/// The command under a `Testing`/`Tests` heading of an AGENTS.md: the
/// first fenced block's first line, or the first `inline code` span.
fn agents_md_command(text: &str) -> Option<String> {
    let mut in_section = false;
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') && !in_fence {
            let heading = trimmed.trim_start_matches('#').trim().to_lowercase();
            in_section = heading.starts_with("test");
            continue;
        }
        if !in_section {
            continue;
        }
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            let cmd = trimmed.trim_start_matches("$ ").trim();
            if !cmd.is_empty() && !cmd.starts_with('#') {
                return Some(cmd.to_owned());
            }
            continue;
        }
        if let Some(start) = trimmed.find('`') {
            let rest = &trimmed[start + 1..];
            if let Some(end) = rest.find('`') {
                let cmd = rest[..end].trim();
                if !cmd.is_empty() {
                    return Some(cmd.to_owned());
                }
            }
        }
    }
    None
}

/// Pass and fail counts from a runner's summary, where it prints one:
/// unittest, pytest, cargo test, go test, node's runner, jest.
///
/// Long because it holds one short block per runner's summary format;
/// a runner added is a block added.
pub fn parse_counts(output: &str) -> (Option<u32>, Option<u32>) {
    let num = |s: &str| s.trim().parse::<u32>().ok();
    let mut passed: Option<u32> = None;
    let mut failed: Option<u32> = None;
    let add = |slot: &mut Option<u32>, n: u32| *slot = Some(slot.unwrap_or(0).saturating_add(n));
    let mut unittest_ran: Option<u32> = None;
    let mut unittest_failed = 0u32;
    let mut unittest_seen = false;
    let mut go_ok = 0u32;
    let mut go_fail = 0u32;
    for line in output.lines() {
        let l = line.trim();
        // unittest: "Ran 3 tests in 0.001s" then "OK" or "FAILED (failures=1, errors=1)"
        if let Some(rest) = l.strip_prefix("Ran ")
            && let Some(n) = rest.split_whitespace().next().and_then(num)
        {
            unittest_ran = Some(n);
            unittest_seen = true;
            continue;
        }
        if unittest_seen && l.starts_with("FAILED (") {
            for part in l["FAILED (".len()..].trim_end_matches(')').split(',') {
                if let Some((k, v)) = part.split_once('=')
                    && matches!(k.trim(), "failures" | "errors")
                {
                    unittest_failed += num(v).unwrap_or(0);
                }
            }
            continue;
        }
        // cargo: "test result: ok. 3 passed; 0 failed; ..."
        if let Some(rest) = l.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let words: Vec<&str> = part.split_whitespace().collect();
                for w in words.windows(2) {
                    match (
                        num(w[0].trim_start_matches("ok.").trim_start_matches("FAILED.")),
                        w[1],
                    ) {
                        (Some(n), "passed") => add(&mut passed, n),
                        (Some(n), "failed") => add(&mut failed, n),
                        _ => {}
                    }
                }
            }
            continue;
        }
        // node --test: "ℹ pass 3" / "ℹ fail 0" (or "# pass 3")
        for prefix in ["ℹ pass ", "# pass "] {
            if let Some(n) = l.strip_prefix(prefix).and_then(num) {
                add(&mut passed, n);
            }
        }
        for prefix in ["ℹ fail ", "# fail "] {
            if let Some(n) = l.strip_prefix(prefix).and_then(num) {
                add(&mut failed, n);
            }
        }
        // jest: "Tests:       1 failed, 2 passed, 3 total"
        if let Some(rest) = l.strip_prefix("Tests:") {
            for part in rest.split(',') {
                let w: Vec<&str> = part.split_whitespace().collect();
                if let [n, kind, ..] = w[..] {
                    match (num(n), kind) {
                        (Some(n), "passed") => add(&mut passed, n),
                        (Some(n), "failed") => add(&mut failed, n),
                        _ => {}
                    }
                }
            }
            continue;
        }
        // go test -v: "--- PASS: TestX" / "--- FAIL: TestX"
        if l.starts_with("--- PASS:") {
            go_ok += 1;
        } else if l.starts_with("--- FAIL:") {
            go_fail += 1;
        }
        // pytest: "=== 2 failed, 3 passed in 0.12s ===" or "3 passed in 0.01s"
        if (l.contains(" passed") || l.contains(" failed")) && l.contains(" in ") {
            let body = l.trim_matches('=').trim();
            let mut found = false;
            let mut p = None;
            let mut f = None;
            for part in body.split(',') {
                let w: Vec<&str> = part.split_whitespace().collect();
                if w.len() >= 2 {
                    match (num(w[0]), w[1]) {
                        (Some(n), "passed") => {
                            p = Some(n);
                            found = true;
                        }
                        (Some(n), "failed" | "error" | "errors") => {
                            f = Some(f.unwrap_or(0) + n);
                            found = true;
                        }
                        _ => {}
                    }
                }
            }
            if found && !l.starts_with("test result") {
                passed = p.or(passed).or(Some(0));
                failed = f.or(failed).or(Some(0));
            }
        }
    }
    if let Some(ran) = unittest_ran {
        return (
            Some(ran.saturating_sub(unittest_failed)),
            Some(unittest_failed),
        );
    }
    if go_ok + go_fail > 0 && passed.is_none() {
        return (Some(go_ok), Some(go_fail));
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Files(BTreeMap<&'static str, &'static str>);

    impl RepoFiles for Files {
        fn read(&self, path: &str) -> Option<String> {
            self.0.get(path).map(|s| (*s).to_owned())
        }
        fn exists(&self, path: &str) -> bool {
            self.0.contains_key(path)
        }
        fn list(&self, dir: &str) -> Vec<String> {
            self.0
                .keys()
                .filter(|k| k.starts_with(&format!("{dir}/")))
                .map(|k| (*k).to_owned())
                .collect()
        }
    }

    fn files(pairs: &[(&'static str, &'static str)]) -> Files {
        Files(pairs.iter().copied().collect())
    }

    #[test]
    fn the_test_command_is_found_in_the_documented_order() {
        let agents = files(&[
            (
                "AGENTS.md",
                "# Repo\n\n## Testing\nRun `python3 -m unittest -v` from the root.\n",
            ),
            ("package.json", r#"{"scripts": {"test": "jest"}}"#),
        ]);
        assert_eq!(
            find_test_command(&agents),
            Some(("python3 -m unittest -v".into(), "AGENTS.md"))
        );
        let fenced = files(&[("AGENTS.md", "## Tests\n```sh\n$ make check\n```\n")]);
        assert_eq!(find_test_command(&fenced).unwrap().0, "make check");
        assert_eq!(
            find_test_command(&files(&[(
                "package.json",
                r#"{"scripts": {"test": "node --test"}}"#
            )]))
            .unwrap()
            .0,
            "npm test"
        );
        assert_eq!(
            find_test_command(&files(&[("Cargo.toml", "")])).unwrap().0,
            "cargo test"
        );
        assert_eq!(
            find_test_command(&files(&[("go.mod", "")])).unwrap().0,
            "go test ./..."
        );
        assert_eq!(
            find_test_command(&files(&[("pyproject.toml", "[tool.pytest.ini_options]\n")]))
                .unwrap()
                .1,
            "pytest configuration"
        );
        assert_eq!(
            find_test_command(&files(&[("tests/test_ops.py", "")]))
                .unwrap()
                .1,
            "tests/test_*.py"
        );
        assert_eq!(find_test_command(&files(&[("README.md", "hi")])), None);
    }

    #[test]
    fn counts_are_read_from_each_runners_summary() {
        let unittest_ok = "...\n----------------------------------------------------------------------\nRan 3 tests in 0.001s\n\nOK\n";
        assert_eq!(parse_counts(unittest_ok), (Some(3), Some(0)));
        let unittest_bad = "F.E\nRan 3 tests in 0.002s\n\nFAILED (failures=1, errors=1)\n";
        assert_eq!(parse_counts(unittest_bad), (Some(1), Some(2)));
        assert_eq!(
            parse_counts("==== 2 failed, 5 passed in 0.12s ====\n"),
            (Some(5), Some(2))
        );
        assert_eq!(parse_counts("5 passed in 0.03s\n"), (Some(5), Some(0)));
        let cargo = "test result: ok. 4 passed; 0 failed; 0 ignored\ntest result: FAILED. 1 passed; 2 failed; 0 ignored\n";
        assert_eq!(parse_counts(cargo), (Some(5), Some(2)));
        assert_eq!(
            parse_counts("ℹ tests 3\nℹ pass 2\nℹ fail 1\n"),
            (Some(2), Some(1))
        );
        assert_eq!(
            parse_counts("Tests:       1 failed, 2 passed, 3 total\n"),
            (Some(2), Some(1))
        );
        assert_eq!(
            parse_counts("--- PASS: TestA (0.00s)\n--- FAIL: TestB (0.00s)\nFAIL\n"),
            (Some(1), Some(1))
        );
        assert_eq!(parse_counts("no summary here"), (None, None));
    }

    #[test]
    fn a_summary_line_never_calls_a_skip_a_pass() {
        let s = TestOutcome::skipped("no test command found", "none");
        assert!(s.summary().starts_with("skipped"));
        assert_eq!(s.status.conclusion(), "skipped");
    }
}
