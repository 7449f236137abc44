//! The team's roles as the original listed them (`/agents`), from the
//! team file.

use ai_team_core::models::Agent;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::routes::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list_agents))
        .route("/agents/{agent_id}", get(get_agent))
}

/// One role of the team.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentInfo {
    /// `pm`, `architect`, `developer`, `frontend`, `tester`, `reviewer`.
    pub id: String,
    /// The display name ("Product Manager").
    pub name: String,
    pub role: String,
    pub goal: String,
    pub backstory: String,
    /// The steps of a workflow this role works.
    pub steps: Vec<String>,
}

/// One role with what it can do.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: AgentInfo,
    pub capabilities: Vec<String>,
}

fn info(state: &AppState, agent: Agent) -> Option<AgentDetail> {
    let role = state.team.role(agent)?;
    let steps: Vec<String> = state
        .team
        .steps_of(agent)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut capabilities = role.capabilities.clone();
    if capabilities.is_empty() {
        capabilities.push(role.goal.clone());
    }
    Some(AgentDetail {
        agent: AgentInfo {
            id: agent.as_str().to_owned(),
            name: role.name.clone(),
            role: role.name.clone(),
            goal: role.goal.clone(),
            backstory: role.backstory.clone(),
            steps,
        },
        capabilities,
    })
}

#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, description = "The six roles of the team", body = [AgentInfo])))]
pub async fn list_agents(State(state): State<AppState>) -> Json<Vec<AgentInfo>> {
    Json(
        Agent::ALL
            .iter()
            .filter_map(|a| info(&state, *a))
            .map(|d| d.agent)
            .collect(),
    )
}

#[utoipa::path(get, path = "/agents/{agent_id}", tag = "agents",
    params(("agent_id" = String, Path, description = "pm, architect, developer, frontend, tester or reviewer", max_length = 64)),
    responses((status = 200, body = AgentDetail), (status = 404, body = ErrorBody)))]
pub async fn get_agent(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<AgentDetail>> {
    Agent::parse(&agent_id)
        .and_then(|a| info(&state, a))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("Agent not found".into()))
}
