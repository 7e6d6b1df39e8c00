//! The job queue: apalis on PostgreSQL.
//!
//! A job is enqueued inside the [`TenantTx`] of the change that causes it, so the two commit or
//! roll back together: a crash between "commit" and "enqueue" cannot drop a job. Delivery is at
//! least once; handlers make their effects idempotent with the job's idempotency key.

use apalis::prelude::TaskBuilder;
use serde::{Serialize, de::DeserializeOwned};
use tenantkit_db::{Database, PgConnection, TenantTx};
use tenantkit_kernel::TenantId;

pub use consumer::QueueBackend;
pub use wakeups::{Liveness, Wakeups};

mod consumer;
pub mod dead_letters;
mod queue_sql;
pub mod wakeups;

/// A unit of background work, owned by one tenant or (account emails) by none.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The apalis queue (job type) this job lives in.
    const QUEUE: &'static str;
    /// Attempts before the job is left failed (dead-lettered) for an admin to see.
    const MAX_ATTEMPTS: usize = 10;

    /// The tenant whose change caused the job; `None` for work on a user's account alone.
    fn tenant_id(&self) -> Option<TenantId>;

    /// Deterministic for the business operation: enqueuing the same operation twice is a no-op,
    /// and handlers key their side effects (email ledger, Stripe idempotency) on it.
    fn idempotency_key(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job for tenant {job:?} enqueued in a transaction of tenant {tx:?}")]
    WrongTenant {
        job: Option<TenantId>,
        tx: Option<TenantId>,
    },
    #[error("cannot encode job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Queue(#[from] apalis_postgres::Error),
}

/// Adds the tenant's `job` to its queue as part of `tx`: it exists exactly when `tx` commits.
pub async fn enqueue<J: Job>(tx: &mut TenantTx, job: &J) -> Result<(), JobError> {
    if job.tenant_id() != Some(tx.tenant_id()) {
        return Err(JobError::WrongTenant {
            job: job.tenant_id(),
            tx: Some(tx.tenant_id()),
        });
    }
    push(tx.conn(), job).await
}

/// Adds an account-level `job` (no tenant) to its queue as part of the transaction on `conn`
/// (a `GlobalTx` or a `UserTx`).
pub async fn enqueue_global<J: Job>(conn: &mut PgConnection, job: &J) -> Result<(), JobError> {
    if job.tenant_id().is_some() {
        return Err(JobError::WrongTenant {
            job: job.tenant_id(),
            tx: None,
        });
    }
    push(conn, job).await
}

/// Like [`enqueue`], for a job that must not run before `at` (a purge after its retention).
pub async fn enqueue_at<J: Job>(
    tx: &mut TenantTx,
    job: &J,
    at: std::time::SystemTime,
) -> Result<(), JobError> {
    if job.tenant_id() != Some(tx.tenant_id()) {
        return Err(JobError::WrongTenant {
            job: job.tenant_id(),
            tx: Some(tx.tenant_id()),
        });
    }
    push_task(tx.conn(), job, Some(at)).await
}

async fn push<J: Job>(conn: &mut PgConnection, job: &J) -> Result<(), JobError> {
    push_task(conn, job, None).await
}

async fn push_task<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    at: Option<std::time::SystemTime>,
) -> Result<(), JobError> {
    let mut builder = TaskBuilder::new(serde_json::to_vec(job)?)
        .max_attempts(J::MAX_ATTEMPTS)
        .idempotency_key(job.idempotency_key());
    if let Some(at) = at {
        builder = builder.run_at_time(at);
    }
    let task = builder.build();
    apalis_postgres::queries::push_tasks(conn, J::QUEUE, vec![task]).await?;
    tracing::debug!(queue = J::QUEUE, tenant_id = ?job.tenant_id(), "job enqueued");
    Ok(())
}

/// The backend a worker's consumer of `J` runs on, claiming up to `batch` jobs per fetch and
/// woken by `wakeups` (whose [`Wakeups::drive`] must run beside it).
pub fn consumer<J: Job>(db: &Database, wakeups: &Wakeups, batch: usize) -> QueueBackend<J> {
    QueueBackend::new(db.infrastructure_pool().clone(), wakeups, J::QUEUE, batch)
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

/// Schedules a failed job's next attempt after an exponential backoff (`base` × 2^(attempt-1),
/// at most an hour): apalis retries a failed job at once otherwise. Called by a handler just
/// before it returns its error; apalis then marks the job failed, keeping this `run_at`.
pub async fn retry_later(
    db: &Database,
    task_id: &str,
    attempt: usize,
    base: std::time::Duration,
) -> Result<(), JobError> {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    let delay = base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(std::time::Duration::from_secs(3600));
    sqlx::query("update apalis.jobs set run_at = now() + make_interval(secs => $2) where id = $1")
        .bind(task_id)
        .bind(delay.as_secs_f64())
        .execute(db.infrastructure_pool())
        .await
        .map_err(|e| JobError::Queue(e.into()))?;
    Ok(())
}

/// A handler's result, passed through; a failure first schedules the job's next attempt after
/// its backoff ([`retry_later`]). Every handler ends with this, so retries back off alike.
pub async fn back_off_on_failure(
    db: &Database,
    task: Option<apalis::prelude::TaskId>,
    attempt: usize,
    base: std::time::Duration,
    result: Result<(), apalis::prelude::BoxDynError>,
) -> Result<(), apalis::prelude::BoxDynError> {
    if let (Err(error), Some(task)) = (&result, task) {
        tracing::warn!(%error, attempt, "job failed; will retry after a backoff");
        retry_later(db, &task.to_string(), attempt, base).await?;
    }
    result
}

/// Puts the running job `task_id` back to pending, to run again after `delay`, without
/// counting an attempt: for work that must wait (its tenant is suspended). The handler then
/// returns success; apalis's acknowledgement matches only jobs still locked by the worker, so
/// it leaves this one pending.
pub async fn defer(
    db: &Database,
    task_id: &str,
    delay: std::time::Duration,
) -> Result<(), JobError> {
    sqlx::query(
        "update apalis.jobs set status = 'Pending', lock_by = null, lock_at = null,
                run_at = now() + make_interval(secs => $2)
         where id = $1",
    )
    .bind(task_id)
    .bind(delay.as_secs_f64())
    .execute(db.infrastructure_pool())
    .await
    .map_err(|e| JobError::Queue(e.into()))?;
    Ok(())
}
