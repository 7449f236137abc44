//! The llama.cpp side of the embedded provider, synchronous and CPU-bound:
//! loading the GGUF once, rendering the chat with the template stored in
//! it, and generating until the end-of-generation token or `max_tokens`.
//! Kept apart from the async client so that the only code touching
//! llama.cpp types is here.
//!
//! A context (the KV cache) is made per call, sized to what the call needs
//! (prompt + `max_tokens`, rounded up to 256) within the window: a short
//! chat then costs a few MB instead of a full 8192-token cache, and no
//! llama.cpp object that is not `Send` outlives the blocking task.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ai_team_core::llm::ChatRequest;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

/// Tokens decoded per `llama_decode` call while reading the prompt.
const BATCH: u32 = 512;
/// Granularity of the per-call context size.
const CONTEXT_STEP: u32 = 256;

/// llama.cpp allows one backend per process; it lives as long as the process.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, String> {
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor at load time; tracing keeps it at debug.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| format!("llama.cpp backend: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlamaError {
    /// The prompt and `max_tokens` do not fit the window.
    #[error("{0}")]
    Overflow(String),
    /// Anything llama.cpp refused (a NUL in a message, a failed decode…).
    #[error("{0}")]
    Failed(String),
    /// The request's grammar is not GBNF llama.cpp can parse.
    #[error("{0}")]
    Grammar(String),
}

/// Where the time of one call went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Loading the model (first call only, else 0).
    pub load_ms: f64,
    /// Making the context (KV cache) for this call.
    pub context_ms: f64,
    /// Reading the prompt (prompt processing).
    pub prompt_ms: f64,
    /// Generating the completion tokens.
    pub generate_ms: f64,
    /// Completion tokens for which the grammar had to filter the whole
    /// vocabulary (the token sampled without it broke it).
    pub grammar_filtered: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub content: String,
    pub prompt_tokens: usize,
    /// Tokens the model generated, the end-of-generation token included
    /// when it stopped by itself.
    pub completion_tokens: usize,
    /// `stop` (end-of-generation token) or `length` (`max_tokens` reached).
    pub finish: &'static str,
    pub timings: Timings,
}

pub struct LoadedModel {
    model: LlamaModel,
    template: LlamaChatTemplate,
    window: u32,
    threads: i32,
}

impl LoadedModel {
    /// Loads the GGUF at `path` (memory-mapped) and its chat template; the
    /// window is the model's training context, capped at `max_window`.
    pub fn load(path: &Path, max_window: u32, threads: i32) -> Result<Self, String> {
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| format!("llama.cpp could not load it ({e})"))?;
        let template = model
            .chat_template(None)
            .map_err(|e| format!("it has no usable chat template ({e})"))?;
        let window = model.n_ctx_train().min(max_window);
        Ok(Self {
            model,
            template,
            window,
            threads,
        })
    }

    /// The context window calls are checked against, in tokens.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The request's messages rendered with the GGUF's chat template
    /// (ending with the assistant's turn) and tokenised.
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<LlamaToken>, LlamaError> {
        let chat = request
            .messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LlamaError::Failed(format!("message refused: {e}")))?;
        let text = self
            .model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| LlamaError::Failed(format!("chat template: {e}")))?;
        // add_special: a BOS only if the vocabulary asks for one;
        // parse_special: the template's <|im_start|> are control tokens.
        Ok(self.model.vocab().tokenize(text.as_bytes(), true, true))
    }

    /// One chat completion; the caller serialises calls. `cancelled` is
    /// checked between decodes: a caller that gave up (a timeout dropped
    /// its future) frees the model for the next call within one token.
    pub fn generate(
        &self,
        request: &ChatRequest,
        cancelled: &AtomicBool,
    ) -> Result<Generation, LlamaError> {
        let check = || {
            if cancelled.load(Ordering::Relaxed) {
                Err(LlamaError::Failed("cancelled by the caller".into()))
            } else {
                Ok(())
            }
        };
        let failed =
            |what: &str, e: &dyn std::fmt::Display| LlamaError::Failed(format!("{what}: {e}"));
        let prompt = self.prompt_tokens(request)?;
        let max_tokens = request.max_tokens as usize;
        let needed = prompt.len() + max_tokens;
        if needed > self.window as usize {
            return Err(LlamaError::Overflow(format!(
                "prompt of {} tokens + max_tokens {max_tokens} = {needed} tokens exceeds the \
                 embedded model's context window of {} tokens",
                prompt.len(),
                self.window
            )));
        }
        // Made first: a grammar llama.cpp refuses fails the call before any work.
        let mut sampler = self.sampler(request.temperature, request.grammar.as_deref())?;
        let mut timings = Timings::default();

        let started = Instant::now();
        let n_ctx = context_size(needed, self.window);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(BATCH)
            .with_n_ubatch(BATCH)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self
            .model
            .new_context(backend().map_err(|e| failed("backend", &e))?, params)
            .map_err(|e| failed("context", &e))?;
        timings.context_ms = ms(started);

        let started = Instant::now();
        let mut batch = LlamaBatch::new(BATCH as usize, 1);
        for (c, chunk) in prompt.chunks(BATCH as usize).enumerate() {
            check()?;
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let pos = c * BATCH as usize + i;
                batch
                    .add(*token, pos as i32, &[0], pos + 1 == prompt.len())
                    .map_err(|e| failed("batch", &e))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| failed("prompt decode", &e))?;
        }
        timings.prompt_ms = ms(started);

        let started = Instant::now();
        let vocab = self.model.vocab();
        let mut bytes = Vec::new();
        let (mut completion_tokens, mut finish) = (0, "length");
        let mut pos = prompt.len();
        while completion_tokens < max_tokens {
            check()?;
            let Some(token) = sampler.next(&ctx, batch.n_tokens() - 1) else {
                // The grammar allows no token (its root is complete and
                // the vocabulary has no end token it accepts): done.
                finish = "stop";
                break;
            };
            completion_tokens += 1;
            if vocab.is_eog(token) {
                finish = "stop";
                break;
            }
            vocab.token_to_piece_into(token, &mut bytes, false, None);
            batch.clear();
            batch
                .add(token, pos as i32, &[0], true)
                .map_err(|e| failed("batch", &e))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| failed("decode", &e))?;
        }
        timings.generate_ms = ms(started);
        timings.grammar_filtered = sampler.grammar_filtered;

        Ok(Generation {
            // Pieces are joined as bytes first: a UTF-8 character may span tokens.
            content: String::from_utf8_lossy(&bytes).into_owned(),
            prompt_tokens: prompt.len(),
            completion_tokens,
            finish,
            timings,
        })
    }
}

impl LoadedModel {
    /// The sampling of a call: a repetition penalty over the last 64
    /// tokens (without it the 135M model falls into loops: one comment
    /// line repeated to `max_tokens` was seen), then greedy at temperature
    /// 0 (reproducible), else llama.cpp's usual top-k / top-p / min-p chain
    /// before the temperature; and the request's grammar, if any, kept
    /// apart from that chain (see [`Sampling::next`]).
    fn sampler(&self, temperature: f32, grammar: Option<&str>) -> Result<Sampling, LlamaError> {
        let grammar = grammar.map(|g| self.grammar(g)).transpose()?;
        let mut chain = vec![LlamaSampler::penalties(
            self.model.n_vocab(),
            64,
            1.3,
            0.0,
            0.0,
        )];
        if temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            chain.extend([
                LlamaSampler::top_k(40),
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::min_p(0.05, 1),
                LlamaSampler::temp(temperature),
                LlamaSampler::dist(seed),
            ]);
        }
        Ok(Sampling {
            chain: LlamaSampler::chain_simple(chain),
            grammar,
            grammar_filtered: 0,
        })
    }

    /// llama.cpp's grammar sampler for a GBNF text whose start rule is
    /// `root`; a text it cannot parse is refused (llama.cpp logs why).
    pub fn grammar(&self, grammar: &str) -> Result<LlamaSampler, LlamaError> {
        LlamaSampler::grammar(&self.model, grammar, "root").map_err(|e| {
            LlamaError::Grammar(format!(
                "llama.cpp refused the grammar ({e}); see its log at debug level for the line"
            ))
        })
    }
}

/// The samplers of one call.
struct Sampling {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
    /// Tokens for which the grammar had to filter the whole vocabulary.
    grammar_filtered: usize,
}

impl Sampling {
    /// The next token, accepted by every sampler; `None` when the grammar
    /// allows none.
    ///
    /// Why the grammar is not simply a link of the chain: applied to every
    /// candidate it matches each of the vocabulary's tokens (49,152 for
    /// SmolLM2, 262,144 for Gemma 3) against the grammar's stacks on every
    /// step, which dominated the embedded calls' time. As llama.cpp's own
    /// `common_sampler_sample` does, the token is first sampled without the
    /// grammar and checked alone against it; only when the grammar rejects
    /// it are all candidates filtered and the token sampled again. Under
    /// greedy sampling both paths pick the most likely token the grammar
    /// allows, so the answer is the same as with the grammar in the chain.
    fn next(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> Option<LlamaToken> {
        let Some(grammar) = self.grammar.as_mut() else {
            return Some(self.chain.sample(ctx, idx));
        };
        let mut candidates = LlamaTokenDataArray::from_iter(ctx.candidates_ith(idx), false);
        self.chain.apply(&mut candidates);
        let mut token = candidates.selected_token()?;
        let mut alone = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
        grammar.apply(&mut alone);
        if !alone.data.first().is_some_and(|t| t.logit().is_finite()) {
            self.grammar_filtered += 1;
            let mut candidates = LlamaTokenDataArray::from_iter(ctx.candidates_ith(idx), false);
            grammar.apply(&mut candidates);
            if !candidates.data.iter().any(|t| t.logit().is_finite()) {
                return None;
            }
            self.chain.apply(&mut candidates);
            // llama.cpp aborts the process on a token its grammar does not
            // allow; the chain cannot pick one after the filter, but the
            // check is one lookup.
            let chosen = candidates.data.get(candidates.selected?)?;
            if !chosen.logit().is_finite() {
                return None;
            }
            token = chosen.id();
        }
        self.chain.accept(token);
        grammar.accept(token);
        Some(token)
    }
}

/// `needed` tokens rounded up to [`CONTEXT_STEP`], at most `window`.
pub fn context_size(needed: usize, window: u32) -> u32 {
    let step = CONTEXT_STEP as usize;
    let rounded = needed.max(1).div_ceil(step) * step;
    u32::try_from(rounded).unwrap_or(u32::MAX).min(window)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_sized_to_the_call_within_the_window() {
        assert_eq!(context_size(0, 8192), 256);
        assert_eq!(context_size(20, 8192), 256);
        assert_eq!(context_size(256, 8192), 256);
        assert_eq!(context_size(257, 8192), 512);
        assert_eq!(context_size(8000, 8192), 8192);
        assert_eq!(context_size(8192, 8192), 8192);
    }
}
