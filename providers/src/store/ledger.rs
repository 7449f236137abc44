//! The engine's side of the store (`StepLedger`), written once for both
//! databases like `sql.rs`. Every transaction starts with a write (so
//! SQLite takes its write lock up front instead of failing an upgrade) and
//! locks rows in one order — executions, step_leases, conversations,
//! workflows — so that PostgreSQL transactions cannot deadlock each other.

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::execution_meta::ExecutionMeta;
use ai_team_core::ledger::StepCommit;
use ai_team_core::models::*;
use ai_team_core::query::PageRequest;
use ai_team_core::steps::Step;
use ai_team_core::store::WorkflowStore;
use chrono::SubsecRound;

use super::SqlStore;
use super::db::{Tx, query, query_as, query_scalar, values_list};
use super::errors::{is_foreign_key_violation, is_unique_violation, map_sqlx};
use super::rows::*;
use super::sql::now;

impl SqlStore {
    /// Inserts a conversation; `on_conflict` (an `ON CONFLICT …`
    /// clause, or nothing) decides what a second one of its
    /// (execution, step, agent) does. `None`: the clause skipped it.
    pub(super) async fn insert_conversation(
        &self,
        new: &NewConversation,
        on_conflict: &str,
    ) -> Result<Option<ConversationRow>, sqlx::Error> {
        query_as::<ConversationRow>(&format!(
            "INSERT INTO conversations (workflow_id, execution_id, agent, step, prompt, output, details, timestamp) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) {on_conflict} RETURNING {CONVERSATION_COLUMNS}"
        ))
        .bind(new.workflow_id)
        .bind(new.execution_id)
        .bind(new.agent.as_str())
        .bind(&new.step)
        .bind(&new.prompt)
        .bind(&new.output)
        .bind(new.details.to_string())
        .bind(new.timestamp.trunc_subsecs(6))
        .fetch_optional(&self.db)
        .await
    }

    pub(super) async fn set_workflow_status_tx(
        tx: &mut Tx,
        workflow_id: i64,
        status: &str,
    ) -> StoreResult<()> {
        query("UPDATE workflows SET status = $2, updated_at = $3 WHERE id = $1")
            .bind(workflow_id)
            .bind(status)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ai_team_core::ledger::StepLedger for SqlStore {
    fn database(&self) -> Option<ai_team_core::queue::DatabaseId> {
        Some(self.id)
    }

    async fn execution_by_id(&self, execution_id: i64) -> StoreResult<Execution> {
        query_as::<ExecutionRow>(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        ))
        .bind(execution_id)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound("execution"))?
        .try_into()
    }

    #[tracing::instrument(skip(self, events))]
    async fn mark_running(
        &self,
        execution_id: i64,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<Execution> {
        let at = now();
        // Every step but the first finds the execution running: one
        // statement, no transaction, and the row comes back with it.
        let beating = query_as::<ExecutionRow>(&format!(
            "UPDATE executions SET heartbeat_at = $2 WHERE id = $1 AND status = 'running' \
             RETURNING {EXECUTION_COLUMNS}"
        ))
        .bind(execution_id)
        .bind(at)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?;
        if let Some(row) = beating {
            return row.try_into();
        }
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let mut written = Vec::new();
        let started = query_scalar::<i64>(
            "UPDATE executions SET status = 'running', started_at = COALESCE(started_at, $2), heartbeat_at = $2 \
             WHERE id = $1 AND status = 'pending' RETURNING workflow_id",
        )
        .bind(execution_id)
        .bind(at)
        .fetch_optional(&mut tx)
        .await
        .map_err(map_sqlx)?;
        match started {
            Some(workflow_id) => {
                Self::set_workflow_status_tx(&mut tx, workflow_id, "running").await?;
                written = Self::append_events_tx(&mut tx, workflow_id, Some(execution_id), events)
                    .await?;
            }
            None => {
                let beat = query(
                    "UPDATE executions SET heartbeat_at = $2 WHERE id = $1 AND status = 'running'",
                )
                .bind(execution_id)
                .bind(at)
                .execute(&mut tx)
                .await
                .map_err(map_sqlx)?
                .rows_affected();
                if beat == 0 {
                    tx.rollback().await.map_err(map_sqlx)?;
                    let e = self.execution_by_id(execution_id).await?;
                    return Err(StoreError::Conflict(format!(
                        "execution {execution_id} is {}",
                        e.status
                    )));
                }
            }
        }
        tx.commit().await.map_err(map_sqlx)?;
        self.published(&written);
        self.execution_by_id(execution_id).await
    }

    #[tracing::instrument(skip(self))]
    async fn claim_step(
        &self,
        execution_id: i64,
        step: Step,
        owner: &str,
        lease: std::time::Duration,
    ) -> StoreResult<ai_team_core::ledger::Claim> {
        use ai_team_core::ledger::Claim;
        let at = now();
        let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let claimed = query_scalar::<i64>(
            "INSERT INTO step_leases (execution_id, step, attempt, status, lease_owner, lease_expires_at, heartbeat_at, started_at) \
             VALUES ($1, $2, 1, 'running', $3, $4, $5, $5) \
             ON CONFLICT (execution_id, step) DO UPDATE SET attempt = step_leases.attempt + 1, status = 'running', \
             lease_owner = excluded.lease_owner, lease_expires_at = excluded.lease_expires_at, heartbeat_at = excluded.heartbeat_at \
             WHERE step_leases.status IN ('pending', 'failed') \
                OR (step_leases.status = 'running' AND step_leases.lease_expires_at < $5) \
             RETURNING CAST(attempt AS BIGINT)",
        )
        .bind(execution_id)
        .bind(step.as_str())
        .bind(owner)
        .bind(until)
        .bind(at)
        .fetch_optional(&self.db)
        .await;
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::NotFound("execution"));
            }
            Err(e) => return Err(map_sqlx(e)),
        };
        if let Some(attempt) = claimed {
            return Ok(Claim::Claimed { attempt });
        }
        let (status, expires): (String, Option<chrono::DateTime<chrono::Utc>>) = query_as::<(String, Option<chrono::DateTime<chrono::Utc>>)>(
            "SELECT status, lease_expires_at FROM step_leases WHERE execution_id = $1 AND step = $2",
        )
        .bind(execution_id)
        .bind(step.as_str())
        .fetch_one(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(match status.as_str() {
            "completed" | "skipped" => Claim::Completed,
            _ => Claim::Busy {
                until: expires.unwrap_or(at),
            },
        })
    }

    async fn renew_lease(
        &self,
        execution_id: i64,
        step: Step,
        owner: &str,
        lease: std::time::Duration,
    ) -> StoreResult<bool> {
        let at = now();
        let until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        query("UPDATE executions SET heartbeat_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(execution_id)
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        let n = query(
            "UPDATE step_leases SET lease_expires_at = $4, heartbeat_at = $5 \
             WHERE execution_id = $1 AND step = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(execution_id)
        .bind(step.as_str())
        .bind(owner)
        .bind(until)
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        tx.commit().await.map_err(map_sqlx)?;
        Ok(n == 1)
    }

    async fn ensure_conversation(&self, new: &NewConversation) -> StoreResult<Conversation> {
        let inserted = self
            .insert_conversation(
                new,
                "ON CONFLICT (execution_id, step, agent) WHERE execution_id IS NOT NULL DO NOTHING",
            )
            .await;
        match inserted {
            Ok(Some(row)) => return row.try_into(),
            Ok(None) => {}
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::NotFound("workflow or execution"));
            }
            Err(e) => return Err(map_sqlx(e)),
        }
        query_as::<ConversationRow>(&format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE execution_id = $1 AND step = $2 AND agent = $3"
        ))
        .bind(new.execution_id)
        .bind(&new.step)
        .bind(new.agent.as_str())
        .fetch_one(&self.db)
        .await
        .map_err(map_sqlx)?
        .try_into()
    }

    #[tracing::instrument(skip(self, c), fields(execution_id = c.execution_id, step = %c.step))]
    async fn complete_step(
        &self,
        c: &ai_team_core::ledger::StepCompletion,
    ) -> StoreResult<StepCommit> {
        let at = now();
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let row = query_as::<(String, String)>(
            "UPDATE executions SET heartbeat_at = $2 WHERE id = $1 RETURNING status, meta",
        )
        .bind(c.execution_id)
        .bind(at)
        .fetch_optional(&mut tx)
        .await
        .map_err(map_sqlx)?;
        let Some((status, meta)) = row else {
            return Err(StoreError::NotFound("execution"));
        };
        let status = enum_value("executions.status", &status, ExecutionStatus::parse)?;
        let owned = query(
            "UPDATE step_leases SET status = 'completed', finished_at = $4, result = $5, lease_expires_at = NULL \
             WHERE execution_id = $1 AND step = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(c.execution_id)
        .bind(c.step.as_str())
        .bind(&c.owner)
        .bind(at)
        .bind(c.result.to_string())
        .execute(&mut tx)
        .await
        .map_err(map_sqlx)?
        .rows_affected();
        if owned != 1 {
            tx.rollback().await.map_err(map_sqlx)?;
            return Ok(StepCommit::NotOwner);
        }
        let next = c.next.as_ref().filter(|_| !status.is_terminal());
        if let Some(msg) = next {
            let payload =
                serde_json::to_string(msg).map_err(|e| StoreError::Invalid(e.to_string()))?;
            Self::insert_job(
                &mut tx,
                ai_team_core::queue::STEPS_QUEUE,
                &payload,
                Some(&msg.dedup_key()),
                std::time::Duration::ZERO,
            )
            .await
            .map_err(map_sqlx)?;
        }
        if let Some(receipt) = &c.settles {
            let id =
                super::jobs::receipt_id(receipt).map_err(|e| StoreError::Invalid(e.to_string()))?;
            Self::ack_job(&mut tx, id).await.map_err(map_sqlx)?;
        }
        if let Some((id, output, details)) = &c.conversation {
            query("UPDATE conversations SET output = $2, details = $3 WHERE id = $1")
                .bind(id)
                .bind(output)
                .bind(details.to_string())
                .execute(&mut tx)
                .await
                .map_err(map_sqlx)?;
        }
        if !c.messages.is_empty() {
            let sql = format!(
                "INSERT INTO messages (conversation_id, role, content, artifacts, message_metadata, created_at) VALUES {}",
                values_list(c.messages.len(), 6)
            );
            let mut insert = query(&sql);
            for m in &c.messages {
                insert = insert
                    .bind(m.conversation_id)
                    .bind(m.role.as_str())
                    .bind(&m.content)
                    .bind(serde_json::to_string(&m.artifacts).unwrap_or_else(|_| "[]".into()))
                    .bind(m.message_metadata.to_string())
                    .bind(m.created_at.trunc_subsecs(6));
            }
            insert.execute(&mut tx).await.map_err(map_sqlx)?;
        }
        for f in &c.code_files {
            query(
                "INSERT INTO code_files (workflow_id, conversation_id, execution_id, path, language, content, checksum, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (conversation_id, path) WHERE conversation_id IS NOT NULL DO NOTHING",
            )
            .bind(f.workflow_id)
            .bind(f.conversation_id)
            .bind(f.execution_id)
            .bind(&f.path)
            .bind(&f.language)
            .bind(&f.content)
            .bind(&f.checksum)
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        }
        query(
            "INSERT INTO checkpoints (execution_id, step, summary, artifact_index, budgets, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (execution_id, step) DO UPDATE SET summary = excluded.summary, \
             artifact_index = excluded.artifact_index, budgets = excluded.budgets, created_at = excluded.created_at",
        )
        .bind(c.execution_id)
        .bind(c.step.as_str())
        .bind(serde_json::to_string(&c.state).unwrap_or_default())
        .bind(c.state.artifact_index().to_string())
        .bind(serde_json::to_string(&c.budgets).unwrap_or_default())
        .bind(at)
        .execute(&mut tx)
        .await
        .map_err(map_sqlx)?;
        let mut meta = ExecutionMeta::from_value(serde_json::from_str(&meta).unwrap_or_default());
        meta.checkpoint = Some(c.step.as_str().to_owned());
        query("UPDATE executions SET meta = $2 WHERE id = $1")
            .bind(c.execution_id)
            .bind(meta.to_value().to_string())
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        if let Some(status) = c.finish {
            let finished = query(
                "UPDATE executions SET status = $2, finished_at = $3, error = NULL WHERE id = $1 AND status = 'running'",
            )
            .bind(c.execution_id)
            .bind(status.as_str())
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
            if finished == 1 {
                let wf = if status == ExecutionStatus::Completed {
                    "completed"
                } else {
                    "failed"
                };
                Self::set_workflow_status_tx(&mut tx, c.workflow_id, wf).await?;
            }
        }
        self.commit_with_events(tx, c.workflow_id, Some(c.execution_id), &c.events)
            .await?;
        // A worker settling its job here looks for the next one at once
        // and finds this one; waking another would only race it to an
        // empty receive.
        if next.is_some() && c.settles.is_none() {
            self.job_queued(ai_team_core::queue::STEPS_QUEUE);
        }
        Ok(StepCommit::Written(status))
    }

    #[tracing::instrument(skip(self, meta, events))]
    async fn end_execution(
        &self,
        execution_id: i64,
        step: Option<Step>,
        status: ExecutionStatus,
        error: Option<&str>,
        meta: &ExecutionMeta,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<Execution> {
        let at = now();
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let workflow_id = query_scalar::<i64>(
            "UPDATE executions SET status = $2, error = $3, meta = $4, finished_at = $5 \
             WHERE id = $1 AND status IN ('pending', 'running') RETURNING workflow_id",
        )
        .bind(execution_id)
        .bind(status.as_str())
        .bind(error)
        .bind(meta.to_value().to_string())
        .bind(at)
        .fetch_optional(&mut tx)
        .await
        .map_err(map_sqlx)?;
        let Some(workflow_id) = workflow_id else {
            tx.rollback().await.map_err(map_sqlx)?;
            let e = self.execution_by_id(execution_id).await?;
            return Err(StoreError::Conflict(format!(
                "execution {execution_id} is already {}",
                e.status
            )));
        };
        if let Some(step) = step {
            query(
                "UPDATE step_leases SET status = 'failed', finished_at = $3, lease_expires_at = NULL \
                 WHERE execution_id = $1 AND step = $2 AND status = 'running'",
            )
            .bind(execution_id)
            .bind(step.as_str())
            .bind(at)
            .execute(&mut tx)
            .await
            .map_err(map_sqlx)?;
        }
        Self::set_workflow_status_tx(&mut tx, workflow_id, "failed").await?;
        self.commit_with_events(tx, workflow_id, Some(execution_id), events)
            .await?;
        self.execution_by_id(execution_id).await
    }

    #[tracing::instrument(skip(self, meta, events))]
    async fn reopen_execution(
        &self,
        execution_id: i64,
        meta: &ExecutionMeta,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<Execution> {
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        let reopened = query_scalar::<i64>(
            "UPDATE executions SET status = 'pending', error = NULL, finished_at = NULL, meta = $2, heartbeat_at = $3 \
             WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING workflow_id",
        )
        .bind(execution_id)
        .bind(meta.to_value().to_string())
        .bind(now())
        .fetch_optional(&mut tx)
        .await;
        let workflow_id = match reopened {
            Ok(Some(w)) => w,
            Ok(None) => {
                tx.rollback().await.map_err(map_sqlx)?;
                let e = self.execution_by_id(execution_id).await?;
                return Err(StoreError::Conflict(format!(
                    "execution {execution_id} is {}; only a failed or cancelled execution can be resumed",
                    e.status
                )));
            }
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(
                    "another execution of this workflow is running".into(),
                ));
            }
            Err(e) => return Err(map_sqlx(e)),
        };
        Self::set_workflow_status_tx(&mut tx, workflow_id, "pending").await?;
        self.commit_with_events(tx, workflow_id, Some(execution_id), events)
            .await?;
        self.execution_by_id(execution_id).await
    }

    async fn set_execution_meta(&self, execution_id: i64, meta: &ExecutionMeta) -> StoreResult<()> {
        query("UPDATE executions SET meta = $2 WHERE id = $1")
            .bind(execution_id)
            .bind(meta.to_value().to_string())
            .execute(&self.db)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn checkpoint(
        &self,
        execution_id: i64,
        step: Step,
    ) -> StoreResult<Option<ai_team_core::ledger::Checkpoint>> {
        query_as::<CheckpointRow>(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE execution_id = $1 AND step = $2"
        ))
        .bind(execution_id)
        .bind(step.as_str())
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn latest_checkpoint(
        &self,
        execution_id: i64,
    ) -> StoreResult<Option<ai_team_core::ledger::Checkpoint>> {
        query_as::<CheckpointRow>(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE execution_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(execution_id)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .map(TryInto::try_into)
        .transpose()
    }

    async fn agent_tokens(&self, execution_id: i64, agent: Agent) -> StoreResult<i64> {
        query_scalar::<i64>(
            "SELECT CAST(COALESCE(SUM(total_tokens_used), 0) AS BIGINT) FROM conversations WHERE execution_id = $1 AND agent = $2",
        )
        .bind(execution_id)
        .bind(agent.as_str())
        .fetch_one(&self.db)
        .await
        .map_err(map_sqlx)
    }

    async fn stale_executions(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<Execution>> {
        convert(
            query_as::<ExecutionRow>(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions WHERE status = 'running' AND heartbeat_at < $1"
            ))
            .bind(before)
            .fetch_all(&self.db)
            .await
            .map_err(map_sqlx)?,
        )
    }

    async fn unstarted_executions(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        workflow_id: Option<i64>,
    ) -> StoreResult<Vec<Execution>> {
        convert(
            query_as::<ExecutionRow>(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions WHERE status = 'pending' AND created_at < $1 \
                 AND ($2 IS NULL OR workflow_id = $2) \
                 AND NOT EXISTS (SELECT 1 FROM step_leases WHERE step_leases.execution_id = executions.id)"
            ))
            .bind(before)
            .bind(workflow_id)
            .fetch_all(&self.db)
            .await
            .map_err(map_sqlx)?,
        )
    }

    async fn release_step(&self, execution_id: i64, step: Step, owner: &str) -> StoreResult<()> {
        query(
            "UPDATE step_leases SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL \
             WHERE execution_id = $1 AND step = $2 AND lease_owner = $3 AND status = 'running'",
        )
        .bind(execution_id)
        .bind(step.as_str())
        .bind(owner)
        .execute(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<u64> {
        Ok(query(
            "UPDATE step_leases SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL \
             WHERE status = 'running' AND lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.db)
        .await
        .map_err(map_sqlx)?
        .rows_affected())
    }

    async fn append_events(
        &self,
        workflow_id: i64,
        execution_id: Option<i64>,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<()> {
        let tx = self.db.begin().await.map_err(map_sqlx)?;
        self.commit_with_events(tx, workflow_id, execution_id, events)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ai_team_core::store::ExecutionStore for SqlStore {
    #[tracing::instrument(skip(self))]
    async fn create_execution(&self, workflow_id: i64) -> StoreResult<Execution> {
        let result = query_as::<ExecutionRow>(&format!(
            "INSERT INTO executions (workflow_id, status, created_at) VALUES ($1, 'pending', $2) \
             RETURNING {EXECUTION_COLUMNS}"
        ))
        .bind(workflow_id)
        .bind(now())
        .fetch_one(&self.db)
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
        query_as::<ExecutionRow>(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 AND workflow_id = $2"
        ))
        .bind(execution_id)
        .bind(workflow_id)
        .fetch_optional(&self.db)
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
            None => {
                query_as::<ExecutionRow>(&base)
                    .bind(workflow_id)
                    .fetch_all(&self.db)
                    .await
            }
            Some(p) => {
                query_as::<ExecutionRow>(&format!("{base} LIMIT $2 OFFSET $3"))
                    .bind(workflow_id)
                    .bind(p.limit())
                    .bind(p.offset())
                    .fetch_all(&self.db)
                    .await
            }
        }
        .map_err(map_sqlx)?;
        let items: Vec<Execution> = convert(rows)?;
        let total = match page {
            None => items.len() as i64,
            Some(_) => {
                query_scalar::<i64>("SELECT COUNT(*) FROM executions WHERE workflow_id = $1")
                    .bind(workflow_id)
                    .fetch_one(&self.db)
                    .await
                    .map_err(map_sqlx)?
            }
        };
        let p = page.unwrap_or(PageRequest {
            page: 1,
            page_size: items.len() as u32,
        });
        Ok(Paged {
            page: p.page,
            page_size: p.page_size,
            total,
            items,
        })
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
            let mut query = query_as::<ExecutionRow>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            out.extend(convert::<_, Execution>(
                query.fetch_all(&self.db).await.map_err(map_sqlx)?,
            )?);
        }
        Ok(out)
    }
}
