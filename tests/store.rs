//! The store suite: every test runs on SQLite and on PostgreSQL (a fresh
//! database each), through the `Store` port only, with raw row counts
//! where the port offers no view.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::Arc;

use ai_team_core::StoreError;
use ai_team_core::models::{
    ArtifactRef, ExecutionStatus, LlmCall, NewCodeFile, NewLlmCall, NewMessage, Role,
};
use ai_team_core::query::{
    LlmCallQuery, NewWorkflow, PageRequest, RawLlmCallQuery, SortBy, SortDir,
};
use ai_team_tests::seed::{self, Lcg};
use ai_team_tests::{TestDb, on_both_databases};
use chrono::Utc;
use serde_json::json;

on_both_databases!(
    creating_a_workflow_twice_returns_the_existing_one,
    fifty_concurrent_creates_of_one_story_make_one_row,
    workflows_list_newest_first_with_pages,
    deleting_a_workflow_removes_everything_under_it,
    deleting_a_workflow_with_a_live_execution_is_refused,
    one_live_execution_per_workflow,
    execution_belongs_to_its_workflow,
    recording_calls_keeps_conversation_and_execution_totals,
    every_llm_call_query_matches_a_brute_force_filter,
    text_search_finds_rows_however_written_and_agrees_across_plans,
    messages_page_in_order_with_their_artifacts,
    event_ids_increase_per_workflow_without_gaps_under_concurrency,
    workflow_detail_lists_conversations_files_and_calls,
    unknown_records_are_not_found,
    the_first_service_secret_stored_is_the_one_every_instance_reads,
);

fn new_workflow(story: &str) -> NewWorkflow {
    NewWorkflow::parse(
        "Reset password",
        story,
        Some("https://github.com/o/r"),
        None,
    )
    .unwrap()
}

async fn creating_a_workflow_twice_returns_the_existing_one(db: TestDb) {
    let first = db
        .store
        .create_workflow(&new_workflow("PROJ-1"))
        .await
        .unwrap();
    assert!(first.is_new());
    let again = db
        .store
        .create_workflow(&new_workflow("PROJ-1"))
        .await
        .unwrap();
    assert!(!again.is_new());
    assert_eq!(first.into_inner(), again.into_inner());
    assert_eq!(db.count("workflows").await, 1);
}

async fn fifty_concurrent_creates_of_one_story_make_one_row(db: TestDb) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = db.store.clone();
            tokio::spawn(async move { store.create_workflow(&new_workflow("RACE-1")).await })
        })
        .collect();
    let mut new = 0;
    let mut ids = Vec::new();
    for t in tasks {
        let created = t.await.unwrap().unwrap();
        new += usize::from(created.is_new());
        ids.push(created.into_inner().id);
    }
    assert_eq!(new, 1, "exactly one create is new");
    assert!(ids.iter().all(|id| *id == ids[0]), "all see the same row");
    assert_eq!(db.count("workflows").await, 1);
}

async fn workflows_list_newest_first_with_pages(db: TestDb) {
    for i in 0..5 {
        db.store
            .create_workflow(&new_workflow(&format!("P-{i}")))
            .await
            .unwrap();
    }
    let all = db.store.list_workflows(None).await.unwrap();
    assert_eq!(all.total, 5);
    let stories: Vec<_> = all.items.iter().map(|w| w.jira_story_id.as_str()).collect();
    assert_eq!(stories, ["P-4", "P-3", "P-2", "P-1", "P-0"]);
    let page2 = db
        .store
        .list_workflows(Some(PageRequest {
            page: 2,
            page_size: 2,
        }))
        .await
        .unwrap();
    assert_eq!(page2.total, 5);
    assert_eq!(page2.items, all.items[2..4]);
}

async fn deleting_a_workflow_removes_everything_under_it(db: TestDb) {
    let keep = seed::workflow(&*db.store, "KEEP-1").await;
    let keep_conv = seed::conversation(&*db.store, keep, None, "analysis").await;
    let doomed = seed::workflow(&*db.store, "DEL-1").await;
    let execution = db.store.create_execution(doomed).await.unwrap();
    db.execute(&format!(
        "UPDATE executions SET status = 'completed' WHERE id = {}",
        execution.id
    ))
    .await;
    let conv = seed::conversation(&*db.store, doomed, Some(execution.id), "implementation").await;
    let mut rng = Lcg::new(1);
    let calls: Vec<_> = (0..20)
        .map(|_| seed::call(&mut rng, conv, Some(execution.id)))
        .collect();
    db.store.record_llm_calls(&calls).await.unwrap();
    db.store
        .record_llm_calls(&[seed::call(&mut rng, keep_conv, None)])
        .await
        .unwrap();
    db.store
        .add_message(&NewMessage {
            conversation_id: conv,
            role: Role::Assistant,
            content: "here".into(),
            artifacts: vec![],
            message_metadata: json!({}),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    db.store
        .add_code_file(&NewCodeFile {
            workflow_id: doomed,
            conversation_id: Some(conv),
            execution_id: Some(execution.id),
            path: "app/reset.py".into(),
            language: Some("python".into()),
            content: "print(1)".into(),
            checksum: "abc".into(),
        })
        .await
        .unwrap();
    db.store
        .append_event(doomed, Some(execution.id), "workflow", &json!({}))
        .await
        .unwrap();

    db.store.delete_workflow(doomed).await.unwrap();

    for (table, left) in [
        ("workflows", 1),
        ("executions", 0),
        ("conversations", 1),
        ("messages", 0),
        ("llm_calls", 1),
        ("code_files", 0),
        ("events", 0),
    ] {
        assert_eq!(db.count(table).await, left, "rows left in {table}");
    }
    assert!(matches!(
        db.store.get_workflow(doomed).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        db.store.delete_workflow(doomed).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn deleting_a_workflow_with_a_live_execution_is_refused(db: TestDb) {
    let id = seed::workflow(&*db.store, "LIVE-1").await;
    db.store.create_execution(id).await.unwrap();
    let err = db.store.delete_workflow(id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(db.count("workflows").await, 1);
    assert_eq!(db.count("executions").await, 1);
}

async fn one_live_execution_per_workflow(db: TestDb) {
    let id = seed::workflow(&*db.store, "EXE-1").await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = db.store.clone();
            tokio::spawn(async move { store.create_execution(id).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(e) => {
                ok += 1;
                assert_eq!(e.status, ExecutionStatus::Pending);
            }
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 1);
    db.execute("UPDATE executions SET status = 'failed'").await;
    db.store.create_execution(id).await.unwrap();
    let list = db.store.list_executions(id, None).await.unwrap();
    assert_eq!(list.total, 2);
    assert!(list.items[0].id > list.items[1].id, "newest first");
    assert!(matches!(
        db.store.create_execution(999_999).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn execution_belongs_to_its_workflow(db: TestDb) {
    let a = seed::workflow(&*db.store, "A-1").await;
    let b = seed::workflow(&*db.store, "B-1").await;
    let e = db.store.create_execution(a).await.unwrap();
    assert_eq!(db.store.get_execution(a, e.id).await.unwrap(), e);
    assert!(matches!(
        db.store.get_execution(b, e.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn recording_calls_keeps_conversation_and_execution_totals(db: TestDb) {
    let wf = seed::workflow(&*db.store, "TOT-1").await;
    let exec = db.store.create_execution(wf).await.unwrap();
    let conv = seed::conversation(&*db.store, wf, Some(exec.id), "implementation").await;
    let mut rng = Lcg::new(7);
    let calls: Vec<NewLlmCall> = (0..30)
        .map(|_| seed::call(&mut rng, conv, Some(exec.id)))
        .collect();
    let (first, rest) = calls.split_at(10);
    db.store.record_llm_calls(first).await.unwrap();
    db.store.record_llm_calls(rest).await.unwrap();

    let tokens: i64 = calls
        .iter()
        .map(|c| c.prompt_tokens + c.completion_tokens)
        .sum();
    let cost: i64 = calls.iter().map(|c| c.cost).sum();
    let latency: i64 = calls.iter().map(|c| c.response_time_ms).sum();
    let conversation = db.store.get_conversation(conv).await.unwrap();
    assert_eq!(conversation.total_tokens_used, tokens);
    assert_eq!(conversation.total_cost, cost);
    assert_eq!(conversation.llm_calls_count, 30);
    let e = db.store.get_execution(wf, exec.id).await.unwrap();
    assert_eq!(e.total_calls, 30);
    assert_eq!(e.total_tokens, tokens);
    assert_eq!(e.prompt_tokens + e.completion_tokens, tokens);
    assert_eq!(e.total_cost, cost);
    assert!((e.avg_latency_ms - latency as f64 / 30.0).abs() < 1e-9);
    let mut models: Vec<_> = calls.iter().map(|c| c.model.clone()).collect();
    models.sort();
    models.dedup();
    let mut got = e.models.clone();
    got.sort();
    assert_eq!(got, models);

    // A batch naming a missing conversation writes nothing at all.
    let mut bad = seed::call(&mut rng, conv, Some(exec.id));
    bad.conversation_id = 999_999;
    let good = seed::call(&mut rng, conv, Some(exec.id));
    assert!(db.store.record_llm_calls(&[good, bad]).await.is_err());
    assert_eq!(db.count("llm_calls").await, 30);
    assert_eq!(
        db.store
            .get_conversation(conv)
            .await
            .unwrap()
            .llm_calls_count,
        30
    );
}

/// What the endpoint must answer, computed from the raw rows.
fn brute_force(rows: &[LlmCall], q: &LlmCallQuery) -> (Vec<i64>, i64) {
    let mut hits: Vec<&LlmCall> = rows
        .iter()
        .filter(|c| q.model.as_ref().is_none_or(|m| &c.model == m))
        .filter(|c| q.date_from.is_none_or(|d| c.timestamp >= d))
        .filter(|c| q.date_to.is_none_or(|d| c.timestamp <= d))
        .filter(|c| {
            q.q.as_ref().is_none_or(|s| {
                c.request_data.to_string().to_lowercase().contains(s)
                    || c.response_data.to_string().to_lowercase().contains(s)
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        let key = match q.sort_by {
            SortBy::Timestamp => a.timestamp.cmp(&b.timestamp),
            SortBy::Model => a.model.cmp(&b.model).then(a.timestamp.cmp(&b.timestamp)),
            SortBy::TotalTokens => a.total_tokens.cmp(&b.total_tokens),
            SortBy::ResponseTimeMs => a.response_time_ms.cmp(&b.response_time_ms),
            SortBy::Cost => a.cost.cmp(&b.cost),
            SortBy::Id => std::cmp::Ordering::Equal,
        }
        .then(a.id.cmp(&b.id));
        if q.sort_dir == SortDir::Desc {
            key.reverse()
        } else {
            key
        }
    });
    let total = hits.len() as i64;
    let page: Vec<i64> = hits
        .iter()
        .skip(q.page.offset() as usize)
        .take(q.page.limit() as usize)
        .map(|c| c.id)
        .collect();
    (page, total)
}

async fn every_llm_call_query_matches_a_brute_force_filter(db: TestDb) {
    let wf = seed::workflow(&*db.store, "CALLS-1").await;
    let conv = seed::conversation(&*db.store, wf, None, "implementation").await;
    let other = seed::conversation(&*db.store, wf, None, "testing").await;
    let mut rng = Lcg::new(42);
    let calls: Vec<NewLlmCall> = (0..400).map(|_| seed::call(&mut rng, conv, None)).collect();
    for chunk in calls.chunks(100) {
        db.store.record_llm_calls(chunk).await.unwrap();
    }
    let noise: Vec<NewLlmCall> = (0..40).map(|_| seed::call(&mut rng, other, None)).collect();
    db.store.record_llm_calls(&noise).await.unwrap();

    // The raw rows, read back whole (page size 200, by id).
    let mut rows = Vec::new();
    for page in 1..=2 {
        let q = LlmCallQuery {
            page: PageRequest {
                page,
                page_size: 200,
            },
            sort_by: SortBy::Id,
            sort_dir: SortDir::Asc,
            ..Default::default()
        };
        rows.extend(db.store.list_llm_calls(conv, &q).await.unwrap().calls);
    }
    assert_eq!(rows.len(), 400);
    for (row, new) in rows.iter().zip(&calls) {
        assert_eq!(row.model, new.model);
        assert_eq!(row.timestamp, new.timestamp);
        assert_eq!(row.cost, new.cost);
        assert_eq!(row.request_data, new.request_data);
        assert_eq!(row.total_tokens, new.prompt_tokens + new.completion_tokens);
    }
    let total_tokens: i64 = rows.iter().map(|c| c.total_tokens).sum();
    let total_cost: i64 = rows.iter().map(|c| c.cost).sum();

    let sorts = [
        "timestamp",
        "model",
        "total_tokens",
        "response_time_ms",
        "cost",
        "id",
    ];
    let mut checked = 0;
    for (i, sort_by) in sorts.iter().enumerate() {
        for sort_dir in ["asc", "desc"] {
            for filter in 0..8 {
                let page = (1 + (i + filter) % 3).to_string();
                let page_size = ["7", "50", "200"][filter % 3];
                let raw = RawLlmCallQuery {
                    page: Some(&page),
                    page_size: Some(page_size),
                    sort_by: Some(sort_by),
                    sort_dir: Some(sort_dir),
                    model: (filter & 1 == 1).then_some("gpt-4o"),
                    q: match filter {
                        2 | 3 => Some("PASSWORD"),
                        6 => Some("50%_off"),
                        7 => Some("ünïcode"),
                        _ => None,
                    },
                    date_from: (filter >= 4).then_some("2026-11-03T12:00:00Z"),
                    date_to: (filter >= 4).then_some("2026-11-08"),
                };
                let q = LlmCallQuery::parse(raw).unwrap();
                let got = db.store.list_llm_calls(conv, &q).await.unwrap();
                let (ids, total) = brute_force(&rows, &q);
                let got_ids: Vec<i64> = got.calls.iter().map(|c| c.id).collect();
                assert_eq!(got_ids, ids, "ids for {q:?}");
                assert_eq!(got.total, total, "total for {q:?}");
                assert_eq!(got.total_tokens_used, total_tokens);
                assert_eq!(got.total_cost, total_cost);
                checked += usize::from(!ids.is_empty());
            }
        }
    }
    assert!(
        checked > 60,
        "most queries must return rows to prove anything ({checked})"
    );
}

/// The `q` search is served by an index kept by the database (SQLite's
/// FTS5 triggers, PostgreSQL's trigram GIN): rows inserted or changed by
/// plain SQL are found, deleted ones are not, a text frequent enough to
/// take the scan plan (over 1,000 matches on SQLite) and a rare one that
/// takes the index answer what a substring filter answers, and case is
/// folded beyond ASCII.
async fn text_search_finds_rows_however_written_and_agrees_across_plans(db: TestDb) {
    let wf = seed::workflow(&*db.store, "SEARCH-1").await;
    let conv = seed::conversation(&*db.store, wf, None, "implementation").await;
    let mut rng = Lcg::new(7);
    let mut calls: Vec<NewLlmCall> = (0..1_200)
        .map(|_| seed::call(&mut rng, conv, None))
        .collect();
    for (i, c) in calls.iter_mut().enumerate() {
        c.request_data =
            json!({"messages": [{"role": "user", "content": format!("Frequent needle {i}")}]});
    }
    calls[17].response_data = json!({"content": "a rare ÉTOILE here"});
    for chunk in calls.chunks(200) {
        db.store.record_llm_calls(chunk).await.unwrap();
    }
    let search = |text: &'static str| {
        let store = db.store.clone();
        async move {
            let q = LlmCallQuery::parse(RawLlmCallQuery {
                q: Some(text),
                page_size: Some("5"),
                ..Default::default()
            })
            .unwrap();
            store.list_llm_calls(conv, &q).await.unwrap()
        }
    };
    // Frequent (scan plan on SQLite): every row, newest first.
    let page = search("NEEDLE").await;
    assert_eq!(page.total, 1_200);
    assert_eq!(page.calls.len(), 5);
    // Rare (index plan): one row, case folded beyond ASCII.
    let page = search("étoile").await;
    assert_eq!(page.total, 1, "{:?}", page.calls);
    assert_eq!(
        page.calls[0].response_data,
        json!({"content": "a rare ÉTOILE here"})
    );
    assert_eq!(search("needle 1199").await.total, 1);
    assert_eq!(search("needle 119").await.total, 11, "119 and 1190..=1199");
    // Written, changed and deleted by SQL, not through the store.
    let id = page.calls[0].id;
    db.execute(&format!(
        "INSERT INTO llm_calls (conversation_id, model, status, prompt_hash, timestamp, request_data, response_data) \
         SELECT conversation_id, model, status, prompt_hash, timestamp, '{{\"imported\": \"Zebra crossing\"}}', '{{}}' \
         FROM llm_calls WHERE id = {id}"
    ))
    .await;
    assert_eq!(search("zebra cross").await.total, 1);
    db.execute(&format!(
        "UPDATE llm_calls SET response_data = '{{\"content\": \"a quiet comet\"}}' WHERE id = {id}"
    ))
    .await;
    assert_eq!(search("étoile").await.total, 0);
    assert_eq!(search("quiet comet").await.total, 1);
    db.execute(&format!("DELETE FROM llm_calls WHERE id = {id}"))
        .await;
    assert_eq!(search("quiet comet").await.total, 0);
    // Shorter than a trigram: the scan answers it.
    assert_eq!(search("é").await.total, 0);
    assert_eq!(search("1199").await.total, 1);
}

async fn messages_page_in_order_with_their_artifacts(db: TestDb) {
    let wf = seed::workflow(&*db.store, "MSG-1").await;
    let conv = seed::conversation(&*db.store, wf, None, "analysis").await;
    for i in 0..12 {
        db.store
            .add_message(&NewMessage {
                conversation_id: conv,
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: format!("message {i}"),
                artifacts: vec![ArtifactRef {
                    kind: "design".into(),
                    id: format!("a{i}"),
                    uri: format!("blob://a{i}"),
                    checksum: "sha256:00".into(),
                }],
                message_metadata: json!({"agent": "pm", "step": "analysis"}),
                created_at: Utc::now(),
            })
            .await
            .unwrap();
    }
    let page = db
        .store
        .list_messages(
            conv,
            PageRequest {
                page: 2,
                page_size: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 12);
    let contents: Vec<_> = page.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        [
            "message 5",
            "message 6",
            "message 7",
            "message 8",
            "message 9"
        ]
    );
    assert_eq!(page.items[0].artifacts[0].id, "a5");
    assert_eq!(page.items[0].message_metadata["agent"], "pm");
}

async fn event_ids_increase_per_workflow_without_gaps_under_concurrency(db: TestDb) {
    let a = seed::workflow(&*db.store, "EV-A").await;
    let b = seed::workflow(&*db.store, "EV-B").await;
    let store = db.store.clone();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(&store);
            let wf = if i % 2 == 0 { a } else { b };
            tokio::spawn(async move {
                store
                    .append_event(wf, None, "heartbeat", &json!({"i": i}))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for wf in [a, b] {
        let events = db.store.events_after(wf, 0, 1000).await.unwrap();
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids, (1..=20).collect::<Vec<_>>());
        let tail = db.store.events_after(wf, 15, 1000).await.unwrap();
        assert_eq!(tail.first().map(|e| e.id), Some(16));
    }
    assert!(matches!(
        db.store.append_event(999_999, None, "x", &json!({})).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn workflow_detail_lists_conversations_files_and_calls(db: TestDb) {
    let wf = seed::workflow(&*db.store, "DET-1").await;
    let c1 = seed::conversation(&*db.store, wf, None, "analysis").await;
    let c2 = seed::conversation(&*db.store, wf, None, "implementation").await;
    let mut rng = Lcg::new(3);
    let calls: Vec<_> = (0..3).map(|_| seed::call(&mut rng, c2, None)).collect();
    db.store.record_llm_calls(&calls).await.unwrap();
    db.store
        .add_code_file(&NewCodeFile {
            workflow_id: wf,
            conversation_id: Some(c2),
            execution_id: None,
            path: "src/reset.rs".into(),
            language: Some("rust".into()),
            content: "fn main() {}".into(),
            checksum: "x".into(),
        })
        .await
        .unwrap();
    let whole = db.store.workflow_detail(wf).await.unwrap();
    assert_eq!(whole.workflow.id, wf);
    let detail = whole.conversations;
    assert_eq!(
        detail.iter().map(|d| d.conversation.id).collect::<Vec<_>>(),
        [c1, c2]
    );
    assert!(detail[0].code_files.is_empty());
    assert_eq!(detail[1].code_files[0].path, "src/reset.rs");
    assert_eq!(detail[1].llm_calls.len(), 3);
    assert_eq!(detail[1].conversation.llm_calls_count, 3);
    assert_eq!(whole.code_files.len(), 1);
    assert_eq!(db.store.workflow_code_files(wf).await.unwrap().len(), 1);
}

async fn unknown_records_are_not_found(db: TestDb) {
    let nf = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound(_)));
    assert!(nf(db.store.get_workflow(42).await.map(drop)));
    assert!(nf(db.store.get_conversation(42).await.map(drop)));
    assert!(nf(db.store.list_executions(42, None).await.map(drop)));
    assert!(nf(db
        .store
        .list_messages(42, PageRequest::default())
        .await
        .map(drop)));
    assert!(nf(db
        .store
        .list_llm_calls(42, &LlmCallQuery::default())
        .await
        .map(drop)));
    assert!(
        db.store
            .find_workflow_by_story("nope")
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_first_service_secret_stored_is_the_one_every_instance_reads(db: TestDb) {
    let store = db.store.clone();
    let tries = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .service_secret("queue-message-key", &format!("candidate-{i}"))
                .await
                .unwrap()
        })
    });
    let mut seen = Vec::new();
    for t in tries {
        seen.push(t.await.unwrap());
    }
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:?}");
    assert!(seen[0].starts_with("candidate-"));
    assert_eq!(
        db.store
            .service_secret("queue-message-key", "late")
            .await
            .unwrap(),
        seen[0]
    );
    assert_eq!(db.store.service_secret("other", "x").await.unwrap(), "x");
    assert_eq!(db.count("service_secrets").await, 2);
}
