//! The `main` of every Lambda binary: read the settings and wire what the
//! function uses, once (the health function: the database; the functions
//! that read, stream, enqueue or push: the database and the cloud's
//! adapters; the workflows function and the step executor: also the LLM
//! and the engine), then run the runtime loop with the function's handler.
//! A configuration error is one line on stderr and exit code 2, which
//! Lambda reports as an init error.

use std::process::ExitCode;
use std::time::Duration;

use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use super::ws::push_after_writes;
use super::{refresh_handler, steps_handler, ws_handler};
use crate::groups::RouteGroup;
use crate::hosting::{self, Wired, WiredCloud, wire, wire_cloud, wire_store};
use crate::settings::Settings;
use crate::{AppState, app_with, integrations};
use axum::Router;

/// How often a stream looks for events other instances wrote.
const EVENT_POLL: Duration = Duration::from_millis(500);

fn failed(name: &str, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{name}: {message}");
    ExitCode::from(2)
}

fn settings(name: &str) -> Result<Settings, ExitCode> {
    hosting::settings().map_err(|message| failed(name, message))
}

async fn wired(name: &str) -> Result<Wired, ExitCode> {
    wire(settings(name)?)
        .await
        .map_err(|message| failed(name, message))
}

async fn wired_cloud(name: &str) -> Result<WiredCloud, ExitCode> {
    wire_cloud(settings(name)?)
        .await
        .map_err(|message| failed(name, message))
}

fn exit(name: &str, result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An HTTP function serving only `group`'s routes, `routes` being the
/// group's function in `groups` (named by the binary, so that only its
/// code is linked in). The events group streams its responses (a function
/// URL in `RESPONSE_STREAM` mode); the others answer buffered, behind the
/// HTTP API.
pub async fn serve_group(group: RouteGroup, routes: impl FnOnce() -> Router<AppState>) -> ExitCode {
    let name = group.binary();
    let (state, push) = match group {
        RouteGroup::Health => {
            // A ping and the API's description: the database only.
            let settings = match settings(name) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let wired = match wire_store(settings).await {
                Ok(w) => w,
                Err(message) => return failed(name, message),
            };
            let router = app_with(
                AppState::without_tickets(wired.store, wired.config),
                routes(),
            );
            return exit(name, lambda_http::run(router).await);
        }
        // The triggers run the engine; `from-jira` reads tickets.
        RouteGroup::Workflows => {
            let wired = match wired(name).await {
                Ok(w) => w,
                Err(code) => return code,
            };
            let state = match AppState::try_new(wired.store, wired.config) {
                Ok(s) => s.with_engine(wired.engine),
                Err(e) => return failed(name, e),
            };
            (state, wired.push)
        }
        // Reads, streams, webhook deliveries and refresh requests: the
        // store and the cloud's queue, no LLM.
        RouteGroup::Conversations
        | RouteGroup::Events
        | RouteGroup::Delivery
        | RouteGroup::Webhooks => {
            let wired = match wired_cloud(name).await {
                Ok(w) => w,
                Err(code) => return code,
            };
            let mut state =
                AppState::without_tickets(wired.store, wired.config).with_queue(wired.queue);
            if group == RouteGroup::Events {
                state = state.with_events(EVENT_POLL);
            }
            (state, wired.push)
        }
    };
    let store = state.store.clone();
    let mut router = app_with(state, routes());
    if let Some(push) = push {
        router = push_after_writes(router, store, push);
    }
    let result = if group == RouteGroup::Events {
        lambda_http::run_with_streaming_response(router).await
    } else {
        lambda_http::run(router).await
    };
    exit(name, result)
}

/// The step executor, triggered by the SQS steps queue.
pub async fn serve_steps() -> ExitCode {
    let name = "lambda-steps";
    let wired = match wired(name).await {
        Ok(w) => w,
        Err(code) => return code,
    };
    let (engine, sqs, push) = (&wired.engine, wired.sqs.as_ref(), wired.push.as_deref());
    let handler = service_fn(async |event: LambdaEvent<SqsEvent>| {
        Ok::<SqsBatchResponse, Error>(steps_handler(engine, sqs, push, event.payload).await)
    });
    exit(name, lambda_runtime::run(handler).await)
}

/// The refresh executor, triggered by the SQS refresh queue.
pub async fn serve_refresh() -> ExitCode {
    let name = "lambda-refresh";
    let wired = match wired_cloud(name).await {
        Ok(w) => w,
        Err(code) => return code,
    };
    let source = match integrations::review_source(&wired.config) {
        Ok(s) => s,
        Err(e) => return failed(name, e),
    };
    let (store, sqs, push) = (
        wired.store.as_ref(),
        wired.sqs.as_ref(),
        wired.push.as_deref(),
    );
    let handler = service_fn(async |event: LambdaEvent<SqsEvent>| {
        Ok::<SqsBatchResponse, Error>(
            refresh_handler(store, source.as_deref(), sqs, push, event.payload).await,
        )
    });
    exit(name, lambda_runtime::run(handler).await)
}

/// The WebSocket API's function (`$connect`, `$disconnect`, `$default`).
pub async fn serve_ws() -> ExitCode {
    let name = "lambda-ws";
    let wired = match wired_cloud(name).await {
        Ok(w) => w,
        Err(code) => return code,
    };
    let (store, push) = (wired.store.as_ref(), wired.push.as_deref());
    let token = wired.config.api_token.as_ref();
    let handler = service_fn(
        async |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            Ok::<ApiGatewayProxyResponse, Error>(
                ws_handler(store, push, token, event.payload).await,
            )
        },
    );
    exit(name, lambda_runtime::run(handler).await)
}
