//! `lambda-webhooks`: the webhooks endpoint group on AWS Lambda (see
//! `ai_team_functions::RouteGroup::Webhooks`); only its routes are mounted.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_group(
        ai_team_functions::RouteGroup::Webhooks,
        ai_team_functions::groups::webhooks,
    )
    .await
}
