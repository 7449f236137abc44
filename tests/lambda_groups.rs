//! One Lambda function per endpoint group: each group's router answers
//! its own routes and nothing else; template.yaml routes to each function
//! exactly its group's paths; the events function streams its responses
//! (function URL, `RESPONSE_STREAM`), live events included, and ends each
//! stream before the function's timeout.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use ai_team_core::ledger::{EventKind, NewEvent};
use ai_team_functions::lambda::{api_handler, stream_handler};
use ai_team_functions::{AppState, RouteGroup, app_for};
use ai_team_tests::{TestDb, config_with};
use axum::body::Body;
use axum::http::{Method, Request};
use futures_util::StreamExt;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};
use tower::ServiceExt;

const FUNCTION_URL_LIST: &str = include_str!("fixtures/lambda/function_url_get_workflows.json");
const HTTP_API_GET: &str = include_str!("fixtures/lambda/apigw_v2_get_health.json");

/// Whether the router answered with its fallback: no route of its own.
async fn unrouted(router: &axum::Router, method: Method, path: &str) -> bool {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    if response.status() != 404 {
        return false;
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).ok() == Some(json!({"detail": "Not Found"}))
}

#[tokio::test]
async fn each_group_function_mounts_only_its_own_routes() {
    // Given a workflow, and one router per group as each function builds it
    let db = TestDb::sqlite().await;
    let id = db.workflow("SHOP-1").await.id;
    let probes: Vec<(Method, String, RouteGroup)> = vec![
        (Method::GET, "/workflows".into(), RouteGroup::Workflows),
        (
            Method::GET,
            format!("/workflows/{id}"),
            RouteGroup::Workflows,
        ),
        (
            Method::GET,
            format!("/workflows/{id}/executions"),
            RouteGroup::Workflows,
        ),
        (
            Method::GET,
            format!("/workflows/{id}/compare?with={id}"),
            RouteGroup::Workflows,
        ),
        (
            Method::POST,
            "/workflows/from-jira/SHOP-1".into(),
            RouteGroup::Workflows,
        ),
        (
            Method::GET,
            "/conversations/1/llm-calls".into(),
            RouteGroup::Conversations,
        ),
        (
            Method::GET,
            "/conversations/1/messages".into(),
            RouteGroup::Conversations,
        ),
        (
            Method::GET,
            format!("/events/workflows/{id}"),
            RouteGroup::Events,
        ),
        (
            Method::GET,
            format!("/workflows/{id}/pr"),
            RouteGroup::Delivery,
        ),
        (
            Method::GET,
            format!("/workflows/{id}/diffs"),
            RouteGroup::Delivery,
        ),
        (
            Method::POST,
            format!("/workflows/{id}/artifacts/refresh"),
            RouteGroup::Delivery,
        ),
        (
            Method::POST,
            "/webhooks/github".into(),
            RouteGroup::Webhooks,
        ),
        (Method::GET, "/health".into(), RouteGroup::Health),
        (Method::GET, "/openapi.json".into(), RouteGroup::Health),
    ];

    for group in RouteGroup::ALL {
        let state = AppState::new(db.store.clone(), config_with(&[]))
            .with_events(Duration::from_millis(50));
        let router = app_for(state, &[group]);
        // Then it answers its own routes and 404s the others' and unknown ones
        for (method, path, owner) in &probes {
            let missing = unrouted(&router, method.clone(), path).await;
            assert_eq!(
                missing,
                *owner != group,
                "{} {method} {path} (owned by {owner:?})",
                group.binary()
            );
        }
        assert!(unrouted(&router, Method::GET, "/no/such/path").await);
    }
}

/// The resources of template.yaml, by logical name, as their text.
fn template_resources() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
        .expect("template.yaml");
    let resources = text
        .split("\nResources:\n")
        .nth(1)
        .expect("a Resources section");
    let resources = resources.split("\nOutputs:").next().unwrap();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in resources.lines() {
        let is_name = line.starts_with("  ")
            && !line.starts_with("   ")
            && !line.trim_start().starts_with('#')
            && line.trim_end().ends_with(':');
        if is_name {
            out.push((line.trim().trim_end_matches(':').to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

fn function_of<'a>(resources: &'a [(String, String)], binary: &str) -> &'a str {
    let matching: Vec<_> = resources
        .iter()
        .filter(|(_, body)| {
            body.lines()
                .any(|l| l.trim() == format!("Binary: {binary}"))
        })
        .collect();
    assert_eq!(matching.len(), 1, "one function builds {binary}");
    &matching[0].1
}

#[test]
fn the_template_routes_each_group_to_its_own_function() {
    let resources = template_resources();
    for group in RouteGroup::ALL {
        let body = function_of(&resources, group.binary());
        let mut routed = BTreeSet::new();
        for line in body.lines() {
            let line = line.trim();
            if let Some(props) = line.strip_prefix("Properties: {ApiId: !Ref HttpApi") {
                let props = props.trim_end_matches('}');
                if props.is_empty() {
                    routed.insert("$default".to_owned());
                    continue;
                }
                let path = props
                    .split("Path: ")
                    .nth(1)
                    .and_then(|p| p.split(", Method: ").next())
                    .expect("Path and Method")
                    .trim_matches('"');
                let method = props.split("Method: ").nth(1).expect("Method");
                routed.insert(format!("{method} {path}"));
            }
        }
        let expected: BTreeSet<String> = group
            .http_api_routes()
            .iter()
            .map(|r| (*r).to_owned())
            .collect();
        assert_eq!(routed, expected, "{}", group.binary());
        if group == RouteGroup::Events {
            assert!(body.contains("InvokeMode: RESPONSE_STREAM"), "{body}");
            assert!(body.contains("AI_TEAM_STREAM_MAX_SECONDS"), "{body}");
        }
    }
    for (binary, queue) in [
        ("lambda-steps", "StepsQueue"),
        ("lambda-refresh", "RefreshQueue"),
    ] {
        let body = function_of(&resources, binary);
        assert!(
            body.contains(&format!("Queue: !GetAtt {queue}.Arn")),
            "{binary}"
        );
        assert!(body.contains("ReportBatchItemFailures"), "{binary}");
        assert!(body.contains("sqs:ChangeMessageVisibility"), "{binary}");
        assert!(body.contains("execute-api:ManageConnections"), "{binary}");
    }
    // And the functions whose writes add events push them
    for binary in ["lambda-workflows", "lambda-delivery"] {
        assert!(
            function_of(&resources, binary).contains("execute-api:ManageConnections"),
            "{binary}"
        );
    }
    // And the WebSocket API sends its three routes to lambda-ws
    assert!(function_of(&resources, "lambda-ws").contains("execute-api:ManageConnections"));
    let integration = &resources
        .iter()
        .find(|(name, _)| name == "WebSocketIntegration")
        .expect("WebSocketIntegration")
        .1;
    assert!(integration.contains("${WsFunction.Arn}"), "{integration}");
    for route in ["$connect", "$disconnect", "$default"] {
        assert!(
            resources
                .iter()
                .any(|(_, body)| body.contains(&format!("RouteKey: {route}"))
                    && body.contains("integrations/${WebSocketIntegration}")),
            "{route}"
        );
    }
    // And every Lambda binary of the crate is deployed
    let cargo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/Cargo.toml"
    ))
    .unwrap();
    for name in cargo
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"lambda-"))
    {
        let binary = format!("lambda-{}", name.trim_end_matches('"'));
        function_of(&resources, &binary);
    }
}

/// A function URL event for `GET path`.
fn function_url_get(path: &str, last_event_id: Option<i64>) -> LambdaEvent<LambdaRequest> {
    let mut event: Value = serde_json::from_str(FUNCTION_URL_LIST).unwrap();
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = json!({});
    event["requestContext"]["http"]["path"] = json!(path);
    event["headers"]["accept"] = json!("text/event-stream");
    if let Some(id) = last_event_id {
        event["headers"]["last-event-id"] = json!(id.to_string());
    }
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    LambdaEvent::new(request, Context::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_function_streams_live_events_and_ends_before_its_timeout() {
    // Given a workflow with one event, and the events function's router
    // with streams capped at 2 seconds
    let db = TestDb::sqlite().await;
    let id = db.workflow("SHOP-2").await.id;
    db.store
        .append_events(
            id,
            None,
            &[NewEvent::new(EventKind::Workflow, json!({"note": "first"}))],
        )
        .await
        .unwrap();
    let before = db.store.events_after(id, 0, 100).await.unwrap();
    let state = AppState::new(
        db.store.clone(),
        config_with(&[("AI_TEAM_STREAM_MAX_SECONDS", "2")]),
    )
    .with_events(Duration::from_millis(50));
    let router = app_for(state, &[RouteGroup::Events]);

    // When a function URL asks for the stream
    let started = std::time::Instant::now();
    let response = stream_handler(
        router.clone(),
        function_url_get(&format!("/events/workflows/{id}/stream"), None),
    )
    .await
    .unwrap();

    // Then the prelude says 200 and text/event-stream
    let prelude = &response.metadata_prelude;
    assert_eq!(prelude.status_code, 200);
    assert_eq!(
        prelude.headers["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = std::pin::pin!(response.stream);
    let mut seen = String::new();
    let mut read_until = async |needle: &str, seen: &mut String| {
        while !seen.contains(needle) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} within 5 s; got {seen}"))
                .unwrap_or_else(|| panic!("stream ended before {needle:?}; got {seen}"))
                .expect("chunk");
            seen.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    // And the log so far arrives first
    let last = before.last().expect("the first event").id;
    read_until(&format!("id: {last}\n"), &mut seen).await;

    // And an event written while the stream is open arrives on it
    db.store
        .append_events(
            id,
            None,
            &[NewEvent::new(EventKind::Workflow, json!({"note": "live"}))],
        )
        .await
        .unwrap();
    read_until("\"note\":\"live\"", &mut seen).await;

    // And the stream ends by itself once its 2 seconds are up
    let rest = tokio::time::timeout(Duration::from_secs(10), body.count())
        .await
        .expect("the stream ended");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(8),
        "{elapsed:?} ({rest} more chunks)"
    );

    // And a reconnect with Last-Event-ID gets only what came after
    let response = stream_handler(
        router,
        function_url_get(&format!("/events/workflows/{id}/stream"), Some(last)),
    )
    .await
    .unwrap();
    let mut body = std::pin::pin!(response.stream);
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = std::str::from_utf8(&first).unwrap();
    assert!(first.contains("\"note\":\"live\""), "{first}");
    assert!(!first.contains(&format!("id: {last}\n")), "{first}");
}

/// An HTTP API event for `GET /workflows` from `source_ip`, carrying the
/// client's own `x-forwarded-for`.
fn http_api_get_workflows(source_ip: &str, forwarded: &str) -> LambdaEvent<LambdaRequest> {
    let mut event: Value = serde_json::from_str(HTTP_API_GET).unwrap();
    event["rawPath"] = json!("/workflows");
    event["requestContext"]["http"]["path"] = json!("/workflows");
    event["requestContext"]["http"]["sourceIp"] = json!(source_ip);
    event["headers"]["x-forwarded-for"] = json!(format!("{forwarded}, {source_ip}"));
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    LambdaEvent::new(request, Context::default())
}

#[tokio::test]
async fn on_lambda_the_rate_limit_keys_on_api_gateways_source_ip() {
    // Given the workflows function limited to 2 requests a minute
    let db = TestDb::sqlite().await;
    let state = AppState::new(
        db.store.clone(),
        config_with(&[("AI_TEAM_RATE_LIMIT_PER_MINUTE", "2")]),
    );
    let router = app_for(state, &[RouteGroup::Workflows]);
    let status = |v: Value| v["statusCode"].as_u64().unwrap();

    // When one caller sends a different first X-Forwarded-For hop each time
    let mut seen = Vec::new();
    for i in 0..3 {
        let answer = api_handler(
            router.clone(),
            http_api_get_workflows("205.255.255.176", &format!("10.9.9.{i}")),
        )
        .await
        .unwrap();
        seen.push(status(answer));
    }

    // Then its third request is limited (the key is sourceIp), and
    // another caller is not
    assert_eq!(seen, [200, 200, 429]);
    let other = api_handler(
        router,
        http_api_get_workflows("205.255.255.177", "10.9.9.0"),
    )
    .await
    .unwrap();
    assert_eq!(status(other), 200);
}
