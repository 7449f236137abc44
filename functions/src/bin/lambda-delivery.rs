//! `lambda-delivery`: the delivery endpoint group on AWS Lambda (see
//! `ai_team_functions::RouteGroup::Delivery`); only its routes are mounted.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_group(
        ai_team_functions::RouteGroup::Delivery,
        ai_team_functions::groups::delivery,
    )
    .await
}
