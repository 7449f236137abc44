//! WebSocket on AWS: the `lambda-ws` handler with recorded API Gateway
//! WebSocket events (`$connect`, `$default`, `$disconnect`), connections
//! kept in the store (SQLite and PostgreSQL), and events pushed through
//! the API Gateway Management API adapter to a local server that speaks
//! its `POST /{stage}/@connections/{id}` shape (SigV4-signed), by the
//! catch-up route and by the step function as steps commit.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ai_team_core::ledger::{EventKind, NewEvent};
use ai_team_core::push::PushChannel;
use ai_team_functions::configuration::Secret;
use ai_team_functions::lambda::{steps_handler, ws_handler};
use ai_team_providers::aws_apigw::ApiGatewayPush;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::{Harness, queue_of, queued_step};
use ai_team_tests::{TestDb, on_both_databases};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

const CONNECT: &str = include_str!("fixtures/lambda/websocket_connect.json");
const MESSAGE: &str = include_str!("fixtures/lambda/websocket_message.json");
const TOKEN: &str = "s3cret-token";

on_both_databases!(
    clients_connect_catch_up_get_each_step_s_events_and_leave,
    a_gone_client_is_forgotten,
    the_token_may_travel_as_a_websocket_subprotocol_instead_of_the_url,
);

/// The API Gateway Management API's `PostToConnection`, recording frames.
#[derive(Clone, Default)]
struct Gateway {
    frames: Arc<Mutex<Vec<(String, Value)>>>,
    gone: Arc<Mutex<HashSet<String>>>,
}

impl Gateway {
    async fn start() -> (Self, String) {
        let gateway = Gateway::default();
        let app = axum::Router::new()
            .route("/prod/@connections/{id}", post(post_to_connection))
            .with_state(gateway.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (gateway, format!("http://{address}/prod"))
    }

    fn frames_to(&self, connection: &str) -> Vec<Value> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == connection)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

async fn post_to_connection(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("AWS4-HMAC-SHA256 ") && v.contains("/execute-api/aws4_request")
        });
    if !signed {
        return (StatusCode::FORBIDDEN, "unsigned").into_response();
    }
    if gateway.gone.lock().unwrap().contains(&id) {
        return (
            StatusCode::GONE,
            [
                ("x-amzn-errortype", "GoneException"),
                ("content-type", "application/json"),
            ],
            r#"{"message":"Connection is gone"}"#,
        )
            .into_response();
    }
    let frame: Value = serde_json::from_slice(&body).expect("a JSON frame");
    gateway.frames.lock().unwrap().push((id, frame));
    StatusCode::OK.into_response()
}

fn push_to(endpoint: &str) -> ApiGatewayPush {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        )))
        .http_client(ai_team_providers::aws::https_client())
        .build();
    ApiGatewayPush::from_config(&sdk, endpoint)
}

fn event(fixture: &str, connection: &str, query: Value) -> ApiGatewayWebsocketProxyRequest {
    let mut e: Value = serde_json::from_str(fixture).unwrap();
    e["requestContext"]["connectionId"] = json!(connection);
    if !query.is_null() {
        e["queryStringParameters"] = query;
    }
    serde_json::from_value(e).unwrap()
}

fn disconnect(connection: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut e: Value = serde_json::from_str(MESSAGE).unwrap();
    e["requestContext"]["routeKey"] = json!("$disconnect");
    e["requestContext"]["eventType"] = json!("DISCONNECT");
    e["requestContext"]["connectionId"] = json!(connection);
    e["body"] = Value::Null;
    serde_json::from_value(e).unwrap()
}

fn status(r: &ApiGatewayProxyResponse) -> i64 {
    r.status_code
}

fn ids(frames: &[Value]) -> Vec<i64> {
    frames.iter().map(|f| f["id"].as_i64().unwrap()).collect()
}

async fn clients_connect_catch_up_get_each_step_s_events_and_leave(db: TestDb) {
    // Given a workflow with two events, and an execution ready to run
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-30").await;
    db.store
        .append_events(
            wf.id,
            None,
            &[NewEvent::new(EventKind::Workflow, json!({"n": 1}))],
        )
        .await
        .unwrap();
    let (gateway, endpoint) = Gateway::start().await;
    let push = push_to(&endpoint);
    let channel: &dyn PushChannel = &push;
    let store = db.store.as_ref();
    let token = Secret::new(TOKEN);
    let wf_id = wf.id.to_string();

    // When clients connect without the token, to a missing workflow, with a
    // bad resume point, and properly (the token in the query string)
    let no_token = ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(CONNECT, "A", json!({"workflow_id": wf_id})),
    )
    .await;
    let missing = ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(
            CONNECT,
            "A",
            json!({"workflow_id": "999999", "token": TOKEN}),
        ),
    )
    .await;
    let bad_after = ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(
            CONNECT,
            "A",
            json!({"workflow_id": wf_id, "after": "-1", "token": TOKEN}),
        ),
    )
    .await;
    let ok = ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(CONNECT, "A", json!({"workflow_id": wf_id, "token": TOKEN})),
    )
    .await;

    // Then only the last is accepted, and nothing is pushed during $connect
    assert_eq!(
        [
            status(&no_token),
            status(&missing),
            status(&bad_after),
            status(&ok)
        ],
        [401, 404, 422, 200]
    );
    assert!(gateway.frames_to("A").is_empty());

    // When the client sends a message, it gets the log so far, once
    let backlog = db.store.events_after(wf.id, 0, 100).await.unwrap();
    let r = ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(MESSAGE, "A", Value::Null),
    )
    .await;
    assert_eq!(status(&r), 200);
    let frames = gateway.frames_to("A");
    assert_eq!(
        ids(&frames),
        backlog.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert_eq!(frames[0]["workflow_id"], wf.id);
    assert!(frames[0]["type"].is_string() && frames[0]["created_at"].is_string());
    ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(MESSAGE, "A", Value::Null),
    )
    .await;
    assert_eq!(gateway.frames_to("A").len(), backlog.len(), "nothing twice");

    // When the first step runs in the step function
    let execution = h.engine.start(wf.id).await.expect("start");
    let first = queued_step(queue_of(&db).1.as_ref()).await;
    let sqs: SqsEvent = serde_json::from_value(json!({"Records": [{
        "messageId": "m-1", "receiptHandle": "r-1", "body": first.payload.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:steps", "awsRegion": "us-east-1"
    }]}))
    .unwrap();
    let failures = steps_handler(&h.engine, None, Some(channel), sqs).await;
    assert!(failures.batch_item_failures.is_empty());

    // Then the client got every event since, in order, the execution's included
    let all = db.store.events_after(wf.id, 0, 1000).await.unwrap();
    let frames = gateway.frames_to("A");
    assert_eq!(ids(&frames), all.iter().map(|e| e.id).collect::<Vec<_>>());
    assert!(
        frames.iter().any(|f| f["execution_id"] == execution.id),
        "{frames:?}"
    );

    // When it disconnects, later events are not pushed to it
    assert_eq!(
        status(&ws_handler(store, Some(channel), Some(&token), disconnect("A")).await),
        200
    );
    db.store
        .append_events(
            wf.id,
            None,
            &[NewEvent::new(EventKind::Workflow, json!({"n": 2}))],
        )
        .await
        .unwrap();
    ai_team_core::fanout::push_workflow(store, channel, wf.id)
        .await
        .unwrap();
    assert_eq!(gateway.frames_to("A").len(), all.len());
    let r = ws_handler(
        store,
        Some(channel),
        Some(&token),
        event(MESSAGE, "A", Value::Null),
    )
    .await;
    assert_eq!(
        status(&r),
        410,
        "an unknown connection is told to reconnect"
    );
}

async fn a_gone_client_is_forgotten(db: TestDb) {
    // Given two clients of a workflow with one event, one of which has gone
    let wf = db.workflow("SHOP-31").await;
    db.store
        .append_events(
            wf.id,
            None,
            &[NewEvent::new(EventKind::Workflow, json!({"n": 1}))],
        )
        .await
        .unwrap();
    let (gateway, endpoint) = Gateway::start().await;
    let push = push_to(&endpoint);
    let store = db.store.as_ref();
    for c in ["stays", "left"] {
        let r = ws_handler(
            store,
            Some(&push),
            None,
            event(
                CONNECT,
                c,
                json!({"workflow_id": wf.id.to_string(), "after": "0"}),
            ),
        )
        .await;
        assert_eq!(status(&r), 200);
    }
    gateway.gone.lock().unwrap().insert("left".into());

    // When events are pushed
    let pushed = ai_team_core::fanout::push_workflow(store, &push, wf.id)
        .await
        .unwrap();

    // Then the one that stays got them, the gone one is removed
    assert_eq!((pushed.frames, pushed.gone), (1, 1));
    assert_eq!(gateway.frames_to("stays").len(), 1);
    let left: Vec<String> = store
        .push_connections(wf.id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    assert_eq!(left, ["stays"]);

    // And deleting the workflow drops its connections
    store.delete_workflow(wf.id).await.unwrap();
    assert!(store.push_connection("stays").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_an_http_function_pushes_its_events() {
    use ai_team_functions::lambda::ws::push_after_writes;
    use ai_team_functions::{AppState, app_with, groups};
    use tower::ServiceExt;

    // Given a connected client of a workflow, and the workflows function's
    // router as it runs on Lambda with a push channel
    let db = TestDb::sqlite().await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-32").await;
    let (gateway, endpoint) = Gateway::start().await;
    let push: Arc<dyn PushChannel> = Arc::new(push_to(&endpoint));
    let r = ws_handler(
        db.store.as_ref(),
        Some(push.as_ref()),
        None,
        event(CONNECT, "C", json!({"workflow_id": wf.id.to_string()})),
    )
    .await;
    assert_eq!(status(&r), 200);
    let state = AppState::new(db.store.clone(), ai_team_tests::config_with(&[]))
        .with_engine(h.engine.clone());
    let router = push_after_writes(
        app_with(state, groups::workflows()),
        db.store.clone(),
        push.clone(),
    );

    // When the execution is started over HTTP
    let request = axum::http::Request::post(format!("/workflows/{}/execute", wf.id))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 202);

    // Then the client already has the events it wrote, before any step ran
    let frames = gateway.frames_to("C");
    let all = db.store.events_after(wf.id, 0, 100).await.unwrap();
    assert!(!all.is_empty());
    assert_eq!(ids(&frames), all.iter().map(|e| e.id).collect::<Vec<_>>());

    // And a read pushes nothing
    let request = axum::http::Request::get(format!("/workflows/{}", wf.id))
        .body(axum::body::Body::empty())
        .unwrap();
    router.oneshot(request).await.unwrap();
    assert_eq!(gateway.frames_to("C").len(), frames.len());
}

async fn the_token_may_travel_as_a_websocket_subprotocol_instead_of_the_url(db: TestDb) {
    // Given a workflow and the WebSocket function with an API token
    let wf = db.workflow("SHOP-33").await;
    let store = db.store.as_ref();
    let token = Secret::new(TOKEN);
    let with_protocols = |connection: &str, protocols: &str| {
        let mut e: Value = serde_json::from_str(CONNECT).unwrap();
        e["requestContext"]["connectionId"] = json!(connection);
        e["queryStringParameters"] = json!({"workflow_id": wf.id.to_string()});
        e["headers"]["Sec-WebSocket-Protocol"] = json!(protocols);
        e["multiValueHeaders"]["Sec-WebSocket-Protocol"] = json!([protocols]);
        serde_json::from_value::<ApiGatewayWebsocketProxyRequest>(e).unwrap()
    };

    // When a browser offers ["ai-team", "bearer.<token>"], a wrong token,
    // or only the protocol
    let ok = ws_handler(
        store,
        None,
        Some(&token),
        with_protocols("P1", &format!("ai-team, bearer.{TOKEN}")),
    )
    .await;
    let wrong = ws_handler(
        store,
        None,
        Some(&token),
        with_protocols("P2", "ai-team, bearer.guess"),
    )
    .await;
    let none = ws_handler(store, None, Some(&token), with_protocols("P3", "ai-team")).await;

    // Then the token is accepted from the subprotocol, the answer selects
    // `ai-team` (never echoes the token), and the others are refused
    assert_eq!(status(&ok), 200, "{:?}", ok.body);
    assert_eq!(ok.headers["sec-websocket-protocol"], "ai-team");
    assert!(
        ok.headers
            .iter()
            .all(|(_, v)| !v.to_str().unwrap_or_default().contains(TOKEN))
    );
    assert_eq!(status(&wrong), 401);
    assert_eq!(status(&none), 401);
    assert!(store.push_connection("P1").await.unwrap().is_some());
    assert!(store.push_connection("P2").await.unwrap().is_none());
}
