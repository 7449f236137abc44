//! `lambda-health`: the health endpoint group on AWS Lambda (see
//! `ai_team_functions::RouteGroup::Health`); only its routes are mounted.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_group(
        ai_team_functions::RouteGroup::Health,
        ai_team_functions::groups::health,
    )
    .await
}
