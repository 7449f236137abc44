//! What reading and proving cost: the tokens the repository context adds
//! to a prompt for a 200-file repository, and the time a verification
//! adds to a run (the calc example's unittest, in a throw-away working
//! copy, with the isolation this machine has), against running the same
//! command directly.
//!
//!   cargo bench -p ai-team-functions --bench repository [-- --runs 10]

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::codehost::{CodeHost, FileChange};
use ai_team_core::engine::prompt::repository_text;
use ai_team_core::engine::{TokenCounter, repo_context};
use ai_team_core::verification::{TestRun, TestRunner};
use ai_team_providers::codehost::LocalGit;
use ai_team_providers::tokens::TiktokenCounter;
use ai_team_providers::verify::{Isolation, LocalTestRunner};

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

/// A repository of `n` files in a plausible layout, with an AGENTS.md and a README.
fn repository(dir: &Path, n: usize) {
    let areas = ["api", "core", "web", "jobs", "tests"];
    for i in 0..n {
        let area = areas[i % areas.len()];
        let (ext, body) = match i % 4 {
            0 => (
                "py",
                format!("def handler_{i}(request):\n    return {{'ok': True, 'id': {i}}}\n"),
            ),
            1 => (
                "ts",
                format!("export function view{i}(): string {{\n  return 'view {i}';\n}}\n"),
            ),
            2 => ("md", format!("# Notes {i}\n\nWhat module {i} does.\n")),
            _ => ("json", format!("{{\"id\": {i}, \"name\": \"item-{i}\"}}\n")),
        };
        let path = dir
            .join(area)
            .join(format!("module_{i:03}"))
            .join(format!("file_{i:03}.{ext}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    std::fs::write(
        dir.join("README.md"),
        "# Shop\n\nAn online shop: api/, core/, web/, jobs/.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("AGENTS.md"),
        "# Agents\n\n## Testing\nRun `python3 -m unittest discover -s tests`.\n",
    )
    .unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "shop"]);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let root = std::env::temp_dir().join(format!("ai-team-bench-repo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let shop = root.join("shop");
    std::fs::create_dir_all(&shop).unwrap();
    repository(&shop, 200);
    let host: Arc<dyn CodeHost> = Arc::new(LocalGit::new(root.join("copies"), vec![root.clone()]));
    let repo = shop.display().to_string();

    let started = Instant::now();
    let snapshot = host.snapshot(&repo).await.unwrap();
    let mut docs = String::new();
    for name in ["AGENTS.md", "README.md"] {
        let bytes = host.read_file(&repo, name).await.unwrap().unwrap();
        docs.push_str(&format!(
            "#### {name}\n{}\n",
            String::from_utf8(bytes).unwrap()
        ));
    }
    let context = repo_context(&snapshot, docs);
    let read = started.elapsed();
    let text = repository_text(&context);
    let counter = TiktokenCounter;
    println!(
        "repository context, {} files: {} characters, {} tokens (o200k_base), {} tokens (cl100k_base); read in {:.1} ms",
        context.file_count,
        text.len(),
        counter.count("o200k_base", &text),
        counter.count("cl100k_base", &text),
        read.as_secs_f64() * 1000.0
    );

    // The calc example: its base tree plus the team's two files.
    let calc = root.join("calc");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/calc/repo");
    Command::new("cp")
        .arg("-r")
        .arg(&example)
        .arg(&calc)
        .status()
        .unwrap();
    git(&calc, &["init", "-q", "-b", "main"]);
    git(&calc, &["add", "."]);
    git(&calc, &["commit", "-q", "-m", "calc"]);
    let files = vec![
        FileChange {
            path: "calc/ops.py".into(),
            content: "def add(a, b):\n    return a + b\n\n\ndef subtract(a, b):\n    return a - b\n".into(),
        },
        FileChange {
            path: "tests/test_subtract.py".into(),
            content: "import unittest\nfrom calc.ops import subtract\n\n\nclass T(unittest.TestCase):\n    def test_subtract(self):\n        self.assertEqual(subtract(5, 3), 2)\n".into(),
        },
    ];
    for isolation in [Isolation::detect(), Isolation::None] {
        let runner = LocalTestRunner::new(host.clone(), Duration::from_secs(120), isolation);
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let o = runner
                .run(&TestRun {
                    repository: calc.display().to_string(),
                    files: files.clone(),
                    command: None,
                })
                .await;
            times.push(t.elapsed());
            assert_eq!(
                o.status,
                ai_team_core::verification::TestStatus::Passed,
                "{o:?}"
            );
        }
        println!(
            "verification of the calc example ({}), {runs} runs: median {:.0} ms, max {:.0} ms",
            isolation.describe(),
            median(times.clone()).as_secs_f64() * 1000.0,
            times.iter().max().unwrap().as_secs_f64() * 1000.0
        );
    }
    let mut direct = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let ok = Command::new("python3")
            .args(["-m", "unittest", "discover", "-s", "tests"])
            .current_dir(&calc)
            .output()
            .unwrap()
            .status
            .success();
        direct.push(t.elapsed());
        assert!(ok);
    }
    println!(
        "the same tests run directly in the repository, {runs} runs: median {:.0} ms",
        median(direct).as_secs_f64() * 1000.0
    );
    new_repositories(&root, host.as_ref()).await;
    let _ = std::fs::remove_dir_all(&root);
}

/// CPU ticks (10 ms) of this process and of its waited-for children.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After "(name) ": state, then numbers; utime, stime, cutime, cstime
    // are fields 14-17 of the line, 12-15 after the name.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let n = |i: usize| fields[i].parse::<u64>().unwrap();
    (n(11) + n(12), n(13) + n(14))
}

/// A workflow's own repository, made by a delivery of two commits: written
/// in-process (the engine's branch names), and through `git init` and `git
/// fast-import` (a branch name with `+`, which takes the git path).
async fn new_repositories(root: &Path, host: &dyn CodeHost) {
    use ai_team_core::codehost::CommitRequest;
    let commits = [
        (
            "execution-1/implementation",
            "app/feature.py",
            "def feature():\n    return 42\n".to_owned(),
        ),
        (
            "execution-1/testing",
            "tests/test_feature.py",
            "import unittest\n".repeat(8),
        ),
    ]
    .map(|(key, path, content)| CommitRequest {
        step_key: key.into(),
        message: format!("{key}: 1 file(s)"),
        files: vec![FileChange {
            path: path.into(),
            content,
        }],
    });
    for (way, (label, branch)) in [
        ("in-process", "ai-team/x-1"),
        ("git init + fast-import", "ai-team/x+1"),
    ]
    .into_iter()
    .enumerate()
    {
        let n: u32 = 200;
        let (own0, children0) = cpu_ticks();
        let t = Instant::now();
        for i in 0..n {
            let dir = root.join(format!("new-{way}-{i}"));
            host.deliver(&dir.display().to_string(), branch, &commits, None)
                .await
                .unwrap();
        }
        let (own1, children1) = cpu_ticks();
        let per = |ticks: u64| ticks as f64 * 10.0 / f64::from(n);
        println!(
            "a new repository, {label}, {n} deliveries: {:.2} ms each; CPU {:.2} ms own + {:.2} ms of git processes each",
            t.elapsed().as_secs_f64() * 1000.0 / f64::from(n),
            per(own1 - own0),
            per(children1 - children0)
        );
    }
}
