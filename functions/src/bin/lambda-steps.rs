//! `lambda-steps`: the step executor on AWS Lambda, triggered by the SQS
//! steps queue with partial batch responses.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_steps().await
}
