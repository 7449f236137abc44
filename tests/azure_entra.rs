//! Entra ID end to end, against local fakes in the real shapes: the
//! Microsoft identity platform (`support/fake_entra.py`: client-credentials
//! grant over HTTPS, the managed-identity endpoint), Azurite over HTTPS in
//! its OAuth mode (it checks a bearer token's issuer, audience and times),
//! a Service Bus that takes only a bearer token for its own audience, and
//! an Azure OpenAI that records the credential header. The last test runs
//! the `azure-handler` binary on the original service's Azure settings
//! (its README's block plus a tenant id), as the Functions host would.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_team_core::blob::BlobStore;
use ai_team_core::llm::{ChatMessage, ChatRequest, LlmClient};
use ai_team_core::models::Role;
use ai_team_core::queue::{STEPS_QUEUE, StepQueue};
use ai_team_providers::azure_blob::{AzureBlobStore, ContainerName, StorageAuth};
use ai_team_providers::azure_entra::{BearerToken, EntraSettings, OPENAI_SCOPE};
use ai_team_providers::azure_http;
use ai_team_providers::azure_service_bus::{
    MessageKey, SIGNATURE_PROPERTY, ServiceBusAuth, ServiceBusQueue,
};
use ai_team_providers::llm::{AzureAuth, OpenAiClient};
use ai_team_providers::store::DatabaseUrl;
use ai_team_tests::TestDb;
use ai_team_tests::azurite::Azurite;
use ai_team_tests::entra::{self, CLIENT_ID, CLIENT_SECRET, FakeEntra, TENANT, Tls};
use ai_team_tests::fake_llm::{FakeLlm, Script};
use serde_json::{Value, json};

/// One message the fake Service Bus accepted.
#[derive(Debug, Clone)]
struct Sent {
    queue: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// What the fake namespace accepted (it takes only an Entra bearer token
/// for Service Bus's audience, over HTTPS as the SDK's policy requires).
fn sends(entra: &FakeEntra) -> Vec<Sent> {
    entra
        .messages()
        .into_iter()
        .map(|m| Sent {
            queue: m["queue"].as_str().unwrap_or_default().to_owned(),
            headers: serde_json::from_value(m["headers"].clone()).unwrap_or_default(),
            body: m["body"].clone(),
        })
        .collect()
}

fn client_secret(entra: &FakeEntra, secret: &str) -> EntraSettings {
    EntraSettings {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        client_secret: Some(secret.into()),
        authority_host: Some(entra.authority_host.clone()),
        ..Default::default()
    }
}

fn chat() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "You are the Product Manager.".into(),
            },
            ChatMessage {
                role: Role::User,
                content: "Analyse AZ-1.".into(),
            },
        ],
        max_tokens: 64,
        temperature: 0.0,
        grammar: None,
    }
}

fn audience_of(credential: &str) -> Value {
    entra::claims(
        credential
            .strip_prefix("authorization: Bearer ")
            .unwrap_or_default(),
    )["aud"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_authorises_blob_storage_service_bus_and_azure_openai() {
    // Given the identity platform, Azurite in OAuth mode, a Service Bus and
    // an Azure OpenAI, and a service principal's credential
    let tls = Tls::new();
    let entra = FakeEntra::start(&tls);
    let azurite = Azurite::start_oauth(&tls).await;
    let http = azure_http::client(Some(&tls.ca)).expect("client");
    let credential = client_secret(&entra, CLIENT_SECRET)
        .credential(&http)
        .expect("credential");

    // When the blob store writes and reads with it
    let endpoint = azurite.blob_endpoint.parse().unwrap();
    let container = ContainerName::parse("entra").unwrap();
    let blobs = AzureBlobStore::new(
        http.clone(),
        &endpoint,
        container.clone(),
        StorageAuth::Entra(credential.clone()),
    );
    blobs
        .ensure_container()
        .await
        .expect("create container with a token");
    let uri = blobs
        .put("calls/1/request.json", b"{\"a\":1}")
        .await
        .expect("put with a token");

    // Then the blob is there, read back with the token and with the account key
    assert_eq!(blobs.get(&uri).await.expect("get"), b"{\"a\":1}");
    let by_key = AzureBlobStore::with_connection(http.clone(), azurite.connection(), container);
    assert_eq!(by_key.get(&uri).await.expect("get by key"), b"{\"a\":1}");

    // When a step is queued twice on Service Bus
    let bus = entra.service_bus();
    let key = MessageKey::new(b"message-key".to_vec());
    let queue = ServiceBusQueue::new(
        &http,
        &bus,
        "ai-team-steps",
        ServiceBusAuth::Entra(credential.clone()),
        key.clone(),
    );
    for n in 1..=2 {
        let payload = json!({"execution_id": n, "step": "analysis", "attempt": 1});
        queue
            .send(
                STEPS_QUEUE,
                &payload,
                Some(&format!("{n}:analysis:1")),
                Duration::ZERO,
            )
            .await
            .expect("send with a token");
    }
    // Then both arrived, signed with the message key
    let got = sends(&entra);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].queue, "ai-team-steps");
    assert!(key.verify(
        STEPS_QUEUE,
        &got[0].body,
        &got[0].headers[SIGNATURE_PROPERTY]
    ));

    // When Azure OpenAI is called without an API key
    let llm = FakeLlm::start(Script::default()).await;
    let auth = AzureAuth::Token(Arc::new(BearerToken::new(credential.clone(), OPENAI_SCOPE)));
    let openai = OpenAiClient::azure(
        &format!("http://{}", llm.address),
        "gpt-4o",
        "2024-10-21",
        auth,
        Duration::from_secs(10),
    )
    .unwrap();
    openai.chat(&chat()).await.expect("chat with a token");
    openai.chat(&chat()).await.expect("chat again");

    // Then it carried a bearer token for Cognitive Services, no api-key
    for seen in llm.seen() {
        let credential = seen.credential.expect("a credential header");
        assert_eq!(
            audience_of(&credential),
            "https://cognitiveservices.azure.com",
            "{credential}"
        );
    }

    // And each scope's token was asked for once (the SDK caches them)
    let requests = entra.requests();
    let scopes: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["scope"].as_str())
        .collect();
    for scope in [
        "https://storage.azure.com/.default",
        "https://servicebus.azure.net/.default",
        "https://cognitiveservices.azure.com/.default",
    ] {
        assert_eq!(
            scopes.iter().filter(|s| **s == scope).count(),
            1,
            "{scope} in {requests:?}"
        );
    }
    assert!(
        requests
            .iter()
            .all(|r| r["ok"] == true && r["grant"] == "client_secret"),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_is_a_clear_error_that_shows_no_secret() {
    let tls = Tls::new();
    let entra = FakeEntra::start(&tls);
    let azurite = Azurite::start_oauth(&tls).await;
    let http = azure_http::client(Some(&tls.ca)).expect("client");
    let wrong = "not-the-secret-0123";
    let credential = client_secret(&entra, wrong)
        .credential(&http)
        .expect("credential");

    let blobs = AzureBlobStore::new(
        http.clone(),
        &azurite.blob_endpoint.parse().unwrap(),
        ContainerName::parse("entra").unwrap(),
        StorageAuth::Entra(credential.clone()),
    );
    let err = blobs
        .put("calls/1/x.json", b"{}")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(!err.contains(wrong), "{err}");

    let llm = FakeLlm::start(Script::default()).await;
    let auth = AzureAuth::Token(Arc::new(BearerToken::new(credential, OPENAI_SCOPE)));
    let openai = OpenAiClient::azure(
        &format!("http://{}", llm.address),
        "gpt-4o",
        "2024-10-21",
        auth,
        Duration::from_secs(10),
    )
    .unwrap();
    let err = openai.chat(&chat()).await.unwrap_err();
    assert!(err.message.contains("no credential"), "{}", err.message);
    assert!(!err.message.contains(wrong));
    assert_eq!(llm.requests(), 0, "nothing was sent without a token");
}

/// `azure-handler` beside the test binary, built with the Azure feature if missing.
fn handler_binary() -> PathBuf {
    ai_team_tests::functions_binary("azure-handler", "azure")
}

struct Handler {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn start_handler(env: &[(&str, String)]) -> Handler {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(handler_binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("AZURE_")
            || k.starts_with("AWS_")
            || k == "CLOUD_PROVIDER"
            || k.starts_with("OPENAI_")
        {
            command.env_remove(k);
        }
    }
    let log = std::env::temp_dir().join(format!(
        "ai_team_azure_handler_{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let child = command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn azure-handler");
    let mut handler = Handler {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log: log.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if reqwest::get(format!("{}/health", handler.base))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return handler;
        }
        if let Some(status) = handler.child.try_wait().unwrap() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("azure-handler exited at start-up ({status}): {said}");
        }
        assert!(
            Instant::now() < deadline,
            "azure-handler did not answer /health in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The invocation the Functions host posts for one Service Bus message.
fn invocation(sent: &Sent) -> Value {
    json!({
        "Data": {"message": sent.body.to_string()},
        "Metadata": {
            "DeliveryCount": 1,
            "MessageId": sent.body.to_string(),
            "UserProperties": {
                "ai-team-queue": sent.headers["ai-team-queue"],
                SIGNATURE_PROPERTY: sent.headers[SIGNATURE_PROPERTY],
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_azure_settings_run_the_handler_end_to_end_on_entra_tokens() {
    // Given the fakes, a PostgreSQL database and the container
    let tls = Tls::new();
    let entra = FakeEntra::start(&tls);
    let azurite = Azurite::start_oauth(&tls).await;
    let bus = entra.service_bus();
    let llm = FakeLlm::start(Script::default()).await;
    let db = TestDb::postgres().await;
    let DatabaseUrl::Postgres(database_url) = &db.url else {
        unreachable!()
    };
    let http = azure_http::client(Some(&tls.ca)).unwrap();
    let by_key = AzureBlobStore::with_connection(
        http,
        azurite.connection(),
        ContainerName::parse("ai-team").unwrap(),
    );
    by_key.ensure_container().await.unwrap();
    let data = tempdir();

    // And the azure-handler on the original README's Azure block plus a
    // tenant id, its endpoints pointed at the fakes
    let env: Vec<(&str, String)> = vec![
        ("CLOUD_PROVIDER", "azure".into()),
        (
            "AZURE_SUBSCRIPTION_ID",
            "00000000-1111-2222-3333-444444444444".into(),
        ),
        ("AZURE_RESOURCE_GROUP", "ai-team-rg".into()),
        ("AZURE_OPENAI_RESOURCE_NAME", "acme-openai".into()),
        ("AZURE_SEARCH_SERVICE_NAME", "acme-search".into()),
        ("AZURE_SQL_SERVER_NAME", "acme-sql".into()),
        ("AZURE_SERVICE_BUS_NAMESPACE", "acme-bus".into()),
        ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1".into()),
        ("AZURE_CLIENT_ID", CLIENT_ID.into()),
        ("AZURE_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("AZURE_TENANT_ID", TENANT.into()),
        ("AZURE_OPENAI_DEPLOYMENT", "gpt-4o".into()),
        ("DATABASE_URL", database_url.clone()),
        // Where the fakes are (a real deployment resolves these from the names)
        ("AZURE_AUTHORITY_HOST", entra.authority_host.clone()),
        ("AZURE_SERVICE_BUS_ENDPOINT", bus.clone()),
        ("AZURE_STORAGE_BLOB_ENDPOINT", azurite.blob_endpoint.clone()),
        ("AZURE_OPENAI_ENDPOINT", format!("http://{}", llm.address)),
        ("SSL_CERT_FILE", tls.ca.display().to_string()),
        // Every call body goes to Blob Storage
        ("AI_TEAM_SPILL_BYTES", "64".into()),
        ("AI_TEAM_DATA_DIR", data.display().to_string()),
        ("AI_TEAM_LOG_FORMAT", "json".into()),
    ];
    let handler = start_handler(&env).await;
    let client = reqwest::Client::new();

    // When a workflow is executed through the HTTP trigger
    let wf: Value = client
        .post(format!("{}/workflows", handler.base))
        .json(&json!({"jira_story_id": "AZ-1", "name": "AZ-1: Reset password", "repository_url": "https://github.com/acme/shop"}))
        .send().await.unwrap().json().await.unwrap();
    let wf_id = wf["id"].as_i64().expect("workflow id");
    let started: Value = client
        .post(format!("{}/workflows/{wf_id}/execute", handler.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let execution_id = started["id"]
        .as_i64()
        .or(started["execution_id"].as_i64())
        .expect("execution id");

    // And the host delivers each queued message to the queue route
    let mut delivered = 0;
    let status = loop {
        let next = sends(&entra).get(delivered).cloned();
        if let Some(sent) = &next {
            delivered += 1;
            let r = client
                .post(format!("{}/steps", handler.base))
                .json(&invocation(sent))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "message {delivered}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        let e: Value = client
            .get(format!(
                "{}/workflows/{wf_id}/executions/{execution_id}",
                handler.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = e["status"].as_str().unwrap_or_default().to_owned();
        if status != "running" && status != "pending" && status != "queued" {
            break status;
        }
        assert!(delivered < 60, "no end after {delivered} messages: {e}");
        if next.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // Then the execution completed
    assert_eq!(status, "completed");
    // And every step went through Service Bus with an Entra token (the fake takes nothing else)
    assert!(delivered >= 6, "{delivered} messages");
    // And every LLM call carried a bearer token for Cognitive Services
    let seen = llm.seen();
    assert!(seen.len() >= 6);
    for s in &seen {
        assert_eq!(
            audience_of(s.credential.as_deref().unwrap_or_default()),
            "https://cognitiveservices.azure.com"
        );
    }
    // And the calls' bodies are in Blob Storage, written with a token
    let bodies = db_bodies(&db).await;
    assert!(!bodies.is_empty());
    for uri in &bodies {
        assert!(uri.starts_with(&azurite.blob_endpoint), "{uri}");
        assert!(
            !by_key
                .get(uri)
                .await
                .expect("the body is in the container")
                .is_empty()
        );
    }
    // And the identity platform was asked once per scope
    let requests = entra.requests();
    for scope in [
        "https://storage.azure.com/.default",
        "https://servicebus.azure.net/.default",
        "https://cognitiveservices.azure.com/.default",
    ] {
        assert_eq!(
            requests.iter().filter(|r| r["scope"] == scope).count(),
            1,
            "{scope}: {requests:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ai_team_azure_e2e_{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The blob URIs the calls' rows point at.
async fn db_bodies(db: &TestDb) -> Vec<String> {
    let DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT request_data, response_data FROM llm_calls")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.into_iter()
        .flat_map(|(a, b)| [a, b])
        .filter_map(|t| {
            serde_json::from_str::<Value>(&t).ok()?["blob_uri"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_identity_trades_its_federated_token_for_an_access_token() {
    // Given a federated token file, as AKS mounts it
    let tls = Tls::new();
    let entra = FakeEntra::start(&tls);
    let token_file = tls.dir.join("federated-token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln",
    )
    .unwrap();
    let settings = EntraSettings {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT_ID.into()),
        federated_token_file: Some(token_file),
        authority_host: Some(entra.authority_host.clone()),
        ..Default::default()
    };
    let http = azure_http::client(Some(&tls.ca)).unwrap();

    // When a token for Azure OpenAI is asked for
    let bearer = BearerToken::new(settings.credential(&http).unwrap(), OPENAI_SCOPE);
    let (name, value) = ai_team_providers::llm::AuthHeader::header(&bearer)
        .await
        .expect("token");

    // Then the client-assertion grant was used and its token has the audience
    assert_eq!(name, "authorization");
    assert_eq!(
        audience_of(&format!("authorization: {value}")),
        "https://cognitiveservices.azure.com"
    );
    let requests = entra.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["grant"], "client_assertion");
    assert_eq!(requests[0]["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_hosts_managed_identity_queues_steps_without_any_secret() {
    // Given the handler with no secret at all: the managed identity the
    // Functions host offers through IDENTITY_ENDPOINT/IDENTITY_HEADER
    let tls = Tls::new();
    let entra = FakeEntra::start(&tls);
    let azurite = Azurite::start_oauth(&tls).await;
    let llm = FakeLlm::start(Script::default()).await;
    let db = TestDb::postgres().await;
    let DatabaseUrl::Postgres(database_url) = &db.url else {
        unreachable!()
    };
    let data = tempdir();
    let env: Vec<(&str, String)> = vec![
        ("CLOUD_PROVIDER", "azure".into()),
        ("AZURE_SERVICE_BUS_NAMESPACE", "acme-bus".into()),
        ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1".into()),
        ("AZURE_OPENAI_DEPLOYMENT", "gpt-4o".into()),
        ("DATABASE_URL", database_url.clone()),
        ("IDENTITY_ENDPOINT", entra.identity_endpoint.clone()),
        ("IDENTITY_HEADER", entra::IDENTITY_HEADER.into()),
        ("AZURE_SERVICE_BUS_ENDPOINT", entra.service_bus()),
        ("AZURE_STORAGE_BLOB_ENDPOINT", azurite.blob_endpoint.clone()),
        ("AZURE_OPENAI_ENDPOINT", format!("http://{}", llm.address)),
        ("SSL_CERT_FILE", tls.ca.display().to_string()),
        ("AI_TEAM_DATA_DIR", data.display().to_string()),
    ];
    let handler = start_handler(&env).await;

    // When a workflow is executed
    let client = reqwest::Client::new();
    let wf: Value = client
        .post(format!("{}/workflows", handler.base))
        .json(&json!({"jira_story_id": "AZ-2", "name": "AZ-2: Reset"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client
        .post(format!("{}/workflows/{}/execute", handler.base, wf["id"]))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );

    // Then the first step is on Service Bus, sent with the identity's token
    let sent = sends(&entra);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].body["step"], "story_retrieval");
    let requests = entra.requests();
    assert!(
        requests.iter().any(|r| r["grant"] == "managed_identity"
            && r["resource"] == "https://servicebus.azure.net"
            && r["ok"] == true),
        "{requests:?}"
    );
    let _ = std::fs::remove_dir_all(&data);
}
