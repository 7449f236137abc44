//! The `StepQueue` port on Azure Service Bus through its REST API (there
//! is no maintained official Rust crate): `POST {endpoint}/{queue}/messages`
//! with a Shared Access Signature made from the connection string's key
//! (HMAC-SHA256 over the URL-encoded resource URI and the expiry). The
//! logical queue name travels as the `ai-team-queue` custom property (an
//! HTTP header), the dedup key as the `MessageId` broker property (Service
//! Bus drops duplicates when the queue has duplicate detection), and a
//! delay as `ScheduledEnqueueTimeUtc`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ai_team_core::queue::{QueueError, StepQueue};
use async_trait::async_trait;
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
    fn message_mac(&self, queue: &str, payload: &serde_json::Value) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.key.as_bytes()).expect("HMAC takes any key");
        // `Value::to_string` is canonical here: compact, keys sorted.
        mac.update(format!("{queue}\n{payload}").as_bytes());
        mac
    }

    /// The signature of a message for the logical `queue`: HMAC-SHA256
    /// under the connection's key, lower-case hex. Only holders of the key
    /// (the service's own senders) can make it, so the queue trigger can
    /// tell a Service Bus message from a request someone posted.
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

/// Sends to one Service Bus queue; the HTTP client is built once.
#[derive(Clone)]
pub struct ServiceBusQueue {
    http: reqwest::Client,
    conn: ConnectionString,
    queue: String,
}

impl ServiceBusQueue {
    /// With a client of its own (rustls, 30 s timeout).
    pub fn connect(conn: ConnectionString, queue: impl Into<String>) -> Result<Self, QueueError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        Ok(Self::new(http, conn, queue))
    }

    pub fn new(http: reqwest::Client, conn: ConnectionString, queue: impl Into<String>) -> Self {
        Self {
            http,
            conn,
            queue: queue.into(),
        }
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
        let resource = format!("{}/{}", self.conn.endpoint, self.queue);
        let now = SystemTime::now();
        let expiry = (now + TOKEN_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .map_err(|e| QueueError::Unavailable(e.to_string()))?
            .as_secs();
        let mut broker = serde_json::Map::new();
        if let Some(key) = dedup_key {
            broker.insert("MessageId".into(), key.into());
        }
        if !delay.is_zero() {
            let at = chrono::DateTime::<chrono::Utc>::from(now + delay);
            broker.insert(
                "ScheduledEnqueueTimeUtc".into(),
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string().into(),
            );
        }
        let response = self
            .http
            .post(format!("{resource}/messages"))
            .header(
                "Authorization",
                sas_token(&resource, &self.conn.key_name, &self.conn.key, expiry),
            )
            .header("Content-Type", "application/json")
            .header(
                "BrokerProperties",
                serde_json::Value::Object(broker).to_string(),
            )
            .header("ai-team-queue", queue)
            .header(SIGNATURE_PROPERTY, self.conn.sign(queue, payload))
            .json(payload)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(QueueError::Unavailable(format!(
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
        .unwrap();
        let other = ConnectionString::parse(
            "Endpoint=sb://team.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=b3RoZXI=",
        )
        .unwrap();
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
