//! One HTTP client for every GitHub call, handling rate limits as GitHub
//! documents them ("Best practices for using the REST API"):
//! - a 403 or 429 with `retry-after`: wait that many seconds;
//! - a 403 or 429 with `x-ratelimit-remaining: 0`: wait until
//!   `x-ratelimit-reset` (UTC epoch seconds) — the primary limit;
//! - a 403 or 429 whose message names a secondary rate limit but no time:
//!   wait at least a minute, doubling on each repeat;
//! - then retry, a bounded number of times, and never wait longer than
//!   `max_wait` inside a request: past it the caller gets `RateLimited`
//!   with the time to wait, and the job queue waits instead of a worker.
//!
//! 5xx answers and dropped connections are retried with a short backoff;
//! mutating requests are spaced by `write_pause`.

use std::time::{Duration, Instant};

use ai_team_core::codehost::CodeHostError;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

use super::GitHubSettings;

/// The GitHub REST client; one per process, cheap to clone.
#[derive(Clone)]
pub struct GitHub {
    pub(super) http: reqwest::Client,
    pub(super) settings: std::sync::Arc<GitHubSettings>,
    last_write: std::sync::Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("settings", &self.settings)
            .finish()
    }
}

/// An answer that was not a rate limit or a passing failure: the caller
/// decides what its status means.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The body of a 2xx; any other status as a `CodeHostError` about `what`.
    pub fn ok(self, what: &str) -> Result<Value, CodeHostError> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        Err(self.error(what))
    }

    pub fn error(&self, what: &str) -> CodeHostError {
        let message = self.body["message"].as_str().unwrap_or("no message");
        let detail = self.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|x| x["message"].as_str().or_else(|| x["code"].as_str()))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|d| !d.is_empty())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let text = format!("GitHub {what}: {} {message}{detail}", self.status.as_u16());
        match self.status {
            // A ref moved under us, or GitHub is briefly inconsistent after
            // a write: running the step again recomputes from the new state.
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
                if message.contains("fast forward") || message.contains("Reference") =>
            {
                CodeHostError::Unavailable(text)
            }
            s if s.is_server_error() => CodeHostError::Unavailable(text),
            _ => CodeHostError::Refused(text),
        }
    }
}

/// How long a rate-limited answer asks us to wait, if it is one.
/// `attempt` counts the secondary limits already met in this request.
pub fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
    now_epoch: i64,
    secondary_wait: Duration,
    attempt: u32,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(now_epoch + 60);
        return Some(Duration::from_secs((reset - now_epoch).max(0) as u64 + 1));
    }
    let message = body["message"].as_str().unwrap_or_default().to_lowercase();
    if message.contains("secondary rate limit") || message.contains("abuse") {
        return Some(secondary_wait * 2u32.saturating_pow(attempt.min(6)));
    }
    // A 429 is a limit even without the usual signs.
    (status == StatusCode::TOO_MANY_REQUESTS).then_some(secondary_wait)
}

impl GitHub {
    pub fn new(settings: GitHubSettings) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            "application/vnd.github+json"
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
        headers.insert(
            "x-github-api-version",
            "2022-11-28".parse().map_err(|e| format!("{e}"))?,
        );
        headers.insert(
            USER_AGENT,
            concat!("ai-team/", env!("CARGO_PKG_VERSION"))
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
        let mut auth: reqwest::header::HeaderValue =
            format!("Bearer {}", settings.token)
                .parse()
                .map_err(|_| "the token holds characters a header cannot carry".to_owned())?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            settings: std::sync::Arc::new(settings),
            last_write: std::sync::Arc::new(Mutex::new(None)),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_url.trim_end_matches('/'))
    }

    async fn pace_write(&self) {
        if self.settings.write_pause.is_zero() {
            return;
        }
        let mut last = self.last_write.lock().await;
        if let Some(at) = *last {
            let since = at.elapsed();
            if since < self.settings.write_pause {
                tokio::time::sleep(self.settings.write_pause - since).await;
            }
        }
        *last = Some(Instant::now());
    }

    /// One call, with GitHub's rate-limit handling and bounded retries.
    /// Returns every answer that is not a limit or a passing failure.
    #[tracing::instrument(skip(self, body), fields(method = %method))]
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, CodeHostError> {
        let writes = method != Method::GET && method != Method::HEAD;
        let mut secondary = 0u32;
        let mut attempt = 0u32;
        loop {
            if writes {
                self.pace_write().await;
            }
            let mut request = self.http.request(method.clone(), self.url(path));
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if attempt < self.settings.max_retries => {
                    attempt += 1;
                    tracing::warn!(path, error = %e, attempt, "GitHub unreachable; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    continue;
                }
                Err(e) => {
                    return Err(CodeHostError::Unavailable(format!(
                        "GitHub unreachable: {e}"
                    )));
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            let body: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            let now = chrono::Utc::now().timestamp();
            if let Some(wait) = rate_limit_wait(
                status,
                &headers,
                &body,
                now,
                self.settings.secondary_wait,
                secondary,
            ) {
                secondary += 1;
                if attempt >= self.settings.max_retries || wait > self.settings.max_wait {
                    tracing::warn!(
                        path,
                        wait_secs = wait.as_secs(),
                        "GitHub rate limit: giving the wait to the queue"
                    );
                    return Err(CodeHostError::RateLimited {
                        retry_after_secs: wait.as_secs().max(1),
                    });
                }
                attempt += 1;
                tracing::warn!(
                    path,
                    status = status.as_u16(),
                    wait_secs = wait.as_secs_f64(),
                    attempt,
                    "GitHub rate limit; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && attempt < self.settings.max_retries {
                attempt += 1;
                tracing::warn!(
                    path,
                    status = status.as_u16(),
                    attempt,
                    "GitHub failed; retrying"
                );
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                continue;
            }
            return Ok(Answer { status, body });
        }
    }

    pub(super) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, CodeHostError> {
        self.call(Method::GET, path, query, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn retry_after_is_obeyed_first() {
        let h = headers(&[("retry-after", "7"), ("x-ratelimit-remaining", "0")]);
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, &json!({}), 1000, MIN, 0),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn an_exhausted_primary_limit_waits_until_the_reset() {
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
        ]);
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, &json!({}), 1000, MIN, 0),
            Some(Duration::from_secs(31))
        );
    }

    #[test]
    fn a_secondary_limit_without_a_time_waits_a_minute_then_longer() {
        let body = json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."});
        let h = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, &body, 0, MIN, 0),
            Some(MIN)
        );
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, &body, 0, MIN, 2),
            Some(MIN * 4)
        );
    }

    #[test]
    fn a_plain_forbidden_is_not_a_limit() {
        let h = headers(&[("x-ratelimit-remaining", "4999")]);
        let body = json!({"message": "Resource not accessible by integration"});
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &h, &body, 0, MIN, 0),
            None
        );
        assert_eq!(
            rate_limit_wait(StatusCode::NOT_FOUND, &h, &json!({}), 0, MIN, 0),
            None
        );
    }
}
