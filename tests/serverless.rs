//! The AWS shape: the SQS queue and S3 blob adapters against moto's
//! server, the Lambda handlers invoked in-process with recorded event
//! payloads (API Gateway HTTP API v2, a function URL, an SQS batch with a
//! poison message), and a whole execution whose every step travels
//! through SQS to the Lambda step handler, on PostgreSQL.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::blob::{BlobError, BlobStore};
use ai_team_core::models::ExecutionStatus;
use ai_team_core::queue::{STEPS_QUEUE, StepQueue};
use ai_team_core::refresh::REFRESH_QUEUE;
use ai_team_functions::lambda::{api_handler, refresh_handler, steps_handler};
use ai_team_functions::{AppState, RouteGroup, app_for};
use ai_team_providers::aws_s3::S3BlobStore;
use ai_team_providers::aws_sqs::{DEDUP_ATTRIBUTE, QUEUE_ATTRIBUTE, SqsQueue};
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::{Harness, queue_of, queued_step};
use ai_team_tests::moto::Moto;
use ai_team_tests::{TestDb, config_with};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};

const APIGW_V2_HEALTH: &str = include_str!("fixtures/lambda/apigw_v2_get_health.json");
const APIGW_V2_POST_WORKFLOW: &str = include_str!("fixtures/lambda/apigw_v2_post_workflow.json");
const FUNCTION_URL_LIST: &str = include_str!("fixtures/lambda/function_url_get_workflows.json");
const SQS_ONE_POISON: &str = include_str!("fixtures/lambda/sqs_batch_one_poison.json");

async fn create_queue(client: &aws_sdk_sqs::Client, name: &str, visibility_secs: u32) -> String {
    client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

#[tokio::test]
async fn sqs_adapter_sends_the_payload_with_its_queue_name_and_delay() {
    // Given a queue on moto
    let moto = Moto::start().await;
    let sdk = moto.sdk_config();
    let client = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&client, "steps-send", 30).await;
    let queue = SqsQueue::from_config(&sdk, &url);
    let payload = json!({"execution_id": 4, "step": "analysis", "attempt": 1});

    // When a message is sent now and another in 2 seconds
    queue
        .send(STEPS_QUEUE, &payload, Some("4:analysis:1"), Duration::ZERO)
        .await
        .expect("send");
    queue
        .send(
            STEPS_QUEUE,
            &json!({"late": true}),
            None,
            Duration::from_secs(2),
        )
        .await
        .expect("send delayed");

    // Then the first arrives at once, with its body and attributes
    let receive = || {
        client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
    };
    let first = receive()
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    assert_eq!(
        first.len(),
        1,
        "only the undelayed message is visible: {first:?}"
    );
    let m = &first[0];
    let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(body, payload);
    let attrs = m.message_attributes().unwrap();
    assert_eq!(attrs[QUEUE_ATTRIBUTE].string_value(), Some(STEPS_QUEUE));
    assert_eq!(attrs[DEDUP_ATTRIBUTE].string_value(), Some("4:analysis:1"));

    // And the delayed one only after its delay
    let sent = Instant::now();
    let late = loop {
        let got = receive()
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if let Some(m) = got.into_iter().next() {
            break m;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "delayed message never came"
        );
    };
    assert_eq!(late.body(), Some(r#"{"late":true}"#));
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        sent.elapsed()
    );
}

#[tokio::test]
async fn s3_adapter_round_trips_and_refuses_foreign_uris() {
    // Given a bucket on moto
    let moto = Moto::start().await;
    let sdk = moto.sdk_config();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket("artifacts")
        .send()
        .await
        .expect("bucket");
    let blobs = S3BlobStore::from_config(&sdk, "artifacts");

    // When a blob is written, then written again
    let uri = blobs
        .put("calls/1/request.json", b"{\"a\":1}")
        .await
        .expect("put");
    assert_eq!(uri, "s3://artifacts/calls/1/request.json");
    blobs
        .put("calls/1/request.json", b"{\"a\":2}")
        .await
        .expect("put again");

    // Then it reads back whole, as last written
    assert_eq!(blobs.get(&uri).await.expect("get"), b"{\"a\":2}");
    // And a missing key, another bucket and an escaping key are told apart
    assert!(matches!(
        blobs.get("s3://artifacts/calls/none.json").await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        blobs.get("s3://elsewhere/calls/1/request.json").await,
        Err(BlobError::InvalidKey(_))
    ));
    assert!(matches!(
        blobs.put("../escape", b"x").await,
        Err(BlobError::InvalidKey(_))
    ));
}

async fn invoke_api(router: axum::Router, fixture: &str) -> (u16, Value) {
    let request: LambdaRequest = serde_json::from_str(fixture).expect("fixture parses");
    let out = api_handler(router, LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    let status = out["statusCode"].as_u64().expect("statusCode") as u16;
    let body = out["body"].as_str().unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_handler_answers_http_api_and_function_url_events() {
    // Given the health and workflows functions' routers over a fresh database
    let db = TestDb::sqlite().await;
    let state = AppState::new(db.store.clone(), config_with(&[]));
    let health = app_for(state.clone(), &[RouteGroup::Health]);
    let router = app_for(state, &[RouteGroup::Workflows]);

    // When API Gateway sends GET /health
    let (status, body) = invoke_api(health, APIGW_V2_HEALTH).await;
    // Then the router answers as over HTTP
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");

    // When it sends POST /workflows with a base64 body
    let (status, body) = invoke_api(router.clone(), APIGW_V2_POST_WORKFLOW).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["jira_story_id"], "SHOP-9");
    assert_eq!(db.count("workflows").await, 1);

    // And a function URL lists them with its query string
    let (status, body) = invoke_api(router, FUNCTION_URL_LIST).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["page_size"], 5);
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["jira_story_id"], "SHOP-9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_the_only_batch_item_failure() {
    // Given an execution whose first step waits on the database queue
    let db = TestDb::postgres().await;
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-10").await;
    let execution = h.engine.start(wf.id).await.expect("start");
    let (_, jobs) = queue_of(&db);
    let first = queued_step(jobs.as_ref()).await;

    // And a recorded SQS batch: that step, then an unreadable message
    let mut event: Value = serde_json::from_str(SQS_ONE_POISON).unwrap();
    event["Records"][0]["body"] = Value::String(first.payload.to_string());
    let event: SqsEvent = serde_json::from_value(event).unwrap();

    // When the step handler runs the batch
    let response = steps_handler(&h.engine, None, None, event).await;

    // Then only the poison message goes back to the queue
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        wire["batchItemFailures"][0]["itemIdentifier"],
        "2e1424d4-f796-459a-8184-9c92662be6da"
    );
    // And the good one ran: its step is done and the next one is queued
    let step = first.payload["step"].as_str().unwrap();
    let done: i64 = match &db.raw {
        ai_team_tests::Raw::Postgres(s) => sqlx::query_scalar(
            "SELECT COUNT(*) FROM step_leases WHERE execution_id = $1 AND step = $2 AND status = 'completed'",
        )
        .bind(execution.id)
        .bind(step)
        .fetch_one(s.pool())
        .await
        .expect("step row"),
        _ => unreachable!(),
    };
    assert_eq!(done, 1, "step {step} completed once");
    let next = jobs
        .receive(STEPS_QUEUE, "test", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("next step queued");
    assert_ne!(next.payload["step"], first.payload["step"]);
}

/// An SQS message as the Lambda event source mapping hands it over.
fn record_of(m: &aws_sdk_sqs::types::Message) -> Value {
    let attributes: serde_json::Map<String, Value> = m
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"stringValue": v.string_value(), "dataType": v.data_type(),
                               "stringListValues": [], "binaryListValues": []}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": attributes,
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:steps",
        "awsRegion": "us-east-1",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_execution_runs_with_every_step_delivered_by_sqs_to_the_lambda_handler() {
    // Given the engine on PostgreSQL sending its steps to SQS on moto
    let moto = Moto::start().await;
    let sdk = moto.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&sqs, "steps-e2e", 2).await;
    let db = TestDb::postgres().await;
    let llm = FakeLlm::start(Script::default()).await;
    let (_, jobs) = queue_of(&db);
    let adapter = SqsQueue::from_config(&sdk, &url);
    let queue: Arc<dyn StepQueue> = Arc::new(adapter.clone());
    let h = Harness::with_queue(&db, &llm.base_url(), &[], queue, jobs.clone()).await;
    let wf = h.workflow("SHOP-11").await;

    // When it starts, and a loop plays the event source mapping: receive
    // a batch, invoke the handler, delete what it did not hand back
    let execution = h.engine.start(wf.id).await.expect("start");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut handled = Vec::new();
    loop {
        let status = h.execution(&execution).await.status;
        if !matches!(status, ExecutionStatus::Pending | ExecutionStatus::Running) {
            break;
        }
        assert!(Instant::now() < deadline, "execution still {status}");
        let (messages, event) = receive_event(&sqs, &url, 1).await;
        if messages.is_empty() {
            continue;
        }
        let failures = steps_handler(&h.engine, Some(&adapter), None, event)
            .await
            .batch_item_failures;
        for m in &messages {
            let id = m.message_id().unwrap();
            if failures.iter().any(|f| f.item_identifier == id) {
                continue;
            }
            handled.push(serde_json::from_str::<Value>(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }

    // Then it completed, every step came through SQS, and the database
    // queue was never used
    let done = h.execution(&execution).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let steps: Vec<&str> = handled.iter().filter_map(|m| m["step"].as_str()).collect();
    assert!(steps.len() >= 7, "steps delivered by SQS: {steps:?}");
    assert!(steps.contains(&"integration"), "{steps:?}");
    assert!(
        jobs.receive(STEPS_QUEUE, "test", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.count("llm_calls").await >= 6);
}

/// Receives what `url` has now (waiting up to `wait_secs`), as an SQS event.
async fn receive_event(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    wait_secs: i32,
) -> (Vec<aws_sdk_sqs::types::Message>, SqsEvent) {
    let messages = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default();
    let event = serde_json::from_value(
        json!({"Records": messages.iter().map(record_of).collect::<Vec<_>>()}),
    )
    .unwrap();
    (messages, event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_step_comes_back_after_its_lease_not_the_visibility_timeout() {
    // Given a steps queue whose visibility timeout is 5 minutes, and an
    // execution whose first step another instance holds for one second
    let moto = Moto::start().await;
    let sdk = moto.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = create_queue(&sqs, "steps-busy", 300).await;
    let adapter = SqsQueue::from_config(&sdk, &url);
    let db = TestDb::postgres().await;
    let llm = FakeLlm::start(Script::default()).await;
    let (_, jobs) = queue_of(&db);
    let h = Harness::with_queue(&db, &llm.base_url(), &[], Arc::new(adapter.clone()), jobs).await;
    let wf = h.workflow("SHOP-12").await;
    let execution = h.engine.start(wf.id).await.expect("start");
    let (messages, event) = receive_event(&sqs, &url, 5).await;
    assert_eq!(messages.len(), 1);
    let step: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    db.store
        .claim_step(
            execution.id,
            ai_team_core::steps::Step::parse(step["step"].as_str().unwrap()).unwrap(),
            "another-instance",
            Duration::from_secs(1),
        )
        .await
        .unwrap();

    // When the step handler gets it
    let started = Instant::now();
    let failures = steps_handler(&h.engine, Some(&adapter), None, event)
        .await
        .batch_item_failures;

    // Then it is handed back, and SQS delivers it again within seconds
    assert_eq!(failures.len(), 1);
    let again = loop {
        let (messages, event) = receive_event(&sqs, &url, 2).await;
        if !messages.is_empty() {
            break event;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not redelivered"
        );
    };
    assert!(started.elapsed() < Duration::from_secs(20));
    // And once the lease has expired, it runs
    let failures = steps_handler(&h.engine, Some(&adapter), None, again)
        .await
        .batch_item_failures;
    assert!(failures.is_empty(), "{failures:?}");
    let (next, _) = receive_event(&sqs, &url, 5).await;
    let next: Value = serde_json::from_str(next[0].body().unwrap()).unwrap();
    assert_ne!(next["step"], step["step"], "the successor was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_jobs_travel_on_their_own_queue_to_the_refresh_function() {
    use ai_team_providers::github::GitHub;
    use ai_team_tests::fake_github::{
        FakeGitHub, HEAD_SHA, REPO, pr_row, primary_limit, test_settings,
    };

    // Given steps and refresh queues on moto, a GitHub with an open pull
    // request, and a workflow that knows it
    let moto = Moto::start().await;
    let sdk = moto.sdk_config();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let steps_url = create_queue(&sqs, "steps-r", 300).await;
    let refresh_url = create_queue(&sqs, "refresh-r", 300).await;
    let adapter = SqsQueue::from_config(&sdk, &steps_url).route(REFRESH_QUEUE, &refresh_url);
    let db = TestDb::postgres().await;
    let gh = FakeGitHub::start().await;
    let github = GitHub::new(test_settings(&gh.api_url())).unwrap();
    let branch = "ai-team/shop-13-execution-1";
    let number = gh.add_pull(branch, HEAD_SHA);
    let wf = db.workflow("SHOP-13").await;
    let row = pr_row(REPO, number, branch);
    db.store
        .upsert_pull_request(wf.id, &row, &[])
        .await
        .unwrap();
    let delivery = app_for(
        AppState::new(db.store.clone(), config_with(&[])).with_queue(Arc::new(adapter.clone())),
        &[RouteGroup::Delivery],
    );

    // When the delivery function is asked for a PR refresh
    let request = axum::http::Request::post(format!("/workflows/{}/pr/refresh", wf.id))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let response = tower::ServiceExt::oneshot(delivery, request).await.unwrap();
    assert_eq!(response.status(), 202);

    // Then the job is on the refresh queue, not the steps queue
    let (on_steps, _) = receive_event(&sqs, &steps_url, 0).await;
    assert!(on_steps.is_empty());
    let (jobs, mut event) = receive_event(&sqs, &refresh_url, 5).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].message_attributes().unwrap()[QUEUE_ATTRIBUTE].string_value(),
        Some(REFRESH_QUEUE)
    );
    // And the refresh function refuses a step message that strayed there
    let mut poison = serde_json::to_value(&event.records[0]).unwrap();
    poison["messageId"] = json!("stray-step");
    poison["messageAttributes"][QUEUE_ATTRIBUTE]["stringValue"] = json!(STEPS_QUEUE);
    event.records.push(serde_json::from_value(poison).unwrap());

    // When GitHub is rate limited for 7 seconds and the function runs the batch
    let reset = chrono::Utc::now().timestamp() + 7;
    gh.fail_next(primary_limit(axum::http::Method::GET, "/pulls/", reset));
    let started = Instant::now();
    let failures = refresh_handler(
        db.store.as_ref(),
        Some(&github),
        Some(&adapter),
        None,
        event,
    )
    .await
    .batch_item_failures;
    let ids: BTreeSet<&str> = failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([jobs[0].message_id().unwrap(), "stray-step"])
    );

    // Then the job comes back when the limit resets, long before the
    // 5-minute visibility timeout, and then refreshes the pull request
    let again = loop {
        let (messages, event) = receive_event(&sqs, &refresh_url, 2).await;
        if !messages.is_empty() {
            break event;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not redelivered"
        );
    };
    let failures = refresh_handler(
        db.store.as_ref(),
        Some(&github),
        Some(&adapter),
        None,
        again,
    )
    .await
    .batch_item_failures;
    assert!(failures.is_empty(), "{failures:?}");
    let statuses: Vec<String> = db
        .store
        .events_after(wf.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.data["source"] == "refresh")
        .map(|e| e.data["status"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        statuses[..4],
        ["queued", "started", "retrying", "started"],
        "{statuses:?}"
    );
    assert!(
        statuses[4..].iter().all(|s| s == "completed") && statuses.len() > 4,
        "{statuses:?}"
    );
}
