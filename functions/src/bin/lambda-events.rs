//! `lambda-events`: the events endpoint group on AWS Lambda (see
//! `ai_team_functions::RouteGroup::Events`); only its routes are mounted.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_group(
        ai_team_functions::RouteGroup::Events,
        ai_team_functions::groups::events,
    )
    .await
}
