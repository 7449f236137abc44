//! The AWS plumbing shared by the AWS adapters: one HTTPS client on
//! rustls with ring, and the `SdkConfig` loaded once from the standard
//! chain (environment, profile, web identity, container and instance
//! credentials; `AWS_REGION`; `AWS_ENDPOINT_URL`).
//!
//! The SDK crates are built without their default HTTPS client, which
//! would bring aws-lc-sys (a C build) next to the ring that reqwest
//! already uses; the client here is the SDK's own hyper 1 client with
//! ring selected instead.

//!
//! `AwsOverrides` is plain data, there without the `aws` feature too (the
//! cloud's settings are read, and refused, by binaries built without it).

#[cfg(feature = "aws")]
use aws_config::{BehaviorVersion, SdkConfig};
#[cfg(feature = "aws")]
use aws_sdk_bedrockruntime::config::SharedHttpClient;
#[cfg(feature = "aws")]
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

/// The SDK's hyper 1 HTTPS client with rustls and ring.
#[cfg(feature = "aws")]
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Explicit values that win over the chain; `None` leaves the chain to
/// find them (`AWS_REGION`, `AWS_ENDPOINT_URL`, the profile, IMDS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsOverrides {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Loads the shared config once, at start-up. Credentials are resolved
/// lazily, on the first request, and cached by the SDK.
#[cfg(feature = "aws")]
#[tracing::instrument]
pub async fn load_config(overrides: &AwsOverrides) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if let Some(region) = &overrides.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &overrides.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}
