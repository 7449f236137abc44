//! Workflows: created once per story (a unique key decides), listed,
//! shown with everything under them, deleted in one statement.

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::models::*;
use ai_team_core::query::{NewWorkflow, PageRequest};
use ai_team_core::store::Created;

use super::SqlStore;
use super::db::{query, query_as, query_scalar};
use super::errors::map_sqlx;
use super::rows::*;
use super::sql::now;

#[async_trait::async_trait]
impl ai_team_core::store::WorkflowStore for SqlStore {
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
            let inserted = query_as::<WorkflowRow>(&sql)
                .bind(&new.name)
                .bind(new.jira_story_id.as_str())
                .bind(&new.repository_url)
                .bind(&new.description)
                .bind(now)
                .bind(&new.jira_story_title)
                .bind(&new.target_branch)
                .bind(&new.test_command)
                .fetch_optional(&self.db)
                .await
                .map_err(map_sqlx)?;
            if let Some(row) = inserted {
                return Ok(Created::New(row.try_into()?));
            }
            if let Some(existing) = self
                .find_workflow_by_story(new.jira_story_id.as_str())
                .await?
            {
                return Ok(Created::Existing(existing));
            }
        }
        Err(StoreError::Conflict(
            "the workflow was deleted while being created; retry".into(),
        ))
    }

    async fn get_workflow(&self, id: i64) -> StoreResult<Workflow> {
        query_as::<WorkflowRow>(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound("workflow"))?
        .try_into()
    }

    async fn find_workflow_by_story(&self, jira_story_id: &str) -> StoreResult<Option<Workflow>> {
        query_as::<WorkflowRow>(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE jira_story_id = $1"
        ))
        .bind(jira_story_id)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?
        .map(Workflow::try_from)
        .transpose()
    }

    async fn list_workflows(&self, page: Option<PageRequest>) -> StoreResult<Paged<Workflow>> {
        let base =
            format!("SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY created_at DESC, id DESC");
        let rows = match page {
            None => query_as::<WorkflowRow>(&base).fetch_all(&self.db).await,
            Some(p) => {
                query_as::<WorkflowRow>(&format!("{base} LIMIT $1 OFFSET $2"))
                    .bind(p.limit())
                    .bind(p.offset())
                    .fetch_all(&self.db)
                    .await
            }
        }
        .map_err(map_sqlx)?;
        let items: Vec<Workflow> = convert(rows)?;
        let total = match page {
            None => items.len() as i64,
            Some(_) => query_scalar::<i64>("SELECT COUNT(*) FROM workflows")
                .fetch_one(&self.db)
                .await
                .map_err(map_sqlx)?,
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

    async fn workflow_detail(&self, workflow_id: i64) -> StoreResult<WorkflowDetail> {
        let workflow = self.get_workflow(workflow_id).await?;
        // Read once: the flat list and each conversation's share.
        let code_files = self.workflow_code_files(workflow_id).await?;
        let conversations: Vec<Conversation> = convert(
            query_as::<ConversationRow>(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE workflow_id = $1 ORDER BY id"
            ))
            .bind(workflow_id)
            .fetch_all(&self.db)
            .await
            .map_err(map_sqlx)?,
        )?;
        if conversations.is_empty() {
            return Ok(WorkflowDetail {
                workflow,
                conversations: Vec::new(),
                code_files,
            });
        }
        let mut messages: Vec<Message> = convert(
            query_as::<MessageRow>(&format!(
                "SELECT {} FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE c.workflow_id = $1 ORDER BY m.id",
                MESSAGE_COLUMNS
                    .split(", ")
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .bind(workflow_id)
            .fetch_all(&self.db)
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
                query_as::<CallSummaryRow>(&summary_sql)
                    .bind(conversation.id)
                    .bind(CALL_SUMMARY_LIMIT)
                    .fetch_all(&self.db)
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
                    let (mine, rest) = messages
                        .into_iter()
                        .partition(|m| m.conversation_id == conversation.id);
                    messages = rest;
                    mine
                },
                llm_calls,
                conversation,
            });
        }
        Ok(WorkflowDetail {
            workflow,
            conversations: out,
            code_files,
        })
    }

    async fn workflow_code_files(&self, workflow_id: i64) -> StoreResult<Vec<CodeFile>> {
        let rows = query_as::<CodeFileRow>(&format!(
            "SELECT {CODE_FILE_COLUMNS} FROM code_files WHERE workflow_id = $1 ORDER BY id"
        ))
        .bind(workflow_id)
        .fetch_all(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(rows.into_iter().map(CodeFile::from).collect())
    }

    #[tracing::instrument(skip(self))]
    async fn delete_workflow(&self, id: i64) -> StoreResult<()> {
        // One statement: the cascades run inside its implicit
        // transaction, and the live-execution guard is in the same
        // statement, so there is no window between check and delete.
        let deleted = query(
            "DELETE FROM workflows WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM executions WHERE workflow_id = $1 AND status IN ('pending', 'running'))",
        )
        .bind(id)
        .execute(&self.db)
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
}
