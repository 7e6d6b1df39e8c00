//! The job queue: apalis on PostgreSQL.
//!
//! A job is enqueued inside the [`TenantTx`] of the change that causes it, so the two commit or
//! roll back together: a crash between "commit" and "enqueue" cannot drop a job. Delivery is at
//! least once; handlers make their effects idempotent with the job's idempotency key.

use apalis::prelude::TaskBuilder;
use apalis_postgres::{Config, PostgresStorage};
use serde::{Serialize, de::DeserializeOwned};
use tenantkit_db::{Database, TenantTx};
use tenantkit_kernel::TenantId;

pub use apalis_postgres::PostgresStorage as Storage;

/// A unit of background work that belongs to one tenant.
pub trait TenantJob: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The apalis queue (job type) this job lives in.
    const QUEUE: &'static str;
    /// Attempts before the job is left failed for an admin to see.
    const MAX_ATTEMPTS: usize = 10;

    fn tenant_id(&self) -> TenantId;

    /// Deterministic for the business operation: enqueuing the same operation twice is a no-op,
    /// and handlers key their side effects (email ledger, Stripe idempotency) on it.
    fn idempotency_key(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job for tenant {job} enqueued in a transaction of tenant {tx}")]
    WrongTenant { job: TenantId, tx: TenantId },
    #[error("cannot encode job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Queue(#[from] apalis_postgres::Error),
}

/// Adds `job` to its queue as part of `tx`: it exists exactly when `tx` commits.
pub async fn enqueue<J: TenantJob>(tx: &mut TenantTx, job: &J) -> Result<(), JobError> {
    if job.tenant_id() != tx.tenant_id() {
        return Err(JobError::WrongTenant {
            job: job.tenant_id(),
            tx: tx.tenant_id(),
        });
    }
    let task = TaskBuilder::new(serde_json::to_vec(job)?)
        .max_attempts(J::MAX_ATTEMPTS)
        .idempotency_key(job.idempotency_key())
        .build();
    apalis_postgres::queries::push_tasks(tx.conn(), J::QUEUE, vec![task]).await?;
    tracing::debug!(queue = J::QUEUE, tenant_id = %job.tenant_id(), "job enqueued");
    Ok(())
}

/// The storage a worker polls for `J`.
pub fn storage<J: TenantJob>(db: &Database) -> PostgresStorage<J> {
    PostgresStorage::new(db.infrastructure_pool()).with_config(Config::default().queue(J::QUEUE))
}

/// Puts the jobs `worker` still holds in `queue` back to pending, so another worker takes
/// them at once (instead of after the orphan timeout). For a worker that must stop before its
/// jobs finish; their effects are idempotent, so a repeat is safe. Returns how many.
pub async fn release_held(db: &Database, queue: &str, worker: &str) -> Result<u64, JobError> {
    let mut conn = db
        .infrastructure_pool()
        .acquire()
        .await
        .map_err(|e| JobError::Queue(e.into()))?;
    let held: Vec<String> = sqlx::query_scalar(
        "select id from apalis.jobs where lock_by = $1 and status in ('Queued', 'Running')",
    )
    .bind(worker)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| JobError::Queue(e.into()))?;
    if held.is_empty() {
        return Ok(0);
    }
    Ok(apalis_postgres::queries::reenqueue_abandoned(&mut *conn, queue, worker, &held).await?)
}
