//! Run comparison against sums computed from the raw call rows, on SQLite
//! and PostgreSQL: workflow against workflow, execution against execution
//! (with the steps whose prompt changed), and the error cases.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use ai_team_functions::AppState;
use ai_team_tests::fake_llm::{FakeLlm, Script};
use ai_team_tests::harness::Harness;
use ai_team_tests::{Raw, TestApp, TestDb, config_with, on_both_databases};
use serde_json::Value;

on_both_databases!(
    workflow_and_execution_comparisons_match_the_raw_rows,
    comparison_errors_are_clear,
);

type Row = (String, String, i64, i64, i64, i64, String, String);

/// (agent, step, prompt, completion, cost, latency, model, prompt_hash) of
/// every call in scope, straight from the tables.
async fn rows(db: &TestDb, filter: &str) -> Vec<Row> {
    let sql = format!(
        "SELECT c.agent, c.step, l.prompt_tokens, l.completion_tokens, l.cost_nanos, l.response_time_ms, l.model, l.prompt_hash \
         FROM llm_calls l JOIN conversations c ON c.id = l.conversation_id WHERE {filter} ORDER BY l.id"
    );
    match &db.raw {
        Raw::Sqlite(s) => sqlx::query_as(&sql).fetch_all(s.pool()).await,
        Raw::Postgres(s) => sqlx::query_as(&sql).fetch_all(s.pool()).await,
    }
    .expect("rows")
}

fn check(side: &Value, rows: &[Row]) {
    let tokens: i64 = rows.iter().map(|r| r.2 + r.3).sum();
    let cost: i64 = rows.iter().map(|r| r.4).sum();
    assert_eq!(side["total_calls"], rows.len() as i64);
    assert_eq!(side["prompt_tokens"], rows.iter().map(|r| r.2).sum::<i64>());
    assert_eq!(
        side["completion_tokens"],
        rows.iter().map(|r| r.3).sum::<i64>()
    );
    assert_eq!(side["total_tokens"], tokens);
    assert_eq!(
        side["total_cost"].as_f64().unwrap(),
        ai_team_core::money::nanos_to_dollars(cost)
    );
    let mut lat: Vec<i64> = rows.iter().map(|r| r.5).collect();
    lat.sort_unstable();
    let avg = lat.iter().sum::<i64>() as f64 / lat.len() as f64;
    assert!((side["avg_latency_ms"].as_f64().unwrap() - avg).abs() < 1e-9);
    let rank = ((0.95 * lat.len() as f64).ceil() as usize).max(1);
    assert_eq!(
        side["p95_latency_ms"].as_f64().unwrap(),
        lat[rank - 1] as f64
    );
    for (agent, totals) in side["per_agent"].as_object().unwrap() {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.0 == agent).collect();
        assert_eq!(totals["calls"], mine.len() as i64, "{agent}");
        assert_eq!(
            totals["tokens"],
            mine.iter().map(|r| r.2 + r.3).sum::<i64>(),
            "{agent}"
        );
    }
    assert_eq!(side["per_agent"].as_object().unwrap().len(), {
        let mut a: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        a.sort();
        a.dedup();
        a.len()
    });
}

async fn workflow_and_execution_comparisons_match_the_raw_rows(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let app = TestApp::spawn_state(AppState::new(db.store.clone(), config_with(&[]))).await;
    let a = h.workflow("CMP-1").await;
    let e1 = h.run_to_end(a.id).await;
    // The story changes; the reviewer now asks for changes.
    db.execute(&format!(
        "UPDATE workflows SET description = 'A different story text' WHERE id = {}",
        a.id
    ))
    .await;
    llm.set_script(Script {
        request_changes: true,
        ..Script::default()
    });
    let e2 = h.run_to_end(a.id).await;
    let b = h.workflow("CMP-2").await;
    h.run_to_end(b.id).await;

    let v: Value = app
        .get(&format!("/workflows/{}/compare?with={}", a.id, b.id))
        .await
        .json()
        .await
        .unwrap();
    let rows_a = rows(&db, &format!("c.workflow_id = {}", a.id)).await;
    let rows_b = rows(&db, &format!("c.workflow_id = {}", b.id)).await;
    check(&v["a"], &rows_a);
    check(&v["b"], &rows_b);
    assert_eq!(v["a"]["id"], a.id);
    assert_eq!(v["a"]["models"], serde_json::json!(["gpt-4o-mini"]));
    assert_eq!(
        v["delta"]["total_calls"],
        rows_b.len() as i64 - rows_a.len() as i64
    );
    assert_eq!(
        v["delta"]["total_tokens"],
        v["b"]["total_tokens"].as_i64().unwrap() - v["a"]["total_tokens"].as_i64().unwrap()
    );

    let path = format!("/workflows/{}/executions/{}/compare/{}", a.id, e1.id, e2.id);
    let v: Value = app.get(&path).await.json().await.unwrap();
    check(
        &v["a"],
        &rows(&db, &format!("l.execution_id = {}", e1.id)).await,
    );
    check(
        &v["b"],
        &rows(&db, &format!("l.execution_id = {}", e2.id)).await,
    );
    let steps: Vec<(&str, bool)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap(),
                s["prompt_hash_changed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps[0], ("analysis", true), "the story changed");
    assert!(
        steps.contains(&("rework", true)) && steps.contains(&("final_review", true)),
        "{steps:?}"
    );
    let rework = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "rework")
        .unwrap();
    assert_eq!(rework["tokens_a"], 0);
    assert!(rework["tokens_b"].as_i64().unwrap() > 0);
    assert_eq!(rework["agent"], "developer");
}

async fn comparison_errors_are_clear(db: TestDb) {
    let llm = FakeLlm::start(Script::default()).await;
    let h = Harness::new(&db, &llm.base_url(), &[]).await;
    let app = TestApp::spawn_state(AppState::new(db.store.clone(), config_with(&[]))).await;
    let a = h.workflow("CMP-3").await;
    let e = h.run_to_end(a.id).await;
    let b = h.workflow("CMP-4").await;
    let other = h.run_to_end(b.id).await;
    assert_eq!(
        app.get(&format!("/workflows/{}/compare", a.id))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.get(&format!("/workflows/{}/compare?with=x", a.id))
            .await
            .status(),
        422
    );
    assert_eq!(
        app.get(&format!("/workflows/{}/compare?with=999", a.id))
            .await
            .status(),
        404
    );
    let cross = app
        .get(&format!(
            "/workflows/{}/executions/{}/compare/{}",
            a.id, e.id, other.id
        ))
        .await;
    assert_eq!(
        cross.status(),
        404,
        "the other execution belongs to another workflow"
    );
    let same: Value = app
        .get(&format!(
            "/workflows/{}/executions/{}/compare/{}",
            a.id, e.id, e.id
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(same["delta"]["total_tokens"], 0);
    assert!(
        same["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["prompt_hash_changed"] == false)
    );
}
