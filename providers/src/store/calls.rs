//! Conversations, their messages, the LLM calls made in them (with the
//! running totals they add to) and the files they wrote.

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::models::*;
use ai_team_core::query::{LlmCallQuery, PageRequest};
use chrono::SubsecRound;

use super::SqlStore;
use super::db::{Db, query, query_as, query_scalar};
use super::errors::{is_foreign_key_violation, is_unique_violation, map_sqlx};
use super::rows::*;
use super::sql::TextSearch;
use super::sql::{
    CallNumbers, ExecutionDelta, MAX_CALL_TOKENS, bind_call_filters, call_filters, call_order,
    capped_add, id_walk_bound, now, saturating_sum,
};

impl SqlStore {
    /// How `q` is served: on PostgreSQL always the `LIKE` form, which the
    /// trigram GIN indexes of migration 0004 serve (the planner weighs
    /// them against the listing's own index); on SQLite see
    /// `sqlite_text_search`.
    pub(super) async fn text_search(&self, query: &LlmCallQuery) -> StoreResult<TextSearch> {
        match self.db {
            Db::Sqlite(_) => self.sqlite_text_search(query).await,
            Db::Postgres(_) => Ok(TextSearch::Like),
        }
    }
}

#[async_trait::async_trait]
impl ai_team_core::store::CallStore for SqlStore {
    async fn create_conversation(&self, new: &NewConversation) -> StoreResult<Conversation> {
        let result = self
            .insert_conversation(new, "")
            .await
            .and_then(|row| row.ok_or(sqlx::Error::RowNotFound));
        match result {
            Ok(row) => row.try_into(),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "step {} of this execution already has a {} conversation",
                new.step, new.agent
            ))),
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::NotFound("workflow or execution"))
            }
            Err(e) => Err(map_sqlx(e)),
        }
    }

    async fn get_conversation(&self, id: i64) -> StoreResult<Conversation> {
        query_as::<ConversationRow>(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound("conversation"))?
        .try_into()
    }

    async fn add_message(&self, new: &NewMessage) -> StoreResult<Message> {
        let artifacts = serde_json::to_string(&new.artifacts)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let result = query_as::<MessageRow>(&format!(
            "INSERT INTO messages (conversation_id, role, content, artifacts, message_metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(new.conversation_id)
        .bind(new.role.as_str())
        .bind(&new.content)
        .bind(artifacts)
        .bind(new.message_metadata.to_string())
        .bind(new.created_at.trunc_subsecs(6))
        .fetch_one(&self.db)
        .await;
        match result {
            Ok(row) => row.try_into(),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound("conversation")),
            Err(e) => Err(map_sqlx(e)),
        }
    }

    async fn list_messages(
        &self,
        conversation_id: i64,
        page: PageRequest,
    ) -> StoreResult<Paged<Message>> {
        self.get_conversation(conversation_id).await?;
        let rows = query_as::<MessageRow>(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(conversation_id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.db)
        .await
        .map_err(map_sqlx)?;
        let total = query_scalar::<i64>("SELECT COUNT(*) FROM messages WHERE conversation_id = $1")
            .bind(conversation_id)
            .fetch_one(&self.db)
            .await
            .map_err(map_sqlx)?;
        Ok(Paged {
            page: page.page,
            page_size: page.page_size,
            total,
            items: convert(rows)?,
        })
    }

    #[tracing::instrument(skip(self, calls), fields(n = calls.len()))]
    async fn record_llm_calls(&self, calls: &[NewLlmCall]) -> StoreResult<Vec<i64>> {
        use std::collections::BTreeMap;
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let mut ids = Vec::with_capacity(calls.len());
        // (tokens, cost, count) per conversation; (+ prompt,
        // completion, latency, models) per execution.
        let mut per_conversation: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        let mut per_execution: BTreeMap<i64, ExecutionDelta> = BTreeMap::new();
        let mut per_model: BTreeMap<(i64, &str), i64> = BTreeMap::new();
        for c in calls {
            let n = CallNumbers::of(c);
            let total = n.prompt_tokens + n.completion_tokens;
            let result = query_scalar::<i64>(
                "INSERT INTO llm_calls (conversation_id, execution_id, model, prompt_tokens, completion_tokens, \
                 total_tokens, max_tokens, total_tokens_requested, response_time_ms, status, error_code, \
                 truncated_sections, prompt_hash, response_hash, budget_snapshot, cost_nanos, timestamp, \
                 request_data, response_data) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
                 RETURNING id",
            )
            .bind(c.conversation_id)
            .bind(c.execution_id)
            .bind(&c.model)
            .bind(n.prompt_tokens)
            .bind(n.completion_tokens)
            .bind(total)
            .bind(c.max_tokens.map(|m| m.clamp(0, MAX_CALL_TOKENS)))
            .bind(c.total_tokens_requested.map(|m| m.clamp(0, 2 * MAX_CALL_TOKENS)))
            .bind(n.latency_ms)
            .bind(c.status.as_str())
            .bind(&c.error_code)
            .bind(serde_json::to_string(&c.truncated_sections).unwrap_or_else(|_| "[]".into()))
            .bind(&c.prompt_hash)
            .bind(&c.response_hash)
            .bind(c.budget_snapshot.to_string())
            .bind(n.cost)
            .bind(c.timestamp.trunc_subsecs(6))
            .bind(c.request_data.to_string())
            .bind(c.response_data.to_string())
            .fetch_one(&mut tx)
            .await;
            match result {
                Ok(id) => ids.push(id),
                Err(e) if is_foreign_key_violation(&e) => {
                    return Err(StoreError::NotFound("conversation or execution"));
                }
                Err(e) => return Err(map_sqlx(e)),
            }
            let conv = per_conversation.entry(c.conversation_id).or_default();
            conv.0 = capped_add(conv.0, total);
            conv.1 = capped_add(conv.1, n.cost);
            conv.2 += 1;
            *per_model
                .entry((c.conversation_id, c.model.as_str()))
                .or_default() += 1;
            if let Some(eid) = c.execution_id {
                per_execution.entry(eid).or_default().add(&c.model, n);
            }
        }
        for (id, (tokens, cost, count)) in per_conversation {
            query(&format!(
                "UPDATE conversations SET total_tokens_used = {}, total_cost_nanos = {}, \
                     call_count = call_count + $4 WHERE id = $1",
                saturating_sum("total_tokens_used", "$2"),
                saturating_sum("total_cost_nanos", "$3"),
            ))
            .bind(id)
            .bind(tokens)
            .bind(cost)
            .bind(count)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        }
        for ((id, model), n) in per_model {
            query(
                "INSERT INTO llm_call_model_counts (conversation_id, model, calls) VALUES ($1, $2, $3) \
                 ON CONFLICT (conversation_id, model) DO UPDATE SET calls = llm_call_model_counts.calls + excluded.calls",
            )
            .bind(id)
            .bind(model)
            .bind(n)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        }
        for (id, d) in per_execution {
            // The totals, returning the models so far: a model is added
            // by a second statement only the first time it is used.
            let models: String = query_scalar::<String>(&format!(
                "UPDATE executions SET total_calls = total_calls + $2, prompt_tokens = {}, \
                     completion_tokens = {}, total_tokens = {}, total_cost_nanos = {}, \
                     total_latency_ms = {} WHERE id = $1 RETURNING models",
                saturating_sum("prompt_tokens", "$3"),
                saturating_sum("completion_tokens", "$4"),
                saturating_sum("total_tokens", "$5"),
                saturating_sum("total_cost_nanos", "$6"),
                saturating_sum("total_latency_ms", "$7"),
            ))
            .bind(id)
            .bind(d.calls)
            .bind(d.prompt_tokens)
            .bind(d.completion_tokens)
            .bind(capped_add(d.prompt_tokens, d.completion_tokens))
            .bind(d.cost)
            .bind(d.latency_ms)
            .fetch_one(&mut tx)
            .await
            .map_err(map_sqlx)?;
            let mut models: Vec<String> = serde_json::from_str(&models).unwrap_or_default();
            let known = models.len();
            for m in d.models {
                if !models.contains(&m) {
                    models.push(m);
                }
            }
            if models.len() > known {
                query("UPDATE executions SET models = $2 WHERE id = $1")
                    .bind(id)
                    .bind(serde_json::to_string(&models).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut tx)
                    .await
                    .map_err(map_sqlx)?;
            }
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(ids)
    }

    #[tracing::instrument(skip(self, query))]
    async fn list_llm_calls(
        &self,
        conversation_id: i64,
        query: &LlmCallQuery,
    ) -> StoreResult<LlmCallPage> {
        let conversation = self.get_conversation(conversation_id).await?;
        let search = self.text_search(query).await?;
        let (filters, last) = call_filters(query, search);
        let filtered = last > 1;
        let sql = format!(
            "SELECT {LLM_CALL_COLUMNS} FROM llm_calls WHERE {filters}{} ORDER BY {} LIMIT ${} OFFSET ${}",
            id_walk_bound(query),
            call_order(query),
            last + 1,
            last + 2
        );
        let mut rows = query_as::<LlmCallRow>(&sql);
        if query.q.is_some() {
            rows = rows.planned_per_call();
        }
        let rows = bind_call_filters(rows.bind(conversation_id), query, search)
            .bind(query.page.limit())
            .bind(query.page.offset())
            .fetch_all(&self.db)
            .await
            .map_err(map_sqlx)?;
        // The unfiltered count is kept on the conversation row and the
        // per-model ones beside it, so these listings never count a
        // million rows.
        let model_only = query.model.is_some()
            && query.q.is_none()
            && query.date_from.is_none()
            && query.date_to.is_none();
        let total = if model_only {
            query_scalar::<i64>(
                "SELECT calls FROM llm_call_model_counts WHERE conversation_id = $1 AND model = $2",
            )
            .bind(conversation_id)
            .bind(query.model.as_deref())
            .fetch_optional(&self.db)
            .await
            .map_err(map_sqlx)?
            .unwrap_or(0)
        } else if let Some(total) = query
            .page
            .total_from_short_page(rows.len())
            .filter(|_| filtered)
        {
            // A filtered page that is not full ends the listing: its rows
            // are the count, and a rare text is scanned once, not twice.
            total
        } else if filtered {
            let count_sql = format!("SELECT COUNT(*) FROM llm_calls WHERE {filters}");
            bind_call_filters(
                query_scalar::<i64>(&count_sql).bind(conversation_id),
                query,
                search,
            )
            .fetch_one(&self.db)
            .await
            .map_err(map_sqlx)?
        } else {
            conversation.llm_calls_count
        };
        Ok(LlmCallPage {
            conversation_id,
            total_tokens_used: conversation.total_tokens_used,
            total_cost: conversation.total_cost,
            page: query.page.page,
            page_size: query.page.page_size,
            total,
            calls: convert(rows)?,
        })
    }

    async fn find_cached_call(
        &self,
        execution_id: i64,
        prompt_hash: &str,
    ) -> StoreResult<Option<LlmCall>> {
        query_as::<LlmCallRow>(&format!(
            "SELECT {LLM_CALL_COLUMNS} FROM llm_calls WHERE execution_id = $1 AND prompt_hash = $2 \
             AND status = 'success' ORDER BY id DESC LIMIT 1"
        ))
        .bind(execution_id)
        .bind(prompt_hash)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .map(LlmCall::try_from)
        .transpose()
    }

    async fn add_code_file(&self, new: &NewCodeFile) -> StoreResult<CodeFile> {
        let result = query_as::<CodeFileRow>(&format!(
            "INSERT INTO code_files (workflow_id, conversation_id, execution_id, path, language, content, checksum, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {CODE_FILE_COLUMNS}"
        ))
        .bind(new.workflow_id)
        .bind(new.conversation_id)
        .bind(new.execution_id)
        .bind(&new.path)
        .bind(&new.language)
        .bind(&new.content)
        .bind(&new.checksum)
        .bind(now())
        .fetch_one(&self.db)
        .await;
        match result {
            Ok(row) => Ok(row.into()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "{} was already written by this conversation",
                new.path
            ))),
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::NotFound("workflow or conversation"))
            }
            Err(e) => Err(map_sqlx(e)),
        }
    }

    async fn call_facts(
        &self,
        workflow_id: i64,
        execution_id: Option<i64>,
    ) -> StoreResult<Vec<ai_team_core::compare::CallFact>> {
        let rows = query_as::<(String, String, String, String, i64, i64, i64, i64, String)>(
            "SELECT c.agent, c.step, l.model, l.status, l.prompt_tokens, l.completion_tokens, l.cost_nanos,                      l.response_time_ms, l.prompt_hash FROM llm_calls l JOIN conversations c ON c.id = l.conversation_id                      WHERE c.workflow_id = $1 AND ($2 IS NULL OR l.execution_id = $2) ORDER BY l.id",
        )
        .bind(workflow_id)
        .bind(execution_id)
        .fetch_all(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    agent,
                    step,
                    model,
                    status,
                    prompt_tokens,
                    completion_tokens,
                    cost,
                    latency_ms,
                    prompt_hash,
                )| {
                    ai_team_core::compare::CallFact {
                        agent,
                        step,
                        model,
                        status,
                        prompt_tokens,
                        completion_tokens,
                        cost,
                        latency_ms,
                        prompt_hash,
                    }
                },
            )
            .collect())
    }
}
