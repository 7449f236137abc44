//! `POST /workflows/from-jira/{story_id}` against a local Jira speaking
//! the REST v3 shapes, on SQLite and PostgreSQL: the story becomes a
//! workflow named `"{key}: {summary}"` whose description is the story in
//! Markdown; a duplicate answers the existing id; Jira's 404 is a 404,
//! and a failing, unreachable or unconfigured Jira a 500 — all with the
//! original's `{"message": ...}` bodies.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use ai_team_providers::jira::issue;
use ai_team_tests::fake_jira::{EMAIL, FakeJira, TOKEN, rich_issue};
use ai_team_tests::{TestApp, TestDb, config_with, on_both_databases};
use serde_json::{Value, json};

on_both_databases!(
    a_jira_story_becomes_a_workflow,
    a_story_already_imported_answers_its_workflow_without_asking_jira,
    a_story_jira_does_not_know_is_404_and_nothing_is_created,
    a_failing_jira_is_500,
    wrong_jira_credentials_are_500,
    an_unreachable_jira_is_500,
    without_jira_configured_the_answer_is_500,
    criteria_with_a_kelvin_sign_become_a_workflow,
    secrets_in_a_jira_story_are_not_stored,
);

const DESCRIPTION: &str = "## Goal

As a **registered user** who forgot my password, I want a reset link by e-mail. See [the flow](https://example.com/flows/reset).  
Owner: @Ada Lovelace

1. Request a link
   - rate-limited per address
2. Set a new password with `POST /reset`

```python
def reset_token(user):
    return sign(user.id, ttl=1800)
```

| **Field** | **Rule** |
| --- | --- |
| password | 12+ characters |

> [!WARNING]
> Never reveal whether an address exists.";

const CRITERIA: &str =
    "- Given a registered e-mail, when I ask for a reset, then a link valid for 30 minutes is sent
- An unknown e-mail gets the *same* answer";

#[test]
fn the_rich_adf_description_converts_to_markdown() {
    let ticket = issue::ticket(&rich_issue(), "https://your-domain.atlassian.net", None).unwrap();
    assert_eq!(ticket.description, DESCRIPTION);
    assert_eq!(ticket.acceptance_criteria.as_deref(), Some(CRITERIA));
    assert_eq!(ticket.labels, ["auth", "web"]);
    assert_eq!(ticket.priority.as_deref(), Some("High"));
    assert_eq!(ticket.workflow_name(), "SHOP-42: Password reset by e-mail");
}

async fn app(db: &TestDb, jira_url: &str) -> TestApp {
    let config = config_with(&[
        ("NEGISHI_JIRA_BASE_URL", jira_url),
        ("NEGISHI_JIRA_EMAIL", EMAIL),
        ("NEGISHI_JIRA_API_TOKEN", TOKEN),
    ]);
    TestApp::spawn(db.store.clone(), config).await
}

async fn post(app: &TestApp, key: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/workflows/from-jira/{key}")))
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.json().await.expect("JSON body"))
}

async fn a_jira_story_becomes_a_workflow(db: TestDb) {
    let jira = FakeJira::start().await;
    let app = app(&db, &jira.base_url()).await;

    let (status, body) = post(&app, "SHOP-42").await;

    assert_eq!(status, 201, "{body}");
    let id = body["workflow_id"].as_i64().expect("workflow_id");
    assert_eq!(
        body,
        json!({"message": "Workflow created successfully for SHOP-42", "workflow_id": id})
    );
    let wf = db.store.get_workflow(id).await.unwrap();
    assert_eq!(wf.name, "SHOP-42: Password reset by e-mail");
    assert_eq!(wf.jira_story_id, "SHOP-42");
    assert_eq!(
        wf.description.as_deref(),
        Some(
            format!(
                "# SHOP-42: Password reset by e-mail\n\n{DESCRIPTION}\n\n## Acceptance criteria\n\n{CRITERIA}\n\n**Priority:** High  \n**Labels:** auth, web\n"
            )
            .as_str()
        )
    );
    // One request, with the field names asked for (to find the criteria).
    assert_eq!(
        jira.requests(),
        [("SHOP-42".to_owned(), Some("expand=names".to_owned()))]
    );
}

async fn a_story_already_imported_answers_its_workflow_without_asking_jira(db: TestDb) {
    let jira = FakeJira::start().await;
    let app = app(&db, &jira.base_url()).await;
    let (_, first) = post(&app, "SHOP-42").await;

    let (status, again) = post(&app, "SHOP-42").await;

    assert_eq!(status, 200);
    assert_eq!(again, first);
    assert_eq!(db.count("workflows").await, 1);
    assert_eq!(jira.requests().len(), 1);
}

async fn a_story_jira_does_not_know_is_404_and_nothing_is_created(db: TestDb) {
    let jira = FakeJira::start().await;
    let app = app(&db, &jira.base_url()).await;

    let (status, body) = post(&app, "SHOP-404").await;

    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"message": "Could not retrieve story SHOP-404 from Jira"})
    );
    assert_eq!(db.count("workflows").await, 0);
}

async fn a_failing_jira_is_500(db: TestDb) {
    let jira = FakeJira::start().await;
    let app = app(&db, &jira.base_url()).await;

    let (status, body) = post(&app, "BROKEN-1").await;

    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"message": "Could not retrieve story BROKEN-1 from Jira"})
    );
    assert_eq!(db.count("workflows").await, 0);
}

async fn wrong_jira_credentials_are_500(db: TestDb) {
    let jira = FakeJira::start().await;
    let config = config_with(&[
        ("NEGISHI_JIRA_BASE_URL", &jira.base_url()),
        ("NEGISHI_JIRA_EMAIL", EMAIL),
        ("NEGISHI_JIRA_API_TOKEN", "wrong"),
    ]);
    let app = TestApp::spawn(db.store.clone(), config).await;

    let (status, body) = post(&app, "SHOP-42").await;

    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"message": "Could not retrieve story SHOP-42 from Jira"})
    );
}

async fn an_unreachable_jira_is_500(db: TestDb) {
    // A port that was just free: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let app = app(&db, &format!("http://{closed}")).await;

    let (status, body) = post(&app, "SHOP-42").await;

    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"message": "Could not retrieve story SHOP-42 from Jira"})
    );
    assert_eq!(db.count("workflows").await, 0);
}

async fn without_jira_configured_the_answer_is_500(db: TestDb) {
    let app = TestApp::spawn(db.store.clone(), config_with(&[])).await;

    let (status, body) = post(&app, "SHOP-42").await;

    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"message": "Could not retrieve story SHOP-42 from Jira"})
    );
}

async fn criteria_with_a_kelvin_sign_become_a_workflow(db: TestDb) {
    let jira = FakeJira::start().await;
    let app = app(&db, &jira.base_url()).await;

    let (status, body) = post(&app, "KELVIN-1").await;

    assert_eq!(status, 201, "{body}");
    let id = body["workflow_id"].as_i64().expect("workflow_id");
    let wf = db.store.get_workflow(id).await.unwrap();
    let description = wf.description.unwrap_or_default();
    assert!(
        description.contains("## Acceptance criteria\n\n- The oven reaches 300 \u{212A}"),
        "{description}"
    );
}

async fn secrets_in_a_jira_story_are_not_stored(db: TestDb) {
    let jira = FakeJira::start().await;
    let app = app(&db, &jira.base_url()).await;

    let (status, body) = post(&app, "SECRET-1").await;

    assert_eq!(status, 201, "{body}");
    let id = body["workflow_id"].as_i64().expect("workflow_id");
    let description = db
        .store
        .get_workflow(id)
        .await
        .unwrap()
        .description
        .unwrap_or_default();
    assert!(!description.contains("hunter2"), "{description}");
    assert!(
        !description.contains("AKIAIOSFODNN7EXAMPLE"),
        "{description}"
    );
    assert!(description.contains("password=[REDACTED]"), "{description}");
}
