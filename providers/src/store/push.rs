//! The `PushConnections` side of the store (WebSocket clients held by a
//! gateway), written once for both databases like `sql.rs`.

use ai_team_core::StoreError;
use ai_team_core::error::StoreResult;

use super::SqlStore;
use super::db::{query, query_as};
use super::errors::{is_foreign_key_violation, map_sqlx};

#[async_trait::async_trait]
impl ai_team_core::push::PushConnections for SqlStore {
    async fn add_push_connection(
        &self,
        connection_id: &str,
        workflow_id: i64,
        after: i64,
    ) -> StoreResult<()> {
        query(
            "INSERT INTO push_connections (connection_id, workflow_id, last_event_id, connected_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (connection_id) DO UPDATE SET workflow_id = excluded.workflow_id, \
             last_event_id = excluded.last_event_id, connected_at = excluded.connected_at",
        )
        .bind(connection_id)
        .bind(workflow_id)
        .bind(after)
        .bind(chrono::Utc::now())
        .execute(&self.db)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                StoreError::NotFound("workflow")
            } else {
                map_sqlx(e)
            }
        })?;
        Ok(())
    }

    async fn remove_push_connection(&self, connection_id: &str) -> StoreResult<()> {
        query("DELETE FROM push_connections WHERE connection_id = $1")
            .bind(connection_id)
            .execute(&self.db)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn push_connection(
        &self,
        connection_id: &str,
    ) -> StoreResult<Option<ai_team_core::push::PushConnection>> {
        let row = query_as::<(String, i64, i64)>(
            "SELECT connection_id, workflow_id, last_event_id FROM push_connections \
             WHERE connection_id = $1",
        )
        .bind(connection_id)
        .fetch_optional(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(row.map(|(connection_id, workflow_id, last_event_id)| {
            ai_team_core::push::PushConnection {
                connection_id,
                workflow_id,
                last_event_id,
            }
        }))
    }

    async fn push_connections(
        &self,
        workflow_id: i64,
    ) -> StoreResult<Vec<ai_team_core::push::PushConnection>> {
        let rows = query_as::<(String, i64, i64)>(
            "SELECT connection_id, workflow_id, last_event_id FROM push_connections \
             WHERE workflow_id = $1 ORDER BY connection_id",
        )
        .bind(workflow_id)
        .fetch_all(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(rows
            .into_iter()
            .map(
                |(connection_id, workflow_id, last_event_id)| ai_team_core::push::PushConnection {
                    connection_id,
                    workflow_id,
                    last_event_id,
                },
            )
            .collect())
    }

    async fn advance_push_connection(&self, connection_id: &str, sent: i64) -> StoreResult<()> {
        query(
            "UPDATE push_connections SET last_event_id = $2 \
             WHERE connection_id = $1 AND last_event_id < $2",
        )
        .bind(connection_id)
        .bind(sent)
        .execute(&self.db)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }
}
