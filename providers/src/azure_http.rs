//! The Azure SDK's HTTP transport on the workspace's reqwest client, so the
//! Azure crates bring no second HTTP/TLS stack (their own transport is
//! reqwest 0.13 on aws-lc, a long C build on two cores) and every Azure
//! call trusts the same roots as the rest of the service: the bundled ones
//! and, when `SSL_CERT_FILE` names a PEM bundle, those too (a private CA,
//! a TLS-inspecting proxy, the emulators' self-signed certificates).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, Body, ClientOptions, HttpClient, Request, Transport};
use futures_util::AsyncReadExt as _;

/// The environment variable naming extra trusted roots (OpenSSL's name).
pub const CA_FILE_VAR: &str = "SSL_CERT_FILE";

/// A reqwest client for Azure calls: bounded connect and whole-call
/// times, no redirects (Azure REST guidelines do not use them, as the
/// SDK's own transport), and the extra roots of `ca_file`.
pub fn client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("{CA_FILE_VAR} {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{CA_FILE_VAR} {}: {e}", path.display()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// `SSL_CERT_FILE` when set and not blank.
pub fn ca_file_from_env() -> Option<std::path::PathBuf> {
    std::env::var_os(CA_FILE_VAR)
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// Client options whose transport is `http`.
pub fn client_options(http: &reqwest::Client) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(ReqwestTransport(http.clone())))),
        ..ClientOptions::default()
    }
}

/// One reqwest client as the SDK's `HttpClient`.
#[derive(Debug, Clone)]
pub struct ReqwestTransport(pub reqwest::Client);

#[async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = reqwest::Method::from_bytes(request.method().as_ref().as_bytes())
            .map_err(|e| Error::with_error(ErrorKind::Other, e, "an HTTP method"))?;
        let mut req = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        let body = match request.body() {
            Body::Bytes(bytes) => bytes.to_vec(),
            // The SDK streams large uploads; the bodies this service
            // stores are a few MB at most, so one buffer is enough.
            Body::SeekableStream(stream) => {
                let mut stream = stream.clone();
                stream.reset().await?;
                let mut buf = Vec::new();
                stream
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| Error::with_error(ErrorKind::Io, e, "reading a request body"))?;
                buf
            }
        };
        let resp = req.body(body).send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            // Without the URL: a SAS token travels in its query.
            Error::with_message(kind, error_text(&e))
        })?;
        let status = resp.status().as_u16();
        let headers: std::collections::HashMap<HeaderName, HeaderValue> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = v.to_str().ok()?;
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_owned()),
                ))
            })
            .collect();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Error::with_message(ErrorKind::Io, error_text(&e)))?;
        let stream = futures_util::stream::once(async move { Ok(bytes) });
        Ok(AsyncRawResponse::new(
            status.into(),
            Headers::from(headers),
            Box::pin(stream),
        ))
    }
}

/// A transport error with its causes, without the URL (a SAS token or a
/// key may travel in it).
pub fn error_text(e: &reqwest::Error) -> String {
    let text = crate::error_chain(e);
    match e.url() {
        Some(url) => text.replace(&format!(" for url ({url})"), ""),
        None => text,
    }
}

/// An SDK error with its causes (the retry policy wraps the credential's
/// or the transport's error in a context of its own).
pub fn sdk_error_text(e: &azure_core::Error) -> String {
    crate::error_chain(e)
}
