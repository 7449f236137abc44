//! Azurite's Blob service on a free port of 127.0.0.1, one per test, in a
//! directory of its own, stopped and removed when dropped. The binary
//! comes from `AI_TEAM_AZURITE`, else the node prefix
//! `scripts/setup-emulators` fills; a missing binary fails the test with
//! the command that installs it, never skips it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_team_providers::azure_blob::StorageConnection;

pub struct Azurite {
    /// The path-style Blob endpoint, `http://127.0.0.1:{port}/devstoreaccount1`.
    pub blob_endpoint: String,
    child: Child,
    dir: PathBuf,
}

fn azurite_binary() -> PathBuf {
    let bin = match std::env::var_os("AI_TEAM_AZURITE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".cache/ai-team/node/node_modules/.bin/azurite-blob"),
    };
    assert!(
        bin.exists(),
        "azurite-blob not found at {}: run scripts/setup-emulators (installs Azurite into \
         $HOME/.cache/ai-team/node) or set AI_TEAM_AZURITE",
        bin.display()
    );
    bin
}

impl Azurite {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Over HTTPS with `tls`'s certificate and `--oauth basic`: bearer
    /// tokens are accepted (their issuer, audience and times checked, not
    /// their signature), as well as the account key.
    pub async fn start_oauth(tls: &crate::entra::Tls) -> Self {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<&crate::entra::Tls>) -> Self {
        let binary = azurite_binary();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("address").port()
        };
        let dir =
            std::env::temp_dir().join(format!("ai_team_azurite_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("azurite dir");
        let mut command = Command::new(binary);
        if let Some(tls) = tls {
            command
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key)
                .args(["--oauth", "basic"]);
        }
        let child = command
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn azurite-blob");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let azurite = Self {
            blob_endpoint: format!("{scheme}://127.0.0.1:{port}/devstoreaccount1"),
            child,
            dir,
        };
        // Any answer, even a refusal of the unsigned request, means it listens.
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = tls.map_or_else(reqwest::Client::new, crate::entra::Tls::client);
        while client
            .get(format!("{}?comp=list", azurite.blob_endpoint))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "azurite-blob did not start in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        azurite
    }

    /// The emulator's well-known account at this instance's endpoint.
    pub fn connection(&self) -> StorageConnection {
        StorageConnection::development_at(self.blob_endpoint.parse().expect("endpoint URL"))
    }

    /// The same as a connection string, as `AZURE_STORAGE_CONNECTION_STRING` holds it.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
            ai_team_providers::azure_blob::DEV_ACCOUNT_NAME,
            ai_team_providers::azure_blob::DEV_ACCOUNT_KEY,
            self.blob_endpoint
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
