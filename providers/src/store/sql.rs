//! The one implementation of the `Store` port, written once and expanded
//! for each sqlx database: the SQL is shared (both databases take `$n`
//! placeholders, `RETURNING`, `ON CONFLICT` and partial indexes), only the
//! pool type differs. A macro rather than generics because sqlx's
//! database-generic bounds would outweigh the code they share.

use ai_team_core::query::{LlmCallQuery, SortBy, SortDir};
use chrono::{DateTime, SubsecRound, Utc};

/// Now, at the microsecond precision both databases keep, so that a value
/// read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `LIKE` pattern for a case-insensitive substring, with `\` as escape.
pub fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// How the `q` filter of a call listing is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSearch {
    /// `LOWER(column) LIKE '%q%'` on the rows the other filters leave:
    /// PostgreSQL's trigram GIN indexes serve it; on SQLite it scans, which
    /// is the cheapest plan when the text is frequent (the first page is
    /// found within a few rows of the listing's own index) or shorter than
    /// a trigram.
    Like,
    /// SQLite's FTS5 trigram index `llm_calls_fts`: the ids of the calls
    /// whose text holds `q` (few of them: see `SqliteStore::text_search`).
    Index,
}

/// An FTS5 query matching `q` as one substring: a phrase of its trigrams.
pub fn fts_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

/// The WHERE clause of a call listing; placeholders from `$2` on, in the
/// order `bind_call_filters!` binds them. `$1` is the conversation id.
pub fn call_filters(q: &LlmCallQuery, search: TextSearch) -> (String, usize) {
    let mut sql = String::from("conversation_id = $1");
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if q.model.is_some() {
        sql += &format!(" AND model = ${}", next());
    }
    if q.date_from.is_some() {
        sql += &format!(" AND timestamp >= ${}", next());
    }
    if q.date_to.is_some() {
        sql += &format!(" AND timestamp <= ${}", next());
    }
    if q.q.is_some() {
        let i = next();
        sql += &match search {
            TextSearch::Like => format!(
                " AND (LOWER(request_data) LIKE ${i} ESCAPE '\\' OR LOWER(response_data) LIKE ${i} ESCAPE '\\')"
            ),
            TextSearch::Index => {
                format!(
                    " AND id IN (SELECT rowid FROM llm_calls_fts WHERE llm_calls_fts MATCH ${i})"
                )
            }
        };
    }
    (sql, n)
}

/// ORDER BY for a call listing, ties broken by id in the same direction
/// (for model, by time first, so that `llm_calls_conv_model_idx` serves it).
pub fn call_order(q: &LlmCallQuery) -> String {
    let dir = match q.sort_dir {
        SortDir::Asc => "ASC",
        SortDir::Desc => "DESC",
    };
    let column = match q.sort_by {
        SortBy::Timestamp => "timestamp",
        SortBy::TotalTokens => "total_tokens",
        SortBy::ResponseTimeMs => "response_time_ms",
        SortBy::Cost => "cost_nanos",
        SortBy::Id => return format!("id {dir}"),
        SortBy::Model => return format!("model {dir}, timestamp {dir}, id {dir}"),
    };
    format!("{column} {dir}, id {dir}")
}

/// For an id-ordered page, a bound that starts the walk inside the
/// conversation's own id range. It changes no result; without it
/// PostgreSQL may walk the primary key backwards past every newer row of
/// other conversations (seen: 250 ms on 1M rows; 1 ms with it).
pub fn id_walk_bound(q: &LlmCallQuery) -> &'static str {
    match (q.sort_by, q.sort_dir) {
        (SortBy::Id, SortDir::Desc) => {
            " AND id <= (SELECT MAX(id) FROM llm_calls WHERE conversation_id = $1)"
        }
        (SortBy::Id, SortDir::Asc) => {
            " AND id >= (SELECT MIN(id) FROM llm_calls WHERE conversation_id = $1)"
        }
        _ => "",
    }
}

/// Binds the optional filters of `call_filters` in order.
macro_rules! bind_call_filters {
    ($query:expr, $q:expr, $search:expr) => {{
        let mut query = $query;
        if let Some(model) = &$q.model {
            query = query.bind(model.clone());
        }
        if let Some(from) = $q.date_from {
            query = query.bind(from);
        }
        if let Some(to) = $q.date_to {
            query = query.bind(to);
        }
        if let Some(text) = &$q.q {
            query = query.bind(match $search {
                $crate::store::sql::TextSearch::Like => $crate::store::sql::like_pattern(text),
                $crate::store::sql::TextSearch::Index => $crate::store::sql::fts_phrase(text),
            });
        }
        query
    }};
}
pub(crate) use bind_call_filters;

/// Expands the `Store` implementation for `$store`, whose `pool` field is
/// a `sqlx::Pool<$db>`.
macro_rules! impl_sql_store {
    ($store:ident, $db:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl ai_team_core::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn event_signal(&self) -> Option<tokio::sync::broadcast::Receiver<i64>> {
                Some(self.signal.subscribe())
            }

            #[tracing::instrument(skip(self))]
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_sqlx)?;
                Ok(())
            }

            async fn service_secret(&self, name: &str, candidate: &str) -> StoreResult<String> {
                sqlx::query::<$db>(
                    "INSERT INTO service_secrets (name, secret) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(candidate)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
                sqlx::query_scalar::<$db, String>("SELECT secret FROM service_secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_sqlx)
            }

            #[tracing::instrument(skip(self, new), fields(story = new.jira_story_id.as_str()))]
            async fn create_workflow(&self, new: &NewWorkflow) -> StoreResult<Created<Workflow>> {
                let now = now();
                let sql = format!(
                    "INSERT INTO workflows (name, jira_story_id, status, repository_url, description, \
                     jira_story_title, target_branch, test_command, created_at, updated_at) \
                     VALUES ($1, $2, 'pending', $3, $4, $6, $7, $8, $5, $5) \
                     ON CONFLICT (jira_story_id) DO NOTHING RETURNING {WORKFLOW_COLUMNS}"
                );
                // A concurrent delete between the insert and the read is the
                // only way to miss both; one more round settles it.
                for _ in 0..3 {
                    let inserted = sqlx::query_as::<$db, WorkflowRow>(&sql)
                        .bind(&new.name)
                        .bind(new.jira_story_id.as_str())
                        .bind(&new.repository_url)
                        .bind(&new.description)
                        .bind(now)
                        .bind(&new.jira_story_title)
                        .bind(&new.target_branch)
                        .bind(&new.test_command)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(map_sqlx)?;
                    if let Some(row) = inserted {
                        return Ok(Created::New(row.try_into()?));
                    }
                    if let Some(existing) = self.find_workflow_by_story(new.jira_story_id.as_str()).await? {
                        return Ok(Created::Existing(existing));
                    }
                }
                Err(StoreError::Conflict("the workflow was deleted while being created; retry".into()))
            }

            async fn get_workflow(&self, id: i64) -> StoreResult<Workflow> {
                sqlx::query_as::<$db, WorkflowRow>(&format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_sqlx)?
                    .ok_or(StoreError::NotFound("workflow"))?
                    .try_into()
            }

            async fn find_workflow_by_story(&self, jira_story_id: &str) -> StoreResult<Option<Workflow>> {
                sqlx::query_as::<$db, WorkflowRow>(&format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE jira_story_id = $1"
                ))
                .bind(jira_story_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?
                .map(Workflow::try_from)
                .transpose()
            }

            async fn list_workflows(&self, page: Option<PageRequest>) -> StoreResult<Paged<Workflow>> {
                let base = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY created_at DESC, id DESC");
                let rows = match page {
                    None => sqlx::query_as::<$db, WorkflowRow>(&base).fetch_all(&self.pool).await,
                    Some(p) => {
                        sqlx::query_as::<$db, WorkflowRow>(&format!("{base} LIMIT $1 OFFSET $2"))
                            .bind(p.limit())
                            .bind(p.offset())
                            .fetch_all(&self.pool)
                            .await
                    }
                }
                .map_err(map_sqlx)?;
                let items: Vec<Workflow> = convert(rows)?;
                let total = match page {
                    None => items.len() as i64,
                    Some(_) => sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM workflows")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_sqlx)?,
                };
                let p = page.unwrap_or(PageRequest { page: 1, page_size: items.len() as u32 });
                Ok(Paged { page: p.page, page_size: p.page_size, total, items })
            }

            async fn workflow_detail(&self, workflow_id: i64) -> StoreResult<WorkflowDetail> {
                let workflow = self.get_workflow(workflow_id).await?;
                // Read once: the flat list and each conversation's share.
                let code_files = self.workflow_code_files(workflow_id).await?;
                let conversations: Vec<Conversation> = convert(
                    sqlx::query_as::<$db, ConversationRow>(&format!(
                        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE workflow_id = $1 ORDER BY id"
                    ))
                    .bind(workflow_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_sqlx)?,
                )?;
                if conversations.is_empty() {
                    return Ok(WorkflowDetail { workflow, conversations: Vec::new(), code_files });
                }
                let mut messages: Vec<Message> = convert(
                    sqlx::query_as::<$db, MessageRow>(&format!(
                        "SELECT {} FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                         WHERE c.workflow_id = $1 ORDER BY m.id",
                        MESSAGE_COLUMNS.split(", ").map(|c| format!("m.{c}")).collect::<Vec<_>>().join(", ")
                    ))
                    .bind(workflow_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_sqlx)?,
                )?;
                let summary_sql = format!(
                    "SELECT {CALL_SUMMARY_COLUMNS} FROM llm_calls WHERE conversation_id = $1 \
                     ORDER BY timestamp DESC, id DESC LIMIT $2"
                );
                let mut out = Vec::with_capacity(conversations.len());
                for conversation in conversations {
                    let llm_calls = convert(
                        sqlx::query_as::<$db, CallSummaryRow>(&summary_sql)
                            .bind(conversation.id)
                            .bind(CALL_SUMMARY_LIMIT)
                            .fetch_all(&self.pool)
                            .await
                            .map_err(map_sqlx)?,
                    )?;
                    out.push(ConversationDetail {
                        code_files: code_files
                            .iter()
                            .filter(|f| f.conversation_id == Some(conversation.id))
                            .cloned()
                            .collect(),
                        messages: {
                            let (mine, rest) = messages.into_iter().partition(|m| m.conversation_id == conversation.id);
                            messages = rest;
                            mine
                        },
                        llm_calls,
                        conversation,
                    });
                }
                Ok(WorkflowDetail { workflow, conversations: out, code_files })
            }

            async fn workflow_code_files(&self, workflow_id: i64) -> StoreResult<Vec<CodeFile>> {
                let rows = sqlx::query_as::<$db, CodeFileRow>(&format!(
                    "SELECT {CODE_FILE_COLUMNS} FROM code_files WHERE workflow_id = $1 ORDER BY id"
                ))
                .bind(workflow_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
                Ok(rows.into_iter().map(CodeFile::from).collect())
            }

            #[tracing::instrument(skip(self))]
            async fn delete_workflow(&self, id: i64) -> StoreResult<()> {
                // One statement: the cascades run inside its implicit
                // transaction, and the live-execution guard is in the same
                // statement, so there is no window between check and delete.
                let deleted = sqlx::query(
                    "DELETE FROM workflows WHERE id = $1 AND NOT EXISTS \
                     (SELECT 1 FROM executions WHERE workflow_id = $1 AND status IN ('pending', 'running'))",
                )
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?
                .rows_affected();
                if deleted == 1 {
                    return Ok(());
                }
                self.get_workflow(id).await?;
                Err(StoreError::Conflict(
                    "the workflow has an execution in progress; cancel it first".into(),
                ))
            }

            #[tracing::instrument(skip(self))]
            async fn create_execution(&self, workflow_id: i64) -> StoreResult<Execution> {
                let result = sqlx::query_as::<$db, ExecutionRow>(&format!(
                    "INSERT INTO executions (workflow_id, status, created_at) VALUES ($1, 'pending', $2) \
                     RETURNING {EXECUTION_COLUMNS}"
                ))
                .bind(workflow_id)
                .bind(now())
                .fetch_one(&self.pool)
                .await;
                match result {
                    Ok(row) => row.try_into(),
                    Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
                        "an execution of this workflow is already running".into(),
                    )),
                    Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound("workflow")),
                    Err(e) => Err(map_sqlx(e)),
                }
            }

            async fn get_execution(&self, workflow_id: i64, execution_id: i64) -> StoreResult<Execution> {
                sqlx::query_as::<$db, ExecutionRow>(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 AND workflow_id = $2"
                ))
                .bind(execution_id)
                .bind(workflow_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?
                .ok_or(StoreError::NotFound("execution"))?
                .try_into()
            }

            async fn list_executions(
                &self,
                workflow_id: i64,
                page: Option<PageRequest>,
            ) -> StoreResult<Paged<Execution>> {
                self.get_workflow(workflow_id).await?;
                let base = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE workflow_id = $1 ORDER BY id DESC"
                );
                let rows = match page {
                    None => sqlx::query_as::<$db, ExecutionRow>(&base).bind(workflow_id).fetch_all(&self.pool).await,
                    Some(p) => {
                        sqlx::query_as::<$db, ExecutionRow>(&format!("{base} LIMIT $2 OFFSET $3"))
                            .bind(workflow_id)
                            .bind(p.limit())
                            .bind(p.offset())
                            .fetch_all(&self.pool)
                            .await
                    }
                }
                .map_err(map_sqlx)?;
                let items: Vec<Execution> = convert(rows)?;
                let total = match page {
                    None => items.len() as i64,
                    Some(_) => sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM executions WHERE workflow_id = $1")
                        .bind(workflow_id)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(map_sqlx)?,
                };
                let p = page.unwrap_or(PageRequest { page: 1, page_size: items.len() as u32 });
                Ok(Paged { page: p.page, page_size: p.page_size, total, items })
            }

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
                    Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound("workflow or execution")),
                    Err(e) => Err(map_sqlx(e)),
                }
            }

            async fn get_conversation(&self, id: i64) -> StoreResult<Conversation> {
                sqlx::query_as::<$db, ConversationRow>(&format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?
                .ok_or(StoreError::NotFound("conversation"))?
                .try_into()
            }

            async fn add_message(&self, new: &NewMessage) -> StoreResult<Message> {
                let artifacts = serde_json::to_string(&new.artifacts)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                let result = sqlx::query_as::<$db, MessageRow>(&format!(
                    "INSERT INTO messages (conversation_id, role, content, artifacts, message_metadata, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MESSAGE_COLUMNS}"
                ))
                .bind(new.conversation_id)
                .bind(new.role.as_str())
                .bind(&new.content)
                .bind(artifacts)
                .bind(new.message_metadata.to_string())
                .bind(new.created_at.trunc_subsecs(6))
                .fetch_one(&self.pool)
                .await;
                match result {
                    Ok(row) => row.try_into(),
                    Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound("conversation")),
                    Err(e) => Err(map_sqlx(e)),
                }
            }

            async fn list_messages(&self, conversation_id: i64, page: PageRequest) -> StoreResult<Paged<Message>> {
                self.get_conversation(conversation_id).await?;
                let rows = sqlx::query_as::<$db, MessageRow>(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY id LIMIT $2 OFFSET $3"
                ))
                .bind(conversation_id)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
                let total = sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM messages WHERE conversation_id = $1")
                    .bind(conversation_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_sqlx)?;
                Ok(Paged { page: page.page, page_size: page.page_size, total, items: convert(rows)? })
            }

            #[tracing::instrument(skip(self, calls), fields(n = calls.len()))]
            async fn record_llm_calls(&self, calls: &[NewLlmCall]) -> StoreResult<Vec<i64>> {
                use std::collections::BTreeMap;
                if calls.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
                let mut ids = Vec::with_capacity(calls.len());
                // (tokens, cost, count) per conversation; (+ prompt,
                // completion, latency, models) per execution.
                let mut per_conversation: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
                let mut per_execution: BTreeMap<i64, ExecutionDelta> = BTreeMap::new();
                let mut per_model: BTreeMap<(i64, &str), i64> = BTreeMap::new();
                for c in calls {
                    let n = CallNumbers::of(c);
                    let total = n.prompt_tokens + n.completion_tokens;
                    let result = sqlx::query_scalar::<$db, i64>(
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
                    .fetch_one(&mut *tx)
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
                    *per_model.entry((c.conversation_id, c.model.as_str())).or_default() += 1;
                    if let Some(eid) = c.execution_id {
                        per_execution.entry(eid).or_default().add(&c.model, n);
                    }
                }
                for (id, (tokens, cost, count)) in per_conversation {
                    sqlx::query(
                        &format!(
                            "UPDATE conversations SET total_tokens_used = {}, total_cost_nanos = {}, \
                             call_count = call_count + $4 WHERE id = $1",
                            saturating_sum("total_tokens_used", "$2"),
                            saturating_sum("total_cost_nanos", "$3"),
                        ),
                    )
                    .bind(id)
                    .bind(tokens)
                    .bind(cost)
                    .bind(count)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                }
                for ((id, model), n) in per_model {
                    sqlx::query(
                        "INSERT INTO llm_call_model_counts (conversation_id, model, calls) VALUES ($1, $2, $3) \
                         ON CONFLICT (conversation_id, model) DO UPDATE SET calls = llm_call_model_counts.calls + excluded.calls",
                    )
                    .bind(id)
                    .bind(model)
                    .bind(n)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                }
                for (id, d) in per_execution {
                    let models: String = sqlx::query_scalar::<$db, String>("SELECT models FROM executions WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_sqlx)?;
                    let mut models: Vec<String> = serde_json::from_str(&models).unwrap_or_default();
                    for m in d.models {
                        if !models.contains(&m) {
                            models.push(m);
                        }
                    }
                    sqlx::query(
                        &format!(
                            "UPDATE executions SET total_calls = total_calls + $2, prompt_tokens = {}, \
                             completion_tokens = {}, total_tokens = {}, total_cost_nanos = {}, \
                             total_latency_ms = {}, models = $8 WHERE id = $1",
                            saturating_sum("prompt_tokens", "$3"),
                            saturating_sum("completion_tokens", "$4"),
                            saturating_sum("total_tokens", "$5"),
                            saturating_sum("total_cost_nanos", "$6"),
                            saturating_sum("total_latency_ms", "$7"),
                        ),
                    )
                    .bind(id)
                    .bind(d.calls)
                    .bind(d.prompt_tokens)
                    .bind(d.completion_tokens)
                    .bind(capped_add(d.prompt_tokens, d.completion_tokens))
                    .bind(d.cost)
                    .bind(d.latency_ms)
                    .bind(serde_json::to_string(&models).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_sqlx)?;
                }
                tx.commit().await.map_err(map_sqlx)?;
                Ok(ids)
            }

            #[tracing::instrument(skip(self, query))]
            async fn list_llm_calls(&self, conversation_id: i64, query: &LlmCallQuery) -> StoreResult<LlmCallPage> {
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
                let rows = bind_call_filters!(sqlx::query_as::<$db, LlmCallRow>(&sql).bind(conversation_id), query, search)
                    .bind(query.page.limit())
                    .bind(query.page.offset())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_sqlx)?;
                // The unfiltered count is kept on the conversation row and the
                // per-model ones beside it, so these listings never count a
                // million rows.
                let model_only = query.model.is_some() && query.q.is_none()
                    && query.date_from.is_none() && query.date_to.is_none();
                let total = if model_only {
                    sqlx::query_scalar::<$db, i64>(
                        "SELECT calls FROM llm_call_model_counts WHERE conversation_id = $1 AND model = $2",
                    )
                    .bind(conversation_id)
                    .bind(query.model.as_deref())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_sqlx)?
                    .unwrap_or(0)
                } else if filtered {
                    let count_sql = format!("SELECT COUNT(*) FROM llm_calls WHERE {filters}");
                    bind_call_filters!(sqlx::query_scalar::<$db, i64>(&count_sql).bind(conversation_id), query, search)
                        .fetch_one(&self.pool)
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

            async fn find_cached_call(&self, execution_id: i64, prompt_hash: &str) -> StoreResult<Option<LlmCall>> {
                sqlx::query_as::<$db, LlmCallRow>(&format!(
                    "SELECT {LLM_CALL_COLUMNS} FROM llm_calls WHERE execution_id = $1 AND prompt_hash = $2 \
                     AND status = 'success' ORDER BY id DESC LIMIT 1"
                ))
                .bind(execution_id)
                .bind(prompt_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?
                .map(LlmCall::try_from)
                .transpose()
            }

            async fn add_code_file(&self, new: &NewCodeFile) -> StoreResult<CodeFile> {
                let result = sqlx::query_as::<$db, CodeFileRow>(&format!(
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
                .fetch_one(&self.pool)
                .await;
                match result {
                    Ok(row) => Ok(row.into()),
                    Err(e) if is_unique_violation(&e) => {
                        Err(StoreError::Conflict(format!("{} was already written by this conversation", new.path)))
                    }
                    Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound("workflow or conversation")),
                    Err(e) => Err(map_sqlx(e)),
                }
            }

            #[tracing::instrument(skip(self, data))]
            async fn append_event(
                &self,
                workflow_id: i64,
                execution_id: Option<i64>,
                event_type: &str,
                data: &serde_json::Value,
            ) -> StoreResult<Event> {
                let mut tx = self.pool.begin().await.map_err(map_sqlx)?;
                // Taking the next id locks the workflow row until commit, so
                // events of one workflow commit in id order.
                let id = sqlx::query_scalar::<$db, i64>(
                    "UPDATE workflows SET last_event_id = last_event_id + 1 WHERE id = $1 RETURNING last_event_id",
                )
                .bind(workflow_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_sqlx)?
                .ok_or(StoreError::NotFound("workflow"))?;
                let row = sqlx::query_as::<$db, EventRow>(&format!(
                    "INSERT INTO events (workflow_id, id, execution_id, type, data, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {EVENT_COLUMNS}"
                ))
                .bind(workflow_id)
                .bind(id)
                .bind(execution_id)
                .bind(event_type)
                // Events are streamed to clients and logged: never a secret.
                .bind(ai_team_core::redact::redacted_value(data).to_string())
                .bind(now())
                .fetch_one(&mut *tx)
                .await
                .map_err(map_sqlx)?;
                tx.commit().await.map_err(map_sqlx)?;
                let event: Event = row.try_into()?;
                self.published(std::slice::from_ref(&event));
                Ok(event)
            }

            async fn call_facts(
                &self,
                workflow_id: i64,
                execution_id: Option<i64>,
            ) -> StoreResult<Vec<ai_team_core::compare::CallFact>> {
                let rows = sqlx::query_as::<$db, (String, String, String, String, i64, i64, i64, i64, String)>(
                    "SELECT c.agent, c.step, l.model, l.status, l.prompt_tokens, l.completion_tokens, l.cost_nanos,                      l.response_time_ms, l.prompt_hash FROM llm_calls l JOIN conversations c ON c.id = l.conversation_id                      WHERE c.workflow_id = $1 AND ($2 IS NULL OR l.execution_id = $2) ORDER BY l.id",
                )
                .bind(workflow_id)
                .bind(execution_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
                Ok(rows
                    .into_iter()
                    .map(|(agent, step, model, status, prompt_tokens, completion_tokens, cost, latency_ms, prompt_hash)| {
                        ai_team_core::compare::CallFact {
                            agent, step, model, status, prompt_tokens, completion_tokens, cost, latency_ms, prompt_hash,
                        }
                    })
                    .collect())
            }

            async fn last_event_id(&self, workflow_id: i64) -> StoreResult<i64> {
                // Committed events only: ids commit in order (the workflow
                // row is locked while one is allocated), so nothing below
                // this id can still appear.
                sqlx::query_scalar::<$db, i64>(
                    "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events WHERE workflow_id = $1",
                )
                .bind(workflow_id)
                .fetch_one(&self.pool)
                .await
                .map_err(map_sqlx)
            }

            async fn events_after(&self, workflow_id: i64, after: i64, limit: i64) -> StoreResult<Vec<Event>> {
                convert(
                    sqlx::query_as::<$db, EventRow>(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                    ))
                    .bind(workflow_id)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(map_sqlx)?,
                )
            }

            async fn events_of_types(&self, workflow_id: i64, types: &[&str], limit: i64) -> StoreResult<Vec<Event>> {
                if types.is_empty() {
                    return Ok(Vec::new());
                }
                let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = $1 AND type IN ({}) ORDER BY id LIMIT $2",
                    placeholders.join(", ")
                );
                let mut query = sqlx::query_as::<$db, EventRow>(&sql).bind(workflow_id).bind(limit);
                for t in types {
                    query = query.bind(*t);
                }
                convert(query.fetch_all(&self.pool).await.map_err(map_sqlx)?)
            }

            async fn latest_executions(&self, workflow_ids: &[i64]) -> StoreResult<Vec<Execution>> {
                let mut out = Vec::with_capacity(workflow_ids.len());
                // Bounded IN lists: both databases cap the number of parameters.
                for chunk in workflow_ids.chunks(500) {
                    let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id IN \
                         (SELECT MAX(id) FROM executions WHERE workflow_id IN ({}) GROUP BY workflow_id)",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query_as::<$db, ExecutionRow>(&sql);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    out.extend(convert::<_, Execution>(query.fetch_all(&self.pool).await.map_err(map_sqlx)?)?);
                }
                Ok(out)
            }
        }
    };
}
pub(crate) use impl_sql_store;

/// What a batch of calls adds to one execution's running totals.
#[derive(Default)]
pub struct ExecutionDelta {
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
    pub latency_ms: i64,
    pub models: Vec<String>,
}

impl ExecutionDelta {
    pub fn add(&mut self, model: &str, n: CallNumbers) {
        self.calls += 1;
        self.prompt_tokens = capped_add(self.prompt_tokens, n.prompt_tokens);
        self.completion_tokens = capped_add(self.completion_tokens, n.completion_tokens);
        self.cost = capped_add(self.cost, n.cost);
        self.latency_ms = capped_add(self.latency_ms, n.latency_ms);
        if !self.models.iter().any(|m| m == model) {
            self.models.push(model.to_owned());
        }
    }
}

/// The most tokens one call row may carry. Usage is checked against the
/// model before it gets here (`ModelInfo::check_usage`); this bound holds
/// whatever a caller passes, so that no sum below can overflow.
pub const MAX_CALL_TOKENS: i64 = 1 << 32;
/// The most one call may cost ($1,000,000) or take (about 35 years).
pub const MAX_CALL_COST_NANOS: i64 = 1 << 50;
pub const MAX_CALL_LATENCY_MS: i64 = 1 << 40;
/// Running totals stop here instead of overflowing (SQLite turns an
/// overflowing integer sum into a REAL, which no longer reads as BIGINT;
/// PostgreSQL fails the statement).
pub const MAX_TOTAL: i64 = (1 << 62) - 1;

/// One call's numbers as written: never negative, within the bounds above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallNumbers {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: i64,
    pub latency_ms: i64,
}

impl CallNumbers {
    pub fn of(c: &ai_team_core::models::NewLlmCall) -> Self {
        Self {
            prompt_tokens: c.prompt_tokens.clamp(0, MAX_CALL_TOKENS),
            completion_tokens: c.completion_tokens.clamp(0, MAX_CALL_TOKENS),
            cost: c.cost.clamp(0, MAX_CALL_COST_NANOS),
            latency_ms: c.response_time_ms.clamp(0, MAX_CALL_LATENCY_MS),
        }
    }
}

/// `a + b` for non-negative totals, stopping at `MAX_TOTAL`.
pub fn capped_add(a: i64, b: i64) -> i64 {
    a.saturating_add(b).min(MAX_TOTAL)
}

/// SQL for `column + param` that stops at `MAX_TOTAL` without ever
/// computing an overflowing value (the same text on SQLite and PostgreSQL).
pub fn saturating_sum(column: &str, param: &str) -> String {
    format!(
        "CASE WHEN {column} >= {MAX_TOTAL} - {param} THEN {MAX_TOTAL} ELSE {column} + {param} END"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_team_core::query::RawLlmCallQuery;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn filters_number_their_placeholders_in_bind_order() {
        let q = LlmCallQuery::parse(RawLlmCallQuery {
            model: Some("gpt-4o"),
            date_to: Some("2026-01-01"),
            q: Some("Hello"),
            ..Default::default()
        })
        .unwrap();
        let (sql, last) = call_filters(&q, TextSearch::Like);
        assert_eq!(last, 4);
        assert!(sql.contains("model = $2"));
        assert!(sql.contains("timestamp <= $3"));
        assert!(sql.contains("LIKE $4"));
        assert_eq!(q.q.as_deref(), Some("hello"));
    }
}
