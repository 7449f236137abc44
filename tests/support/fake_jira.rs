//! A local Jira Cloud answering `GET /rest/api/3/issue/{key}` in the
//! shapes of its REST v3 documentation (`tests/fixtures/jira/`): the rich
//! story for `SHOP-42`, Jira's 404 body for unknown keys, a 500 for
//! `BROKEN-1`, and 401 without the expected basic credentials. Requests
//! are counted and their query strings kept.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const EMAIL: &str = "pm@example.com";
pub const TOKEN: &str = "jira-api-token";

pub fn rich_issue() -> Value {
    serde_json::from_str(include_str!("../fixtures/jira/issue_rich.json")).expect("fixture")
}

/// The rich story under key `KELVIN-1`, its acceptance-criteria field a
/// plain text whose heading holds U+212A KELVIN SIGN (3 bytes, lower-cased
/// to the 1-byte `k`).
pub fn kelvin_issue() -> Value {
    let mut issue = rich_issue();
    issue["key"] = json!("KELVIN-1");
    issue["fields"]["customfield_10035"] =
        json!("Acceptance criteria (\u{212A}):\n- The oven reaches 300 \u{212A}");
    issue
}

/// The rich story under key `SECRET-1`, its acceptance criteria quoting a
/// password and an AWS key id.
pub fn secret_issue() -> Value {
    let mut issue = rich_issue();
    issue["key"] = json!("SECRET-1");
    issue["fields"]["customfield_10035"] =
        json!("- Log in with password=hunter2! as admin\n- Use AKIAIOSFODNN7EXAMPLE for S3");
    issue
}

#[derive(Default)]
struct Seen {
    requests: Vec<(String, Option<String>)>,
}

pub struct FakeJira {
    pub address: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeJira {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `Basic base64(email:token)`, written out so the test checks the wire.
fn expected_auth() -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{EMAIL}:{TOKEN}");
    let bytes = raw.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

async fn issue(
    State(seen): State<Arc<Mutex<Seen>>>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    seen.lock().unwrap().requests.push((key.clone(), query));
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != expected_auth() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}})),
        )
            .into_response();
    }
    match key.as_str() {
        "SHOP-42" => Json(rich_issue()).into_response(),
        "KELVIN-1" => Json(kelvin_issue()).into_response(),
        "SECRET-1" => Json(secret_issue()).into_response(),
        "BROKEN-1" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"errorMessages": ["Internal server error"], "errors": {}})),
        )
            .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(
                serde_json::from_str::<Value>(include_str!(
                    "../fixtures/jira/issue_not_found.json"
                ))
                .expect("fixture"),
            ),
        )
            .into_response(),
    }
}

impl FakeJira {
    pub async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let router = Router::new()
            .route("/rest/api/3/issue/{key}", get(issue))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            seen,
            server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `(key, query)` of every request so far.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().requests.clone()
    }
}
