//! The `PushConnections` side of the store (WebSocket clients held by a
//! gateway), written once for both databases like `sql.rs`.

macro_rules! impl_push_connections {
    ($store:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl ai_team_core::push::PushConnections for $store {
            async fn add_push_connection(
                &self,
                connection_id: &str,
                workflow_id: i64,
                after: i64,
            ) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO push_connections (connection_id, workflow_id, last_event_id, connected_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (connection_id) DO UPDATE SET workflow_id = excluded.workflow_id, \
                     last_event_id = excluded.last_event_id, connected_at = excluded.connected_at",
                )
                .bind(connection_id)
                .bind(workflow_id)
                .bind(after)
                .bind(chrono::Utc::now())
                .execute(&self.pool)
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
                sqlx::query::<$db>("DELETE FROM push_connections WHERE connection_id = $1")
                    .bind(connection_id)
                    .execute(&self.pool)
                    .await
                    .map_err(map_sqlx)?;
                Ok(())
            }

            async fn push_connection(
                &self,
                connection_id: &str,
            ) -> StoreResult<Option<ai_team_core::push::PushConnection>> {
                let row = sqlx::query_as::<$db, (String, i64, i64)>(
                    "SELECT connection_id, workflow_id, last_event_id FROM push_connections \
                     WHERE connection_id = $1",
                )
                .bind(connection_id)
                .fetch_optional(&self.pool)
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
                let rows = sqlx::query_as::<$db, (String, i64, i64)>(
                    "SELECT connection_id, workflow_id, last_event_id FROM push_connections \
                     WHERE workflow_id = $1 ORDER BY connection_id",
                )
                .bind(workflow_id)
                .fetch_all(&self.pool)
                .await
                .map_err(map_sqlx)?;
                Ok(rows
                    .into_iter()
                    .map(|(connection_id, workflow_id, last_event_id)| {
                        ai_team_core::push::PushConnection {
                            connection_id,
                            workflow_id,
                            last_event_id,
                        }
                    })
                    .collect())
            }

            async fn advance_push_connection(
                &self,
                connection_id: &str,
                sent: i64,
            ) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "UPDATE push_connections SET last_event_id = $2 \
                     WHERE connection_id = $1 AND last_event_id < $2",
                )
                .bind(connection_id)
                .bind(sent)
                .execute(&self.pool)
                .await
                .map_err(map_sqlx)?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_push_connections;
