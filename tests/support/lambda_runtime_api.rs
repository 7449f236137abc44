//! The Lambda runtime API (`/2018-06-01/runtime/...`) on 127.0.0.1, for
//! running a real bootstrap binary as Lambda would: it hands over one
//! event, then collects the answer as it arrives, chunk by chunk (a
//! streaming function posts its response with
//! `Lambda-Runtime-Function-Response-Mode: streaming` and a chunked body:
//! a JSON prelude, eight NUL bytes, then the body).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// What the runtime saw of the function.
#[derive(Debug)]
pub enum Seen {
    /// The function asked for its next event (it is initialised).
    Ready(Instant),
    /// Headers of the response post.
    ResponseStarted { streaming: bool },
    /// A piece of the response body.
    Chunk(Instant, Bytes),
    /// The response body is complete.
    ResponseEnded(Instant),
    /// An init or invocation error the function reported.
    Error(String),
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<Vec<Vec<u8>>>>,
    seen: mpsc::UnboundedSender<Seen>,
}

pub struct RuntimeApi {
    pub address: SocketAddr,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    child: Option<Child>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn next(State(s): State<Shared>) -> Response {
    let _ = s.seen.send(Seen::Ready(Instant::now()));
    let event = s.events.lock().unwrap().pop();
    let Some(event) = event else {
        // No more events: park the poll, as Lambda does between invocations.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
    (
        [
            ("content-type", "application/json".to_owned()),
            (
                "lambda-runtime-aws-request-id",
                uuid::Uuid::new_v4().to_string(),
            ),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793".to_owned(),
            ),
        ],
        event,
    )
        .into_response()
}

async fn response(
    State(s): State<Shared>,
    UrlPath(_id): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v == "streaming");
    let _ = s.seen.send(Seen::ResponseStarted { streaming });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                let _ = s.seen.send(Seen::Chunk(Instant::now(), bytes));
            }
            Err(e) => {
                let _ = s.seen.send(Seen::Error(format!("body: {e}")));
                return StatusCode::BAD_REQUEST;
            }
        }
    }
    let _ = s.seen.send(Seen::ResponseEnded(Instant::now()));
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Shared>, body: Bytes) -> StatusCode {
    let _ = s
        .seen
        .send(Seen::Error(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    /// Serves `events` (JSON payloads), one per `next` call, in order.
    pub async fn start(mut events: Vec<Vec<u8>>) -> Self {
        events.reverse();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            events: Arc::new(Mutex::new(events)),
            seen: tx,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            seen: rx,
            child: None,
        }
    }

    /// The next thing the function did, within 60 s; panics if the
    /// process exits meanwhile (a start-up error is on the test's stderr).
    pub async fn next_seen(&mut self, what: &str) -> Seen {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let wait =
                tokio::time::timeout(std::time::Duration::from_millis(200), self.seen.recv());
            if let Ok(seen) = wait.await {
                return seen.expect("the runtime API is up");
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the function exited ({status}) while waiting for {what}");
            }
            assert!(Instant::now() < deadline, "no {what} within 60 s");
        }
    }

    /// Starts the bootstrap `binary` against this runtime with `env`.
    pub fn spawn(&mut self, binary: &Path, env: &[(&str, &str)]) -> Instant {
        let started = Instant::now();
        let child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", self.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        self.child = Some(child);
        started
    }
}

/// A Lambda binary beside the running test's, built if missing
/// (`cargo test --workspace` builds them: this crate turns `lambda` on).
pub fn lambda_binary(name: &str) -> std::path::PathBuf {
    crate::functions_binary(name, "lambda")
}
