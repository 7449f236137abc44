//! What GitHub tells us back, on SQLite and PostgreSQL: refresh jobs end
//! to end (HTTP 202 with a job id → the refresh worker → a local GitHub in
//! the documented shapes → the store → the listings and the event
//! stream), and signed webhooks (signature cases, ping, duplicates,
//! out-of-order check runs, pull request changes, unmatched and ignored
//! deliveries) through the real router.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::Arc;

use ai_team_core::refresh::RefreshOutcome;
use ai_team_functions::AppState;
use ai_team_functions::refresh_worker::RefreshWorker;
use ai_team_providers::github::GitHub;
use ai_team_providers::github::webhook::sign;
use ai_team_tests::fake_github::{self, FakeGitHub, REPO, pr_row, test_settings};
use ai_team_tests::harness::queue_of;
use ai_team_tests::{TestApp, TestDb, config_with, on_both_databases};
use serde_json::{Value, json};

on_both_databases!(
    refresh_jobs_fetch_the_pull_request_checks_diff_and_artifacts,
    a_refresh_without_a_pull_request_fails_on_the_stream,
    listings_are_paginated_and_validated,
    only_a_correct_sha256_signature_is_accepted,
    without_a_secret_every_delivery_is_refused,
    a_delivery_is_applied_once,
    an_older_in_progress_never_overwrites_a_newer_completed,
    pull_request_and_check_suite_deliveries_update_the_workflow,
    ping_unknown_events_and_unmatched_deliveries,
    the_webhook_needs_no_api_token,
    a_pull_request_that_people_opened_is_tracked_by_its_story_id,
    a_delivery_replayed_under_a_new_id_changes_nothing,
);

const SECRET: &str = "It's a Secret to Everybody";
const HEAD: &str = fake_github::HEAD_SHA;

struct Setup {
    app: TestApp,
    gh: FakeGitHub,
    worker: RefreshWorker,
    workflow_id: i64,
    pr_number: i64,
}

async fn setup(db: &TestDb, extra: &[(&str, &str)]) -> Setup {
    let gh = FakeGitHub::start().await;
    let workflow_id = db.workflow("SHOP-7").await.id;
    let branch = "ai-team/shop-7-execution-1";
    let pr_number = gh.add_pull(branch, HEAD);
    db.store
        .upsert_pull_request(workflow_id, &pr_row(REPO, pr_number, branch), &[])
        .await
        .unwrap();
    let mut vars = vec![("GITHUB_WEBHOOK_SECRET", SECRET)];
    vars.extend_from_slice(extra);
    let (queue, jobs) = queue_of(db);
    let app =
        TestApp::spawn_state(AppState::new(db.store.clone(), config_with(&vars)).with_queue(queue))
            .await;
    let github = GitHub::new(test_settings(&gh.api_url())).unwrap();
    let worker = RefreshWorker::new(db.store.clone(), jobs, Some(Arc::new(github)), "test");
    Setup {
        app,
        gh,
        worker,
        workflow_id,
        pr_number,
    }
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    json_of(app.get(path).await).await
}

async fn refresh(s: &Setup, what: &str) -> (String, RefreshOutcome) {
    let (status, body) = json_of(
        s.app
            .post_json(
                &format!("/workflows/{}/{what}/refresh", s.workflow_id),
                &json!({}),
            )
            .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().expect("job_id").to_owned();
    assert!(body["message"].as_str().is_some());
    let outcome = s
        .worker
        .try_execute_next()
        .await
        .unwrap()
        .expect("a queued job");
    assert!(
        s.worker.try_execute_next().await.unwrap().is_none(),
        "one job per request"
    );
    (job_id, outcome)
}

async fn job_statuses(db: &TestDb, workflow_id: i64, job_id: &str) -> Vec<(String, String)> {
    db.store
        .events_after(workflow_id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "workflow" && e.data["job_id"] == job_id)
        .map(|e| {
            (
                e.data["kind"].as_str().unwrap_or_default().to_owned(),
                e.data["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
}

async fn refresh_jobs_fetch_the_pull_request_checks_diff_and_artifacts(db: TestDb) {
    let s = setup(&db, &[]).await;
    let id = s.workflow_id;
    s.gh.update_pull(
        s.pr_number,
        json!({"state": "closed", "merged": true, "merged_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z"}),
    );

    let (job, outcome) = refresh(&s, "pr").await;

    assert!(
        matches!(outcome, RefreshOutcome::Done { .. }),
        "{outcome:?}"
    );
    let (_, pr) = get(&s.app, &format!("/workflows/{id}/pr")).await;
    assert_eq!(
        (pr["state"].as_str(), pr["merged"].as_bool()),
        (Some("closed"), Some(true))
    );
    assert_eq!(pr["updated_at"], "2026-11-24T10:00:00Z");
    let (status, checks) = get(&s.app, &format!("/workflows/{id}/pr/checks?page=1")).await;
    assert_eq!(status, 200);
    assert_eq!(checks["total"], 2);
    let runs: Vec<(&str, &str, Option<&str>)> = checks["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["conclusion"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("mighty_readme", "completed", Some("neutral")),
            ("tests", "in_progress", None)
        ]
    );
    assert_eq!(checks["items"][0]["head_sha"], HEAD);
    assert_eq!(checks["items"][0]["details_url"], "https://example.com");
    assert_eq!(checks["items"][0]["started_at"], "2018-05-04T01:14:52Z");
    let (_, suites) = get(
        &s.app,
        &format!("/workflows/{id}/pr/checks?page=1&kind=check_suite"),
    )
    .await;
    assert_eq!(suites["total"], 1);
    assert_eq!(suites["items"][0]["name"], "Super CI");
    let (_, all) = get(
        &s.app,
        &format!("/workflows/{id}/pr/checks?page=1&kind=all"),
    )
    .await;
    assert_eq!(all["total"], 3);
    assert_eq!(
        job_statuses(&db, id, &job).await,
        pairs(&[
            ("pr", "queued"),
            ("pr", "started"),
            ("pr", "completed"),
            ("checks", "completed")
        ])
    );

    let (job, outcome) = refresh(&s, "diffs").await;
    assert!(
        matches!(outcome, RefreshOutcome::Done { .. }),
        "{outcome:?}"
    );
    let (_, diffs) = get(&s.app, &format!("/workflows/{id}/diffs?page=1")).await;
    assert_eq!(diffs["total"], 3);
    let files: Vec<(&str, &str, i64, i64)> = diffs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
                d["additions"].as_i64().unwrap(),
                d["deletions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("app/mail.py", "modified", 4, 2),
            ("app/reset.py", "added", 103, 0),
            ("tests/test_reset.py", "renamed", 1, 1)
        ]
    );
    assert_eq!(diffs["items"][2]["previous_path"], "tests/test_old.py");
    assert!(
        diffs["items"][1]["patch"]
            .as_str()
            .unwrap()
            .starts_with("@@ -0,0 +1,3 @@")
    );
    let (_, prefix) = get(&s.app, &format!("/workflows/{id}/diffs?page=1&path=app/")).await;
    assert_eq!(prefix["total"], 2);
    let (_, exact) = get(
        &s.app,
        &format!("/workflows/{id}/diffs?page=1&path=app/reset.py"),
    )
    .await;
    assert_eq!(exact["total"], 1);
    assert_eq!(exact["items"][0]["path"], "app/reset.py");
    let (_, none) = get(&s.app, &format!("/workflows/{id}/diffs?page=1&path=APP/")).await;
    assert_eq!(
        none["total"], 0,
        "paths compare case-sensitively on both databases"
    );
    assert_eq!(
        job_statuses(&db, id, &job).await,
        pairs(&[
            ("diffs", "queued"),
            ("diffs", "started"),
            ("diffs", "completed")
        ])
    );

    let (job, _) = refresh(&s, "artifacts").await;
    let (_, artifacts) = get(&s.app, &format!("/workflows/{id}/artifacts?page=1")).await;
    assert_eq!(artifacts["total"], 2);
    let a = &artifacts["items"][0];
    assert_eq!(a["kind"], "github-actions");
    assert_eq!(a["name"], "Rails");
    assert_eq!(
        a["uri"],
        "https://api.github.com/repos/octo-org/octo-docs/actions/artifacts/11/zip"
    );
    assert_eq!(
        a["checksum"],
        "sha256:cfc3236bdad15b5898bca8408945c9e19e1917da8704adc20eaa618444290a8c"
    );
    assert_eq!(a["size_bytes"], 556);
    assert_eq!(a["created_at"], "2020-01-10T14:59:22Z");
    let (_, kind) = get(
        &s.app,
        &format!("/workflows/{id}/artifacts?page=1&kind=github-actions"),
    )
    .await;
    assert_eq!(kind["total"], 2);
    let (_, other) = get(
        &s.app,
        &format!("/workflows/{id}/artifacts?page=1&kind=code"),
    )
    .await;
    assert_eq!(other["total"], 0);
    assert_eq!(
        job_statuses(&db, id, &job).await,
        pairs(&[
            ("artifacts", "queued"),
            ("artifacts", "started"),
            ("artifacts", "completed")
        ])
    );
    // Refreshing again changes nothing: every write is an upsert.
    refresh(&s, "artifacts").await;
    refresh(&s, "diffs").await;
    assert_eq!(db.count("artifacts").await, 2);
    assert_eq!(db.count("diffs").await, 3);

    // What was read from GitHub, in the documented endpoints.
    let calls = s.gh.calls();
    let prefix = format!("/repos/{REPO}");
    for expected in [
        format!("GET {prefix}/pulls/{}", s.pr_number),
        format!("GET {prefix}/commits/{HEAD}/check-runs"),
        format!("GET {prefix}/commits/{HEAD}/check-suites"),
        format!("GET {prefix}/compare/master...{HEAD}"),
        format!("GET {prefix}/actions/runs"),
        format!("GET {prefix}/actions/runs/30433642/artifacts"),
    ] {
        assert!(calls.contains(&expected), "{expected} not in {calls:?}");
    }
}

async fn a_refresh_without_a_pull_request_fails_on_the_stream(db: TestDb) {
    let s = setup(&db, &[]).await;
    let bare = db.workflow("SHOP-8").await.id;
    let (status, body) = json_of(
        s.app
            .post_json(&format!("/workflows/{bare}/pr/refresh"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 202);
    let outcome = s.worker.try_execute_next().await.unwrap().unwrap();
    assert!(
        matches!(outcome, RefreshOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let job = body["job_id"].as_str().unwrap();
    assert_eq!(
        job_statuses(&db, bare, job).await,
        pairs(&[("pr", "queued"), ("pr", "failed")])
    );
    let (status, body) = get(&s.app, &format!("/workflows/{bare}/pr")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["detail"],
        format!("Workflow {bare} has no pull request")
    );
    let (status, _) = json_of(
        s.app
            .post_json("/workflows/999999/diffs/refresh", &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert!(s.worker.try_execute_next().await.unwrap().is_none());
}

async fn listings_are_paginated_and_validated(db: TestDb) {
    let s = setup(&db, &[]).await;
    let id = s.workflow_id;
    refresh(&s, "diffs").await;
    let (_, page) = get(&s.app, &format!("/workflows/{id}/diffs?page=2&page_size=2")).await;
    assert_eq!(
        (
            page["page"].as_i64(),
            page["page_size"].as_i64(),
            page["total"].as_i64()
        ),
        (Some(2), Some(2), Some(3))
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    for path in [
        format!("/workflows/{id}/diffs?page_size=0"),
        format!("/workflows/{id}/artifacts?page_size=201"),
        format!("/workflows/{id}/pr/checks?page=x"),
        format!("/workflows/{id}/pr/checks?kind=bogus"),
        "/workflows/abc/pr".to_owned(),
    ] {
        let (status, body) = get(&s.app, &path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body["detail"].is_array());
    }
    for path in [
        "/workflows/999999/pr",
        "/workflows/999999/pr/checks",
        "/workflows/999999/diffs",
        "/workflows/999999/artifacts",
    ] {
        assert_eq!(get(&s.app, path).await.0, 404, "{path}");
    }
}

// --- webhooks ---

const CHECK_COMPLETED: &str = include_str!("fixtures/github/webhooks/check_run_completed.json");
const CHECK_IN_PROGRESS: &str = include_str!("fixtures/github/webhooks/check_run_in_progress.json");
const PR_CLOSED: &str = include_str!("fixtures/github/webhooks/pull_request_closed.json");
const SUITE_COMPLETED: &str = include_str!("fixtures/github/webhooks/check_suite_completed.json");
const PING: &str = include_str!("fixtures/github/webhooks/ping.json");

/// A workflow whose pull request is the one the webhook fixtures name
/// (Codertocat/Hello-World #2, branch `changes`).
async fn webhook_workflow(db: &TestDb) -> i64 {
    let id = db.workflow("HOOK-1").await.id;
    db.store
        .upsert_pull_request(id, &pr_row("Codertocat/Hello-World", 2, "changes"), &[])
        .await
        .unwrap();
    id
}

async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    body: &[u8],
    signature: Option<String>,
) -> (u16, Value) {
    let mut r = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .body(body.to_vec());
    if let Some(s) = signature {
        r = r.header("x-hub-signature-256", s);
    }
    json_of(r.send().await.expect("POST")).await
}

async fn signed(app: &TestApp, event: &str, delivery: &str, body: &str) -> (u16, Value) {
    deliver(
        app,
        event,
        delivery,
        body.as_bytes(),
        Some(sign(SECRET.as_bytes(), body.as_bytes())),
    )
    .await
}

async fn webhook_rows(db: &TestDb) -> (i64, i64, i64) {
    (
        db.count("webhook_deliveries").await,
        db.count("checks").await,
        db.count("events").await,
    )
}

async fn only_a_correct_sha256_signature_is_accepted(db: TestDb) {
    let s = setup(&db, &[]).await;
    webhook_workflow(&db).await;
    let body = CHECK_COMPLETED.as_bytes();
    let good = sign(SECRET.as_bytes(), body);
    let mut changed = body.to_vec();
    let at = CHECK_COMPLETED.find("success").unwrap();
    changed[at] = b'S';
    let before = webhook_rows(&db).await;
    let cases: Vec<(&str, &[u8], Option<String>)> = vec![
        ("missing", body, None),
        (
            "signed with another secret",
            body,
            Some(sign(b"another secret", body)),
        ),
        (
            "wrong algorithm",
            body,
            Some(good.replace("sha256=", "sha1=")),
        ),
        ("garbage", body, Some("sha256=not-hex".into())),
        ("body changed by one byte", &changed, Some(good.clone())),
    ];
    for (case, payload, signature) in cases {
        let (status, reply) = deliver(&s.app, "check_run", "d-sig", payload, signature).await;
        assert_eq!(status, 401, "{case}: {reply}");
        assert_eq!(reply, json!({"detail": "Invalid signature"}), "{case}");
        assert_eq!(
            webhook_rows(&db).await,
            before,
            "{case}: something was stored"
        );
    }

    let (status, reply) = deliver(&s.app, "check_run", "d-sig", body, Some(good)).await;

    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["message"], "Delivery applied");
    assert_eq!(db.count("webhook_deliveries").await, 1);
    assert_eq!(db.count("checks").await, 1);
}

async fn without_a_secret_every_delivery_is_refused(db: TestDb) {
    let app = TestApp::spawn(db.store.clone(), config_with(&[])).await;
    webhook_workflow(&db).await;
    let before = webhook_rows(&db).await;
    let (status, reply) = signed(&app, "check_run", "d-1", CHECK_COMPLETED).await;
    assert_eq!(status, 401);
    assert_eq!(reply, json!({"detail": "Webhook secret not configured"}));
    let (status, _) = deliver(&app, "check_run", "d-2", CHECK_COMPLETED.as_bytes(), None).await;
    assert_eq!(status, 401);
    assert_eq!(webhook_rows(&db).await, before);
}

async fn a_delivery_is_applied_once(db: TestDb) {
    let s = setup(&db, &[]).await;
    let id = webhook_workflow(&db).await;
    let events_before = db.store.events_after(id, 0, 1000).await.unwrap().len();

    let (status, first) = signed(
        &s.app,
        "check_run",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        CHECK_COMPLETED,
    )
    .await;
    let (status2, second) = signed(
        &s.app,
        "check_run",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        CHECK_COMPLETED,
    )
    .await;

    assert_eq!((status, status2), (200, 200));
    assert_eq!(
        first,
        json!({"message": "Delivery applied", "workflow_id": id, "changed": true})
    );
    assert_eq!(second, json!({"message": "Delivery already processed"}));
    assert_eq!(db.count("webhook_deliveries").await, 1);
    let events = db.store.events_after(id, 0, 1000).await.unwrap();
    assert_eq!(
        events.len(),
        events_before + 1,
        "one event per applied delivery"
    );
    let e = events.last().unwrap();
    assert_eq!(e.event_type, "workflow");
    assert_eq!(e.data["kind"], "checks");
    assert_eq!(e.data["source"], "webhook");
    assert_eq!(
        e.data["delivery_id"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert_eq!(e.data["status"], "completed");
    assert_eq!(e.data["conclusion"], "success");
    assert_eq!(e.data["changed"], true);
}

async fn an_older_in_progress_never_overwrites_a_newer_completed(db: TestDb) {
    let s = setup(&db, &[]).await;
    let id = webhook_workflow(&db).await;

    let (_, done) = signed(&s.app, "check_run", "d-completed", CHECK_COMPLETED).await;
    let (status, late) = signed(&s.app, "check_run", "d-in-progress", CHECK_IN_PROGRESS).await;

    assert_eq!(done["changed"], true);
    assert_eq!(status, 200);
    assert_eq!(
        late,
        json!({"message": "Delivery applied", "workflow_id": id, "changed": false})
    );
    let (_, checks) = get(&s.app, &format!("/workflows/{id}/pr/checks?page=1")).await;
    assert_eq!(checks["total"], 1);
    let c = &checks["items"][0];
    assert_eq!(
        (c["status"].as_str(), c["conclusion"].as_str()),
        (Some("completed"), Some("success"))
    );
    assert_eq!(c["completed_at"], "2019-05-15T15:21:45Z");
    assert_eq!(c["name"], "Octocoders-linter");

    // In order, the later state does replace the earlier one.
    let other = db.workflow("HOOK-2").await.id;
    db.store
        .upsert_pull_request(other, &pr_row("Codertocat/Hello-World", 3, "other"), &[])
        .await
        .unwrap();
    let renumber = |text: &str| {
        text.replace("\"number\": 2", "\"number\": 3")
            .replace("\"head_branch\": \"changes\"", "\"head_branch\": \"other\"")
    };
    let (_, a) = signed(&s.app, "check_run", "d-2a", &renumber(CHECK_IN_PROGRESS)).await;
    let (_, b) = signed(&s.app, "check_run", "d-2b", &renumber(CHECK_COMPLETED)).await;
    assert_eq!(
        (a["workflow_id"].as_i64(), b["changed"].as_bool()),
        (Some(other), Some(true))
    );
    let (_, checks) = get(&s.app, &format!("/workflows/{other}/pr/checks?page=1")).await;
    assert_eq!(checks["items"][0]["status"], "completed");
}

async fn pull_request_and_check_suite_deliveries_update_the_workflow(db: TestDb) {
    let s = setup(&db, &[]).await;
    let id = webhook_workflow(&db).await;

    let (status, reply) = signed(&s.app, "pull_request", "d-pr", PR_CLOSED).await;
    assert_eq!(status, 200, "{reply}");
    let (_, pr) = get(&s.app, &format!("/workflows/{id}/pr")).await;
    assert_eq!(pr["state"], "closed");
    assert_eq!(pr["merged"], true);
    assert_eq!(pr["head_sha"], "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    assert_eq!(pr["updated_at"], "2019-05-15T15:22:51Z");

    let (status, _) = signed(&s.app, "check_suite", "d-suite", SUITE_COMPLETED).await;
    assert_eq!(status, 200);
    let (_, suites) = get(
        &s.app,
        &format!("/workflows/{id}/pr/checks?page=1&kind=check_suite"),
    )
    .await;
    assert_eq!(suites["total"], 1);
    assert_eq!(suites["items"][0]["name"], "octocoders-linter");
    assert_eq!(suites["items"][0]["conclusion"], "success");
    let kinds: Vec<String> = db
        .store
        .events_after(id, 0, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.data["source"] == "webhook")
        .map(|e| e.data["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["pr", "checks"]);
}

async fn ping_unknown_events_and_unmatched_deliveries(db: TestDb) {
    let s = setup(&db, &[]).await;
    webhook_workflow(&db).await;
    let before = webhook_rows(&db).await;

    assert_eq!(
        signed(&s.app, "ping", "d-ping", PING).await,
        (200, json!({"message": "pong"}))
    );
    assert_eq!(
        signed(&s.app, "push", "d-push", r#"{"ref": "refs/heads/main"}"#).await,
        (202, json!({"message": "Event push ignored"}))
    );
    assert_eq!(
        webhook_rows(&db).await,
        before,
        "ignored events store nothing"
    );

    let elsewhere = CHECK_COMPLETED.replace("Codertocat/Hello-World", "someone/else");
    let (status, reply) = signed(&s.app, "check_run", "d-else", &elsewhere).await;
    assert_eq!(
        (status, reply),
        (202, json!({"message": "No workflow matches this delivery"}))
    );
    assert_eq!(db.count("checks").await, before.1);

    let (status, reply) = signed(&s.app, "check_run", "d-bad", "{not json").await;
    assert_eq!(status, 422, "{reply}");
    let (status, _) = deliver(
        &s.app,
        "check_run",
        "",
        CHECK_COMPLETED.as_bytes(),
        Some(sign(SECRET.as_bytes(), CHECK_COMPLETED.as_bytes())),
    )
    .await;
    assert_eq!(
        status, 422,
        "a delivery without its id cannot be deduplicated"
    );
}

async fn the_webhook_needs_no_api_token(db: TestDb) {
    let s = setup(&db, &[("AI_TEAM_API_TOKEN", "api-token")]).await;
    let id = webhook_workflow(&db).await;
    assert_eq!(get(&s.app, &format!("/workflows/{id}/pr")).await.0, 401);
    let (status, reply) = signed(&s.app, "check_run", "d-open", CHECK_COMPLETED).await;
    assert_eq!(status, 200, "{reply}");
}

async fn a_pull_request_that_people_opened_is_tracked_by_its_story_id(db: TestDb) {
    let s = setup(&db, &[]).await;
    let create = |key: &str| {
        ai_team_core::query::NewWorkflow::parse(
            &format!("{key}: README"),
            key,
            Some("https://github.com/codertocat/hello-world.git"),
            None,
        )
        .unwrap()
    };
    let id = db
        .store
        .create_workflow(&create("HELLO-9"))
        .await
        .unwrap()
        .into_inner()
        .id;
    // A newer workflow of the same repository whose key only starts alike.
    db.store.create_workflow(&create("HELLO-90")).await.unwrap();
    let opened = PR_CLOSED
        .replace(
            "\"title\": \"Update the README with new information.\"",
            "\"title\": \"HELLO-9: Update the README\"",
        )
        .replace("\"ref\": \"changes\"", "\"ref\": \"people/readme\"");
    assert!(
        opened.contains("HELLO-9: Update"),
        "the fixture's title was replaced"
    );
    let (status, reply) = signed(&s.app, "pull_request", "d-people", &opened).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["workflow_id"], id);
    let (status, pr) = get(&s.app, &format!("/workflows/{id}/pr")).await;
    assert_eq!(status, 200, "{pr}");
    assert_eq!(pr["number"], 2);
    assert_eq!(pr["head_branch"], "people/readme");
    let (status, reply) = signed(&s.app, "check_run", "d-people-check", CHECK_COMPLETED).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["workflow_id"], id);
    let (_, checks) = get(&s.app, &format!("/workflows/{id}/pr/checks")).await;
    assert_eq!(checks.as_array().map(Vec::len), Some(1), "{checks}");
}

async fn a_delivery_replayed_under_a_new_id_changes_nothing(db: TestDb) {
    let s = setup(&db, &[]).await;
    let id = webhook_workflow(&db).await;
    let (status, first) = signed(&s.app, "pull_request", "d-original", PR_CLOSED).await;
    assert_eq!(
        (status, first["changed"].as_bool()),
        (200, Some(true)),
        "{first}"
    );
    let (status, check) = signed(&s.app, "check_run", "d-check", CHECK_COMPLETED).await;
    assert_eq!(
        (status, check["changed"].as_bool()),
        (200, Some(true)),
        "{check}"
    );
    // The same payloads again, as a replay under new delivery ids.
    let (status, again) = signed(&s.app, "pull_request", "d-replayed", PR_CLOSED).await;
    assert_eq!(
        again,
        json!({"message": "Delivery applied", "workflow_id": id, "changed": false})
    );
    assert_eq!(status, 200);
    let (_, again) = signed(&s.app, "check_run", "d-check-replayed", CHECK_COMPLETED).await;
    assert_eq!(again["changed"], false, "{again}");
}
