//! `lambda-api`: the HTTP API on AWS Lambda (API Gateway HTTP API, or a
//! function URL), the whole router behind `lambda_http`. `main` only
//! wires: configuration, adapters, engine, then the runtime loop.

use std::process::ExitCode;

use ai_team_functions::{AppState, app, lambda};

#[tokio::main]
async fn main() -> ExitCode {
    let wired = match lambda::wire().await {
        Ok(w) => w,
        Err(message) => {
            eprintln!("lambda-api: {message}");
            return ExitCode::from(2);
        }
    };
    // Across instances, streams poll the event log.
    let router = app(AppState::new(wired.store, wired.config)
        .with_engine(wired.engine)
        .with_events(std::time::Duration::from_millis(500)));
    match lambda_http::run(router).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda-api: {e}");
            ExitCode::FAILURE
        }
    }
}
