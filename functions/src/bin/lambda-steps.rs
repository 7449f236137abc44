//! `lambda-steps`: the step executor on AWS Lambda, triggered by the SQS
//! steps queue with partial batch responses. `main` only wires:
//! configuration, adapters, engine, then the runtime loop.

use std::process::ExitCode;

use ai_team_functions::lambda;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> ExitCode {
    let wired = match lambda::wire().await {
        Ok(w) => w,
        Err(message) => {
            eprintln!("lambda-steps: {message}");
            return ExitCode::from(2);
        }
    };
    let engine = &wired.engine;
    let handler = service_fn(async |event: LambdaEvent<SqsEvent>| {
        Ok::<SqsBatchResponse, Error>(lambda::steps_handler(engine, event.payload).await)
    });
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda-steps: {e}");
            ExitCode::FAILURE
        }
    }
}
