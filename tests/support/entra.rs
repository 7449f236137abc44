//! A local Microsoft identity platform (`fake_entra.py`, HTTPS for the
//! token endpoint as `azure_identity` requires, HTTP for the managed
//! identity endpoint) and the throw-away certificate authority it and
//! Azurite's HTTPS mode serve with. The CA and the server certificate are
//! made with the `openssl` command, one pair per test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A CA and a certificate for 127.0.0.1 and localhost signed by it.
pub struct Tls {
    pub dir: PathBuf,
    /// The CA's certificate: what clients trust (`SSL_CERT_FILE`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Tls {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("ai_team_tls_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("tls dir");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ai-team test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("ext file");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            dir,
        }
    }

    /// A reqwest client that trusts this CA (for probes and direct checks).
    pub fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.ca).expect("ca");
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("ca pem"))
            .build()
            .expect("client")
    }
}

impl Default for Tls {
    fn default() -> Self {
        Self::new()
    }
}

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "5a6b7c8d-0000-4000-8000-00000000c11e";
pub const CLIENT_SECRET: &str = "fake-client-secret-value";
pub const IDENTITY_HEADER: &str = "fake-identity-header";

pub struct FakeEntra {
    /// `AZURE_AUTHORITY_HOST`: `https://127.0.0.1:{port}`.
    pub authority_host: String,
    /// `IDENTITY_ENDPOINT` (App Service / Functions managed identity).
    pub identity_endpoint: String,
    log: PathBuf,
    child: Child,
}

impl FakeEntra {
    pub fn start(tls: &Tls) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/fake_entra.py");
        let ports = tls.dir.join(format!(
            "entra-ports-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        let log = tls
            .dir
            .join(format!("entra-{}.log", uuid::Uuid::new_v4().simple()));
        let child = Command::new("python3")
            .arg(script)
            .arg("--cert")
            .arg(&tls.cert)
            .arg("--key")
            .arg(&tls.key)
            .args([
                "--tenant",
                TENANT,
                "--client-id",
                CLIENT_ID,
                "--secret",
                CLIENT_SECRET,
            ])
            .args(["--identity-header", IDENTITY_HEADER])
            .arg("--ports-file")
            .arg(&ports)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 for the fake identity platform");
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports: Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports)
                && let Ok(v) = serde_json::from_str(&text)
            {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "the fake identity platform did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            authority_host: format!("https://127.0.0.1:{}", ports["https"]),
            identity_endpoint: format!("http://127.0.0.1:{}/msi/token", ports["http"]),
            log,
            child,
        }
    }

    /// Every request so far: token requests `{grant, client_id,
    /// scope|resource, ok}`, Service Bus sends `{grant: "service_bus",
    /// queue, headers, body}`.
    pub fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The token requests.
    pub fn requests(&self) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| {
                !r["grant"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("service_bus")
            })
            .collect()
    }

    /// The messages the Service Bus namespace accepted, in order.
    pub fn messages(&self) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| r["grant"] == "service_bus")
            .collect()
    }

    /// `AZURE_SERVICE_BUS_ENDPOINT` of the fake namespace (same listener).
    pub fn service_bus(&self) -> String {
        self.authority_host.clone()
    }
}

impl Drop for FakeEntra {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The claims of a JWT (its middle part), unverified.
pub fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}
