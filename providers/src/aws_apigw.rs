//! The `PushChannel` port on the API Gateway Management API: a frame to a
//! WebSocket client of an API Gateway WebSocket API is a
//! `PostToConnection` on `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
//! A `GoneException` (410) means the client left.

use ai_team_core::push::{PushChannel, PushError};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;

#[derive(Clone)]
pub struct ApiGatewayPush {
    client: Client,
}

impl ApiGatewayPush {
    /// Over the shared AWS configuration; `endpoint` is the stage's
    /// connection URL (`https://…/{stage}`).
    pub fn from_config(config: &aws_config::SdkConfig, endpoint: &str) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
            .endpoint_url(endpoint.trim_end_matches('/'))
            .build();
        Self {
            client: Client::from_conf(conf),
        }
    }
}

#[async_trait]
impl PushChannel for ApiGatewayPush {
    async fn send(&self, connection_id: &str, frame: &str) -> Result<(), PushError> {
        match self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(frame.as_bytes()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_gone_exception() => Err(PushError::Gone),
            Err(e) => Err(PushError::Unavailable(DisplayErrorContext(e).to_string())),
        }
    }
}
