//! GitHub as the code host, against a local GitHub speaking the REST
//! shapes of its documentation: the files of each step land through the
//! Git data API in the documented order (blobs, tree, commit, then the
//! ref), the pull request is opened once and found again, nothing is
//! committed twice; a secondary rate limit is waited out and a primary
//! limit that resets far away is handed back as `RateLimited`. End to
//! end on SQLite and PostgreSQL, an execution with USE_REAL_GITHUB opens
//! the pull request and stores it for `GET /workflows/{id}/pr`.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use ai_team_core::codehost::{
    CodeHost, CodeHostError, CommitRequest, FileChange, PullRequestRequest,
};
use ai_team_core::models::ExecutionStatus;
use ai_team_functions::AppState;
use ai_team_providers::github::GitHub;
use ai_team_tests::fake_github::{FakeGitHub, REPO, primary_limit, secondary_limit, test_settings};
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::{TestApp, TestDb, config_with, on_both_databases};
use axum::http::Method;
use serde_json::Value;

on_both_databases!(an_execution_with_real_github_opens_the_pull_request_and_stores_it);

const BRANCH: &str = "ai-team/shop-1-execution-1";

fn commit(key: &str, files: &[(&str, &str)]) -> CommitRequest {
    CommitRequest {
        step_key: key.into(),
        message: format!("{} for SHOP-1", key.rsplit('/').next().unwrap_or(key)),
        files: files
            .iter()
            .map(|(p, c)| FileChange {
                path: (*p).into(),
                content: (*c).into(),
            })
            .collect(),
    }
}

fn pr() -> PullRequestRequest {
    PullRequestRequest {
        title: "SHOP-1: Password reset".into(),
        body: "Implements SHOP-1".into(),
        head: BRANCH.into(),
        base: String::new(),
    }
}

fn calls(gh: &FakeGitHub) -> Vec<String> {
    let prefix = format!("/repos/{REPO}");
    gh.calls()
        .into_iter()
        .map(|c| c.replacen(&prefix, "", 1).trim_end().to_owned())
        .collect()
}

#[tokio::test]
async fn commits_and_the_pull_request_go_through_the_git_data_api_in_order() {
    let gh = FakeGitHub::start().await;
    let host = GitHub::new(test_settings(&gh.api_url())).unwrap();
    let commits = vec![
        commit(
            "execution-1/implementation",
            &[
                ("app/reset.py", "def reset(): ...\n"),
                ("app/mail.py", "MAIL = 1\n"),
            ],
        ),
        commit(
            "execution-1/testing",
            &[("tests/test_reset.py", "def test(): ...\n")],
        ),
    ];

    let delivered = host
        .deliver(REPO, BRANCH, &commits, Some(&pr()))
        .await
        .unwrap();

    assert_eq!(
        calls(&gh),
        [
            "GET",
            "GET /git/ref/heads/ai-team/shop-1-execution-1",
            "GET /git/ref/heads/master",
            "GET /git/commits/aa218f56b14c9653891f9e74264a383fa43fefbd",
            "POST /git/blobs",
            "POST /git/blobs",
            "POST /git/trees",
            "POST /git/commits",
            "POST /git/blobs",
            "POST /git/trees",
            "POST /git/commits",
            "POST /git/refs",
            "GET /pulls",
            "POST /pulls",
        ]
    );
    // Each tree builds on the one before; each commit on its parent.
    let trees = gh.bodies("/git/trees");
    assert_eq!(
        trees[0]["base_tree"],
        "827efc6d56897b048c772eb4087f854f46256132"
    );
    let commit_bodies = gh.bodies("/git/commits");
    assert_eq!(
        commit_bodies[0]["parents"],
        serde_json::json!(["aa218f56b14c9653891f9e74264a383fa43fefbd"])
    );
    assert!(
        commit_bodies[1]["message"]
            .as_str()
            .unwrap()
            .ends_with("AI-Team-Step: execution-1/testing\n")
    );
    assert_eq!(
        gh.files(BRANCH).keys().collect::<Vec<_>>(),
        [
            "README.md",
            "app/mail.py",
            "app/reset.py",
            "tests/test_reset.py"
        ]
    );
    assert_eq!(gh.files(BRANCH)["app/mail.py"], "MAIL = 1\n");
    assert_eq!(delivered.new_commits, 2);
    assert_eq!(delivered.base_branch, "master");
    assert_eq!(Some(delivered.head_sha.clone()), gh.branch_sha(BRANCH));
    assert_eq!(
        delivered.location,
        "https://github.com/octocat/Hello-World/tree/ai-team/shop-1-execution-1"
    );
    let pull = delivered.pull_request.clone().expect("pull request");
    assert_eq!(pull.number, 1347);
    assert_eq!(pull.url, "https://github.com/octocat/Hello-World/pull/1347");
    assert_eq!(pull.repository, "octocat/Hello-World");
    let opened = &gh.bodies("/pulls")[0];
    assert_eq!(opened["head"], BRANCH);
    assert_eq!(opened["base"], "master");
    assert_eq!(opened["title"], "SHOP-1: Password reset");

    // Delivered again (a redelivered step): nothing is committed twice and
    // the open pull request is reused.
    gh.clear_calls();
    let again = host
        .deliver(REPO, BRANCH, &commits, Some(&pr()))
        .await
        .unwrap();
    assert_eq!(
        calls(&gh),
        [
            "GET",
            "GET /git/ref/heads/ai-team/shop-1-execution-1",
            "GET /commits",
            "GET /pulls"
        ]
    );
    assert_eq!(again.new_commits, 0);
    assert_eq!(again.head_sha, delivered.head_sha);
    assert_eq!(again.pull_request.unwrap().number, 1347);
    assert_eq!(gh.pulls().len(), 1);

    // A later step adds one commit on top and moves the ref forward.
    gh.clear_calls();
    let mut more = commits.clone();
    more.push(commit(
        "execution-1/rework",
        &[("app/reset.py", "def reset(): return 1\n")],
    ));
    let third = host
        .deliver(REPO, BRANCH, &more, Some(&pr()))
        .await
        .unwrap();
    assert_eq!(
        calls(&gh),
        [
            "GET".to_owned(),
            "GET /git/ref/heads/ai-team/shop-1-execution-1".to_owned(),
            "GET /commits".to_owned(),
            format!("GET /git/commits/{}", delivered.head_sha),
            "POST /git/blobs".to_owned(),
            "POST /git/trees".to_owned(),
            "POST /git/commits".to_owned(),
            "PATCH /git/refs/heads/ai-team/shop-1-execution-1".to_owned(),
            "GET /pulls".to_owned(),
        ]
    );
    assert_eq!(third.new_commits, 1);
    assert_eq!(gh.files(BRANCH)["app/reset.py"], "def reset(): return 1\n");
    assert_eq!(gh.messages(BRANCH).len(), 4);
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_then_the_call_succeeds() {
    let gh = FakeGitHub::start().await;
    let host = GitHub::new(test_settings(&gh.api_url())).unwrap();
    gh.fail_next(secondary_limit(Method::POST, "/git/blobs", 1));
    let started = Instant::now();

    let delivered = host
        .deliver(
            REPO,
            BRANCH,
            &[commit("execution-1/implementation", &[("a.py", "a\n")])],
            Some(&pr()),
        )
        .await
        .unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after was not obeyed"
    );
    let c = calls(&gh);
    let blobs: Vec<usize> = c
        .iter()
        .enumerate()
        .filter(|(_, x)| *x == "POST /git/blobs")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(blobs.len(), 2, "{c:?}");
    assert_eq!(
        blobs[1],
        blobs[0] + 1,
        "the same request is retried at once after the wait"
    );
    assert_eq!(delivered.new_commits, 1);
    assert_eq!(gh.files(BRANCH)["a.py"], "a\n");
}

#[tokio::test]
async fn a_secondary_limit_without_retry_after_waits_the_minimum_then_succeeds() {
    let gh = FakeGitHub::start().await;
    let host = GitHub::new(test_settings(&gh.api_url())).unwrap();
    let mut f = secondary_limit(Method::GET, "/git/ref/", 0);
    f.headers.clear();
    gh.fail_next(f);
    let started = Instant::now();
    host.deliver(
        REPO,
        BRANCH,
        &[commit("execution-1/x", &[("x", "x")])],
        None,
    )
    .await
    .unwrap();
    // test_settings: one second stands for GitHub's "at least one minute".
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_primary_limit_resetting_later_than_we_wait_is_handed_to_the_queue() {
    let gh = FakeGitHub::start().await;
    let host = GitHub::new(test_settings(&gh.api_url())).unwrap();
    let reset = chrono::Utc::now().timestamp() + 3600;
    gh.fail_next(primary_limit(Method::GET, "/git/ref/", reset));

    let err = host
        .deliver(
            REPO,
            BRANCH,
            &[commit("execution-1/x", &[("x", "x")])],
            Some(&pr()),
        )
        .await
        .unwrap_err();

    match &err {
        CodeHostError::RateLimited { retry_after_secs } => {
            assert!(
                (3590..=3602).contains(retry_after_secs),
                "{retry_after_secs}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert!(gh.branch_sha(BRANCH).is_none(), "nothing was written");
}

#[tokio::test]
async fn a_refused_token_is_not_retried() {
    let gh = FakeGitHub::start().await;
    let mut settings = test_settings(&gh.api_url());
    settings.token = "wrong".into();
    let host = GitHub::new(settings).unwrap();
    let err = host.deliver(REPO, BRANCH, &[], None).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(gh.calls().len(), 1);
}

async fn an_execution_with_real_github_opens_the_pull_request_and_stores_it(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let gh = FakeGitHub::start().await;
    let api = gh.api_url();
    let vars = [
        ("USE_REAL_GITHUB", "true"),
        ("GITHUB_TOKEN", "ghp_test_token"),
        (
            "NEGISHI_GITHUB_REPO",
            "https://github.com/octocat/Hello-World",
        ),
        ("GITHUB_API_URL", api.as_str()),
        ("AI_TEAM_GITHUB_WRITE_PAUSE_MS", "0"),
    ];
    let h = Harness::new(&db, &llm.base_url(), &vars).await;
    assert_eq!(h.engine.code_host.kind(), "github");
    let wf = h.workflow("SHOP-1").await;

    let done = h.run_to_end(wf.id).await;

    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let branch = format!("ai-team/shop-1-execution-{}", done.id);
    let files = gh.files(&branch);
    let stored = db.store.workflow_code_files(wf.id).await.unwrap();
    assert!(!stored.is_empty());
    for f in &stored {
        assert!(files.contains_key(&f.path), "{} not on the branch", f.path);
    }
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0]["title"], "SHOP-1: Password reset");
    assert!(pulls[0]["body"].as_str().unwrap().contains("## Cost"));

    let app = TestApp::spawn_state(AppState::new(db.store.clone(), config_with(&[]))).await;
    let r = app.get(&format!("/workflows/{}/pr", wf.id)).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["number"], 1347);
    assert_eq!(
        body["url"],
        "https://github.com/octocat/Hello-World/pull/1347"
    );
    assert_eq!(body["state"], "open");
    assert_eq!(body["head_branch"], branch.as_str());
    assert_eq!(body["base_branch"], "master");
    assert_eq!(body["head_sha"], gh.branch_sha(&branch).unwrap().as_str());
    assert_eq!(body["merged"], false);
    assert_eq!(body["draft"], false);
    assert_eq!(body["workflow_id"], wf.id);
}

#[tokio::test]
async fn the_repository_is_read_through_the_git_data_and_contents_apis() {
    let gh = FakeGitHub::start().await;
    let github = GitHub::new(test_settings(&gh.api_url())).unwrap();
    let snapshot = github.snapshot(REPO).await.unwrap();
    let paths: Vec<&str> = snapshot.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["README.md"]);
    assert!(snapshot.base_sha.is_some());
    assert_eq!(
        github
            .read_file(REPO, "README.md")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"# Hello\n"[..])
    );
    assert_eq!(github.read_file(REPO, "missing.txt").await.unwrap(), None);
    // The base tree cannot be exported through this host: a verification
    // there is skipped with the reason, not run on the team's files alone.
    assert!(
        !github
            .export_base(REPO, std::path::Path::new("/nonexistent"))
            .await
            .unwrap()
    );
}
