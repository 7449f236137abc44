//! The Azure Functions custom handler: the same router serves the HTTP
//! triggers (the host forwards each request as is, `enableForwardingHttpRequest`),
//! and `POST /steps` receives the Service Bus trigger's invocation payload
//! (`{"Data": {"message": …}, "Metadata": {…}}`) and runs the step. A step
//! that did not settle answers 500, so the host abandons the message and
//! Service Bus redelivers it (dead-lettered past `MaxDeliveryCount`).

use ai_team_core::engine::Engine;
use ai_team_core::queue::StepMessage;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The Service Bus-triggered function's name (its folder, and the path the
/// host posts to).
pub const STEPS_FUNCTION: &str = "steps";
/// The trigger binding's name in `steps/function.json`.
pub const MESSAGE_BINDING: &str = "message";

/// The API router plus the step trigger route.
pub fn handler_app(api: Router, engine: Engine) -> Router {
    api.merge(
        Router::new()
            .route(&format!("/{STEPS_FUNCTION}"), post(steps_invocation))
            .with_state(engine),
    )
}

/// The step message in an invocation payload: the host passes the message
/// body either as a JSON string or, when it parsed it, as the object.
pub fn step_of(invocation: &Value) -> Result<StepMessage, String> {
    let data = &invocation["Data"][MESSAGE_BINDING];
    let parsed = match data {
        Value::String(s) => serde_json::from_str(s),
        other => serde_json::from_value(other.clone()),
    };
    parsed.map_err(|e| format!("unreadable step message: {e}"))
}

fn answer(status: StatusCode, log: String) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"Outputs": {}, "Logs": [log], "ReturnValue": null})),
    )
}

async fn steps_invocation(
    State(engine): State<Engine>,
    Json(invocation): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let msg = match step_of(&invocation) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "step invocation refused");
            return answer(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    };
    match engine.handle(&msg).await {
        Ok(outcome) if outcome.settles() => answer(StatusCode::OK, format!("{outcome:?}")),
        Ok(outcome) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("not settled: {outcome:?}"),
        ),
        Err(e) => {
            tracing::warn!(execution_id = msg.execution_id, step = %msg.step, error = %e, "step failed to run");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "step failed to run".into(),
            )
        }
    }
}
