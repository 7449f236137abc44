//! The `embedded` LLM provider: a real model in the process, so the local
//! default runs the whole pipeline with no keys and no network at run time.
//! SmolLM2-135M-Instruct (Q4_1 GGUF) through llama.cpp (`llama-cpp-2`): a
//! 135M model shows the pipeline working, not good code.
//!
//! Nothing happens at construction (cold start matters): the weights are
//! located (or fetched once, see `model_fetch`) and loaded on the first
//! call, then kept. Generation is blocking CPU work, so it runs under
//! `spawn_blocking`, one call at a time behind a mutex (llama.cpp contexts
//! of one model must not be made concurrently, and two would only share
//! the same two cores).

mod llama;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use ai_team_core::llm::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmError, LlmErrorKind, Usage,
};
use ai_team_core::models::Role;
use async_trait::async_trait;

pub use llama::Timings;
use llama::{LlamaError, LoadedModel};

use super::model_fetch::{FetchError, MODEL_PATH_VAR, ModelLocation};

/// The catalog's name for the model (core/catalog/models.json).
pub const MODEL_NAME: &str = "smollm2-135m-instruct";
/// `0` or `false` forbids fetching a missing model (fail fast when offline).
pub const DOWNLOAD_VAR: &str = "EMBEDDED_MODEL_DOWNLOAD";
/// SmolLM2's training context; calls are checked against it.
pub const DEFAULT_MAX_CONTEXT: u32 = 8192;
/// Threads for prompt processing and generation (`EMBEDDED_THREADS`).
pub const THREADS_VAR: &str = "EMBEDDED_THREADS";
/// Two: the machines this runs on have two cores. On cores shared with
/// other busy processes, 1 generates faster (no thread waits for a
/// descheduled peer) but reads prompts half as fast.
pub const DEFAULT_THREADS: i32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    pub location: ModelLocation,
    /// Fetch the weights into the cache on first use when missing.
    pub download: bool,
    pub threads: i32,
    /// Upper bound of the window (the model's own training context may be smaller).
    pub max_context: u32,
}

impl EmbeddedConfig {
    /// `EMBEDDED_MODEL_PATH`, else the cache (`XDG_CACHE_HOME`, `HOME`);
    /// `EMBEDDED_MODEL_DOWNLOAD`; `EMBEDDED_THREADS` (a number from 1 to
    /// 64, else the default). Reads no file.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, FetchError> {
        let download = !matches!(
            get(DOWNLOAD_VAR).as_deref().map(str::trim),
            Some("0" | "false" | "no" | "off")
        );
        let threads = get(THREADS_VAR)
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|n| (1..=64).contains(n))
            .unwrap_or(DEFAULT_THREADS);
        Ok(Self {
            location: ModelLocation::from_env(get)?,
            download,
            threads,
            max_context: DEFAULT_MAX_CONTEXT,
        })
    }
}

/// Tells the blocking generation to stop when the caller's future is
/// dropped (e.g. by a timeout) before it finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Why the blocking part of a call failed.
enum Failure {
    Load(String),
    Llama(LlamaError),
}

pub struct EmbeddedClient {
    config: EmbeddedConfig,
    path: tokio::sync::OnceCell<PathBuf>,
    /// `None` until the first call loads the model; the lock serialises calls.
    model: Arc<Mutex<Option<LoadedModel>>>,
}

impl EmbeddedClient {
    pub fn new(config: EmbeddedConfig) -> Self {
        Self {
            config,
            path: tokio::sync::OnceCell::new(),
            model: Arc::new(Mutex::new(None)),
        }
    }

    /// A chat call with where its time went (the benchmark reads them).
    #[tracing::instrument(skip_all, fields(max_tokens = request.max_tokens))]
    pub async fn chat_timed(
        &self,
        request: &ChatRequest,
    ) -> Result<(ChatResponse, Timings), LlmError> {
        let started = Instant::now();
        let error = |kind, message: String| LlmError {
            kind,
            status: None,
            message,
            latency_ms: started.elapsed().as_millis() as i64,
        };
        let path = self
            .path
            .get_or_try_init(|| self.config.location.ensure(self.config.download))
            .await
            .map_err(|e| {
                error(
                    LlmErrorKind::Fatal,
                    format!(
                        "embedded model unavailable: {e}. Set {MODEL_PATH_VAR} to a GGUF file, \
                         or run scripts/fetch-model"
                    ),
                )
            })?
            .clone();
        let (model, request) = (self.model.clone(), request.clone());
        let (max_context, threads) = (self.config.max_context, self.config.threads);
        let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
        let cancelled = cancel.0.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut slot = model.lock().unwrap_or_else(PoisonError::into_inner);
            let loading = Instant::now();
            let (model, load_ms) = match slot.as_ref() {
                Some(model) => (model, 0.0),
                None => {
                    let loaded = LoadedModel::load(&path, max_context, threads).map_err(|e| {
                        Failure::Load(format!(
                            "could not load the embedded model from {} ({MODEL_PATH_VAR} or the \
                             cache): {e}",
                            path.display()
                        ))
                    })?;
                    tracing::info!(
                        path = %path.display(),
                        window = loaded.window(),
                        ms = loading.elapsed().as_millis() as u64,
                        "embedded model loaded"
                    );
                    (
                        &*slot.insert(loaded),
                        loading.elapsed().as_secs_f64() * 1000.0,
                    )
                }
            };
            model
                .generate(&request, &cancelled)
                .map_err(Failure::Llama)
                .map(|mut g| {
                    g.timings.load_ms = load_ms;
                    g
                })
        })
        .await;
        drop(cancel);
        let generation = match outcome {
            Ok(Ok(g)) => g,
            Ok(Err(Failure::Llama(LlamaError::Overflow(m)))) => {
                return Err(error(LlmErrorKind::ContextOverflow, m));
            }
            Ok(Err(Failure::Llama(LlamaError::Failed(m) | LlamaError::Grammar(m)))) => {
                return Err(error(LlmErrorKind::Fatal, format!("embedded model: {m}")));
            }
            Ok(Err(Failure::Load(m))) => return Err(error(LlmErrorKind::Fatal, m)),
            Err(join) => {
                return Err(error(
                    LlmErrorKind::Fatal,
                    format!("embedded model: generation stopped: {join}"),
                ));
            }
        };
        let response = ChatResponse {
            content: generation.content,
            model: MODEL_NAME.to_owned(),
            usage: Usage {
                prompt_tokens: generation.prompt_tokens as i64,
                completion_tokens: generation.completion_tokens as i64,
                estimated: false,
            },
            latency_ms: started.elapsed().as_millis() as i64,
            finish_reason: Some(generation.finish.to_owned()),
        };
        Ok((response, generation.timings))
    }

    /// Loads `grammar` (GBNF, start rule `root`) into llama.cpp's grammar
    /// sampler and samples one token under it: `Ok` when llama.cpp takes
    /// it, a `Fatal` error saying it refused it otherwise.
    pub async fn check_grammar(&self, grammar: &str) -> Result<(), LlmError> {
        let request = ChatRequest {
            messages: vec![ChatMessage {
                role: Role::User,
                content: "Answer.".into(),
            }],
            max_tokens: 1,
            temperature: 0.0,
            grammar: Some(grammar.to_owned()),
        };
        self.chat_timed(&request).await.map(|_| ())
    }
}

#[async_trait]
impl LlmClient for EmbeddedClient {
    fn provider(&self) -> &'static str {
        "embedded"
    }

    fn model(&self) -> &str {
        MODEL_NAME
    }

    fn accepts_grammar(&self) -> bool {
        true
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_timed(request).await.map(|(response, _)| response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_location_download_switch_and_threads() {
        let get = |k: &str| match k {
            "HOME" => Some("/home/u".to_owned()),
            DOWNLOAD_VAR => Some("0".to_owned()),
            _ => None,
        };
        let c = EmbeddedConfig::from_env(&get).unwrap();
        assert!(!c.download);
        assert_eq!((c.threads, c.max_context), (2, 8192));
        assert!(matches!(c.location, ModelLocation::Cached(_)));
        let c = EmbeddedConfig::from_env(&|k| (k == "HOME").then(|| "/h".to_owned())).unwrap();
        assert!(c.download, "downloading is the default");
        let threads = |v: &str| {
            let v = v.to_owned();
            EmbeddedConfig::from_env(&move |k| match k {
                "HOME" => Some("/h".to_owned()),
                THREADS_VAR => Some(v.clone()),
                _ => None,
            })
            .unwrap()
            .threads
        };
        assert_eq!((threads("1"), threads(" 4 ")), (1, 4));
        assert_eq!(
            (threads("0"), threads("many")),
            (2, 2),
            "ignored, default kept"
        );
    }

    #[tokio::test]
    async fn a_missing_model_is_a_fatal_error_naming_the_variable_and_the_script() {
        let client = EmbeddedClient::new(EmbeddedConfig {
            location: ModelLocation::Explicit("/nonexistent/model.gguf".into()),
            download: true,
            threads: 2,
            max_context: 8192,
        });
        assert_eq!(
            (client.provider(), client.model()),
            ("embedded", MODEL_NAME)
        );
        let request = ChatRequest {
            messages: vec![],
            max_tokens: 8,
            temperature: 0.0,
            grammar: None,
        };
        let err = client.chat(&request).await.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Fatal);
        assert!(err.message.contains(MODEL_PATH_VAR), "{}", err.message);
        assert!(
            err.message.contains("scripts/fetch-model"),
            "{}",
            err.message
        );
    }
}
