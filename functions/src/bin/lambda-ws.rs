//! `lambda-ws`: WebSocket clients on AWS, through an API Gateway WebSocket
//! API (`$connect`, `$disconnect`, `$default`); events are pushed to them
//! with the API Gateway Management API.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ai_team_functions::lambda::serve_ws().await
}
