//! `lambda-conversations`: the conversations endpoint group on AWS Lambda (see
//! `ai_team_functions::RouteGroup::Conversations`); only its routes are mounted.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_group(
        ai_team_functions::RouteGroup::Conversations,
        ai_team_functions::groups::conversations,
    )
    .await
}
