//! The Azure Functions custom handler: the same router serves the HTTP
//! triggers (the host forwards each request as is, `enableForwardingHttpRequest`),
//! and `POST /steps` receives the Service Bus trigger's invocation payload
//! (`{"Data": {"message": …}, "Metadata": {…}}`). One Service Bus queue
//! carries both kinds of job; the message's `ai-team-queue` property says
//! which: a step runs on the engine, a refresh job as the refresh worker
//! runs it. A job that must wait (a step another instance holds, a retry,
//! a rate limit) is sent again, scheduled for when it can run, and the
//! invocation succeeds: abandoning it would have Service Bus redeliver it
//! at once and spend its delivery count. A job that failed to run or
//! cannot be read answers 500, so the host abandons the message and
//! Service Bus redelivers it (dead-lettered past `MaxDeliveryCount`).
//! The HTTP trigger forwards every path, so `POST /steps` only runs a
//! message signed with the Service Bus key (`handler_app`); a request
//! posted to it through the HTTP trigger is refused with 401.

use std::sync::Arc;

use ai_team_core::engine::{Engine, Outcome};
use ai_team_core::queue::{STEPS_QUEUE, StepMessage};
use ai_team_core::refresh::{REFRESH_QUEUE, RefreshJob, RefreshOutcome, ReviewSource, run_refresh};
use ai_team_providers::azure_service_bus::{MessageKey, SIGNATURE_PROPERTY};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The Service Bus-triggered function's name (its folder, and the path the
/// host posts to).
pub const STEPS_FUNCTION: &str = "steps";
/// The trigger binding's name in `steps/function.json`.
pub const MESSAGE_BINDING: &str = "message";
/// The message property naming the logical queue (set by the sender).
pub const QUEUE_PROPERTY: &str = "ai-team-queue";

#[derive(Clone)]
struct Trigger {
    engine: Engine,
    review: Option<Arc<dyn ReviewSource>>,
}

/// The API router plus the queue trigger route; `review` is where refresh
/// jobs read from (GitHub), if configured; `signer` is the key the
/// service's senders sign messages with (`CloudAdapters::message_key`).
///
/// The HTTP trigger forwards every path, `/steps` included, so the queue
/// route cannot tell the host from a client by its path: every request to
/// it must carry a message signed with the Service Bus key (the
/// `ai-team-signature` property the service's own senders set), checked
/// by a layer over the whole router before any route runs. The API's own
/// routes keep their bearer auth (`AI_TEAM_API_TOKEN`).
pub fn handler_app(
    api: Router,
    engine: Engine,
    review: Option<Arc<dyn ReviewSource>>,
    signer: MessageKey,
) -> Router {
    api.merge(
        Router::new()
            .route(&format!("/{STEPS_FUNCTION}"), post(queue_invocation))
            .with_state(Trigger { engine, review }),
    )
    .layer(middleware::from_fn_with_state(
        Arc::new(signer),
        require_signed_invocation,
    ))
}

/// The largest invocation payload read (a Service Bus message is at most
/// 256 KiB on the standard tier, 100 MiB on premium; ours are tiny).
const MAX_INVOCATION_BYTES: usize = 1024 * 1024;

/// The signature property of an invocation's message.
fn signature_of(invocation: &Value) -> Option<&str> {
    let metadata = &invocation["Metadata"];
    ["UserProperties", "ApplicationProperties"]
        .iter()
        .find_map(|k| metadata[k][SIGNATURE_PROPERTY].as_str())
}

/// Whether the invocation carries a message signed for its queue.
pub fn is_signed(signer: &MessageKey, invocation: &Value) -> bool {
    let Some(signature) = signature_of(invocation) else {
        return false;
    };
    let message = match &invocation["Data"][MESSAGE_BINDING] {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(_) => return false,
        },
        other => other.clone(),
    };
    signer.verify(queue_of(invocation), &message, signature)
}

/// Lets through to the queue route only invocations whose message is
/// signed; every other path passes on to the API (and its auth).
async fn require_signed_invocation(
    State(signer): State<Arc<MessageKey>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() != format!("/{STEPS_FUNCTION}") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_INVOCATION_BYTES).await else {
        return refused("the invocation is too large or unreadable");
    };
    let signed = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|invocation| is_signed(&signer, &invocation));
    if !signed {
        tracing::warn!("queue route called without a signed Service Bus message: refused");
        return refused("a Service Bus message signed by this service is required");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refused(detail: &'static str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"detail": detail}))).into_response()
}

/// The logical queue of the invocation's message: its `ai-team-queue`
/// property (the host passes it under `UserProperties`, newer hosts also
/// under `ApplicationProperties`), `steps` when absent.
pub fn queue_of(invocation: &Value) -> &str {
    let metadata = &invocation["Metadata"];
    ["UserProperties", "ApplicationProperties"]
        .iter()
        .find_map(|k| metadata[k][QUEUE_PROPERTY].as_str())
        .unwrap_or(STEPS_QUEUE)
}

/// The message of an invocation payload: the host passes the body either
/// as a JSON string or, when it parsed it, as the object.
fn message_of<T: DeserializeOwned>(invocation: &Value, what: &str) -> Result<T, String> {
    let data = &invocation["Data"][MESSAGE_BINDING];
    let parsed = match data {
        Value::String(s) => serde_json::from_str(s),
        other => serde_json::from_value(other.clone()),
    };
    parsed.map_err(|e| format!("unreadable {what}: {e}"))
}

/// The step message in an invocation payload.
pub fn step_of(invocation: &Value) -> Result<StepMessage, String> {
    message_of(invocation, "step message")
}

fn answer(status: StatusCode, log: String) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"Outputs": {}, "Logs": [log], "ReturnValue": null})),
    )
}

async fn queue_invocation(
    State(trigger): State<Trigger>,
    Json(invocation): Json<Value>,
) -> (StatusCode, Json<Value>) {
    match queue_of(&invocation) {
        STEPS_QUEUE => run_step(&trigger.engine, &invocation).await,
        REFRESH_QUEUE => run_refresh_job(&trigger, &invocation).await,
        other => {
            tracing::error!(queue = other, "invocation for an unknown queue refused");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("unknown queue {other:?}"),
            )
        }
    }
}

async fn run_step(engine: &Engine, invocation: &Value) -> (StatusCode, Json<Value>) {
    let msg = match step_of(invocation) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "step invocation refused");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    };
    match engine.handle(&msg).await {
        Ok(Outcome::Busy { retry_in }) => {
            let payload = serde_json::to_value(&msg).unwrap_or_default();
            later(
                engine,
                STEPS_QUEUE,
                &payload,
                retry_in,
                "step busy elsewhere",
            )
            .await
        }
        Ok(Outcome::Retry { delay, reason }) => {
            let payload = serde_json::to_value(&msg).unwrap_or_default();
            later(engine, STEPS_QUEUE, &payload, delay, &reason).await
        }
        Ok(outcome) => answer(StatusCode::OK, format!("{outcome:?}")),
        Err(e) => {
            tracing::warn!(execution_id = msg.execution_id, step = %msg.step, error = %e, "step failed to run");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "step failed to run".into(),
            )
        }
    }
}

/// Sends the job again, scheduled `after` from now (a new message: Service
/// Bus's duplicate detection must not drop it), and settles this delivery;
/// if the send fails, the host abandons the message instead.
async fn later(
    engine: &Engine,
    queue: &str,
    payload: &Value,
    after: std::time::Duration,
    reason: &str,
) -> (StatusCode, Json<Value>) {
    match engine.queue.send(queue, payload, None, after).await {
        Ok(()) => answer(
            StatusCode::OK,
            format!("{reason}: sent again for {} ms from now", after.as_millis()),
        ),
        Err(e) => {
            tracing::warn!(queue, error = %e, "could not schedule the job again");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{reason}; not rescheduled: {e}"),
            )
        }
    }
}

async fn run_refresh_job(trigger: &Trigger, invocation: &Value) -> (StatusCode, Json<Value>) {
    let job: RefreshJob = match message_of(invocation, "refresh job") {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(error = %e, "refresh invocation refused");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    };
    let store = trigger.engine.store.as_ref();
    match run_refresh(store, trigger.review.as_deref(), &job).await {
        Ok(RefreshOutcome::Retry { delay, reason }) => {
            let payload = serde_json::to_value(&job).unwrap_or_default();
            later(&trigger.engine, REFRESH_QUEUE, &payload, delay, &reason).await
        }
        Ok(outcome) => answer(StatusCode::OK, format!("{outcome:?}")),
        Err(e) => {
            tracing::warn!(workflow_id = job.workflow_id, error = %e, "refresh failed to run");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "refresh failed to run".into(),
            )
        }
    }
}
