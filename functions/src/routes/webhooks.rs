//! `POST /webhooks/github`: GitHub deliveries. The signature is checked
//! first, over the raw bytes, before anything is parsed or stored: 401
//! when it is missing, wrong, not `sha256=`, or when no secret is
//! configured (an unsigned delivery is never accepted). Then `ping` is
//! answered, `pull_request`/`check_run`/`check_suite` are matched to their
//! workflow and applied once per `X-GitHub-Delivery` (one transaction with
//! the delivery record and the event), and anything else is 202, ignored.
//! The route is open to GitHub without the API token (see `auth`).

use ai_team_core::delivery::{WebhookDelivery, WebhookOutcome};
use ai_team_core::ledger::NewEvent;
use ai_team_core::query::FieldError;
use ai_team_providers::github::webhook::{self, Parsed};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::routes::{ErrorBody, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/github", post(github_webhook))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn required<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<&'a str> {
    header(headers, name)
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| {
            ApiError::validation(FieldError::new("header", name, "Field required", "missing"))
        })
}

/// The event of an applied delivery (also logged).
fn delivery_event(d: &WebhookDelivery) -> NewEvent {
    ai_team_core::WorkflowEvent::Webhook(Box::new(d.clone())).into()
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

#[utoipa::path(post, path = "/webhooks/github", tag = "webhooks",
    request_body(content = Object, description = "A GitHub delivery, signed with X-Hub-Signature-256"),
    params(("X-GitHub-Event" = String, Header), ("X-GitHub-Delivery" = String, Header),
           ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC of the raw body>")),
    responses((status = 200, description = "Applied, a duplicate acknowledged, or ping"),
              (status = 202, description = "An event not followed, or no workflow matches"),
              (status = 401, description = "Bad or missing signature, or no secret configured", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
#[tracing::instrument(skip_all, fields(event, delivery_id))]
pub async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::validation(FieldError::new(
                "body",
                "payload",
                r.body_text(),
                "value_error",
            ))
        }
    })?;
    let Some(secret) = &state.config.integrations.webhook_secret else {
        tracing::warn!("webhook refused: GITHUB_WEBHOOK_SECRET is not set");
        return Err(ApiError::Unauthorized("Webhook secret not configured"));
    };
    if !webhook::verify(
        secret.expose().as_bytes(),
        &body,
        header(&headers, "x-hub-signature-256"),
    ) {
        tracing::warn!("webhook refused: bad or missing signature");
        return Err(ApiError::Unauthorized("Invalid signature"));
    }
    let event = required(&headers, "x-github-event")?;
    let delivery_id = required(&headers, "x-github-delivery")?;
    tracing::Span::current().record("event", event);
    tracing::Span::current().record("delivery_id", delivery_id);
    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::validation(FieldError::new(
            "body",
            "payload",
            e.to_string(),
            "json_invalid",
        ))
    })?;
    let parsed = webhook::parse(event, delivery_id, &payload)
        .map_err(|m| ApiError::validation(FieldError::new("body", event, m, "value_error")))?;
    let delivery = match parsed {
        Parsed::Ping => return Ok(answer(StatusCode::OK, json!({"message": "pong"}))),
        Parsed::Ignored => {
            tracing::info!("webhook event ignored");
            return Ok(answer(
                StatusCode::ACCEPTED,
                json!({"message": format!("Event {event} ignored")}),
            ));
        }
        Parsed::Apply(d) => d,
    };
    let event_record = delivery_event(&delivery);
    Ok(
        match state
            .store
            .apply_webhook(&delivery, std::slice::from_ref(&event_record))
            .await?
        {
            WebhookOutcome::Applied {
                workflow_id,
                changed,
            } => answer(
                StatusCode::OK,
                json!({"message": "Delivery applied", "workflow_id": workflow_id, "changed": changed}),
            ),
            WebhookOutcome::Duplicate => {
                tracing::info!("webhook delivery already processed");
                answer(
                    StatusCode::OK,
                    json!({"message": "Delivery already processed"}),
                )
            }
            WebhookOutcome::Unmatched => {
                tracing::info!(repository = %delivery.target.repository, "no workflow matches the delivery");
                answer(
                    StatusCode::ACCEPTED,
                    json!({"message": "No workflow matches this delivery"}),
                )
            }
        },
    )
}
