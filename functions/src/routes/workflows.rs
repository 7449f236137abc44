//! Workflows: list, create (idempotent on `jira_story_id`), get with
//! everything under it, delete, and the execute trigger.

use ai_team_core::models::{EventKind, Workflow};
use ai_team_core::query::{FieldError, NewWorkflow, PageRequest};
use ai_team_core::repository::RepositoryRef;
use ai_team_core::views::{self, StatusInfo, WorkflowDetailView, WorkflowView};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, JsonBody, QueryMap};
use crate::routes::{ErrorBody, ListOf, MessageBody, ValidationErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list_workflows).post(create_workflow))
        .route(
            "/workflows/{workflow_id}",
            get(get_workflow).delete(delete_workflow),
        )
        .route("/workflows/{workflow_id}/execute", post(execute_workflow))
        .route("/workflows/{workflow_id}/compare", get(compare_workflows))
}

/// The optional page of a list that was a plain array in the original:
/// paginated only when `page` or `page_size` is given.
pub fn optional_page(query: &QueryMap) -> ApiResult<Option<PageRequest>> {
    let (page, size) = (query.get("page"), query.get("page_size"));
    if page.is_none() && size.is_none() {
        return Ok(None);
    }
    PageRequest::parse(page, size)
        .map(Some)
        .map_err(ApiError::Validation)
}

/// A list answer: the plain array, or the paginated object.
pub fn list_response<T: serde::Serialize>(
    paged: ai_team_core::models::Paged<T>,
    paginated: bool,
) -> Response {
    if paginated {
        Json(paged).into_response()
    } else {
        Json(paged.items).into_response()
    }
}

/// The latest execution of every workflow in `workflows`, as status infos
/// in the same order (one query for the whole list).
pub async fn statuses(state: &AppState, workflows: &[Workflow]) -> ApiResult<Vec<StatusInfo>> {
    let ids: Vec<i64> = workflows.iter().map(|w| w.id).collect();
    let latest = state.store.latest_executions(&ids).await?;
    let now = chrono::Utc::now();
    Ok(workflows
        .iter()
        .map(|w| {
            let e = latest.iter().find(|e| e.workflow_id == w.id);
            views::status_info(w, e, now, state.config.heartbeat_timeout)
        })
        .collect())
}

/// The status info of one workflow (404 when unknown).
pub async fn status_of(state: &AppState, workflow_id: i64) -> ApiResult<(Workflow, StatusInfo)> {
    let workflow = state.store.get_workflow(workflow_id).await?;
    let info = statuses(state, std::slice::from_ref(&workflow))
        .await?
        .remove(0);
    Ok((workflow, info))
}

/// Workflows as the API shows them.
pub async fn views_of(state: &AppState, workflows: Vec<Workflow>) -> ApiResult<Vec<WorkflowView>> {
    let infos = statuses(state, &workflows).await?;
    Ok(workflows
        .iter()
        .zip(&infos)
        .map(|(w, s)| WorkflowView::new(w, s))
        .collect())
}

#[utoipa::path(get, path = "/workflows", tag = "workflows",
    params(("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 200)),
    responses((status = 200, description = "Newest first: a plain array without page/page_size, else {page, page_size, total, items}", body = ListOf<WorkflowView>),
              (status = 422, body = ValidationErrorBody)))]
pub async fn list_workflows(State(state): State<AppState>, query: QueryMap) -> ApiResult<Response> {
    let page = optional_page(&query)?;
    let paged = state.store.list_workflows(page).await?;
    let items = views_of(&state, paged.items).await?;
    Ok(list_response(
        ai_team_core::models::Paged {
            page: paged.page,
            page_size: paged.page_size,
            total: paged.total,
            items,
        },
        page.is_some(),
    ))
}

/// Body of `POST /workflows`: API.md's fields, or the original client's
/// form (`jira_story_title`, `jira_story_description`, `target_branch`).
#[derive(Debug)]
pub struct CreateWorkflow {
    /// Defaults to `"{jira_story_id}: {jira_story_title}"`.
    pub name: Option<String>,
    pub jira_story_id: Option<String>,
    pub jira_story_title: Option<String>,
    /// A remote repository (`https://github.com/owner/name`); never a path on the server.
    pub repository_url: Option<String>,
    pub description: Option<String>,
    /// The same text as `description` (the original client's name).
    pub jira_story_description: Option<String>,
    pub target_branch: Option<String>,
    /// The repository's test command (else `AI_TEAM_TEST_COMMAND`, else found in the repository).
    pub test_command: Option<String>,
}

/// The schema says what `create_workflow` checks: a story id, a name or
/// a title to make one from, bounded texts, a remote repository.
impl utoipa::PartialSchema for CreateWorkflow {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        // No NUL: PostgreSQL's text cannot hold it.
        let text = |max: usize| serde_json::json!({"type": ["string", "null"], "maxLength": max, "pattern": "^[^\\u0000]*$"});
        let free = serde_json::json!({"type": ["string", "null"], "pattern": "^[^\\u0000]*$"});
        let props = serde_json::json!({
            "jira_story_id": {"type": "string", "maxLength": ai_team_core::query::StoryId::MAX_CHARS,
                "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"},
            "description": free,
            "jira_story_description": free,
            "repository_url": {"type": ["string", "null"], "maxLength": 2048,
                "pattern": ai_team_core::repository::REMOTE_PATTERN,
                "description": "A remote repository (https://github.com/owner/name); never a path on the server"},
            "target_branch": {"type": ["string", "null"], "maxLength": 255,
                "pattern": "^\\s*$|^[A-Za-z0-9_][A-Za-z0-9._/-]*$"},
            "test_command": {"type": ["string", "null"], "maxLength": 2000, "pattern": "^[^\\u0000]*$",
                "description": "The repository's test command (else AI_TEAM_TEST_COMMAND, else found in the repository)"},
        });
        let named = serde_json::json!({"type": "string", "maxLength": 500, "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"});
        let with = |extra: &[(&str, serde_json::Value)]| {
            let mut p = props.clone();
            for (k, v) in extra {
                p[*k] = v.clone();
            }
            p
        };
        // Three exclusive shapes: a name, a title, or both (where the
        // title may be null or blank).
        let schema = serde_json::json!({
            "description": "API.md's fields, or the original client's form. `name` defaults to `{jira_story_id}: {jira_story_title}`: one of the two is required.",
            "oneOf": [
                {"type": "object", "title": "named", "required": ["jira_story_id", "name"],
                 "not": {"required": ["jira_story_title"]},
                 "properties": with(&[("name", named.clone())])},
                {"type": "object", "title": "titled", "required": ["jira_story_id", "jira_story_title"],
                 "not": {"required": ["name"]},
                 "properties": with(&[("jira_story_title", named.clone())])},
                {"type": "object", "title": "both", "required": ["jira_story_id", "name", "jira_story_title"],
                 "properties": with(&[("name", named.clone()), ("jira_story_title", text(500))])},
            ]
        });
        serde_json::from_value(schema).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the CreateWorkflow schema does not parse");
            utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::default())
        })
    }
}

impl ToSchema for CreateWorkflow {}

/// A `repository_url` from an API client: a remote repository, and with
/// GitHub one of the allowed ones; never a directory on the server.
pub fn check_repository(state: &AppState, raw: &str) -> Result<(), FieldError> {
    let refuse = |msg: String| FieldError::new("body", "repository_url", msg, "value_error");
    match RepositoryRef::parse(raw).map_err(refuse)? {
        RepositoryRef::Local(_) => Err(refuse(
            "repository_url must name a remote repository (https://host/owner/name); a local path or file:// URL is not accepted from the API (the CLI's --repo works on a local repository)".into(),
        )),
        RepositoryRef::Remote { owner, name, .. } => match &state.config.integrations.github {
            Some(g) if !g.settings.allows(&owner, &name) => Err(refuse(format!(
                "{owner}/{name} is not one of the repositories this service may write (NEGISHI_GITHUB_REPO, AI_TEAM_ALLOWED_REPOSITORIES)"
            ))),
            _ => Ok(()),
        },
    }
}

#[utoipa::path(post, path = "/workflows", tag = "workflows", request_body(content = CreateWorkflow, content_type = "application/json"),
    responses((status = 201, description = "Created", body = WorkflowView),
              (status = 200, description = "A workflow with this jira_story_id already existed; nothing created", body = WorkflowView),
              (status = 413, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn create_workflow(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<WorkflowView>)> {
    let body = CreateWorkflow::read(&body)?;
    let blank = |v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned)
    };
    let (story, title) = (blank(&body.jira_story_id), blank(&body.jira_story_title));
    let mut missing = Vec::new();
    if story.is_none() {
        missing.push(FieldError::new(
            "body",
            "jira_story_id",
            "Field required",
            "missing",
        ));
    }
    // A made-up name is cut to the name's bound: the title (up to 500
    // characters itself) is kept whole in `jira_story_title`.
    let name = blank(&body.name).or_else(|| {
        let made = format!("{}: {}", story.as_deref()?.trim(), title.as_deref()?.trim());
        Some(made.chars().take(NewWorkflow::MAX_NAME_CHARS).collect())
    });
    if name.is_none() {
        missing.push(FieldError::new(
            "body",
            "name",
            "Field required (or jira_story_title, from which it is made)",
            "missing",
        ));
    }
    if let Some(url) = blank(&body.repository_url)
        && let Err(e) = check_repository(&state, &url)
    {
        missing.push(e);
    }
    if !missing.is_empty() {
        return Err(ApiError::Validation(missing));
    }
    let description = body
        .description
        .as_deref()
        .or(body.jira_story_description.as_deref());
    let new = NewWorkflow::parse(
        name.as_deref().unwrap_or_default(),
        story.as_deref().unwrap_or_default(),
        blank(&body.repository_url).as_deref(),
        description,
    )
    .and_then(|n| {
        n.with_extras(
            title.as_deref(),
            body.target_branch.as_deref(),
            body.test_command.as_deref(),
        )
    })
    .map_err(ApiError::Validation)?;
    // A secret pasted into a story is never stored (AI_TEAM_REDACT_SENSITIVE).
    let new = if state.config.redact_sensitive {
        new.redacted()
    } else {
        new
    };
    let created = state.store.create_workflow(&new).await?;
    let status = if created.is_new() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = views_of(&state, vec![created.into_inner()])
        .await?
        .remove(0);
    Ok((status, Json(view)))
}

impl CreateWorkflow {
    /// The body's fields as its schema types them: `jira_story_id` and
    /// `name` are strings when present (null is not a name), the others
    /// strings or null; anything else is a 422 naming the field.
    fn read(body: &serde_json::Value) -> ApiResult<Self> {
        let Some(map) = body.as_object() else {
            return Err(ApiError::validation(FieldError {
                loc: vec!["body".into()],
                msg: "Input should be a valid dictionary or object".into(),
                kind: "model_attributes_type".into(),
            }));
        };
        let mut errors = Vec::new();
        let mut field = |name: &str, nullable: bool| -> Option<String> {
            match map.get(name) {
                None => None,
                Some(serde_json::Value::Null) if nullable => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    errors.push(FieldError::new(
                        "body",
                        name,
                        "Input should be a valid string",
                        "string_type",
                    ));
                    None
                }
            }
        };
        let read = Self {
            jira_story_id: field("jira_story_id", false),
            name: field("name", false),
            jira_story_title: field("jira_story_title", true),
            repository_url: field("repository_url", true),
            description: field("description", true),
            jira_story_description: field("jira_story_description", true),
            target_branch: field("target_branch", true),
            test_command: field("test_command", true),
        };
        if let Some(n) = &read.name
            && n.trim().is_empty()
        {
            errors.push(FieldError::new(
                "body",
                "name",
                "name must not be blank",
                "string_too_short",
            ));
        }
        if errors.is_empty() {
            Ok(read)
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// Events read per workflow detail for its escalations and collaborations.
const INTERACTIONS_LIMIT: i64 = 1000;

#[utoipa::path(get, path = "/workflows/{workflow_id}", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1), ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier answer")),
    responses((status = 200, body = WorkflowDetailView, headers(("etag" = String))), (status = 304, description = "Not modified since the ETag"),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn get_workflow(
    State(state): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let detail = state.store.workflow_detail(id).await?;
    let info = statuses(&state, std::slice::from_ref(&detail.workflow))
        .await?
        .remove(0);
    let interactions = state
        .store
        .events_of_types(
            id,
            &[EventKind::Escalation, EventKind::Collaboration],
            INTERACTIONS_LIMIT,
        )
        .await?;
    let view = views::workflow_detail(detail, &info, &state.team, &interactions);
    let body = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.into()))?;
    let etag = format!("\"{}\"", &ai_team_core::tracking::sha256_hex(&body)[..32]);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body,
    )
        .into_response())
}

#[utoipa::path(delete, path = "/workflows/{workflow_id}", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = MessageBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ValidationErrorBody)))]
pub async fn delete_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<Json<MessageBody>> {
    state.store.delete_workflow(id).await?;
    Ok(Json(MessageBody {
        message: format!("Workflow {id} deleted"),
    }))
}

/// The engine, or 503 where this host has none (404 first for an
/// unknown workflow).
pub async fn engine_of(
    state: &AppState,
    workflow_id: i64,
) -> ApiResult<&ai_team_core::engine::Engine> {
    state.store.get_workflow(workflow_id).await?;
    state.engine.as_ref().ok_or_else(|| ApiError::Unavailable {
        public: "engine not available",
        detail: "this host runs no workflow engine".into(),
    })
}

/// `POST /workflows/{id}/execute` and `/executions/start`: a new execution, queued.
pub async fn start(
    state: &AppState,
    workflow_id: i64,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let engine = engine_of(state, workflow_id).await?;
    let execution = engine.start(workflow_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "message": "Workflow execution started",
            "workflow_id": workflow_id,
            "execution_id": execution.id,
            "id": execution.id,
            "status": execution.status,
        })),
    ))
}

#[utoipa::path(post, path = "/workflows/{workflow_id}/execute", tag = "executions",
    params(("workflow_id" = i64, Path, minimum = 1)),
    responses((status = 202, description = "Execution started"), (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody),
              (status = 409, body = ErrorBody), (status = 503, description = "engine not available", body = ErrorBody)))]
pub async fn execute_workflow(
    State(state): State<AppState>,
    Id(id): Id,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    start(&state, id).await
}

#[utoipa::path(get, path = "/workflows/{workflow_id}/compare", tag = "workflows",
    params(("workflow_id" = i64, Path, minimum = 1), ("with" = i64, Query, minimum = 1, description = "The other workflow")),
    responses((status = 200, description = "`{a, b, delta}`: calls, prompt/completion/total tokens, cost, average and p95 latency, models, per-agent totals of each workflow's calls, and b minus a"),
              (status = 404, body = ErrorBody), (status = 422, body = ValidationErrorBody)))]
pub async fn compare_workflows(
    State(state): State<AppState>,
    Id(id): Id,
    query: QueryMap,
) -> ApiResult<Json<serde_json::Value>> {
    let other = match query.get("with") {
        Some(raw) => ai_team_core::query::parse_id("with", raw).map_err(ApiError::validation)?,
        None => {
            return Err(ApiError::validation(ai_team_core::query::FieldError::new(
                "query",
                "with",
                "Field required",
                "missing",
            )));
        }
    };
    state.store.get_workflow(id).await?;
    state.store.get_workflow(other).await?;
    let a = ai_team_core::compare::aggregate(id, &state.store.call_facts(id, None).await?);
    let b = ai_team_core::compare::aggregate(other, &state.store.call_facts(other, None).await?);
    Ok(Json(ai_team_core::compare::compare(&a, &b, false)))
}
