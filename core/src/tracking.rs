//! A tracked LLM call: the response cache of the execution first (a
//! retried step reuses a response already paid for), then the call with
//! retries, each attempt written as its own `llm_calls` row before the
//! next starts (hashes, cost from the catalog, budget snapshot, redacted
//! request and response), so that what was sent and spent is on record.

use std::sync::{Arc, Mutex};

use chrono::{SubsecRound, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::blob::BlobStore;
use crate::catalog::Catalog;
use crate::error::StoreError;
use crate::llm::{
    ChatRequest, ChatResponse, LlmClient, LlmError, RetryPolicy, Usage, chat_with_retries,
};
use crate::models::{LlmCallStatus, NewLlmCall};
use crate::redact::redact_value;
use crate::store::Store;

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash of the canonical request: provider, model, messages, limits,
/// and the grammar when there is one (requests without one hash as before).
pub fn prompt_hash(provider: &str, model: &str, request: &ChatRequest) -> String {
    let mut canonical = json!({
        "provider": provider,
        "model": model,
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    });
    if let Some(grammar) = &request.grammar {
        canonical["grammar"] = json!(grammar);
    }
    sha256_hex(canonical.to_string().as_bytes())
}

/// Where a call belongs and what governance decided before it.
pub struct CallContext<'a> {
    /// The conversation the call's row belongs to.
    pub conversation_id: i64,
    /// The execution the call runs under, if any.
    pub execution_id: Option<i64>,
    /// Prices the call (and warns of an unknown model).
    pub catalog: &'a Catalog,
    /// The budgets and spend at admission, kept on the row.
    pub budget_snapshot: Value,
    /// Prompt sections cut to fit, kept on the row.
    pub truncated_sections: Vec<String>,
    /// Estimated prompt tokens; with `max_tokens` it gives the row's `total_tokens_requested`.
    pub prompt_tokens_estimate: Option<i64>,
    /// Whether the request and response are redacted before they are stored.
    pub redact: bool,
    /// Where bodies larger than the threshold go; the row keeps a reference.
    pub spill: Option<Spill<'a>>,
}

/// Bodies over `threshold` bytes move to `blobs`.
#[derive(Clone, Copy)]
pub struct Spill<'a> {
    /// Where moved bodies go.
    pub blobs: &'a dyn BlobStore,
    /// Size in bytes above which a body moves.
    pub threshold: usize,
}

/// How much of a moved body stays in its row, so that the calls' `q`
/// search still finds text near its start.
pub const SPILL_PREVIEW_CHARS: usize = 2048;

/// Moves an oversized body to the blob store, leaving
/// `{blob_uri, sha256, size_bytes, preview}` (`preview`: the body's first
/// `SPILL_PREVIEW_CHARS` characters); on a storage failure the body stays
/// inline (a row that is too big beats a lost record).
async fn spill_body(spill: Spill<'_>, hash: &str, part: &str, body: &mut Value) {
    let text = body.to_string();
    if text.len() <= spill.threshold {
        return;
    }
    let sha = sha256_hex(text.as_bytes());
    let key = format!("calls/{hash}/{part}-{}.json", &sha[..16]);
    match spill.blobs.put(&key, text.as_bytes()).await {
        Ok(uri) => {
            let preview: String = text.chars().take(SPILL_PREVIEW_CHARS).collect();
            *body = json!({"blob_uri": uri, "sha256": sha, "size_bytes": text.len(), "preview": preview});
        }
        Err(e) => tracing::warn!(error = %e, key, "blob store failed; body kept in the row"),
    }
}

/// What a tracked call came to.
#[derive(Debug)]
pub struct Tracked {
    /// The model's answer.
    pub response: ChatResponse,
    /// True when the response came from the execution's cache: no call
    /// was made and no row written.
    pub cached: bool,
    /// Row ids of the call rows written, one per attempt.
    pub call_ids: Vec<i64>,
}

/// Why a tracked call failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The model failed for good (after retries).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A call row could not be written.
    #[error("could not record the call: {0}")]
    Store(#[from] StoreError),
}

/// One chat call with retries, every attempt written as a call row (a stored answer with the same prompt hash in the execution is replayed instead).
pub async fn tracked_chat(
    store: &Arc<dyn Store>,
    client: &dyn LlmClient,
    ctx: &CallContext<'_>,
    request: &ChatRequest,
    policy: RetryPolicy,
) -> Result<Tracked, TrackError> {
    let hash = prompt_hash(client.provider(), client.model(), request);
    if let Some(tracked) = cached_answer(store, ctx, &hash).await? {
        return Ok(tracked);
    }
    let mut request_data = json!({
        "provider": client.provider(),
        "model": client.model(),
        "messages": request.messages,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    });
    if let Some(grammar) = &request.grammar {
        // Which grammar constrained the answer; its text is in the team's files.
        request_data["grammar_sha256"] = json!(sha256_hex(grammar.as_bytes()));
    }
    if ctx.redact {
        redact_value(&mut request_data);
    }
    let recorded: Arc<Mutex<Result<Vec<i64>, StoreError>>> = Arc::new(Mutex::new(Ok(Vec::new())));
    let result = chat_with_retries(client, request, policy, |attempt| {
        let mut result = attempt.result;
        let clamped = result
            .as_mut()
            .is_ok_and(|r| check_usage(ctx, request, r).clamped);
        let mut row = row_for(ctx, client, request, &hash, &request_data, &result);
        if clamped && let Some(m) = row.budget_snapshot.as_object_mut() {
            m.insert("usage_clamped".into(), json!(true));
        }
        let store = store.clone();
        let recorded = recorded.clone();
        let spill = ctx.spill;
        async move {
            if let Some(spill) = spill {
                spill_body(spill, &row.prompt_hash, "request", &mut row.request_data).await;
                spill_body(spill, &row.prompt_hash, "response", &mut row.response_data).await;
            }
            let written = store.record_llm_calls(&[row]).await;
            if let Ok(mut r) = recorded.lock()
                && let Ok(ids) = r.as_mut()
            {
                match written {
                    Ok(new) => ids.extend(new),
                    Err(e) => *r = Err(e),
                }
            }
        }
    })
    .await;
    let call_ids = std::mem::replace(
        &mut *recorded
            .lock()
            .map_err(|_| StoreError::Unknown(anyhow::anyhow!("poisoned")))?,
        Ok(vec![]),
    )?;
    let mut response = result?;
    let checked = check_usage(ctx, request, &mut response);
    if checked.clamped || checked.usage.estimated {
        tracing::warn!(
            execution_id = ctx.execution_id,
            conversation_id = ctx.conversation_id,
            clamped = checked.clamped,
            estimated = checked.usage.estimated,
            prompt_tokens = checked.usage.prompt_tokens,
            completion_tokens = checked.usage.completion_tokens,
            "the provider's usage was not usable as reported"
        );
    }
    Ok(Tracked {
        response,
        cached: false,
        call_ids,
    })
}

/// The answer this execution already paid for with this prompt hash,
/// if one is stored and can be replayed.
async fn cached_answer(
    store: &Arc<dyn Store>,
    ctx: &CallContext<'_>,
    hash: &str,
) -> Result<Option<Tracked>, StoreError> {
    // A stored answer whose code files held a secret was stored redacted:
    // replaying it would commit `[REDACTED]`, so the call is made again.
    if let Some(eid) = ctx.execution_id
        && let Some(call) = store.find_cached_call(eid, hash).await?
        && let Some(body) = stored_body(ctx, &call.response_data).await
        && body["redacted"] != json!(true)
        && let Some(content) = body["content"].as_str()
    {
        tracing::info!(
            execution_id = eid,
            call_id = call.id,
            "reusing a stored response"
        );
        return Ok(Some(Tracked {
            response: ChatResponse {
                content: content.to_owned(),
                model: call.model,
                usage: Usage {
                    prompt_tokens: call.prompt_tokens,
                    completion_tokens: call.completion_tokens,
                    estimated: call.budget_snapshot["usage_estimated"] == json!(true),
                },
                latency_ms: 0,
                finish_reason: body["finish_reason"].as_str().map(str::to_owned),
            },
            cached: true,
            call_ids: vec![],
        }));
    }
    Ok(None)
}

/// Replaces a response's usage by what is recorded and budgeted (see
/// `ModelInfo::check_usage`): the prompt estimate is governance's count
/// of this request, the completion estimate that of the answer.
fn check_usage(
    ctx: &CallContext<'_>,
    request: &ChatRequest,
    r: &mut ChatResponse,
) -> crate::catalog::CheckedUsage {
    let prompt_estimate = ctx.prompt_tokens_estimate.unwrap_or_else(|| {
        request
            .messages
            .iter()
            .map(|m| crate::governance::estimate_tokens(&m.content) as i64)
            .sum()
    });
    let completion_estimate = crate::governance::estimate_tokens(&r.content) as i64;
    let reported = r.usage;
    let checked =
        ctx.catalog
            .lookup(&r.model)
            .check_usage(reported, prompt_estimate, completion_estimate);
    r.usage = checked.usage;
    checked
}

/// Whether redacting an answer changed the code files it holds: replaying
/// it would deliver `[REDACTED]`, so it is marked and not replayed. A
/// redaction in the prose only is replayed: everything the prose feeds
/// (conversation, checkpoint, later prompts) is stored redacted anyway.
fn changes_files(stored: &str, original: &str) -> bool {
    stored != original
        && crate::answers::code_files(stored).files != crate::answers::code_files(original).files
}

/// A stored body, fetched from the blob store when it was moved there;
/// `None` when it cannot be read (the call is then made again).
async fn stored_body(ctx: &CallContext<'_>, data: &Value) -> Option<Value> {
    let Some(uri) = data["blob_uri"].as_str() else {
        return Some(data.clone());
    };
    let bytes = ctx.spill?.blobs.get(uri).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The call's row from one attempt's outcome.
///
/// Long because the row has twenty columns: one literal for what every
/// attempt records, then one arm each for a success and a failure.
fn row_for(
    ctx: &CallContext<'_>,
    client: &dyn LlmClient,
    request: &ChatRequest,
    hash: &str,
    request_data: &Value,
    result: &Result<ChatResponse, LlmError>,
) -> NewLlmCall {
    let base = NewLlmCall {
        conversation_id: ctx.conversation_id,
        execution_id: ctx.execution_id,
        model: client.model().to_owned(),
        prompt_tokens: 0,
        completion_tokens: 0,
        max_tokens: Some(i64::from(request.max_tokens)),
        total_tokens_requested: ctx
            .prompt_tokens_estimate
            .map(|p| p.saturating_add(i64::from(request.max_tokens))),
        response_time_ms: 0,
        status: LlmCallStatus::Failed,
        error_code: None,
        truncated_sections: ctx.truncated_sections.clone(),
        prompt_hash: hash.to_owned(),
        response_hash: None,
        budget_snapshot: ctx.budget_snapshot.clone(),
        cost: 0,
        timestamp: Utc::now().trunc_subsecs(6),
        request_data: request_data.clone(),
        response_data: json!({}),
    };
    match result {
        Ok(r) => {
            let info = ctx.catalog.lookup(&r.model);
            if !info.known {
                tracing::warn!(model = %r.model, "model not in the catalog: priced at the catalog default");
            }
            let mut response_data =
                json!({"content": r.content, "model": r.model, "finish_reason": r.finish_reason});
            if ctx.redact {
                redact_value(&mut response_data);
                if let Some(stored) = response_data["content"].as_str()
                    && changes_files(stored, &r.content)
                {
                    response_data["redacted"] = json!(true);
                }
            }
            let mut budget_snapshot = base.budget_snapshot.clone();
            if r.usage.estimated
                && let Some(m) = budget_snapshot.as_object_mut()
            {
                m.insert("usage_estimated".into(), json!(true));
            }
            NewLlmCall {
                budget_snapshot,
                model: r.model.clone(),
                prompt_tokens: r.usage.prompt_tokens,
                completion_tokens: r.usage.completion_tokens,
                response_time_ms: r.latency_ms,
                status: if r.finish_reason.as_deref() == Some("length") {
                    LlmCallStatus::Truncated
                } else {
                    LlmCallStatus::Success
                },
                response_hash: Some(sha256_hex(r.content.as_bytes())),
                cost: info.cost_nanos(r.usage.prompt_tokens, r.usage.completion_tokens),
                response_data,
                ..base
            }
        }
        Err(e) => {
            let mut response_data = json!({"error": e.message, "status": e.status});
            if ctx.redact {
                redact_value(&mut response_data);
            }
            NewLlmCall {
                response_time_ms: e.latency_ms,
                error_code: Some(e.code()),
                response_data,
                ..base
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatMessage;
    use crate::models::Role;

    fn req(content: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage {
                role: Role::User,
                content: content.into(),
            }],
            max_tokens: 10,
            temperature: 0.0,
            grammar: None,
        }
    }

    #[test]
    fn prompt_hash_is_stable_and_sensitive_to_every_part() {
        let a = prompt_hash("openai", "gpt-4o", &req("hi"));
        assert_eq!(a, prompt_hash("openai", "gpt-4o", &req("hi")));
        assert_eq!(a.len(), 64);
        assert_ne!(a, prompt_hash("openai", "gpt-4o", &req("hi!")));
        assert_ne!(a, prompt_hash("openai", "gpt-4o-mini", &req("hi")));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
