//! The per-workflow event log: ids allocated under the workflow row's
//! lock (so events of one workflow commit in id order), every event
//! redacted before it is written, in-process subscribers woken after commit.

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;
use ai_team_core::models::*;

use super::SqlStore;
use super::db::{Tx, query, query_as, query_scalar, values_list};
use super::errors::map_sqlx;
use super::rows::*;
use super::sql::now;

impl SqlStore {
    /// Appends events to a workflow's log inside `tx`; the ids come
    /// from the workflow row, locked until commit.
    pub(super) async fn append_events_tx(
        tx: &mut Tx,
        workflow_id: i64,
        execution_id: Option<i64>,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<Vec<Event>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let n = events.len() as i64;
        let last = query_scalar::<i64>(
            "UPDATE workflows SET last_event_id = last_event_id + $2 WHERE id = $1 RETURNING last_event_id",
        )
        .bind(workflow_id)
        .bind(n)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound("workflow"))?;
        let created = now();
        let written: Vec<Event> = events
            .iter()
            .zip(last - n + 1..)
            .map(|(e, id)| Event {
                id,
                workflow_id,
                execution_id,
                event_type: e.kind.as_str().to_owned(),
                // Events are streamed to clients and logged: never a secret.
                data: ai_team_core::redact::redacted_value(&e.data),
                created_at: created,
            })
            .collect();
        let sql = format!(
            "INSERT INTO events (workflow_id, id, execution_id, type, data, created_at) VALUES {}",
            values_list(written.len(), 6)
        );
        let mut insert = query(&sql);
        for e in &written {
            insert = insert
                .bind(workflow_id)
                .bind(e.id)
                .bind(execution_id)
                .bind(e.event_type.as_str())
                .bind(e.data.to_string())
                .bind(created);
        }
        insert.execute(&mut *tx).await.map_err(map_sqlx)?;
        Ok(written)
    }

    /// After a commit: each event becomes one log line (the same
    /// fields as the stream) and in-process subscribers wake.
    /// Appends `events` in `tx`, commits it, then logs and signals them:
    /// how every write that reports its change as events ends.
    pub(super) async fn commit_with_events(
        &self,
        mut tx: Tx,
        workflow_id: i64,
        execution_id: Option<i64>,
        events: &[ai_team_core::ledger::NewEvent],
    ) -> StoreResult<()> {
        let written = Self::append_events_tx(&mut tx, workflow_id, execution_id, events).await?;
        tx.commit().await.map_err(map_sqlx)?;
        self.published(&written);
        Ok(())
    }

    pub(super) fn published(&self, events: &[Event]) {
        for e in events {
            tracing::info!(
                target: "ai_team::events",
                workflow_id = e.workflow_id,
                execution_id = e.execution_id,
                event_id = e.id,
                event_type = %e.event_type,
                data = %e.data,
                created_at = %e.created_at.to_rfc3339(),
                "event"
            );
        }
        if let Some(first) = events.first() {
            let _ = self.signal.send(first.workflow_id);
        }
    }
}

#[async_trait::async_trait]
impl ai_team_core::store::EventStore for SqlStore {
    fn event_signal(&self) -> Option<tokio::sync::broadcast::Receiver<i64>> {
        Some(self.signal.subscribe())
    }

    #[tracing::instrument(skip(self, data))]
    async fn append_event(
        &self,
        workflow_id: i64,
        execution_id: Option<i64>,
        event_type: &str,
        data: &serde_json::Value,
    ) -> StoreResult<Event> {
        let mut tx = self.db.begin().await.map_err(map_sqlx)?;
        // Taking the next id locks the workflow row until commit, so
        // events of one workflow commit in id order.
        let id = query_scalar::<i64>(
            "UPDATE workflows SET last_event_id = last_event_id + 1 WHERE id = $1 RETURNING last_event_id",
        )
        .bind(workflow_id)
        .fetch_optional(&mut tx)
        .await
        .map_err(map_sqlx)?
        .ok_or(StoreError::NotFound("workflow"))?;
        let row = query_as::<EventRow>(&format!(
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
        .fetch_one(&mut tx)
        .await
        .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        let event: Event = row.try_into()?;
        self.published(std::slice::from_ref(&event));
        Ok(event)
    }

    async fn last_event_id(&self, workflow_id: i64) -> StoreResult<i64> {
        // Committed events only: ids commit in order (the workflow
        // row is locked while one is allocated), so nothing below
        // this id can still appear.
        query_scalar::<i64>(
            "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events WHERE workflow_id = $1",
        )
        .bind(workflow_id)
        .fetch_one(&self.db)
        .await
        .map_err(map_sqlx)
    }

    async fn events_after(
        &self,
        workflow_id: i64,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<Event>> {
        convert(
            query_as::<EventRow>(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(workflow_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.db)
            .await
            .map_err(map_sqlx)?,
        )
    }

    async fn events_of_types(
        &self,
        workflow_id: i64,
        types: &[EventKind],
        limit: i64,
    ) -> StoreResult<Vec<Event>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE workflow_id = $1 AND type IN ({}) ORDER BY id LIMIT $2",
            placeholders.join(", ")
        );
        let mut query = query_as::<EventRow>(&sql).bind(workflow_id).bind(limit);
        for t in types {
            query = query.bind(t.as_str());
        }
        convert(query.fetch_all(&self.db).await.map_err(map_sqlx)?)
    }
}
