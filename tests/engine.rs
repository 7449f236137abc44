//! The workflow engine end to end, on SQLite and PostgreSQL, over the
//! scripted LLM (OpenAI wire shape on 127.0.0.1) and a real git
//! repository: every step runs once, redelivery changes nothing, budgets
//! stop the run with the math and resume finishes it, a dead provider fails
//! it readably, cancel and resume behave, and the HTTP triggers answer.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use ai_team_core::steps::Step;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_team_core::engine::Outcome;
use ai_team_core::ledger::Claim;
use ai_team_core::models::ExecutionStatus;
use ai_team_core::queue::{QueueError, STEPS_QUEUE, StepMessage, StepQueue};
use ai_team_functions::AppState;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::{TestApp, TestDb, config_with, on_both_databases};
use serde_json::{Value, json};

on_both_databases!(
    an_execution_runs_every_step_and_commits_the_files,
    the_reviewer_sends_the_work_back_once,
    every_message_delivered_twice_gives_the_same_state_as_once,
    a_budget_too_low_stops_with_the_math_and_resume_finishes_it,
    a_permanently_failing_llm_fails_the_execution_readably,
    cancel_stops_after_the_step_in_flight_and_resume_continues,
    a_step_finishing_after_its_execution_was_cancelled_queues_nothing,
    step_leases_are_exclusive_until_they_expire,
    http_triggers_start_resume_and_cancel,
    an_execution_whose_worker_stopped_beating_is_failed_with_a_resume_hint,
    an_unreadable_checkpoint_fails_the_run_once_and_refuses_a_resume,
);

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    match &db.raw {
        ai_team_tests::Raw::Sqlite(s) => {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await
        }
        ai_team_tests::Raw::Postgres(s) => {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await
        }
    }
    .expect(sql)
}

fn git(dir: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The execution's totals equal the sums of its call rows.
async fn totals_match_rows(db: &TestDb, execution_id: i64) {
    let e = db.store.execution_by_id(execution_id).await.unwrap();
    let where_ = format!("FROM llm_calls WHERE execution_id = {execution_id}");
    assert_eq!(
        e.total_calls,
        scalar(db, &format!("SELECT COUNT(*) {where_}")).await
    );
    assert_eq!(
        e.total_tokens,
        scalar(
            db,
            &format!("SELECT CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) {where_}")
        )
        .await
    );
    assert_eq!(
        e.prompt_tokens,
        scalar(
            db,
            &format!("SELECT CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) {where_}")
        )
        .await
    );
    assert_eq!(
        e.total_cost,
        scalar(
            db,
            &format!("SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) {where_}")
        )
        .await
    );
}

async fn an_execution_runs_every_step_and_commits_the_files(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-1").await;
    let done = h.run_to_end(wf.id).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert!(done.finished_at.is_some() && done.started_at.is_some());
    assert_eq!(
        h.engine
            .store
            .get_workflow(wf.id)
            .await
            .unwrap()
            .status
            .as_str(),
        "completed"
    );

    // One conversation per agent step, three messages each, one call each.
    let detail = h.engine.store.workflow_detail(wf.id).await.unwrap();
    let steps: Vec<(&str, &str)> = detail
        .conversations
        .iter()
        .map(|c| (c.conversation.step.as_str(), c.conversation.agent.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("analysis", "pm"),
            ("architecture", "architect"),
            ("implementation", "developer"),
            ("frontend", "frontend"),
            ("testing", "tester"),
            ("review", "reviewer")
        ]
    );
    for c in &detail.conversations {
        assert_eq!(c.messages.len(), 3);
        assert_eq!(c.llm_calls.len(), 1);
        assert!(
            c.conversation
                .output
                .as_deref()
                .is_some_and(|o| !o.is_empty())
        );
        assert_eq!(
            c.conversation.details["prompt_hash"].as_str().map(str::len),
            Some(64)
        );
    }
    assert_eq!(llm.requests(), 6);
    assert_eq!(done.total_calls, 6);
    assert_eq!(done.models, ["gpt-4o-mini"]);
    assert!(done.total_cost > 0, "priced from the catalog");
    totals_match_rows(&db, done.id).await;

    let mut paths: Vec<&str> = detail.code_files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "app/__init__.py",
            "app/reset.py",
            "tests/test_reset.py",
            "web/reset.html"
        ]
    );
    // The pm's criteria reached the checkpoint and the architect's prompt.
    let checkpoint = db
        .store
        .checkpoint(done.id, Step::Analysis)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.state.unwrap().acceptance_criteria.len(), 3);
    let architect = &detail.conversations[1].conversation;
    assert!(
        architect
            .prompt
            .contains("The link expires after 30 minutes")
    );
    assert_eq!(
        scalar(
            &db,
            &format!(
                "SELECT COUNT(*) FROM checkpoints WHERE execution_id = {}",
                done.id
            )
        )
        .await,
        10,
        "every step but none twice: story, repository, six agents, verification, integration"
    );

    // The branch has one commit per step that produced files, by AI Team.
    let delivered = db
        .store
        .latest_checkpoint(done.id)
        .await
        .unwrap()
        .unwrap()
        .state
        .unwrap()
        .delivered
        .unwrap();
    let repo = delivered.location.as_str();
    let branch = delivered.branch.as_str();
    assert_eq!(branch, format!("ai-team/shop-1-execution-{}", done.id));
    assert_eq!(git(repo, &["rev-list", "--count", branch]), "3");
    assert_eq!(
        git(repo, &["log", "-1", "--format=%an <%ae>", branch]),
        "AI Team <ai-team@localhost>"
    );
    assert_eq!(
        git(repo, &["show", &format!("{branch}:app/reset.py")])
            .lines()
            .next(),
        Some("TOKENS = {}")
    );

    // The log tells the story in order, with governance decisions.
    let events = db.store.events_after(wf.id, 0, 1000).await.unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "conversation").count(), 6);
    assert_eq!(types.iter().filter(|t| **t == "governance").count(), 6);
    assert_eq!(types.iter().filter(|t| **t == "llm_call").count(), 6);
    assert_eq!(events.last().unwrap().data["status"], "completed");
    assert!(events.windows(2).all(|w| w[1].id == w[0].id + 1));
}

async fn the_reviewer_sends_the_work_back_once(db: TestDb) {
    let llm = FakeLlm::start(Script {
        request_changes: true,
        ..Script::default()
    })
    .await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-2").await;
    let done = h.run_to_end(wf.id).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    let detail = db.store.workflow_detail(wf.id).await.unwrap();
    let steps: Vec<&str> = detail
        .conversations
        .iter()
        .map(|c| c.conversation.step.as_str())
        .collect();
    assert_eq!(&steps[5..], ["review", "rework", "final_review"]);
    let events = db.store.events_after(wf.id, 0, 1000).await.unwrap();
    let collab: Vec<&Value> = events
        .iter()
        .filter(|e| e.event_type == "collaboration")
        .map(|e| &e.data)
        .collect();
    assert_eq!(collab.len(), 1);
    assert_eq!(
        collab[0]["changes"][0],
        "Hash the reset token instead of reversing the e-mail"
    );
    // The rework's version of the file is the one committed.
    let delivered = db
        .store
        .latest_checkpoint(done.id)
        .await
        .unwrap()
        .unwrap()
        .state
        .unwrap()
        .delivered
        .unwrap();
    let content = git(
        &delivered.location,
        &["show", &format!("{}:app/reset.py", delivered.branch)],
    );
    assert!(content.contains("hashlib"), "{content}");
    assert_eq!(
        git(
            &delivered.location,
            &["rev-list", "--count", &delivered.branch]
        ),
        "4"
    );
}

/// A queue with no deduplication that hands every message out twice.
#[derive(Default)]
struct TwiceQueue {
    sent: Mutex<VecDeque<StepMessage>>,
}

#[async_trait::async_trait]
impl StepQueue for TwiceQueue {
    async fn send(
        &self,
        queue: &str,
        payload: &Value,
        _dedup: Option<&str>,
        _delay: Duration,
    ) -> Result<(), QueueError> {
        assert_eq!(queue, STEPS_QUEUE);
        let msg: StepMessage = serde_json::from_value(payload.clone())
            .map_err(|e| QueueError::Invalid(e.to_string()))?;
        self.sent.lock().unwrap().push_back(msg);
        Ok(())
    }
}

async fn state_counts(db: &TestDb) -> Vec<i64> {
    let mut out = vec![];
    for t in [
        "conversations",
        "messages",
        "llm_calls",
        "code_files",
        "checkpoints",
    ] {
        out.push(db.count(t).await);
    }
    out
}

async fn every_message_delivered_twice_gives_the_same_state_as_once(db: TestDb) {
    let llm = FakeLlm::start(Script {
        request_changes: true,
        ..Script::default()
    })
    .await;
    let queue = Arc::new(TwiceQueue::default());
    let (_, jobs) = ai_team_tests::harness::queue_of(&db);
    let h = Harness::with_queue(&db, &llm.base_url(), &[], queue.clone(), jobs).await;
    let wf = h.workflow("SHOP-3").await;
    let e = h.engine.start(wf.id).await.unwrap();
    // Every message is handed out twice; a re-send of a message already
    // handed out twice (the successor a redelivered step sends again) is
    // not handed out a third time, which bounds the run.
    let mut delivered: std::collections::HashMap<String, u32> = Default::default();
    let mut completed = Vec::new();
    loop {
        let next = queue.sent.lock().unwrap().pop_front();
        let Some(msg) = next else { break };
        let n = delivered.entry(msg.dedup_key()).or_default();
        if *n >= 2 {
            continue;
        }
        *n += 2;
        for _ in 0..2 {
            match h.engine.handle(&msg).await.unwrap() {
                Outcome::Completed { step, .. } => completed.push(step.as_str()),
                Outcome::AlreadyDone { .. } | Outcome::Stale { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(delivered.len() < 100, "runaway");
    }
    assert_eq!(
        completed,
        [
            "story_retrieval",
            "repository_context",
            "analysis",
            "architecture",
            "implementation",
            "frontend",
            "testing",
            "verification",
            "review",
            "rework",
            "rework_verification",
            "final_review",
            "integration"
        ],
        "each step ran once"
    );
    let twice = h.execution(&e).await;
    assert_eq!(twice.status, ExecutionStatus::Completed);
    let counts_twice = state_counts(&db).await;

    // The same story once, on a fresh database: the same records.
    let once_db = TestDb::new(db.backend).await;
    let h1 = Harness::new(&once_db, &llm.base_url(), &[]).await;
    let wf1 = h1.workflow("SHOP-3").await;
    let once = h1.run_to_end(wf1.id).await;
    assert_eq!(state_counts(&once_db).await, counts_twice);
    assert_eq!(
        (once.total_calls, once.total_tokens, once.total_cost),
        (twice.total_calls, twice.total_tokens, twice.total_cost)
    );
    let files = |d: Vec<ai_team_core::models::CodeFile>| {
        d.into_iter()
            .map(|f| (f.path, f.checksum))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        files(db.store.workflow_code_files(wf.id).await.unwrap()),
        files(once_db.store.workflow_code_files(wf1.id).await.unwrap())
    );
    // Redelivery of the whole run re-sent nothing to the model.
    assert_eq!(
        llm.requests(),
        16,
        "8 agent steps per run, two runs, none twice"
    );
}

async fn a_budget_too_low_stops_with_the_math_and_resume_finishes_it(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(
        &db,
        &llm.base_url(),
        &[("AI_TEAM_STEP_TOKEN_BUDGET", "100")],
    )
    .await;
    let wf = h.workflow("SHOP-4").await;
    let failed = h.run_to_end(wf.id).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert!(error.contains("step budget is 100"), "{error}");
    assert!(
        error.contains("prompt") && error.contains("max output"),
        "{error}"
    );
    assert!(
        error.contains(&format!(
            "POST /workflows/{}/executions/{}/resume",
            wf.id, failed.id
        )),
        "{error}"
    );
    assert_eq!(llm.requests(), 0, "nothing was spent past the budget");
    let events = db.store.events_after(wf.id, 0, 1000).await.unwrap();
    let escalation = events
        .iter()
        .find(|e| e.event_type == "escalation")
        .expect("escalation event");
    assert_eq!(escalation.data["budget"], "step");
    assert_eq!(escalation.data["limit"], 100);
    assert!(
        failed
            .meta
            .resume_hint
            .as_deref()
            .unwrap()
            .contains("resume")
    );

    let resumed = h
        .engine
        .resume(
            wf.id,
            failed.id,
            serde_json::from_value(json!({"step_tokens": 20000})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resumed.id, failed.id, "the same execution continues");
    h.drain().await;
    let done = h.execution(&failed).await;
    assert_eq!(done.status, ExecutionStatus::Completed, "{:?}", done.error);
    assert_eq!(done.meta.run, Some(2));
    assert_eq!(done.meta.budgets.map(|b| b.step_tokens), Some(20000));
    assert_eq!(done.total_calls, llm.requests() as i64);
    totals_match_rows(&db, done.id).await;
    // story_retrieval ran once: it is not run again by the resume.
    assert_eq!(scalar(&db, &format!("SELECT CAST(attempt AS BIGINT) FROM step_leases WHERE execution_id = {} AND step = 'story_retrieval'", done.id)).await, 1);
    assert_eq!(scalar(&db, &format!("SELECT CAST(attempt AS BIGINT) FROM step_leases WHERE execution_id = {} AND step = 'analysis'", done.id)).await, 2);
}

async fn a_permanently_failing_llm_fails_the_execution_readably(db: TestDb) {
    let llm = FakeLlm::start(Script {
        fail_with: Some(500),
        ..Script::default()
    })
    .await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let app = TestApp::spawn_state(
        AppState::new(db.store.clone(), config_with(&[])).with_engine(h.engine.clone()),
    )
    .await;
    let wf = h.workflow("SHOP-5").await;
    let failed = h.run_to_end(wf.id).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert!(
        error.starts_with(
            "step analysis (pm) failed: the model call failed (500 after every retry)"
        ),
        "{error}"
    );
    assert!(error.contains("/resume"), "{error}");
    assert_eq!(failed.total_calls, 2, "both attempts are on record");
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM llm_calls WHERE status = 'failed' AND error_code = '500'"
        )
        .await,
        2
    );
    assert_eq!(
        db.store.get_workflow(wf.id).await.unwrap().status.as_str(),
        "failed"
    );
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    let body: Value = app
        .get(&format!("/workflows/{}/executions/{}", wf.id, failed.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "failed");
    // Once the provider is back, resume finishes the same execution.
    llm.set_script(Script::default());
    h.engine
        .resume(wf.id, failed.id, Default::default())
        .await
        .unwrap();
    h.drain().await;
    assert_eq!(
        h.execution(&failed).await.status,
        ExecutionStatus::Completed
    );
}

async fn an_unreadable_checkpoint_fails_the_run_once_and_refuses_a_resume(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-9").await;
    let e = h.engine.start(wf.id).await.unwrap();
    // story, repository: no model call yet.
    for _ in 0..2 {
        h.worker.try_execute_next().await.unwrap().unwrap();
    }
    // A state another version wrote (or a hand edit): not this version's shape.
    db.execute(&format!(
        "UPDATE checkpoints SET summary = '{{\"story_key\": 5}}' WHERE execution_id = {}",
        e.id
    ))
    .await;
    let rest = h.drain().await;
    assert_eq!(
        rest.iter()
            .filter(|o| matches!(o, Outcome::Failed { .. }))
            .count(),
        1,
        "{rest:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|o| matches!(o, Outcome::Retry { .. } | Outcome::Busy { .. })),
        "the step is not retried: {rest:?}"
    );
    let failed = h.execution(&e).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.unwrap();
    assert!(
        error.contains("the checkpoint after repository_context cannot be read")
            && error.contains("start a new execution"),
        "{error}"
    );
    assert_eq!(
        llm.requests(),
        0,
        "nothing was sent on a state it could not read"
    );
    let refused = h
        .engine
        .resume(wf.id, e.id, Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("cannot be read"), "{refused}");
    // A new execution of the same workflow runs.
    let again = h.engine.start(wf.id).await.unwrap();
    h.drain().await;
    assert_eq!(h.execution(&again).await.status, ExecutionStatus::Completed);
}

async fn cancel_stops_after_the_step_in_flight_and_resume_continues(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-6").await;
    let e = h.engine.start(wf.id).await.unwrap();
    // story, repository, analysis, architecture: two model calls.
    for _ in 0..4 {
        h.worker.try_execute_next().await.unwrap().unwrap();
    }
    let cancelled = h.engine.cancel(wf.id, e.id).await.unwrap();
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    let rest = h.drain().await;
    assert!(
        rest.iter().all(|o| matches!(o, Outcome::Stale { .. })),
        "{rest:?}"
    );
    assert_eq!(llm.requests(), 2);
    assert!(
        h.engine.cancel(wf.id, e.id).await.is_err(),
        "cancelling twice is a conflict"
    );
    h.resume_and_drain(&e).await;
    let done = h.execution(&e).await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    assert_eq!(
        llm.requests(),
        6,
        "the two finished steps were not run again"
    );
}

async fn a_step_finishing_after_its_execution_was_cancelled_queues_nothing(db: TestDb) {
    let llm = FakeLlm::start(Script {
        delay_ms: (400, 400),
        ..Script::default()
    })
    .await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-6B").await;
    let e = h.engine.start(wf.id).await.unwrap();
    // story, repository: no model call.
    for _ in 0..2 {
        h.worker.try_execute_next().await.unwrap().unwrap();
    }
    // Analysis waits on the model while the execution is cancelled.
    let worker = h.worker.clone();
    let in_flight = tokio::spawn(async move { worker.try_execute_next().await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    h.engine.cancel(wf.id, e.id).await.unwrap();
    let outcome = in_flight.await.unwrap().unwrap().unwrap();
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM queue_jobs WHERE status <> 'done'"
        )
        .await,
        0,
        "the next step was not queued"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM checkpoints WHERE step = 'analysis'"
        )
        .await,
        1,
        "the step's work is kept"
    );
    assert_eq!(h.execution(&e).await.status, ExecutionStatus::Cancelled);
    h.resume_and_drain(&e).await;
    assert_eq!(h.execution(&e).await.status, ExecutionStatus::Completed);
}

async fn step_leases_are_exclusive_until_they_expire(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-7").await;
    let e = db.store.create_execution(wf.id).await.unwrap();
    let s = &db.store;
    let lease = Duration::from_millis(300);
    assert_eq!(
        s.claim_step(e.id, Step::Analysis, "a", lease)
            .await
            .unwrap(),
        Claim::Claimed { attempt: 1 }
    );
    assert!(matches!(
        s.claim_step(e.id, Step::Analysis, "b", lease)
            .await
            .unwrap(),
        Claim::Busy { .. }
    ));
    assert!(
        s.renew_lease(e.id, Step::Analysis, "a", lease)
            .await
            .unwrap()
    );
    assert!(
        !s.renew_lease(e.id, Step::Analysis, "b", lease)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.claim_step(e.id, Step::Analysis, "b", lease)
            .await
            .unwrap(),
        Claim::Claimed { attempt: 2 }
    );
    assert!(
        !s.renew_lease(e.id, Step::Analysis, "a", lease)
            .await
            .unwrap(),
        "the old owner lost it"
    );
    assert_eq!(s.release_leases("b").await.unwrap(), 1);
    assert_eq!(
        s.claim_step(e.id, Step::Analysis, "c", lease)
            .await
            .unwrap(),
        Claim::Claimed { attempt: 3 }
    );
}

async fn http_triggers_start_resume_and_cancel(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let app = TestApp::spawn_state(
        AppState::new(db.store.clone(), config_with(&[])).with_engine(h.engine.clone()),
    )
    .await;
    let wf = h.workflow("SHOP-8").await;
    let r = app
        .post_json(&format!("/workflows/{}/execute", wf.id), &json!({}))
        .await;
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["workflow_id"], wf.id);
    assert_eq!(body["status"], "pending");
    let eid = body["execution_id"].as_i64().unwrap();
    let again = app
        .post_json(
            &format!("/workflows/{}/executions/start", wf.id),
            &json!({}),
        )
        .await;
    assert_eq!(again.status(), 409);
    assert!(
        app.post_json("/workflows/999999/execute", &json!({}))
            .await
            .status()
            == 404
    );
    let resume_running = app
        .post_json(
            &format!("/workflows/{}/executions/{eid}/resume", wf.id),
            &json!({}),
        )
        .await;
    assert_eq!(resume_running.status(), 409);
    let bad = app
        .post_json(
            &format!("/workflows/{}/executions/{eid}/resume", wf.id),
            &json!({"budgets": {"step_tokens": -5}}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let unknown_field = app
        .post_json(
            &format!("/workflows/{}/executions/{eid}/resume", wf.id),
            &json!({"budgets": {"steps": 5}}),
        )
        .await;
    assert_eq!(unknown_field.status(), 422);
    let cancel = app
        .post_json(
            &format!("/workflows/{}/executions/{eid}/cancel", wf.id),
            &json!({}),
        )
        .await;
    assert_eq!(cancel.status(), 200);
    assert_eq!(cancel.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(
        app.post_json(
            &format!("/workflows/{}/executions/{eid}/cancel", wf.id),
            &json!({})
        )
        .await
        .status(),
        409
    );
    assert_eq!(
        app.post_json(
            &format!("/workflows/{}/executions/99999/cancel", wf.id),
            &json!({})
        )
        .await
        .status(),
        404
    );
    let resumed = app
        .post_json(
            &format!("/workflows/{}/executions/{eid}/resume", wf.id),
            &json!({"budgets": {"agent_tokens": 90000}}),
        )
        .await;
    assert_eq!(resumed.status(), 202);
    let resumed: Value = resumed.json().await.unwrap();
    assert_eq!(resumed["execution_id"], eid);
    assert_eq!(resumed["budgets"]["agent_tokens"], 90000);
    h.drain().await;
    let done: Value = app
        .get(&format!("/workflows/{}/executions/{eid}", wf.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    let wf_now: Value = app
        .get(&format!("/workflows/{}", wf.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(wf_now["status"], "completed");
    assert_eq!(wf_now["code_files"].as_array().unwrap().len(), 4);
    // A finished execution cannot be resumed; the workflow can be deleted.
    assert_eq!(
        app.post_json(
            &format!("/workflows/{}/executions/{eid}/resume", wf.id),
            &json!({})
        )
        .await
        .status(),
        409
    );
    assert_eq!(
        app.delete(&format!("/workflows/{}", wf.id)).await.status(),
        200
    );
}

async fn an_execution_whose_worker_stopped_beating_is_failed_with_a_resume_hint(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let wf = h.workflow("SHOP-9").await;
    let e = h.engine.start(wf.id).await.unwrap();
    // Three steps run, then the worker "dies": its heartbeat stops.
    h.worker.try_execute_next().await.unwrap().unwrap();
    h.worker.try_execute_next().await.unwrap().unwrap();
    h.worker.try_execute_next().await.unwrap().unwrap();
    assert_eq!(
        h.engine
            .sweep_stale(Duration::from_secs(120))
            .await
            .unwrap(),
        0,
        "a beating execution is left alone"
    );
    db.execute(&format!(
        "UPDATE executions SET heartbeat_at = '2000-01-01T00:00:00+00:00' WHERE id = {}",
        e.id
    ))
    .await;
    assert_eq!(
        h.engine
            .sweep_stale(Duration::from_secs(120))
            .await
            .unwrap(),
        1
    );
    let failed = h.execution(&e).await;
    assert_eq!(failed.status, ExecutionStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert!(
        error.starts_with("no heartbeat from the worker for more than 120 s"),
        "{error}"
    );
    assert!(
        error.contains("resume") && error.contains("(analysis)"),
        "{error}"
    );
    let events = db.store.events_after(wf.id, 0, 1000).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, "error");
    // The queued next step is stale now; resume continues from the checkpoint.
    h.drain().await;
    assert_eq!(llm.requests(), 1);
    h.resume_and_drain(&e).await;
    assert_eq!(h.execution(&e).await.status, ExecutionStatus::Completed);
    assert_eq!(llm.requests(), 6, "analysis was not bought twice");
}
