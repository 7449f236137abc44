//! The durable local queue: a `queue_jobs` table in the store's own
//! database, so the local process (and several processes sharing one
//! PostgreSQL) need no broker. At-least-once: a job is hidden while a
//! worker holds it and comes back when its lock expires; after
//! `MAX_RECEIVES` receives it is dead (kept, with its last error).

use super::SqlStore;
use super::db::{Db, On, query, query_as, query_scalar};
use super::sql::now;

/// Receives after which a job is dead.
pub const MAX_RECEIVES: i32 = 25;

fn queue_err(e: sqlx::Error) -> ai_team_core::queue::QueueError {
    ai_team_core::queue::QueueError::Unavailable(e.to_string())
}

pub(super) fn receipt_id(receipt: &str) -> Result<i64, ai_team_core::queue::QueueError> {
    receipt
        .parse()
        .map_err(|_| ai_team_core::queue::QueueError::Invalid(format!("bad receipt {receipt:?}")))
}

impl SqlStore {
    /// Queues `payload` on `queue` within `on` (the pool, or a step's
    /// transaction); a duplicate `dedup_key` is dropped. The caller wakes
    /// a worker (`job_queued`) once the job is committed.
    pub(super) async fn insert_job<'c>(
        on: impl Into<On<'c>>,
        queue: &str,
        payload: &str,
        dedup_key: Option<&str>,
        delay: std::time::Duration,
    ) -> sqlx::Result<()> {
        let at = now();
        let visible = at + chrono::Duration::from_std(delay).unwrap_or_default();
        query(
            "INSERT INTO queue_jobs (queue, payload, dedup_key, status, attempts, visible_at, created_at) \
             VALUES ($1, $2, $3, 'ready', 0, $4, $5) \
             ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING",
        )
        .bind(queue)
        .bind(payload)
        .bind(dedup_key)
        .bind(visible)
        .bind(at)
        .execute(on)
        .await?;
        Ok(())
    }

    /// Marks the job `id` done within `on` (the pool, or the transaction
    /// that completes its step).
    pub(super) async fn ack_job<'c>(on: impl Into<On<'c>>, id: i64) -> sqlx::Result<()> {
        query("UPDATE queue_jobs SET status = 'done', locked_by = NULL, locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(on)
            .await?;
        Ok(())
    }

    /// After a job visible at once was committed: wakes one idle worker
    /// of `queue`, not every one (the others would each send an empty
    /// receive through the one SQLite writer).
    pub(super) fn job_queued(&self, queue: &str) {
        self.jobs_signal(queue).notify_one();
    }

    /// The wake-up of `queue`'s idle workers in this process.
    fn jobs_signal(&self, queue: &str) -> std::sync::Arc<tokio::sync::Notify> {
        let mut signals = self
            .jobs_signals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        signals.entry(queue.to_owned()).or_default().clone()
    }
}

#[async_trait::async_trait]
impl ai_team_core::queue::StepQueue for SqlStore {
    fn database(&self) -> Option<ai_team_core::queue::DatabaseId> {
        Some(self.id)
    }

    async fn send(
        &self,
        queue: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
        delay: std::time::Duration,
    ) -> Result<(), ai_team_core::queue::QueueError> {
        Self::insert_job(&self.db, queue, &payload.to_string(), dedup_key, delay)
            .await
            .map_err(queue_err)?;
        if delay.is_zero() {
            self.job_queued(queue);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ai_team_core::queue::JobSource for SqlStore {
    fn database(&self) -> Option<ai_team_core::queue::DatabaseId> {
        Some(self.id)
    }

    fn job_signal(&self, queue: &str) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        Some(self.jobs_signal(queue))
    }

    async fn receive(
        &self,
        queue: &str,
        worker: &str,
        visibility: std::time::Duration,
    ) -> Result<Option<ai_team_core::queue::ReceivedJob>, ai_team_core::queue::QueueError> {
        let at = now();
        let until = at + chrono::Duration::from_std(visibility).unwrap_or_default();
        const VISIBLE: &str = "queue = $1 \
            AND ((status = 'ready' AND visible_at <= $2) OR (status = 'running' AND locked_until < $2))";
        if let Db::Sqlite(_) = self.db {
            // SQLite has one writer: an idle worker looks on a reader
            // first, so an empty receive neither waits behind the steps'
            // writes nor holds them up.
            let any =
                query_scalar::<i64>(&format!("SELECT 1 FROM queue_jobs WHERE {VISIBLE} LIMIT 1"))
                    .bind(queue)
                    .bind(at)
                    .fetch_optional(&self.db)
                    .await
                    .map_err(queue_err)?;
            if any.is_none() {
                return Ok(None);
            }
        }
        // PostgreSQL skips rows other workers hold; SQLite has one writer
        // and needs no row lock.
        let lock = match self.db {
            Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Db::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE queue_jobs SET status = 'running', attempts = attempts + 1, locked_by = $3, locked_until = $4 \
             WHERE id = (SELECT id FROM queue_jobs WHERE {VISIBLE} \
               ORDER BY visible_at, id LIMIT 1 {lock}) RETURNING id, payload, attempts"
        );
        let row = query_as::<(i64, String, i32)>(&sql)
            .bind(queue)
            .bind(at)
            .bind(worker)
            .bind(until)
            .fetch_optional(&self.db)
            .await
            .map_err(queue_err)?;
        let Some((id, payload, attempts)) = row else {
            return Ok(None);
        };
        let payload = serde_json::from_str(&payload)
            .map_err(|e| ai_team_core::queue::QueueError::Invalid(format!("job {id}: {e}")))?;
        Ok(Some(ai_team_core::queue::ReceivedJob {
            receipt: id.to_string(),
            queue: queue.to_owned(),
            payload,
            receive_count: u32::try_from(attempts).unwrap_or(0),
        }))
    }

    async fn ack(&self, receipt: &str) -> Result<(), ai_team_core::queue::QueueError> {
        Self::ack_job(&self.db, receipt_id(receipt)?)
            .await
            .map_err(queue_err)
    }

    async fn retry(
        &self,
        receipt: &str,
        delay: std::time::Duration,
        error: &str,
    ) -> Result<(), ai_team_core::queue::QueueError> {
        let visible = now() + chrono::Duration::from_std(delay).unwrap_or_default();
        query(
            "UPDATE queue_jobs SET status = CASE WHEN attempts >= $4 THEN 'dead' ELSE 'ready' END, \
             visible_at = $2, last_error = $3, locked_by = NULL, locked_until = NULL WHERE id = $1",
        )
        .bind(receipt_id(receipt)?)
        .bind(visible)
        .bind(error)
        .bind(crate::store::jobs::MAX_RECEIVES)
        .execute(&self.db)
        .await
        .map_err(queue_err)?;
        Ok(())
    }

    async fn release(&self, worker: &str) -> Result<u64, ai_team_core::queue::QueueError> {
        Ok(query(
            "UPDATE queue_jobs SET status = 'ready', visible_at = $2, locked_by = NULL, locked_until = NULL \
             WHERE status = 'running' AND locked_by = $1",
        )
        .bind(worker)
        .bind(now())
        .execute(&self.db)
        .await
        .map_err(queue_err)?
        .rows_affected())
    }
}
