//! The `BlobStore` port on Azure Blob Storage through its REST API, with
//! requests signed by hand with the account key (Shared Key, see
//! `shared_key`): one container, keys as given (checked by the port's
//! rules) and percent-encoded per segment, block blobs written whole by
//! Put Blob. URIs are the blobs' URLs, `{blob endpoint}/{container}/{key}`;
//! a `get` of a URI of another account, endpoint or container is refused:
//! this store reads only what it wrote. Against Azurite the endpoint is
//! path-style (`http://127.0.0.1:10000/devstoreaccount1`).

mod connection;
mod shared_key;

use std::error::Error as _;
use std::time::Duration;

use ai_team_core::blob::{BlobError, BlobStore, check_key};
use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::{Method, StatusCode};

pub use connection::{DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, DEV_BLOB_ENDPOINT, StorageConnection};
pub use shared_key::{AccountKey, SignedParts, authorization, string_to_sign};

/// The REST API version every request asks for (Azurite 3.35 serves it).
pub const API_VERSION: &str = "2021-08-06";

/// Everything but RFC 3986's unreserved characters, as the Azure SDKs
/// encode a blob name's segments.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A container's name as the service accepts it: 3 to 63 lowercase
/// letters, digits and single inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName(String);

impl ContainerName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok = (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--");
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a container name (3-63 lowercase letters, digits and single inner hyphens)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One container of one account; the HTTP client is built once.
#[derive(Clone)]
pub struct AzureBlobStore {
    http: reqwest::Client,
    account: String,
    key: AccountKey,
    container: ContainerName,
    /// `{endpoint}/{container}`: every URI this store writes starts with it
    /// and a `/`.
    container_url: String,
    /// The same URL's path, as Shared Key signs it.
    container_path: String,
}

impl AzureBlobStore {
    /// With a client of its own (rustls; bodies of a few MB fit the timeout).
    pub fn connect(conn: StorageConnection, container: ContainerName) -> Result<Self, BlobError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| BlobError::Unavailable(error_chain(&e)))?;
        Ok(Self::new(http, conn, container))
    }

    pub fn new(http: reqwest::Client, conn: StorageConnection, container: ContainerName) -> Self {
        let endpoint = conn.blob_endpoint.as_str().trim_end_matches('/');
        let endpoint_path = conn.blob_endpoint.path().trim_end_matches('/');
        Self {
            container_url: format!("{endpoint}/{}", container.as_str()),
            container_path: format!("{endpoint_path}/{}", container.as_str()),
            http,
            account: conn.account,
            key: conn.key,
            container,
        }
    }

    /// Creates the container unless it exists (Create Container; its 409
    /// `ContainerAlreadyExists` is success).
    #[tracing::instrument(skip(self), fields(container = %self.container.as_str()))]
    pub async fn ensure_container(&self) -> Result<(), BlobError> {
        let resp = self
            .call(
                Method::PUT,
                "",
                &[("restype", "container")],
                &[],
                Some(Vec::new()),
            )
            .await?;
        let exists = resp.status() == StatusCode::CONFLICT
            && error_code(&resp) == Some("ContainerAlreadyExists");
        if resp.status().is_success() || exists {
            Ok(())
        } else {
            Err(failure("Create Container", &resp))
        }
    }

    fn uri(&self, encoded_key: &str) -> String {
        format!("{}/{encoded_key}", self.container_url)
    }

    /// The key of a URI this store wrote, and its encoded form.
    fn key_of(&self, uri: &str) -> Result<(String, String), BlobError> {
        let invalid = || BlobError::InvalidKey(uri.to_owned());
        let encoded = uri
            .strip_prefix(self.container_url.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(invalid)?;
        let key = encoded
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8().map_err(|_| invalid()))
            .collect::<Result<Vec<_>, _>>()?
            .join("/");
        check_key(&key)?;
        // Only the exact spelling `put` returns: no other encoding, no query.
        if encode_key(&key) != encoded {
            return Err(invalid());
        }
        Ok((key, encoded.to_owned()))
    }

    /// Sends one signed request to `{container}{suffix}`.
    async fn call(
        &self,
        method: Method,
        suffix: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, BlobError> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let length = body.as_ref().map(|b| b.len().to_string());
        let mut sent: Vec<(&str, &str)> =
            vec![("x-ms-date", date.as_str()), ("x-ms-version", API_VERSION)];
        sent.extend_from_slice(headers);
        // Explicit: hyper leaves it out for an empty body, and the service
        // requires it on Put Blob and Create Container (even when 0).
        if let Some(length) = &length {
            sent.push(("content-length", length));
        }
        let path = format!("{}{suffix}", self.container_path);
        let auth = authorization(
            &self.key,
            &SignedParts {
                verb: method.as_str(),
                headers: &sent,
                account: &self.account,
                path: &path,
                query,
            },
        );
        let mut url = format!("{}{suffix}", self.container_url);
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(utf8_percent_encode(name, SEGMENT));
            url.push('=');
            url.extend(utf8_percent_encode(value, SEGMENT));
        }
        let mut req = self.http.request(method, url).header("authorization", auth);
        for (name, value) in sent {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        req.send()
            .await
            .map_err(|e| BlobError::Unavailable(error_chain(&e)))
    }
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    #[tracing::instrument(skip(self, bytes), fields(container = %self.container.as_str(), size = bytes.len()))]
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<String, BlobError> {
        check_key(key)?;
        let encoded = encode_key(key);
        let resp = self
            .call(
                Method::PUT,
                &format!("/{encoded}"),
                &[],
                &[
                    ("x-ms-blob-type", "BlockBlob"),
                    ("content-type", "application/octet-stream"),
                ],
                Some(bytes.to_vec()),
            )
            .await?;
        // A 404 here is a missing container, not a missing blob: the
        // store is misconfigured, which the caller cannot fix by retrying
        // another key.
        if resp.status().is_success() {
            Ok(self.uri(&encoded))
        } else {
            Err(failure("Put Blob", &resp))
        }
    }

    #[tracing::instrument(skip(self), fields(container = %self.container.as_str()))]
    async fn get(&self, uri: &str) -> Result<Vec<u8>, BlobError> {
        let (_, encoded) = self.key_of(uri)?;
        let resp = self
            .call(Method::GET, &format!("/{encoded}"), &[], &[], None)
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(BlobError::NotFound(uri.to_owned())),
            _ => return Err(failure("Get Blob", &resp)),
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| BlobError::Unavailable(error_chain(&e)))?;
        Ok(bytes.to_vec())
    }
}

fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn error_code(resp: &reqwest::Response) -> Option<&str> {
    resp.headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
}

/// The status and the service's error code; never the URL (it holds the
/// key) nor the body (an authentication failure echoes the string-to-sign).
fn failure(operation: &str, resp: &reqwest::Response) -> BlobError {
    BlobError::Unavailable(format!(
        "{operation}: HTTP {} {}",
        resp.status().as_u16(),
        error_code(resp).unwrap_or("(no x-ms-error-code)")
    ))
}

/// A transport error with its causes, without the URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_on(endpoint: &str) -> AzureBlobStore {
        AzureBlobStore::new(
            reqwest::Client::new(),
            StorageConnection::development_at(endpoint.parse().unwrap()),
            ContainerName::parse("artifacts").unwrap(),
        )
    }

    #[test]
    fn uris_are_blob_urls_and_other_containers_are_refused() {
        let s = store_on(DEV_BLOB_ENDPOINT);
        let uri = s.uri(&encode_key("calls/a b/é.json"));
        assert_eq!(
            uri,
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/calls/a%20b/%C3%A9.json"
        );
        assert_eq!(s.key_of(&uri).unwrap().0, "calls/a b/é.json");
        assert_eq!(s.container_path, "/devstoreaccount1/artifacts");
        for bad in [
            "http://127.0.0.1:10000/devstoreaccount1/other/calls/1.json",
            "http://127.0.0.1:10000/devstoreaccount1/artifactsx/a",
            "http://127.0.0.1:10000/otheraccount/artifacts/a",
            "http://127.0.0.1:10001/devstoreaccount1/artifacts/a",
            "s3://artifacts/calls/1.json",
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/../x",
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/%2E%2E/x",
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/a%2F..%2Fb",
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/a b",
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/a?comp=list",
            "http://127.0.0.1:10000/devstoreaccount1/artifacts/",
        ] {
            assert!(s.key_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_azure_endpoint_has_no_path_of_its_own() {
        let s = store_on("https://acme.blob.core.windows.net/");
        assert_eq!(s.uri("k"), "https://acme.blob.core.windows.net/artifacts/k");
        assert_eq!(s.container_path, "/artifacts");
    }

    #[test]
    fn container_names_follow_the_services_rules() {
        for good in ["abc", "ai-team-artifacts", "a1b2", &"a".repeat(63)] {
            assert!(ContainerName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Abc",
            "a--b",
            "-ab",
            "ab-",
            "a_b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(ContainerName::parse(bad).is_err(), "{bad}");
        }
    }
}
