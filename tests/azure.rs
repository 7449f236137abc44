//! The Azure shape: Service Bus send against a local server that checks
//! the SAS token (recomputed here from the key) and the REST shape, and
//! the custom handler driven with the invocation payload the Functions
//! host posts for a Service Bus trigger, and with a forwarded HTTP request.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_team_core::queue::{QueueError, STEPS_QUEUE, StepQueue};
use ai_team_functions::{AppState, app, azure};
use ai_team_providers::azure_service_bus::{
    ConnectionString, MessageKey, SIGNATURE_PROPERTY, ServiceBusQueue,
};
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::{Harness, queue_of, queued_step};
use ai_team_tests::{TestDb, config_with};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tower::ServiceExt;

const INVOCATION: &str = include_str!("fixtures/azure/servicebus_invocation.json");
const KEY: &str = "bG9jYWwtZmFrZS1rZXk=";

/// What the fake Service Bus received.
#[derive(Debug, Clone)]
struct Received {
    queue: String,
    headers: HeaderMap,
    body: Value,
}

type Seen = Arc<Mutex<Vec<Received>>>;

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("utf-8")
        .into_owned()
}

/// Checks the token as Service Bus does: the signature over `sr\nse`
/// under the named key, an unexpired `se`, and `sr` naming this queue.
fn token_ok(headers: &HeaderMap, expected_resource: &str) -> bool {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(fields) = auth.strip_prefix("SharedAccessSignature ") else {
        return false;
    };
    let get = |name: &str| {
        fields
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    let (sr, sig, se, skn) = (get("sr"), get("sig"), get("se"), get("skn"));
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{sr}\n{se}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    skn == "send"
        && decode(&sig) == expected
        && se.parse::<u64>().is_ok_and(|t| t > now)
        && decode(&sr) == expected_resource
}

async fn fake_service_bus() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource_base = base.clone();
    let router = axum::Router::new()
        .route(
            "/{queue}/messages",
            post(
                move |State(seen): State<Seen>,
                      Path(queue): Path<String>,
                      headers: HeaderMap,
                      body: String| {
                    let resource = format!("{resource_base}/{queue}");
                    async move {
                        if !token_ok(&headers, &resource) {
                            return StatusCode::UNAUTHORIZED;
                        }
                        if headers.get("content-type").and_then(|v| v.to_str().ok())
                            != Some("application/json")
                        {
                            return StatusCode::UNSUPPORTED_MEDIA_TYPE;
                        }
                        let Ok(body) = serde_json::from_str(&body) else {
                            return StatusCode::BAD_REQUEST;
                        };
                        seen.lock().unwrap().push(Received {
                            queue,
                            headers,
                            body,
                        });
                        StatusCode::CREATED
                    }
                },
            ),
        )
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, seen)
}

#[tokio::test]
async fn service_bus_send_is_signed_and_carries_queue_dedup_and_schedule() {
    // Given a Service Bus that checks the SAS token
    let (base, seen) = fake_service_bus().await;
    let conn = ConnectionString::parse(&format!(
        "Endpoint={base}/;SharedAccessKeyName=send;SharedAccessKey={KEY}"
    ))
    .unwrap();
    let queue =
        ServiceBusQueue::with_connection_string(&reqwest::Client::new(), conn, "ai-team-steps");
    let payload = json!({"execution_id": 4, "step": "analysis", "attempt": 1});

    // When a step is sent now, and another in 90 seconds
    queue
        .send(STEPS_QUEUE, &payload, Some("4:analysis:1"), Duration::ZERO)
        .await
        .expect("send");
    queue
        .send(
            STEPS_QUEUE,
            &payload,
            Some("4:analysis:2"),
            Duration::from_secs(90),
        )
        .await
        .expect("send delayed");

    // Then both arrived on the queue with the REST shape, signed
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let sig = got[0].headers[SIGNATURE_PROPERTY].to_str().unwrap();
    assert!(signer().verify(STEPS_QUEUE, &payload, sig));
    assert!(
        got.iter()
            .all(|r| r.queue == "ai-team-steps" && r.body == payload)
    );
    assert_eq!(got[0].headers["ai-team-queue"], STEPS_QUEUE);
    let broker: Value =
        serde_json::from_str(got[0].headers["brokerproperties"].to_str().unwrap()).unwrap();
    assert_eq!(broker, json!({"MessageId": "4:analysis:1"}));
    let broker: Value =
        serde_json::from_str(got[1].headers["brokerproperties"].to_str().unwrap()).unwrap();
    let at = broker["ScheduledEnqueueTimeUtc"].as_str().unwrap();
    let at = chrono::DateTime::parse_from_rfc2822(&at.replace("GMT", "+0000")).unwrap();
    let ahead = at.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((85..=91).contains(&ahead), "scheduled {ahead} s ahead");
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_reported_as_unavailable() {
    let (base, seen) = fake_service_bus().await;
    let conn = ConnectionString::parse(&format!(
        "Endpoint={base}/;SharedAccessKeyName=send;SharedAccessKey=d3Jvbmc="
    ))
    .unwrap();
    let queue =
        ServiceBusQueue::with_connection_string(&reqwest::Client::new(), conn, "ai-team-steps");
    let err = queue
        .send(STEPS_QUEUE, &json!({}), None, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, QueueError::Unavailable(ref m) if m.contains("401")),
        "{err}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

/// The connection whose key signs the test's messages.
fn signer() -> MessageKey {
    ConnectionString::parse(&format!(
        "Endpoint=http://127.0.0.1:1/;SharedAccessKeyName=send;SharedAccessKey={KEY}"
    ))
    .unwrap()
    .message_key()
}

/// The invocation with its message signed as the service's senders sign it.
fn signed(mut invocation: Value) -> Value {
    let message = match &invocation["Data"]["message"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    let sig = signer().sign(azure::queue_of(&invocation), &message);
    invocation["Metadata"]["UserProperties"][SIGNATURE_PROPERTY] = json!(sig);
    invocation
}

async fn post_invocation(router: axum::Router, body: Value) -> (StatusCode, Value) {
    post_raw(router, signed(body)).await
}

async fn post_raw(router: axum::Router, body: Value) -> (StatusCode, Value) {
    let response = router
        .oneshot(
            Request::post("/steps")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_handler_runs_a_service_bus_invocation_and_refuses_a_poison_one() {
    // Given the handler over an engine whose first step is queued
    let db = TestDb::sqlite().await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-20").await;
    let execution = h.engine.start(wf.id).await.expect("start");
    let (_, jobs) = queue_of(&db);
    let first = queued_step(jobs.as_ref()).await;
    let api = app(AppState::new(db.store.clone(), config_with(&[])).with_engine(h.engine.clone()));
    let router = azure::handler_app(api, h.engine.clone(), None, signer());

    // When the host posts the Service Bus invocation carrying that step
    let mut invocation: Value = serde_json::from_str(INVOCATION).unwrap();
    invocation["Data"]["message"] = Value::String(first.payload.to_string());
    let (status, body) = post_invocation(router.clone(), invocation.clone()).await;

    // Then the step ran and the host is told it succeeded
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["Outputs"].is_object() && body["Logs"].is_array());
    let next = jobs
        .receive(STEPS_QUEUE, "test", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the next step was queued");
    assert_ne!(next.payload["step"], first.payload["step"]);
    let e = h.execution(&execution).await;
    assert_eq!(e.status.to_string(), "running");

    // And a poison message fails the invocation (the host abandons it)
    invocation["Data"]["message"] = Value::String("{\"execution_id\": \"x\"}".into());
    let (status, body) = post_invocation(router.clone(), invocation).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    // And forwarded HTTP requests reach the API routes unchanged
    let response = router
        .oneshot(
            Request::get("/health")
                .header("x-forwarded-for", "203.0.113.7")
                .header("x-ms-client-principal-name", "anonymous")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_job_on_the_service_bus_queue_runs_as_a_refresh() {
    // Given the handler with no code host to read from
    let db = TestDb::sqlite().await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-21").await;
    let api = app(AppState::new(db.store.clone(), config_with(&[])).with_engine(h.engine.clone()));
    let router = azure::handler_app(api, h.engine.clone(), None, signer());

    // When the host posts a message whose ai-team-queue property is refresh
    let mut invocation: Value = serde_json::from_str(INVOCATION).unwrap();
    invocation["Data"]["message"] = json!({"job_id": "j-1", "workflow_id": wf.id, "kind": "pr"});
    invocation["Metadata"]["UserProperties"]["ai-team-queue"] = json!("refresh");
    invocation["Metadata"]["ApplicationProperties"]["ai-team-queue"] = json!("refresh");
    let (status, body) = post_invocation(router.clone(), invocation.clone()).await;

    // Then it ran as a refresh: settled, its failure told on the workflow's log
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = db.store.events_after(wf.id, 0, 100).await.unwrap();
    let refresh = events
        .iter()
        .find(|e| e.data["job_id"] == "j-1")
        .expect("a refresh event");
    assert_eq!(refresh.data["status"], "failed");
    assert!(
        refresh.data["error"]
            .as_str()
            .unwrap()
            .contains("USE_REAL_GITHUB")
    );

    // And a message for a queue nobody serves is refused
    invocation["Metadata"]["UserProperties"]["ai-team-queue"] = json!("elsewhere");
    invocation["Metadata"]["ApplicationProperties"]["ai-team-queue"] = json!("elsewhere");
    let (status, _) = post_invocation(router, invocation).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_step_is_sent_again_for_later_and_its_delivery_settled() {
    // Given a queued first step that another instance holds for one second
    let db = TestDb::sqlite().await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-22").await;
    let execution = h.engine.start(wf.id).await.expect("start");
    let (_, jobs) = queue_of(&db);
    let first = queued_step(jobs.as_ref()).await;
    let step = first.payload["step"].as_str().unwrap().to_owned();
    db.store
        .claim_step(
            execution.id,
            ai_team_core::steps::Step::parse(&step).unwrap(),
            "other-instance",
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    let api = app(AppState::new(db.store.clone(), config_with(&[])).with_engine(h.engine.clone()));
    let router = azure::handler_app(api, h.engine.clone(), None, signer());

    // When the host delivers it
    let mut invocation: Value = serde_json::from_str(INVOCATION).unwrap();
    invocation["Data"]["message"] = Value::String(first.payload.to_string());
    let (status, body) = post_invocation(router.clone(), invocation).await;

    // Then the delivery is settled, and the step is queued again for when
    // the lease ends, not at once
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("busy"), "{body}");
    assert!(
        jobs.receive(STEPS_QUEUE, "test", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none(),
        "sent again with a delay"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = queued_step(jobs.as_ref()).await;
    assert_eq!(again.payload, first.payload);

    // And delivered then, it runs
    let mut invocation: Value = serde_json::from_str(INVOCATION).unwrap();
    invocation["Data"]["message"] = Value::String(again.payload.to_string());
    let (status, body) = post_invocation(router, invocation).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(
        queued_step(jobs.as_ref()).await.payload["step"],
        step.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_the_queue_route_without_a_signed_message_is_refused() {
    // Given the handler, with an API token, over an engine whose first
    // step is queued
    let db = TestDb::sqlite().await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-23").await;
    let execution = h.engine.start(wf.id).await.expect("start");
    let (_, jobs) = queue_of(&db);
    let first = queued_step(jobs.as_ref()).await;
    let api = app(AppState::new(
        db.store.clone(),
        config_with(&[("AI_TEAM_API_TOKEN", "t0ken")]),
    )
    .with_engine(h.engine.clone()));
    let router = azure::handler_app(api, h.engine.clone(), None, signer());
    let mut invocation: Value = serde_json::from_str(INVOCATION).unwrap();
    invocation["Data"]["message"] = Value::String(first.payload.to_string());

    // When someone posts the invocation shape through the HTTP trigger:
    // unsigned, signed with another key, or with a signature of another
    // message
    let (unsigned, body) = post_raw(router.clone(), invocation.clone()).await;
    let mut forged = invocation.clone();
    let other = ConnectionString::parse(
        "Endpoint=http://127.0.0.1:1/;SharedAccessKeyName=send;SharedAccessKey=b3RoZXI=",
    )
    .unwrap()
    .message_key();
    forged["Metadata"]["UserProperties"][SIGNATURE_PROPERTY] =
        json!(other.sign(STEPS_QUEUE, &first.payload));
    let (wrong_key, _) = post_raw(router.clone(), forged).await;
    let mut swapped = signed(invocation.clone());
    swapped["Data"]["message"] =
        json!({"execution_id": execution.id, "step": "integration", "attempt": 1});
    let (wrong_message, _) = post_raw(router.clone(), swapped).await;
    let (not_json, _) = {
        let response = router
            .clone()
            .oneshot(
                Request::post("/steps")
                    .header("content-type", "application/json")
                    .body(Body::from("not json"))
                    .unwrap(),
            )
            .await
            .unwrap();
        (response.status(), ())
    };

    // Then each is refused with 401 and no step ran
    for status in [unsigned, wrong_key, wrong_message, not_json] {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        body["detail"].as_str().unwrap().contains("signed"),
        "{body}"
    );
    assert_eq!(llm.requests(), 0);
    assert_eq!(h.execution(&execution).await.status.to_string(), "pending");

    // And the API behind the same router still wants its token
    let response = router
        .clone()
        .oneshot(Request::get("/workflows").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // And the host's signed invocation runs the step
    let (status, body) = post_invocation(router, invocation).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.execution(&execution).await.status.to_string(), "running");
}
