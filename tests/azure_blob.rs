//! The Azure Blob adapter against Azurite, started per test: blobs read
//! back byte for byte, overwrites, a missing blob, URIs of other
//! containers and accounts, keys that escape, and a wrong account key,
//! which Azurite refuses (it checks Shared Key signatures, so these tests
//! prove the signing). Then the same store built from the Azure settings
//! by `cloud::adapters`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ai_team_core::blob::{BlobError, BlobStore};
use ai_team_core::queue::{QueueError, StepQueue};
use ai_team_functions::cloud::{self, CloudProvider};
use ai_team_providers::azure_blob::{AccountKey, AzureBlobStore, ContainerName, StorageConnection};
use ai_team_tests::azurite::Azurite;
use ai_team_tests::config_with;

/// A store on a container of `azurite`, created (twice: it is idempotent).
async fn store(azurite: &Azurite, container: &str) -> AzureBlobStore {
    let store = AzureBlobStore::connect(
        azurite.connection(),
        ContainerName::parse(container).expect("container name"),
    )
    .expect("client");
    store.ensure_container().await.expect("create container");
    store.ensure_container().await.expect("container exists");
    store
}

/// Deterministic bytes of every value (a xorshift stream).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn blobs_read_back_byte_for_byte_binary_large_and_oddly_named() {
    // Given a container on Azurite
    let azurite = Azurite::start().await;
    let store = store(&azurite, "artifacts").await;
    let every_byte: Vec<u8> = (0..=255).collect();
    let large = noise(3 * 1024 * 1024 + 17);

    for (key, bytes) in [
        ("calls/1/request.json", &b"{\"model\":\"x\"}"[..]),
        ("calls/1/every-byte.bin", &every_byte[..]),
        ("calls/1/large.bin", &large[..]),
        (
            "notes/a b/é?#%+.txt",
            &b"odd names are encoded and signed"[..],
        ),
        ("empty", &b""[..]),
    ] {
        // When it is written
        let uri = store
            .put(key, bytes)
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));

        // Then its URI is the blob's URL and reads back the same bytes
        assert!(
            uri.starts_with(&format!("{}/artifacts/", azurite.blob_endpoint)),
            "{uri}"
        );
        let back = store
            .get(&uri)
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        assert_eq!(back.len(), bytes.len(), "{key}");
        assert!(back == bytes, "{key}: content differs");
    }
}

#[tokio::test]
async fn writing_a_key_again_replaces_the_blob_whole() {
    // Given a blob
    let azurite = Azurite::start().await;
    let store = store(&azurite, "artifacts").await;
    let first = store
        .put("calls/2/response.json", &noise(10_000))
        .await
        .expect("put");

    // When the same key is written with a shorter body
    let second = store
        .put("calls/2/response.json", b"short")
        .await
        .expect("put again");

    // Then the URI is the same and only the new body remains
    assert_eq!(first, second);
    assert_eq!(store.get(&first).await.expect("get"), b"short");
}

#[tokio::test]
async fn a_missing_blob_is_not_found() {
    let azurite = Azurite::start().await;
    let store = store(&azurite, "artifacts").await;
    let present = store.put("calls/3/present", b"x").await.expect("put");
    let absent = present.replace("present", "absent");

    let err = store.get(&absent).await.unwrap_err();

    assert!(
        matches!(err, BlobError::NotFound(ref u) if *u == absent),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_uri_of_another_container_or_account_is_refused() {
    // Given two containers of one account, each with a blob
    let azurite = Azurite::start().await;
    let mine = store(&azurite, "artifacts").await;
    let other = store(&azurite, "artifacts-other").await;
    let theirs = other.put("calls/4/secret", b"theirs").await.expect("put");
    mine.put("calls/4/secret", b"mine").await.expect("put");

    // When my store is asked for their blob, or for a URI of another
    // account, endpoint or scheme: then it refuses without a request
    let port_and_account = azurite
        .blob_endpoint
        .replace("devstoreaccount1", "otheraccount");
    for uri in [
        theirs.clone(),
        format!("{port_and_account}/artifacts/calls/4/secret"),
        "http://127.0.0.1:1/devstoreaccount1/artifacts/calls/4/secret".to_owned(),
        "s3://artifacts/calls/4/secret".to_owned(),
    ] {
        let err = mine.get(&uri).await.unwrap_err();
        assert!(matches!(err, BlobError::InvalidKey(_)), "{uri}: {err:?}");
    }
    // while their own store still reads it
    assert_eq!(other.get(&theirs).await.expect("get"), b"theirs");
}

#[tokio::test]
async fn a_wrong_account_key_is_refused_by_the_service() {
    // Given a blob written with the right key
    let azurite = Azurite::start().await;
    let good = store(&azurite, "artifacts").await;
    let uri = good.put("calls/5/body", b"x").await.expect("put");

    // When a store signs with another key
    let wrong_key = "d3Jvbmcta2V5LW9mLXNpeHR5LWZvdXItYnl0ZXMtLS0tLS0tLS0tLS0tLS0tLS0tLS0tLQ==";
    let conn = StorageConnection {
        key: AccountKey::from_base64(wrong_key).expect("base64"),
        ..azurite.connection()
    };
    let bad =
        AzureBlobStore::connect(conn, ContainerName::parse("artifacts").unwrap()).expect("client");

    // Then Azurite refuses every request (403), reported as unavailable with
    // the service's code and never the key or the blob's name
    let errors = [
        bad.put("calls/5/body", b"overwrite").await.unwrap_err(),
        bad.get(&uri).await.unwrap_err(),
        bad.get(&uri.replace("body", "missing")).await.unwrap_err(),
        bad.ensure_container().await.unwrap_err(),
    ];
    for err in errors {
        let BlobError::Unavailable(text) = &err else {
            panic!("{err:?}")
        };
        assert!(
            text.contains("403") && text.contains("AuthorizationFailure"),
            "{text}"
        );
        assert!(
            !text.contains(wrong_key) && !text.contains("calls/5"),
            "{text}"
        );
    }
    // and the blob is untouched
    assert_eq!(good.get(&uri).await.expect("get"), b"x");
}

#[tokio::test]
async fn keys_that_escape_the_container_are_refused() {
    let azurite = Azurite::start().await;
    let store = store(&azurite, "artifacts").await;
    for key in ["../x", "/etc/passwd", "a//b", "a/./b", "a\\b", ""] {
        let err = store.put(key, b"x").await.unwrap_err();
        assert!(matches!(err, BlobError::InvalidKey(_)), "{key}: {err:?}");
    }
    let base = format!("{}/artifacts", azurite.blob_endpoint);
    for uri in [
        format!("{base}/../x"),
        format!("{base}/%2E%2E/x"),
        format!("{base}/a%2F..%2F..%2Fx"),
    ] {
        let err = store.get(&uri).await.unwrap_err();
        assert!(matches!(err, BlobError::InvalidKey(_)), "{uri}: {err:?}");
    }
}

/// The database queue `adapters` is handed; Azure uses Service Bus instead.
struct UnusedQueue;

#[async_trait::async_trait]
impl StepQueue for UnusedQueue {
    async fn send(
        &self,
        _: &str,
        _: &serde_json::Value,
        _: Option<&str>,
        _: Duration,
    ) -> Result<(), QueueError> {
        unreachable!("the local queue is not used on Azure")
    }
}

fn azure_provider(storage_connection: &str) -> CloudProvider {
    let vars: HashMap<&str, String> = [
        ("DATABASE_URL", "postgres://u@db/ai_team".to_owned()),
        ("AZURE_SERVICE_BUS_QUEUE", "steps".to_owned()),
        (
            "AZURE_SERVICE_BUS_CONNECTION_STRING",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=k"
                .to_owned(),
        ),
        ("AZURE_STORAGE_CONTAINER", "artifacts".to_owned()),
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            storage_connection.to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    CloudProvider::detect(&|k| vars.get(k).cloned()).expect("azure settings")
}

#[tokio::test]
async fn azure_settings_build_a_blob_store_on_the_configured_container() {
    // Given Azurite with the container, and the Azure settings naming it
    let azurite = Azurite::start().await;
    let direct = store(&azurite, "artifacts").await;
    let provider = azure_provider(&azurite.connection_string());

    // When the adapters are built
    let db = ai_team_tests::TestDb::sqlite().await;
    let adapters = cloud::adapters(
        &provider,
        &config_with(&[]),
        Arc::new(UnusedQueue),
        &db.store,
    )
    .await
    .expect("adapters");

    // Then their blob store writes to that container
    let blobs = adapters.blobs.expect("an Azure blob store");
    let uri = blobs.put("calls/6/request.json", b"{}").await.expect("put");
    assert_eq!(direct.get(&uri).await.expect("get"), b"{}");
}

#[tokio::test]
async fn a_bad_storage_connection_string_names_its_variable() {
    let provider = azure_provider("AccountName=acme;AccountKey=not base64!");

    let db = ai_team_tests::TestDb::sqlite().await;
    let err = cloud::adapters(
        &provider,
        &config_with(&[]),
        Arc::new(UnusedQueue),
        &db.store,
    )
    .await
    .err()
    .expect("a configuration error");

    assert_eq!(err.var, "AZURE_STORAGE_CONNECTION_STRING");
    assert!(!err.to_string().contains("not base64!"), "{err}");
}
