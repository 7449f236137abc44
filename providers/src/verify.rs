//! The local `TestRunner`: the repository's base tree (from the code host)
//! with the team's files written over it, in a throw-away directory under
//! the system's temp dir (never inside the service's own directories), and
//! the test command run there with a time limit, bounded output, its whole
//! process group killed at the limit, and — where the machine allows —
//! no network and a read-only view of everything else (bubblewrap), or no
//! network only (`unshare -n`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::codehost::{CodeHost, normalise_path};
use ai_team_core::tracking::sha256_hex;
use ai_team_core::verification::{
    RepoFiles, TestOutcome, TestRun, TestRunner, TestStatus, find_test_command, parse_counts,
};
use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// How a test command is kept from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// bubblewrap: read-only root, a private /tmp, the work dir writable,
    /// no network, its own process ids.
    Bubblewrap,
    /// `unshare -n`: no network; the file system is the service user's.
    NoNetwork,
    /// Nothing available: the command runs as the service user.
    None,
}

impl Isolation {
    /// The strongest one that works on this machine.
    pub fn detect() -> Self {
        let ok = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if ok(
            "bwrap",
            &[
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--unshare-net",
                "--die-with-parent",
                "true",
            ],
        ) {
            Isolation::Bubblewrap
        } else if ok("unshare", &["-n", "true"]) {
            Isolation::NoNetwork
        } else {
            Isolation::None
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Isolation::Bubblewrap => {
                "bubblewrap: read-only root, private /tmp, no network, own process ids"
            }
            Isolation::NoNetwork => "unshare -n: no network (the file system is not isolated)",
            Isolation::None => "none: no bubblewrap or unshare on this host",
        }
    }
}

/// Runs tests on this machine.
pub struct LocalTestRunner {
    code_host: Arc<dyn CodeHost>,
    timeout: Duration,
    /// Bytes of output kept (half from the start, half from the end).
    max_output: usize,
    isolation: Isolation,
}

impl LocalTestRunner {
    pub fn new(code_host: Arc<dyn CodeHost>, timeout: Duration, isolation: Isolation) -> Self {
        Self {
            code_host,
            timeout,
            max_output: 64 * 1024,
            isolation,
        }
    }

    fn command(&self, work: &Path, script: &str) -> Command {
        let shell = format!("exec 2>&1; {script}");
        let mut c = match self.isolation {
            Isolation::Bubblewrap => {
                let mut c = Command::new("bwrap");
                let w = work.as_os_str();
                c.args([
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--tmpfs",
                    "/tmp",
                ])
                .arg("--bind")
                .arg(w)
                .arg(w)
                .arg("--chdir")
                .arg(w)
                .args([
                    "--unshare-net",
                    "--unshare-pid",
                    "--die-with-parent",
                    "--new-session",
                ])
                .args(["sh", "-c", &shell]);
                c
            }
            Isolation::NoNetwork => {
                let mut c = Command::new("unshare");
                c.args(["-n", "sh", "-c", &shell]);
                c
            }
            Isolation::None => {
                let mut c = Command::new("sh");
                c.args(["-c", &shell]);
                c
            }
        };
        c.current_dir(work)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", work)
            .env("LANG", "C.UTF-8")
            .env("CI", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        c
    }

    /// Runs `script` in `work`: (exit code, output kept, timed out, elapsed).
    async fn execute(
        &self,
        work: &Path,
        script: &str,
    ) -> Result<(Option<i32>, String, bool, Duration), String> {
        let started = Instant::now();
        let mut child = self
            .command(work, script)
            .spawn()
            .map_err(|e| format!("cannot start the test command: {e}"))?;
        let pid = child.id();
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let half = self.max_output / 2;
        let reading = async {
            let mut head: Vec<u8> = Vec::new();
            let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
            let mut total = 0usize;
            let mut buf = vec![0u8; 8192];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        total += n;
                        for &b in &buf[..n] {
                            if head.len() < half {
                                head.push(b);
                            } else {
                                tail.push_back(b);
                                if tail.len() > half {
                                    tail.pop_front();
                                }
                            }
                        }
                    }
                }
            }
            (head, tail, total)
        };
        let (timed_out, (head, tail, total), status) =
            match tokio::time::timeout(self.timeout, async {
                let r = reading.await;
                let s = child.wait().await;
                (r, s)
            })
            .await
            {
                Ok((r, s)) => (false, r, s.ok()),
                Err(_) => {
                    // The whole group: a test that forked keeps nothing running.
                    if let Some(pid) = pid {
                        let _ = std::process::Command::new("kill")
                            .args(["-KILL", "--", &format!("-{pid}")])
                            .status();
                    }
                    let _ = child.kill().await;
                    (true, (Vec::new(), Default::default(), 0), None)
                }
            };
        let mut text = String::from_utf8_lossy(&head).into_owned();
        if total > head.len() + tail.len() {
            text.push_str(&format!(
                "\n[… {} bytes of output not kept …]\n",
                total - head.len() - tail.len()
            ));
        }
        text.push_str(&String::from_utf8_lossy(
            &tail.into_iter().collect::<Vec<_>>(),
        ));
        if timed_out {
            text.push_str(&format!(
                "\n[stopped after {} s: AI_TEAM_TEST_TIMEOUT_SECONDS]\n",
                self.timeout.as_secs()
            ));
        }
        Ok((
            status.and_then(|s| s.code()),
            text,
            timed_out,
            started.elapsed(),
        ))
    }
}

/// The files of a working copy on disk.
struct DirFiles<'a>(&'a Path);

impl RepoFiles for DirFiles<'_> {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(path)).ok()
    }
    fn exists(&self, path: &str) -> bool {
        self.0.join(path).exists()
    }
    fn list(&self, dir: &str) -> Vec<String> {
        std::fs::read_dir(self.0.join(dir))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A fresh directory under the system's temp dir.
fn work_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "ai-team-verify-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The working copy of one run: a run cut short (its future dropped at a
/// shutdown deadline) leaves nothing under the temp dir either.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, dir = %self.0.display(), "the working copy could not be removed");
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    sha256_hex(format!("{nanos}-{:?}", std::thread::current().id()).as_bytes())[..12].to_owned()
}

#[async_trait]
impl TestRunner for LocalTestRunner {
    fn kind(&self) -> &'static str {
        "local"
    }

    #[tracing::instrument(skip(self, run), fields(files = run.files.len()))]
    async fn run(&self, run: &TestRun) -> TestOutcome {
        let isolation = self.isolation.describe();
        let work = match work_dir() {
            Ok(w) => WorkDir(w),
            Err(e) => return TestOutcome::skipped(format!("no working copy: {e}"), isolation),
        };
        let outcome = self.run_in(&work.0, run, isolation).await;
        // Off the runtime's threads when the run ends normally (a large
        // repository's copy); the guard only finds it gone.
        if let Err(e) = tokio::fs::remove_dir_all(&work.0).await {
            tracing::warn!(error = %e, dir = %work.0.display(), "the working copy could not be removed");
        }
        outcome
    }
}

impl LocalTestRunner {
    async fn run_in(&self, work: &Path, run: &TestRun, isolation: &str) -> TestOutcome {
        let base = match self.code_host.snapshot(&run.repository).await {
            Ok(s) => s.base_sha,
            Err(e) => {
                return TestOutcome::skipped(
                    format!("the repository cannot be read: {e}"),
                    isolation,
                );
            }
        };
        match self.code_host.export_base(&run.repository, work).await {
            Err(e) => {
                return TestOutcome::skipped(
                    format!("the base tree cannot be exported: {e}"),
                    isolation,
                );
            }
            // Tests on the team's files alone would say nothing about the branch.
            Ok(false) if base.is_some() => {
                return TestOutcome::skipped(
                    format!(
                        "the {} code host cannot export the base tree into a working copy here",
                        self.code_host.kind()
                    ),
                    isolation,
                );
            }
            Ok(_) => {}
        }
        let mut written = Vec::new();
        for f in &run.files {
            // Paths were checked when parsed; checked again before writing.
            let Some(path) = normalise_path(&f.path) else {
                continue;
            };
            let target = work.join(&path);
            if let Some(parent) = target.parent()
                && tokio::fs::create_dir_all(parent).await.is_err()
            {
                continue;
            }
            if tokio::fs::write(&target, &f.content).await.is_ok() {
                written.push(format!("{path}\n{}", sha256_hex(f.content.as_bytes())));
            }
        }
        written.sort();
        let (command, source) = match &run.command {
            Some(c) => (c.clone(), "workflow or AI_TEAM_TEST_COMMAND"),
            None => match find_test_command(&DirFiles(work)) {
                Some((c, s)) => (c, s),
                None => {
                    return TestOutcome::skipped(
                        "no test command: none set on the workflow (test_command) or in AI_TEAM_TEST_COMMAND, \
                         and none found in the repository (AGENTS.md Testing, package.json, Cargo.toml, go.mod, \
                         pytest configuration, tests/test_*.py)",
                        isolation,
                    );
                }
            },
        };
        let tree_hash = sha256_hex(
            format!(
                "{}\n{}\n{command}",
                base.as_deref().unwrap_or("-"),
                written.join("\n")
            )
            .as_bytes(),
        );
        let program = command.split_whitespace().next().unwrap_or("");
        if !program.contains('/') && !program_exists(program) {
            let mut o = TestOutcome::skipped(
                format!(
                    "`{program}` is not installed on this host, so `{command}` cannot run here"
                ),
                isolation,
            );
            o.command = Some(command);
            o.command_source = Some(source.to_owned());
            o.tree_hash = tree_hash;
            return o;
        }
        match self.execute(work, &command).await {
            Err(reason) => {
                let mut o = TestOutcome::skipped(reason, isolation);
                o.command = Some(command);
                o.tree_hash = tree_hash;
                o
            }
            Ok((code, log, timed_out, elapsed)) => {
                let (passed, failed) = parse_counts(&log);
                // A command that found no test proved nothing: not a pass.
                let ran_nothing = passed == Some(0) && failed.unwrap_or(0) == 0;
                let status = if code == Some(0) && !timed_out && ran_nothing {
                    TestStatus::Skipped
                } else if code == Some(0) && !timed_out {
                    TestStatus::Passed
                } else {
                    TestStatus::Failed
                };
                TestOutcome {
                    status,
                    command: Some(command),
                    command_source: Some(source.to_owned()),
                    exit_code: code,
                    passed,
                    failed,
                    duration_ms: elapsed.as_millis() as u64,
                    timed_out,
                    reason: if timed_out {
                        Some(format!("stopped after {} s", self.timeout.as_secs()))
                    } else if status == TestStatus::Skipped {
                        Some("the test command ran no tests".into())
                    } else {
                        None
                    },
                    isolation: isolation.to_owned(),
                    tree_hash,
                    tail: tail_lines(&log, 40),
                    log,
                }
            }
        }
    }
}

fn program_exists(program: &str) -> bool {
    matches!(
        program,
        "cd" | "test" | "[" | "true" | "false" | "exit" | "echo"
    ) || std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codehost::LocalGit;
    use ai_team_core::codehost::FileChange;

    fn runner(timeout: Duration) -> LocalTestRunner {
        let root = std::env::temp_dir().join(format!("ai-team-verify-test-{}", uuid_like()));
        let git: Arc<dyn CodeHost> = Arc::new(LocalGit::new(root.clone(), vec![root]));
        LocalTestRunner::new(git, timeout, Isolation::detect())
    }

    fn run(files: &[(&str, &str)], command: Option<&str>) -> TestRun {
        TestRun {
            repository: "https://github.com/acme/none".into(),
            files: files
                .iter()
                .map(|(p, c)| FileChange {
                    path: (*p).into(),
                    content: (*c).into(),
                })
                .collect(),
            command: command.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn passing_and_failing_unittests_are_told_apart_with_their_counts() {
        let r = runner(Duration::from_secs(60));
        let ok = r
            .run(&run(
                &[("tests/test_a.py", "import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(1, 1)\n")],
                None,
            ))
            .await;
        assert_eq!(ok.status, TestStatus::Passed, "{ok:?}");
        assert_eq!((ok.passed, ok.failed), (Some(1), Some(0)));
        assert_eq!(ok.command_source.as_deref(), Some("tests/test_*.py"));
        let bad = r
            .run(&run(
                &[("tests/test_a.py", "import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(1, 2)\n")],
                None,
            ))
            .await;
        assert_eq!(bad.status, TestStatus::Failed);
        assert_eq!((bad.passed, bad.failed), (Some(0), Some(1)));
        assert!(bad.tail.contains("AssertionError"), "{}", bad.tail);
    }

    #[tokio::test]
    async fn a_test_command_that_ran_no_tests_is_a_skip() {
        let r = runner(Duration::from_secs(60));
        let o = r
            .run(&run(
                &[("tests/test_a.py", "def test_a():\n    assert True\n")],
                None,
            ))
            .await;
        assert_eq!(o.status, TestStatus::Skipped, "{o:?}");
        assert!(o.reason.unwrap().contains("ran no tests"));
    }

    #[tokio::test]
    async fn a_hanging_forking_command_is_stopped_at_the_limit() {
        let r = runner(Duration::from_secs(2));
        let started = Instant::now();
        let o = r.run(&run(&[], Some("sleep 100 & sleep 100"))).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(o.status, TestStatus::Failed);
        assert!(o.timed_out);
    }

    #[tokio::test]
    async fn megabytes_of_output_are_kept_bounded() {
        let r = runner(Duration::from_secs(30));
        let o = r
            .run(&run(&[], Some("yes 0123456789 | head -c 5000000; exit 1")))
            .await;
        assert_eq!(o.status, TestStatus::Failed);
        assert!(o.log.len() < 70 * 1024, "{}", o.log.len());
        assert!(o.log.contains("bytes of output not kept"));
    }

    #[tokio::test]
    async fn no_command_and_no_runtime_are_skips_never_passes() {
        let r = runner(Duration::from_secs(5));
        let o = r.run(&run(&[("README.md", "hi")], None)).await;
        assert_eq!(o.status, TestStatus::Skipped);
        let o = r.run(&run(&[], Some("no-such-tool-xyz --test"))).await;
        assert_eq!(o.status, TestStatus::Skipped);
        assert!(o.reason.unwrap().contains("not installed"));
    }

    #[tokio::test]
    async fn a_test_that_deletes_files_touches_only_its_working_copy() {
        let keep = std::env::temp_dir().join(format!("ai-team-keep-{}", uuid_like()));
        std::fs::write(&keep, "keep").unwrap();
        let r = runner(Duration::from_secs(10));
        assert_eq!(
            r.isolation,
            Isolation::Bubblewrap,
            "scripts/setup-system installs bubblewrap; only it protects the rest of the file system"
        );
        let o = r
            .run(&run(
                &[],
                Some(&format!("rm -f {} ; rm -rf ./* ; true", keep.display())),
            ))
            .await;
        assert_eq!(o.status, TestStatus::Passed, "{o:?}");
        assert!(keep.exists(), "a file outside the working copy survived");
        std::fs::remove_file(&keep).unwrap();
    }
}
