//! The endpoint groups of API.md, each served by its own function on a
//! serverless host (DESIGN.md "Shape"): a function mounts only its group's
//! routes, so a cold start builds one group and a deployment can scale,
//! time out and grant permissions per group. Locally `ai-team serve` mounts
//! them all. `http_api_routes` is what `template.yaml` routes to each
//! function; a test holds the two together.

use axum::Router;

use crate::routes::{
    agents, conversations, events, executions, health, jira, pr, review, status, webhooks,
    workflows,
};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteGroup {
    /// Workflows, executions and their triggers, Jira intake, compare.
    Workflows,
    /// Conversations, their messages and LLM calls.
    Conversations,
    /// SSE and WebSocket streams of the event log.
    Events,
    /// Pull request, checks, diffs, artifacts and their refreshes.
    Delivery,
    /// Incoming GitHub webhooks.
    Webhooks,
    /// `/health`, `/docs`, `/openapi.json`, and every unknown path.
    Health,
}

impl RouteGroup {
    pub const ALL: [RouteGroup; 6] = [
        RouteGroup::Workflows,
        RouteGroup::Conversations,
        RouteGroup::Events,
        RouteGroup::Delivery,
        RouteGroup::Webhooks,
        RouteGroup::Health,
    ];

    /// The name of the group's Lambda binary (and SAM function's `Binary`).
    pub fn binary(self) -> &'static str {
        match self {
            RouteGroup::Workflows => "lambda-workflows",
            RouteGroup::Conversations => "lambda-conversations",
            RouteGroup::Events => "lambda-events",
            RouteGroup::Delivery => "lambda-delivery",
            RouteGroup::Webhooks => "lambda-webhooks",
            RouteGroup::Health => "lambda-health",
        }
    }

    /// The group's routes, without state or layers.
    pub fn router(self) -> Router<AppState> {
        match self {
            RouteGroup::Workflows => workflows(),
            RouteGroup::Conversations => conversations(),
            RouteGroup::Events => events(),
            RouteGroup::Delivery => delivery(),
            RouteGroup::Webhooks => webhooks(),
            RouteGroup::Health => health(),
        }
    }

    /// The API Gateway HTTP API routes (`METHOD path`) that reach this
    /// group's function. Events has none: an HTTP API buffers whole
    /// responses, so streams go through the function's URL in
    /// `RESPONSE_STREAM` mode. Health also takes `$default`, every path
    /// no other function claims, so unknown paths get the API's 404.
    pub fn http_api_routes(self) -> &'static [&'static str] {
        match self {
            RouteGroup::Workflows => &[
                "ANY /workflows",
                "ANY /workflows/{workflow_id}",
                "ANY /workflows/{workflow_id}/execute",
                "ANY /workflows/{workflow_id}/compare",
                "ANY /workflows/{workflow_id}/executions",
                "ANY /workflows/{workflow_id}/executions/{proxy+}",
                "ANY /workflows/from-jira/{story_id}",
                "ANY /workflows/status/running",
                "ANY /workflows/{workflow_id}/status",
                "ANY /workflows/{workflow_id}/reconcile",
                "ANY /workflows/{workflow_id}/resume",
                "ANY /workflows/{workflow_id}/conversation-review",
                "ANY /agents",
                "ANY /agents/{agent_id}",
            ],
            RouteGroup::Conversations => &["ANY /conversations/{proxy+}"],
            RouteGroup::Events => &[],
            RouteGroup::Delivery => &[
                "ANY /workflows/{workflow_id}/pr",
                "ANY /workflows/{workflow_id}/pr/{proxy+}",
                "ANY /workflows/{workflow_id}/diffs",
                "ANY /workflows/{workflow_id}/diffs/{proxy+}",
                "ANY /workflows/{workflow_id}/artifacts",
                "ANY /workflows/{workflow_id}/artifacts/{proxy+}",
            ],
            RouteGroup::Webhooks => &["ANY /webhooks/{proxy+}"],
            RouteGroup::Health => &[
                "ANY /health",
                "ANY /docs",
                "ANY /docs/{proxy+}",
                "ANY /openapi.json",
                "$default",
            ],
        }
    }
}

// One function per group, so that a binary serving one group names only
// its function (not `RouteGroup::router`, which reaches every group) and
// the linker drops the other groups' code, the Swagger UI among it.

pub fn workflows() -> Router<AppState> {
    workflows::router()
        .merge(executions::router())
        .merge(jira::router())
        .merge(status::router())
        .merge(review::router())
        .merge(agents::router())
}

pub fn conversations() -> Router<AppState> {
    conversations::router()
}

pub fn events() -> Router<AppState> {
    events::router()
}

pub fn delivery() -> Router<AppState> {
    pr::router()
}

pub fn webhooks() -> Router<AppState> {
    webhooks::router()
}

pub fn health() -> Router<AppState> {
    health::router().merge(crate::openapi::router())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_has_its_own_binary_and_routes() {
        let mut binaries: Vec<_> = RouteGroup::ALL.iter().map(|g| g.binary()).collect();
        binaries.dedup();
        assert_eq!(binaries.len(), RouteGroup::ALL.len());
        let mut routes: Vec<_> = RouteGroup::ALL
            .iter()
            .flat_map(|g| g.http_api_routes().iter().copied())
            .collect();
        let n = routes.len();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), n, "a route is claimed by two functions");
    }
}
