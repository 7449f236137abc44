//! The HTTP functions: API Gateway (HTTP API, payload v2), REST API and
//! function URL events turned into requests for the axum router by
//! `lambda_http`, and the router's answers turned back into the event
//! response shape.

use std::convert::Infallible;

use axum::Router;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, LambdaEvent, Service};

/// One invocation through `lambda_http`'s adapter, exactly as
/// `lambda_http::run(router)` does it; the answer is the JSON the runtime
/// posts back to Lambda (`statusCode`, `headers`, `body`, …).
pub async fn api_handler(
    router: Router,
    event: LambdaEvent<LambdaRequest>,
) -> Result<serde_json::Value, Infallible> {
    let response = Adapter::from(router).call(event).await?;
    Ok(serde_json::to_value(&response).expect("a Lambda response serialises"))
}
