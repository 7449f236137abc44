//! The HTTP functions: API Gateway (HTTP API, payload v2), REST API and
//! function URL events turned into requests for the axum router by
//! `lambda_http`, and the router's answers turned back into the event
//! response shape, buffered or, for the event streams, streamed.

use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use futures_util::Stream;
use lambda_http::lambda_runtime::StreamResponse;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, LambdaEvent, Service, StreamAdapter};

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

/// One invocation of a streaming function (a function URL in
/// `RESPONSE_STREAM` mode), as `lambda_http::run_with_streaming_response`
/// does it: the status and headers (the prelude the runtime sends first),
/// then the body as it is produced.
pub async fn stream_handler(
    router: Router,
    event: LambdaEvent<LambdaRequest>,
) -> Result<StreamResponse<impl Stream<Item = Result<Bytes, axum::Error>> + Send>, Infallible> {
    StreamAdapter::from(router).call(event).await
}
