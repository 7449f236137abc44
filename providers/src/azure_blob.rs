//! The `BlobStore` port on Azure Blob Storage through the official Azure
//! SDK for Rust (`azure_storage_blob`), its requests sent by the
//! workspace's reqwest client (`azure_http`): one container, keys as given
//! (checked by the port's rules) and percent-encoded per segment, block
//! blobs written whole. Three ways to authorise, as Azure offers them: an
//! Entra ID token (the SDK's bearer policy; the account needs HTTPS), a SAS
//! token (its query on every URL), or the account key. The SDK has no
//! Shared Key signing (Azure steers services away from account keys), so
//! that one is a pipeline policy of ours (`shared_key`), kept for Azurite
//! and for accounts that still use keys. URIs are the blobs' URLs,
//! `{blob endpoint}/{container}/{key}`, never with a SAS; a `get` of a URI
//! of another account, endpoint or container is refused: this store reads
//! only what it wrote. Against Azurite the endpoint is path-style
//! (`http://127.0.0.1:10000/devstoreaccount1`).

mod connection;
mod shared_key;

use std::sync::Arc;

use ai_team_core::blob::{BlobError, BlobStore, check_key};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, RequestContent, StatusCode, Url};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

pub use connection::{DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, DEV_BLOB_ENDPOINT, StorageConnection};
/// The endpoint URL type the store takes.
pub use reqwest::Url as EndpointUrl;
pub use shared_key::{AccountKey, SignedParts, authorization, string_to_sign};

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

/// How the store's requests are authorised.
#[derive(Clone)]
pub enum StorageAuth {
    /// An Entra ID token (scope `https://storage.azure.com/.default`).
    Entra(Arc<dyn TokenCredential>),
    /// A SAS token: the query (without `?`) added to every URL.
    Sas(String),
    /// The account key (Shared Key), signed per try by `SharedKeyPolicy`.
    SharedKey { account: String, key: AccountKey },
}

impl StorageAuth {
    pub fn describe(&self) -> &'static str {
        match self {
            StorageAuth::Entra(_) => "Entra ID bearer token",
            StorageAuth::Sas(_) => "SAS token",
            StorageAuth::SharedKey { .. } => "account key (Shared Key)",
        }
    }
}

/// Shared Key: signs each try after the SDK has set its headers (its
/// `x-ms-version`, the range of a partitioned download), with a fresh
/// `x-ms-date`.
#[derive(Debug)]
struct SharedKeyPolicy {
    account: String,
    key: AccountKey,
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        request.insert_header("x-ms-date", date);
        let length = match request.body() {
            azure_core::http::Body::Bytes(b) => b.len().to_string(),
            azure_core::http::Body::SeekableStream(s) => s.len().unwrap_or(0).to_string(),
        };
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned()))
            .collect();
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            headers.push(("content-length".into(), length));
        }
        let query: Vec<(String, String)> = request.url().query_pairs().into_owned().collect();
        let path = request.url().path().to_owned();
        let auth = {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let query: Vec<(&str, &str)> = query
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            authorization(
                &self.key,
                &SignedParts {
                    verb: request.method().as_ref(),
                    headers: &headers,
                    account: &self.account,
                    path: &path,
                    query: &query,
                },
            )
        };
        request.insert_header("authorization", auth);
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// A request's URL (with the SAS query), client options and credential.
type Parts = (
    Url,
    azure_core::http::ClientOptions,
    Option<Arc<dyn TokenCredential>>,
);

/// One container of one account.
#[derive(Clone)]
pub struct AzureBlobStore {
    http: reqwest::Client,
    auth: StorageAuth,
    container: ContainerName,
    /// `{endpoint}/{container}`: every URI this store writes starts with it
    /// and a `/`.
    container_url: String,
}

impl AzureBlobStore {
    /// The container `container` at `blob_endpoint` (`https://{account}.blob.core.windows.net`
    /// or an emulator's path-style URL).
    pub fn new(
        http: reqwest::Client,
        blob_endpoint: &Url,
        container: ContainerName,
        auth: StorageAuth,
    ) -> Self {
        let endpoint = blob_endpoint.as_str().trim_end_matches('/');
        Self {
            container_url: format!("{endpoint}/{}", container.as_str()),
            http,
            auth,
            container,
        }
    }

    /// With a connection string's account key and a client of its own.
    pub fn connect(conn: StorageConnection, container: ContainerName) -> Result<Self, BlobError> {
        let http = crate::azure_http::client(None).map_err(BlobError::Unavailable)?;
        Ok(Self::with_connection(http, conn, container))
    }

    /// With a connection string's account key.
    pub fn with_connection(
        http: reqwest::Client,
        conn: StorageConnection,
        container: ContainerName,
    ) -> Self {
        let auth = StorageAuth::SharedKey {
            account: conn.account.clone(),
            key: conn.key.clone(),
        };
        Self::new(http, &conn.blob_endpoint, container, auth)
    }

    /// `url` with the SAS query, the client options and the credential.
    fn parts(&self, url: &str) -> Result<Parts, BlobError> {
        let mut url =
            Url::parse(url).map_err(|e| BlobError::Unavailable(format!("blob URL: {e}")))?;
        let mut options = crate::azure_http::client_options(&self.http);
        let credential = match &self.auth {
            StorageAuth::Entra(c) => Some(c.clone()),
            StorageAuth::Sas(query) => {
                url.set_query(Some(query.trim_start_matches('?')));
                None
            }
            StorageAuth::SharedKey { account, key } => {
                options.per_try_policies.push(Arc::new(SharedKeyPolicy {
                    account: account.clone(),
                    key: key.clone(),
                }));
                None
            }
        };
        Ok((url, options, credential))
    }

    fn blob(&self, encoded_key: &str) -> Result<BlobClient, BlobError> {
        let (url, client_options, credential) = self.parts(&self.uri(encoded_key))?;
        BlobClient::new(
            url,
            credential,
            Some(BlobClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(|e| failure("Blob client", &e))
    }

    /// Creates the container unless it exists (its 409
    /// `ContainerAlreadyExists` is success).
    #[tracing::instrument(skip(self), fields(container = %self.container.as_str()))]
    pub async fn ensure_container(&self) -> Result<(), BlobError> {
        let (url, client_options, credential) = self.parts(&self.container_url)?;
        let client = BlobContainerClient::new(
            url,
            credential,
            Some(BlobContainerClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(|e| failure("Container client", &e))?;
        match client.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("ContainerAlreadyExists") => Ok(()),
            Err(e) => Err(failure("Create Container", &e)),
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
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    #[tracing::instrument(skip(self, bytes), fields(container = %self.container.as_str(), size = bytes.len()))]
    async fn put(&self, key: &str, bytes: &[u8]) -> Result<String, BlobError> {
        check_key(key)?;
        let encoded = encode_key(key);
        let content: RequestContent<_, _> = azure_core::Bytes::copy_from_slice(bytes).into();
        // A 404 here is a missing container, not a missing blob: the
        // store is misconfigured, which the caller cannot fix by retrying
        // another key.
        self.blob(&encoded)?
            .upload(content, None)
            .await
            .map_err(|e| failure("Put Blob", &e))?;
        Ok(self.uri(&encoded))
    }

    #[tracing::instrument(skip(self), fields(container = %self.container.as_str()))]
    async fn get(&self, uri: &str) -> Result<Vec<u8>, BlobError> {
        let (_, encoded) = self.key_of(uri)?;
        let result = match self.blob(&encoded)?.download(None).await {
            Ok(r) => r,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => {
                return Err(BlobError::NotFound(uri.to_owned()));
            }
            Err(e) => return Err(failure("Get Blob", &e)),
        };
        let bytes = result
            .body
            .collect()
            .await
            .map_err(|e| failure("Get Blob", &e))?;
        Ok(bytes.to_vec())
    }
}

fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn error_code(e: &azure_core::Error) -> Option<&str> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.as_deref(),
        _ => None,
    }
}

/// The status and the service's error code; never the URL (it may hold a
/// SAS) nor the body (an authentication failure echoes the string-to-sign).
fn failure(operation: &str, e: &azure_core::Error) -> BlobError {
    BlobError::Unavailable(match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => format!(
            "{operation}: HTTP {} {}",
            u16::from(*status),
            error_code.as_deref().unwrap_or("(no x-ms-error-code)")
        ),
        _ => format!("{operation}: {}", crate::azure_http::sdk_error_text(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_on(endpoint: &str) -> AzureBlobStore {
        AzureBlobStore::with_connection(
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
