//! The `StepQueue` port on Azure Service Bus through its REST API (there
//! is no maintained official Rust crate), sent through `azure_core`'s HTTP
//! pipeline: `POST {endpoint}/{queue}/messages` with an Entra ID bearer
//! token, or a Shared Access Signature made from the connection string's
//! key (HMAC-SHA256 over the URL-encoded resource URI and the expiry). The
//! logical queue name travels as the `ai-team-queue` custom property (an
//! HTTP header), the dedup key as the `MessageId` broker property (Service
//! Bus drops duplicates when the queue has duplicate detection), and a
//! delay as `ScheduledEnqueueTimeUtc`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ai_team_core::queue::{QueueError, StepQueue};
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, Request, Url};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// How long a signature stays valid; a fresh one is made per send.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The parts of a Service Bus connection string this adapter needs.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// `https://{namespace}.servicebus.windows.net` (an `http://` endpoint
    /// is kept as given, for local fakes and emulators).
    pub endpoint: String,
    pub key_name: String,
    key: String,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionString")
            .field("endpoint", &self.endpoint)
            .field("key_name", &self.key_name)
            .field("key", &"***")
            .finish()
    }
}

impl ConnectionString {
    /// `Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=…;SharedAccessKey=…`
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            match k {
                "Endpoint" => endpoint = Some(v.to_owned()),
                "SharedAccessKeyName" => key_name = Some(v.to_owned()),
                "SharedAccessKey" => key = Some(v.to_owned()),
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or("Endpoint is missing")?;
        let endpoint = match endpoint.strip_prefix("sb://") {
            Some(host) => format!("https://{host}"),
            None if endpoint.starts_with("http://") || endpoint.starts_with("https://") => endpoint,
            None => {
                return Err(format!(
                    "Endpoint {endpoint:?} is not sb://, https:// or http://"
                ));
            }
        };
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            key_name: key_name.ok_or("SharedAccessKeyName is missing")?,
            key: key.ok_or("SharedAccessKey is missing")?,
        })
    }
}

/// The custom property (an HTTP header on send, `UserProperties` in the
/// trigger's invocation) carrying a message's signature.
pub const SIGNATURE_PROPERTY: &str = "ai-team-signature";

impl ConnectionString {
    /// The key queue messages are signed with: the connection's own.
    pub fn message_key(&self) -> MessageKey {
        MessageKey(self.key.as_bytes().to_vec())
    }
}

/// The key that signs queue messages (HMAC-SHA256): the connection
/// string's SAS key, or, where Service Bus is reached with Entra ID and
/// there is no shared key, one the service keeps in its database.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageKey(Vec<u8>);

impl std::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageKey(***)")
    }
}

impl MessageKey {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    fn message_mac(&self, queue: &str, payload: &serde_json::Value) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        // `Value::to_string` is canonical here: compact, keys sorted.
        mac.update(format!("{queue}\n{payload}").as_bytes());
        mac
    }

    /// The signature of a message for the logical `queue`: HMAC-SHA256
    /// under the key, lower-case hex. Only holders of the key (the
    /// service's own senders) can make it, so the queue trigger can tell a
    /// Service Bus message from a request someone posted.
    pub fn sign(&self, queue: &str, payload: &serde_json::Value) -> String {
        self.message_mac(queue, payload)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `signature` is `sign(queue, payload)`, compared in constant time.
    pub fn verify(&self, queue: &str, payload: &serde_json::Value, signature: &str) -> bool {
        let Some(bytes) = hex_bytes(signature) else {
            return false;
        };
        self.message_mac(queue, payload)
            .verify_slice(&bytes)
            .is_ok()
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Everything but RFC 3986's unreserved characters, as the Azure SDKs encode.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODED).to_string()
}

/// The `Authorization` value for `resource` valid until `expiry` (Unix seconds).
pub fn sas_token(resource: &str, key_name: &str, key: &str, expiry: u64) -> String {
    let sr = encode(resource);
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{sr}\n{expiry}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={key_name}",
        encode(&sig)
    )
}

/// How sends are authorised.
#[derive(Clone)]
pub enum ServiceBusAuth {
    /// A SAS token made per request from the connection string's key.
    Sas(ConnectionString),
    /// An Entra ID bearer token (scope `https://servicebus.azure.net/.default`).
    Entra(Arc<dyn TokenCredential>),
}

impl ServiceBusAuth {
    pub fn describe(&self) -> &'static str {
        match self {
            ServiceBusAuth::Sas(_) => "SAS key (connection string)",
            ServiceBusAuth::Entra(_) => "Entra ID bearer token",
        }
    }
}

/// Signs each try with a fresh SAS token (a retry may come after the old
/// one expired).
#[derive(Debug)]
struct SasPolicy {
    conn: ConnectionString,
    resource: String,
}

#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let expiry = (SystemTime::now() + TOKEN_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        request.insert_header(
            "authorization",
            sas_token(&self.resource, &self.conn.key_name, &self.conn.key, expiry),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Sends to one Service Bus queue through the Azure SDK's HTTP pipeline
/// (its retry policy and telemetry), on the workspace's reqwest client.
#[derive(Clone)]
pub struct ServiceBusQueue {
    pipeline: Pipeline,
    /// `{endpoint}/{queue}`.
    resource: String,
    queue: String,
    signer: MessageKey,
}

impl ServiceBusQueue {
    /// `endpoint` is `https://{namespace}.servicebus.windows.net` (or a
    /// local fake's URL); messages are signed with `signer`.
    pub fn new(
        http: &reqwest::Client,
        endpoint: &str,
        queue: impl Into<String>,
        auth: ServiceBusAuth,
        signer: MessageKey,
    ) -> Self {
        let queue = queue.into();
        let resource = format!("{}/{queue}", endpoint.trim_end_matches('/'));
        let auth: Arc<dyn Policy> = match auth {
            ServiceBusAuth::Sas(conn) => Arc::new(SasPolicy {
                conn,
                resource: resource.clone(),
            }),
            ServiceBusAuth::Entra(credential) => Arc::new(BearerTokenAuthorizationPolicy::new(
                credential,
                [crate::azure_entra::SERVICE_BUS_SCOPE],
            )),
        };
        let pipeline = Pipeline::new(
            Some("ai-team-service-bus"),
            option_env!("CARGO_PKG_VERSION"),
            crate::azure_http::client_options(http),
            Vec::new(),
            vec![auth],
            None,
        );
        Self {
            pipeline,
            resource,
            queue,
            signer,
        }
    }

    /// With its connection string: the SAS key authorises and signs.
    pub fn with_connection_string(
        http: &reqwest::Client,
        conn: ConnectionString,
        queue: impl Into<String>,
    ) -> Self {
        let endpoint = conn.endpoint.clone();
        let signer = conn.message_key();
        Self::new(http, &endpoint, queue, ServiceBusAuth::Sas(conn), signer)
    }
}

#[async_trait]
impl StepQueue for ServiceBusQueue {
    #[tracing::instrument(skip(self, payload), fields(service_bus_queue = %self.queue))]
    async fn send(
        &self,
        queue: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let unavailable = |e: String| QueueError::Unavailable(e);
        let mut broker = serde_json::Map::new();
        if let Some(key) = dedup_key {
            broker.insert("MessageId".into(), key.into());
        }
        if !delay.is_zero() {
            let at = chrono::DateTime::<chrono::Utc>::from(SystemTime::now() + delay);
            broker.insert(
                "ScheduledEnqueueTimeUtc".into(),
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string().into(),
            );
        }
        let url = Url::parse(&format!("{}/messages", self.resource))
            .map_err(|e| unavailable(format!("queue URL: {e}")))?;
        let mut request = Request::new(url, Method::Post);
        request.insert_header("content-type", "application/json");
        request.insert_header(
            "brokerproperties",
            serde_json::Value::Object(broker).to_string(),
        );
        request.insert_header("ai-team-queue", queue.to_owned());
        request.insert_header(SIGNATURE_PROPERTY, self.signer.sign(queue, payload));
        request.set_body(payload.to_string());
        let response = self
            .pipeline
            .send(
                &Context::new(),
                &mut request,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| unavailable(crate::azure_http::sdk_error_text(&e)))?;
        let status = u16::from(response.status());
        if (200..300).contains(&status) {
            Ok(())
        } else {
            let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
            Err(unavailable(format!(
                "Service Bus answered {status}: {}",
                body.chars().take(300).collect::<String>()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_and_hide_the_key() {
        let c = ConnectionString::parse(
            "Endpoint=sb://team.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0=",
        )
        .unwrap();
        assert_eq!(c.endpoint, "https://team.servicebus.windows.net");
        assert_eq!(c.key_name, "send");
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
        assert!(ConnectionString::parse("Endpoint=sb://x/").is_err());
        assert!(ConnectionString::parse("SharedAccessKeyName=a;SharedAccessKey=b").is_err());
    }

    #[test]
    fn messages_are_signed_for_their_queue_and_body() {
        let c = ConnectionString::parse(
            "Endpoint=sb://team.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0=",
        )
        .unwrap()
        .message_key();
        let other = ConnectionString::parse(
            "Endpoint=sb://team.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=b3RoZXI=",
        )
        .unwrap()
        .message_key();
        let m = serde_json::json!({"execution_id": 4, "step": "integration", "attempt": 1});
        let sig = c.sign("steps", &m);
        assert_eq!(sig.len(), 64);
        assert!(c.verify("steps", &m, &sig));
        assert!(!c.verify("refresh", &m, &sig), "bound to the queue");
        let changed = serde_json::json!({"execution_id": 5, "step": "integration", "attempt": 1});
        assert!(!c.verify("steps", &changed, &sig), "bound to the body");
        assert!(!other.verify("steps", &m, &sig), "bound to the key");
        assert!(!c.verify("steps", &m, "zz"));
        assert!(!c.verify("steps", &m, &"é".repeat(32)));
    }

    #[test]
    fn sas_token_matches_the_documented_construction() {
        // Reference computed independently with Python's hmac, hashlib,
        // base64 and urllib.parse.quote(safe="-_.~").
        let t = sas_token(
            "https://ns.servicebus.windows.net/steps",
            "send",
            "key",
            1_700_000_000,
        );
        assert_eq!(
            t,
            "SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2Fsteps\
             &sig=BGM8HO60Be0y%2FGntwRNtTPw9CeYs1Ufz8riM3cuujlQ%3D&se=1700000000&skn=send"
        );
    }
}
