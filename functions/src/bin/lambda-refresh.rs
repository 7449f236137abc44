//! `lambda-refresh`: the refresh executor (PR, checks, diffs, artifacts)
//! on AWS Lambda, triggered by the SQS refresh queue with partial batch
//! responses.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_refresh().await
}
