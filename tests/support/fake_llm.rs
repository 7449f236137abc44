//! A scripted LLM behind the OpenAI chat-completions wire shape, on a
//! random port of 127.0.0.1: it answers each role of the team with what
//! that role is asked for (criteria, a design, fenced code files, a
//! verdict), reports usage, and records every request it receives (when,
//! and a hash of the body) so tests can prove what was sent twice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How the fake behaves.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Every request fails with this status (a provider that is down).
    pub fail_with: Option<u16>,
    /// The first review asks for changes (the bounded rework loop).
    pub request_changes: bool,
    /// Each answer is delayed by a pseudo-random time in this range (ms).
    pub delay_ms: (u64, u64),
    /// The `usage` block of every answer instead of the counted one;
    /// `Some(Value::Null)` leaves it out (a provider reporting no usage).
    pub usage: Option<Value>,
    /// Text appended to every answer of the developer roles (secrets,
    /// files with hostile paths).
    pub developer_appends: Option<String>,
    /// Every answer's content is padded to at least this many bytes.
    pub pad_to_bytes: usize,
    /// Answers in place of the built-in ones: `(role, task message)` to
    /// the answer, `None` for the built-in answer (a model playing one
    /// story, e.g. a capable model working on an existing repository).
    pub responder: Option<fn(&str, &str) -> Option<String>>,
    /// Every user message received, in order (with `record_prompts`).
    pub record_prompts: bool,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: SystemTime,
    pub body_sha: String,
    pub role: String,
    /// The credential header as sent: `authorization` (a bearer token) or
    /// Azure's `api-key`, `name: value`.
    pub credential: Option<String>,
}

#[derive(Default)]
struct Inner {
    script: Mutex<Script>,
    seen: Mutex<Vec<Seen>>,
    prompts: Mutex<Vec<(String, String)>>,
}

pub struct FakeLlm {
    pub address: SocketAddr,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What identifies one prompt: its system and user messages.
pub fn prompt_key(system: &str, user: &str) -> String {
    ai_team_core::tracking::sha256_hex(format!("{system}\n\u{0}\n{user}").as_bytes())
}

/// What each role answers; `user` is the task message.
pub fn answer_for(role: &str, user: &str, request_changes: bool) -> String {
    let key = user
        .split_whitespace()
        .find(|w| w.contains('-') && w.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .unwrap_or("STORY-1")
        .trim_end_matches([':', '.', ',']);
    match role {
        "Product Manager" => format!(
            "## Scope\nLet users of {key} reset a forgotten password by e-mail.\n\n## Acceptance Criteria\n\
             - A user can ask for a reset link with their e-mail address\n\
             - The link expires after 30 minutes\n\
             - The new password must be at least 12 characters\n"
        ),
        "Solution Architect" => "## Design\nA small HTTP service with a token table; the page posts to it.\n\n## Files\n\
             - app/reset.py: the reset service\n- web/reset.html: the form\n- tests/test_reset.py: the tests\n"
            .into(),
        "Backend Developer" if user.contains("requested changes") || user.contains("requested") && user.contains("Rewrite") => {
            "Reworked.\n```python app/reset.py\nimport hashlib\n\nTOKENS = {}\n\ndef request_reset(email: str) -> str:\n    token = hashlib.sha256(email.encode()).hexdigest()\n    TOKENS[token] = email\n    return token\n```\n".into()
        }
        "Backend Developer" => "Here is the service.\n```python app/reset.py\nTOKENS = {}\n\ndef request_reset(email: str) -> str:\n    token = email[::-1]\n    TOKENS[token] = email\n    return token\n```\n\
             ```python app/__init__.py\n```\n"
            .into(),
        "Frontend Developer" => "```html web/reset.html\n<form method=\"post\" action=\"/reset\"><input name=\"email\" type=\"email\"><button>Reset</button></form>\n```\n".into(),
        "QA Tester" => "```python tests/test_reset.py\nfrom app.reset import request_reset\n\ndef test_token_is_returned():\n    assert request_reset(\"a@b.c\")\n```\n".into(),
        "Code Reviewer" if request_changes && !user.contains("reworked") => {
            "VERDICT: CHANGES_REQUESTED\n## Changes\n- Hash the reset token instead of reversing the e-mail\n".into()
        }
        "Code Reviewer" => "VERDICT: APPROVED\n## Changes\n".into(),
        _ => "I do not know this role.".into(),
    }
}

async fn complete(
    State(inner): State<Arc<Inner>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let credential = ["authorization", "api-key"].iter().find_map(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!("{name}: {v}"))
    });
    let script = inner.script.lock().unwrap().clone();
    let system = body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let user = body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let role = system
        .strip_prefix("You are the ")
        .and_then(|r| r.split('.').next())
        .unwrap_or("?")
        .to_owned();
    let body_sha = prompt_key(&system, &user);
    let index = {
        let mut seen = inner.seen.lock().unwrap();
        seen.push(Seen {
            at: SystemTime::now(),
            body_sha: body_sha.clone(),
            role: role.clone(),
            credential,
        });
        seen.len() - 1
    };
    let (lo, hi) = script.delay_ms;
    if hi > 0 {
        let spread = u64::from_str_radix(&body_sha[..8], 16).unwrap_or(0)
            ^ (index as u64).wrapping_mul(2_654_435_761);
        tokio::time::sleep(Duration::from_millis(lo + spread % (hi - lo + 1))).await;
    }
    if let Some(status) = script.fail_with {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}})),
        )
            .into_response();
    }
    if script.record_prompts {
        inner
            .prompts
            .lock()
            .unwrap()
            .push((role.clone(), user.clone()));
    }
    let mut content = script
        .responder
        .and_then(|r| r(&role, &user))
        .unwrap_or_else(|| answer_for(&role, &user, script.request_changes));
    if let Some(extra) = &script.developer_appends
        && role.ends_with("Developer")
    {
        content.push_str(extra);
    }
    if content.len() < script.pad_to_bytes {
        let pad = script.pad_to_bytes - content.len();
        content.push_str(&"x".repeat(pad));
    }
    let prompt_tokens = (system.len() + user.len()).div_ceil(4) as i64;
    let completion_tokens = content.len().div_ceil(4) as i64;
    let mut answer = json!({
        "id": format!("chatcmpl-{index}"), "object": "chat.completion", "created": 1_732_000_000,
        "model": body["model"].as_str().unwrap_or("gpt-4o-mini"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    });
    match script.usage {
        Some(Value::Null) => {
            answer.as_object_mut().map(|a| a.remove("usage"));
        }
        Some(usage) => answer["usage"] = usage,
        None => {}
    }
    Json(answer).into_response()
}

impl FakeLlm {
    pub async fn start(script: Script) -> Self {
        let inner = Arc::new(Inner {
            script: Mutex::new(script),
            seen: Mutex::default(),
            prompts: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            // Azure OpenAI's shape (AZURE_OPENAI_ENDPOINT is the server's root).
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(complete),
            )
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            inner,
            server,
        }
    }

    /// `OPENAI_BASE_URL` for this server.
    /// `(role, task message)` of every request, with `record_prompts`.
    pub fn prompts(&self) -> Vec<(String, String)> {
        self.inner.prompts.lock().unwrap().clone()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn set_script(&self, script: Script) {
        *self.inner.script.lock().unwrap() = script;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.inner.seen.lock().unwrap().len()
    }
}
