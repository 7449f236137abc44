//! The Bedrock adapter against a local server speaking the Converse REST
//! shape (`POST /model/{modelId}/converse`, AWS JSON errors named by the
//! `x-amzn-ErrorType` header), the SDK pointed at it by an endpoint
//! override with dummy credentials: request and usage mapping, throttling
//! with and without Retry-After, 5xx, timeout, malformed JSON, context
//! overflow, auth; and, in a child process, the real AWS chain
//! (`AWS_ENDPOINT_URL`, env credentials, `AWS_REGION`).

use super::*;
use ai_team_providers::llm::BedrockClient;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn converse_body(text: &str, stop_reason: &str) -> String {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 25, "outputTokens": 12, "totalTokens": 37},
        "metrics": {"latencyMs": 412}
    })
    .to_string()
}

/// An AWS JSON error as Bedrock sends it.
fn aws_error(status: u16, error_type: &'static str, message: &str) -> Reply {
    Reply {
        status,
        headers: vec![
            ("x-amzn-errortype", error_type),
            ("x-amzn-requestid", "5f2f6ad5-1d2a-4c1e-9d0c-7b9e0a1c2d3e"),
        ],
        body: json!({ "message": message }).to_string(),
        delay: Duration::ZERO,
    }
}

const THROTTLING: &str = "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/";
const INTERNAL: &str =
    "InternalServerException:http://internal.amazon.com/coral/com.amazon.bedrock/";
const UNAVAILABLE: &str =
    "ServiceUnavailableException:http://internal.amazon.com/coral/com.amazon.bedrock/";
const VALIDATION: &str = "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/";
const ACCESS_DENIED: &str =
    "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.bedrock/";
const UNRECOGNIZED: &str =
    "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/";

async fn start_bedrock(script: Vec<Reply>) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        script: Mutex::new(script.into()),
        ..Default::default()
    });
    let app = axum::Router::new()
        .route("/model/{model_id}/converse", post(answer))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), fake)
}

fn sdk_config(base: &str, credentials: SharedCredentialsProvider) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(base)
        .credentials_provider(credentials)
        .build()
}

fn bedrock(base: &str, timeout: Duration) -> BedrockClient {
    let credentials = SharedCredentialsProvider::new(Credentials::new(
        "AKIDTESTBEDROCK",
        "test-secret-key",
        None,
        None,
        "test",
    ));
    BedrockClient::from_sdk_config(&sdk_config(base, credentials), MODEL, timeout)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    }
}

#[tokio::test]
async fn success_maps_usage_and_sends_the_converse_request_shape() {
    let (base, fake) = start_bedrock(vec![
        reply(200, converse_body("Acceptance criteria: ...", "end_turn")),
        reply(200, converse_body("Acceptance crit", "max_tokens")),
    ])
    .await;
    let client = bedrock(&base, Duration::from_secs(5));
    assert_eq!((client.provider(), client.model()), ("bedrock", MODEL));

    let r = client.chat(&request()).await.unwrap();
    assert_eq!(r.content, "Acceptance criteria: ...");
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (25, 12));
    assert_eq!(r.model, MODEL);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));
    let cut = client.chat(&request()).await.unwrap();
    assert_eq!(cut.finish_reason.as_deref(), Some("length"));

    let seen = fake.seen.lock().unwrap();
    let (uri, headers, body) = &seen[0];
    assert_eq!(
        uri, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "the model id is percent-encoded into the path"
    );
    let auth = headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTESTBEDROCK/")
            && auth.contains("/us-east-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert_eq!(
        body["system"],
        json!([{"text": "You are a Product Manager."}])
    );
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"text": "Analyse the story."}]}])
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 256);
    let temperature = body["inferenceConfig"]["temperature"].as_f64().unwrap();
    assert!((temperature - 0.2).abs() < 1e-6, "{temperature}");
}

#[tokio::test]
async fn throttling_is_rate_limited_and_every_attempt_is_reported() {
    let with_retry_after = Reply {
        headers: vec![("x-amzn-errortype", THROTTLING), ("retry-after", "1")],
        ..aws_error(429, THROTTLING, "")
    };
    let (base, fake) = start_bedrock(vec![
        aws_error(
            429,
            THROTTLING,
            "Too many requests, please wait before trying again.",
        ),
        with_retry_after,
        reply(200, converse_body("third time lucky", "end_turn")),
    ])
    .await;
    let client = bedrock(&base, Duration::from_secs(5));
    let mut attempts = Vec::new();
    let started = std::time::Instant::now();
    let r = chat_with_retries(&client, &request(), fast_retries(), |a| {
        attempts.push(
            a.result
                .as_ref()
                .map(|_| ())
                .map_err(|e| (e.kind, e.code())),
        );
        std::future::ready(())
    })
    .await
    .unwrap();
    assert_eq!(r.content, "third time lucky");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After"
    );
    assert_eq!(
        attempts,
        [
            Err((
                LlmErrorKind::RateLimited { retry_after: None },
                "429".to_owned()
            )),
            Err((
                LlmErrorKind::RateLimited {
                    retry_after: Some(Duration::from_secs(1))
                },
                "429".to_owned()
            )),
            Ok(())
        ]
    );
    assert_eq!(
        fake.seen.lock().unwrap().len(),
        3,
        "the SDK does not retry on its own"
    );
}

#[tokio::test]
async fn server_errors_are_retryable_and_retries_are_bounded() {
    let (base, fake) = start_bedrock(vec![
        aws_error(
            503,
            UNAVAILABLE,
            "Bedrock is unable to process your request.",
        ),
        aws_error(500, INTERNAL, "The server encountered an internal error."),
        aws_error(500, INTERNAL, "The server encountered an internal error."),
        reply(200, converse_body("never reached", "end_turn")),
    ])
    .await;
    let client = bedrock(&base, Duration::from_secs(5));
    let mut codes = Vec::new();
    let err = chat_with_retries(&client, &request(), fast_retries(), |a| {
        codes.push(
            a.result
                .as_ref()
                .err()
                .map(ai_team_core::llm::LlmError::code),
        );
        std::future::ready(())
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Retryable);
    assert_eq!(err.status, Some(500));
    assert!(
        err.message.starts_with("InternalServerException"),
        "{}",
        err.message
    );
    assert_eq!(
        codes,
        [
            Some("503".to_owned()),
            Some("500".into()),
            Some("500".into())
        ]
    );
    assert_eq!(fake.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_slow_model_times_out_as_retryable() {
    let slow = Reply {
        delay: Duration::from_secs(3),
        ..reply(200, converse_body("too late", "end_turn"))
    };
    let (base, _fake) = start_bedrock(vec![slow]).await;
    let started = std::time::Instant::now();
    let err = bedrock(&base, Duration::from_millis(300))
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Retryable);
    assert!(err.message.contains("timed out"), "{}", err.message);
    assert_eq!(err.code(), "retryable");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn malformed_json_is_retryable_not_a_panic() {
    let (base, _fake) = start_bedrock(vec![
        reply(200, "{\"output\": {\"message\": ".into()),
        reply(200, json!({"stopReason": "end_turn"}).to_string()),
    ])
    .await;
    let client = bedrock(&base, Duration::from_secs(5));
    for _ in 0..2 {
        let err = client.chat(&request()).await.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Retryable);
        assert!(err.message.contains("malformed"), "{}", err.message);
    }
}

#[tokio::test]
async fn context_overflow_and_other_validation_errors_are_not_retried() {
    let (base, fake) = start_bedrock(vec![
        aws_error(
            400,
            VALIDATION,
            "The model returned the following errors: Input is too long for requested model.",
        ),
        aws_error(400, VALIDATION, "The provided model identifier is invalid."),
    ])
    .await;
    let client = bedrock(&base, Duration::from_secs(5));
    let e1 = chat_with_retries(&client, &request(), fast_retries(), |_| {
        std::future::ready(())
    })
    .await
    .unwrap_err();
    assert_eq!(e1.kind, LlmErrorKind::ContextOverflow);
    assert_eq!(e1.status, Some(400));
    let e2 = chat_with_retries(&client, &request(), fast_retries(), |_| {
        std::future::ready(())
    })
    .await
    .unwrap_err();
    assert_eq!(e2.kind, LlmErrorKind::Fatal);
    assert_eq!(fake.seen.lock().unwrap().len(), 2, "one attempt each");
}

#[tokio::test]
async fn refused_credentials_are_auth_and_not_retried() {
    let (base, fake) = start_bedrock(vec![
        aws_error(
            403,
            ACCESS_DENIED,
            "You don't have access to the model with the specified model ID.",
        ),
        aws_error(
            403,
            UNRECOGNIZED,
            "The security token included in the request is invalid.",
        ),
    ])
    .await;
    let client = bedrock(&base, Duration::from_secs(5));
    for _ in 0..2 {
        let err = chat_with_retries(&client, &request(), fast_retries(), |_| {
            std::future::ready(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Auth, "{}", err.message);
        assert_eq!(err.status, Some(403));
    }
    assert_eq!(fake.seen.lock().unwrap().len(), 2);
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "no credentials in the chain",
        )))
    }
}

#[tokio::test]
async fn no_credentials_is_auth_and_nothing_is_sent() {
    let (base, fake) = start_bedrock(vec![]).await;
    let config = sdk_config(&base, SharedCredentialsProvider::new(NoCredentials));
    let client = BedrockClient::from_sdk_config(&config, MODEL, Duration::from_secs(5));
    let err = client.chat(&request()).await.unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Auth, "{}", err.message);
    assert!(err.message.contains("AWS credentials"), "{}", err.message);
    assert!(fake.seen.lock().unwrap().is_empty());
}

/// The variables a child process of this test binary is run with.
const CHILD: &str = "AI_TEAM_BEDROCK_CHILD";

/// Runs `aws_chain_child` in a child process, off the runtime thread (the
/// fake server answers on it meanwhile).
async fn run_child(mode: &str, vars: &[(&str, &str)]) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "bedrock::aws_chain_child",
        "--exact",
        "--ignored",
        "--nocapture",
    ]);
    // Nothing from this machine's AWS set-up may leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k == "LLM_PROVIDER" || k == "CLOUD_PROVIDER" {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD, mode)
        .env("AWS_CONFIG_FILE", "/nonexistent/aws/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws/credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("LLM_PROVIDER", "bedrock")
        .env("BEDROCK_MODEL_ID", MODEL);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child did not run or failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_aws_chain_honours_aws_endpoint_url_region_and_env_credentials() {
    let (base, fake) = start_bedrock(vec![
        reply(200, converse_body("from the chain", "end_turn")),
        reply(200, converse_body("from the config", "end_turn")),
    ])
    .await;
    run_child(
        "call",
        &[
            ("AWS_ENDPOINT_URL", &base),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDFROMENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ],
    )
    .await;
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (_, headers, _) in seen.iter() {
        let auth = headers["authorization"].to_str().unwrap();
        assert!(
            auth.contains("Credential=AKIDFROMENV/") && auth.contains("/eu-central-1/bedrock/"),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn no_region_anywhere_is_a_config_error_naming_aws_region() {
    run_child("no-region", &[]).await;
}

/// Runs only as the child of the two tests above, with their environment.
#[tokio::test]
#[ignore = "run in a child process by the AWS chain tests"]
async fn aws_chain_child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    // The settings as a host reads them: one snapshot of the environment.
    let settings = || {
        ai_team_functions::settings::Settings::from_process_env()
            .expect("settings")
            .llm
    };
    match mode.as_str() {
        "call" => {
            let model = std::env::var("BEDROCK_MODEL_ID").unwrap();
            let client = BedrockClient::from_env(&model, Duration::from_secs(5))
                .await
                .unwrap();
            let r = client.chat(&request()).await.unwrap();
            assert_eq!(r.content, "from the chain");
            let built = ai_team_functions::llm_config::build(&settings())
                .await
                .unwrap();
            assert_eq!(built.provider(), "bedrock");
            let r = built.chat(&request()).await.unwrap();
            assert_eq!(r.content, "from the config");
        }
        "no-region" => {
            let e = ai_team_functions::llm_config::build(&settings())
                .await
                .err()
                .unwrap();
            assert_eq!(e.var, "AWS_REGION");
        }
        other => panic!("unknown mode {other}"),
    }
}
