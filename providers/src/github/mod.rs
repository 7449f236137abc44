//! GitHub, through its REST API with plain reqwest (no octocrab: it is
//! among the slowest crates to build and we use a dozen endpoints):
//! - `git`: the `CodeHost` — files committed through the Git data API
//!   (blobs, trees, commits, refs; no git binary, so it runs inside a
//!   function), then the pull request opened or found;
//! - `review`: the `ReviewSource` — the pull request, check runs and
//!   suites, the compare diff and Actions artifacts read back;
//! - `webhook`: signature verification and delivery parsing;
//! - `client`: the shared HTTP client with GitHub's documented rate-limit
//!   handling (primary and secondary limits, bounded retries).

mod client;
mod git_data;
mod review;
pub mod webhook;

use std::fmt;
use std::time::Duration;

pub use client::GitHub;
pub use review::{artifact, check_run, check_suite, diff_file, pull_request};

/// The public API's address, the default of `GITHUB_API_URL`.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// What the adapter needs, read once at start-up.
#[derive(Clone)]
pub struct GitHubSettings {
    pub api_url: String,
    pub token: String,
    pub timeout: Duration,
    /// Retries of one request after a rate limit, a 5xx or a dropped
    /// connection.
    pub max_retries: u32,
    /// The longest wait spent inside one request; a limit that resets
    /// later ends the request with `RateLimited` (the queue retries it).
    pub max_wait: Duration,
    /// The wait after a secondary limit that names no time ("at least one
    /// minute", doubled on each repeat).
    pub secondary_wait: Duration,
    /// Pause between mutating requests ("at least one second" between
    /// POST/PATCH requests, per GitHub's best practices).
    pub write_pause: Duration,
    /// `owner/name` (lower case) of every repository this service may
    /// write; empty allows any the token can reach.
    pub allowed_repositories: Vec<String>,
}

impl GitHubSettings {
    /// Whether `owner/name` may be written.
    pub fn allows(&self, owner: &str, name: &str) -> bool {
        self.allowed_repositories.is_empty()
            || self
                .allowed_repositories
                .contains(&format!("{owner}/{name}").to_ascii_lowercase())
    }

    /// GitHub's documented defaults around `api_url` and `token`.
    pub fn new(api_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            api_url: api_url.into(),
            token: token.into(),
            timeout: Duration::from_secs(30),
            max_retries: 3,
            max_wait: Duration::from_secs(90),
            secondary_wait: Duration::from_secs(60),
            write_pause: Duration::from_secs(1),
            allowed_repositories: Vec::new(),
        }
    }
}

impl fmt::Debug for GitHubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubSettings")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("max_retries", &self.max_retries)
            .field("max_wait", &self.max_wait)
            .finish()
    }
}

/// `(owner, name)` of a repository written as `owner/name`, an HTTPS or
/// SSH clone URL, or a web URL (GitHub Enterprise hosts included).
pub fn parse_repository(raw: &str) -> Option<(String, String)> {
    let s = raw.trim().trim_end_matches('/');
    let s = s.strip_suffix(".git").unwrap_or(s);
    let path = if let Some((_, rest)) = s.split_once("://") {
        rest.split_once('/')?.1
    } else if let Some(rest) = s.strip_prefix("git@") {
        rest.split_once(':')?.1
    } else {
        s
    };
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let (owner, name) = (parts.next()?, parts.next()?);
    let ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    // `owner/name` alone must be exactly that; URLs may go on (`/tree/x`).
    if !raw.contains("://") && !raw.trim().starts_with("git@") && parts.next().is_some() {
        return None;
    }
    (ok(owner) && ok(name)).then(|| (owner.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_repository;

    #[test]
    fn repositories_are_read_from_every_usual_spelling() {
        let want = Some(("octo".to_owned(), "hello-world".to_owned()));
        for raw in [
            "octo/hello-world",
            "https://github.com/octo/hello-world",
            "https://github.com/octo/hello-world.git",
            "https://github.com/octo/hello-world/",
            "https://github.com/octo/hello-world/tree/main",
            "git@github.com:octo/hello-world.git",
            "https://ghe.example.com/octo/hello-world",
        ] {
            assert_eq!(parse_repository(raw), want, "{raw}");
        }
        for bad in [
            "",
            "octo",
            "octo/",
            "a/b/c",
            "../x",
            "/abs/path/repo/x",
            "https://github.com/octo",
        ] {
            assert_eq!(parse_repository(bad), None, "{bad}");
        }
    }
}
