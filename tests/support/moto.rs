//! moto's server (SQS and S3) on a free port of 127.0.0.1, one per test,
//! stopped when dropped. The binary comes from `AI_TEAM_MOTO_SERVER`, else
//! the venv `scripts/setup-emulators` fills; a missing binary fails the
//! test with the command that installs it, never skips it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

pub struct Moto {
    pub endpoint: String,
    child: Child,
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("AI_TEAM_MOTO_SERVER") {
        return p.into();
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let venv = PathBuf::from(home).join(".cache/ai-team/venv/bin/moto_server");
    assert!(
        venv.exists(),
        "moto_server not found: run scripts/setup-emulators (installs moto[server] into \
         $HOME/.cache/ai-team/venv) or set AI_TEAM_MOTO_SERVER"
    );
    venv
}

impl Moto {
    pub async fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("address").port()
        };
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Self { endpoint, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            let up = client
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .is_ok();
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// The shared AWS configuration pointed at this server, with dummy
    /// credentials (moto accepts any).
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "moto",
            )))
            .http_client(ai_team_providers::aws::https_client())
            .build()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
