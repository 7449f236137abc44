//! `lambda-workflows`: the workflows endpoint group on AWS Lambda (see
//! `ai_team_functions::RouteGroup::Workflows`); only its routes are mounted.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_group(
        ai_team_functions::RouteGroup::Workflows,
        ai_team_functions::groups::workflows,
    )
    .await
}
