//! What a platform admin sees of the queue: depth per queue, and the jobs that gave up
//! (dead letters) with their last error, to retry or discard. Runtime-checked SQL: the
//! `apalis` schema belongs to apalis's migrations, not ours.

use chrono::{DateTime, Utc};
use tenantkit_db::PgConnection;

use crate::JobError;

/// Jobs that will not run again by themselves: out of attempts, or killed. (Macros, not
/// constants: sqlx takes only static SQL, and `concat!` needs literals.)
macro_rules! dead {
    () => {
        "(status = 'Killed' or (status = 'Failed' and attempts >= max_attempts))"
    };
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct QueueDepth {
    pub queue: String,
    /// Waiting to run (pending, or failed with attempts left).
    pub waiting: i64,
    pub running: i64,
    pub dead: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeadJob {
    pub id: String,
    pub queue: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The last error the handler reported.
    pub error: Option<String>,
    pub tenant_id: Option<uuid::Uuid>,
    pub failed_at: Option<DateTime<Utc>>,
}

fn queue_error(error: sqlx::Error) -> JobError {
    JobError::Queue(error.into())
}

pub async fn depth_by_queue(conn: &mut PgConnection) -> Result<Vec<QueueDepth>, JobError> {
    sqlx::query_as(concat!(
        "select job_type as queue,
                count(*) filter (where status = 'Pending'
                                 or (status = 'Failed' and attempts < max_attempts)) as waiting,
                count(*) filter (where status in ('Queued', 'Running')) as running,
                count(*) filter (where ",
        dead!(),
        ") as dead
         from apalis.jobs group by job_type order by job_type"
    ))
    .fetch_all(conn)
    .await
    .map_err(queue_error)
}

/// The tenant is read from the payload as text, never parsed: a dead job may be dead because its
/// payload is not JSON, or not even UTF-8 (`convert_from` would fail the whole listing). The
/// `escape` encoding turns such bytes into `\nnn`; job payloads are flat JSON of ids.
macro_rules! dead_job_columns {
    () => {
        "id, job_type as queue, attempts, max_attempts,
         coalesce(last_result ->> 'Err', last_result::text) as error,
         substring(encode(job, 'escape') from
             '\"tenant_id\"\\s*:\\s*\"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-\
              [0-9a-fA-F]{4}-[0-9a-fA-F]{12})\"'
         )::uuid as tenant_id,
         done_at as failed_at"
    };
}

/// Dead jobs, most recent first; `tenant` keeps one tenant's, `queue_prefix` some queues'.
pub async fn list(
    conn: &mut PgConnection,
    tenant: Option<uuid::Uuid>,
    queue_prefix: Option<&str>,
    limit: i64,
) -> Result<Vec<DeadJob>, JobError> {
    sqlx::query_as(concat!(
        "select * from (select ",
        dead_job_columns!(),
        " from apalis.jobs where ",
        dead!(),
        ") dead
         where ($1::uuid is null or tenant_id = $1)
           and ($2::text is null or starts_with(queue, $2))
         order by failed_at desc nulls last, id desc limit $3"
    ))
    .bind(tenant)
    .bind(queue_prefix)
    .bind(limit)
    .fetch_all(conn)
    .await
    .map_err(queue_error)
}

pub async fn find(conn: &mut PgConnection, id: &str) -> Result<Option<DeadJob>, JobError> {
    sqlx::query_as(concat!(
        "select ",
        dead_job_columns!(),
        " from apalis.jobs where id = $1 and ",
        dead!(),
        " for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(queue_error)
}

/// Gives a dead job a fresh set of attempts, due now. `false` when it is not dead (any more).
pub async fn retry(conn: &mut PgConnection, id: &str) -> Result<bool, JobError> {
    let done = sqlx::query(concat!(
        "update apalis.jobs set status = 'Pending', attempts = 0, run_at = now(),
                lock_by = null, lock_at = null, done_at = null
         where id = $1 and ",
        dead!()
    ))
    .bind(id)
    .execute(conn)
    .await
    .map_err(queue_error)?;
    Ok(done.rows_affected() == 1)
}

/// Removes a dead job for good. `false` when it is not dead (any more).
pub async fn discard(conn: &mut PgConnection, id: &str) -> Result<bool, JobError> {
    let done = sqlx::query(concat!(
        "delete from apalis.jobs where id = $1 and ",
        dead!()
    ))
    .bind(id)
    .execute(conn)
    .await
    .map_err(queue_error)?;
    Ok(done.rows_affected() == 1)
}

/// Email jobs that failed at least once in the last `days` days (delivery failures), and how
/// many of them are dead.
pub async fn email_failures(conn: &mut PgConnection, days: i32) -> Result<(i64, i64), JobError> {
    sqlx::query_as(concat!(
        "select count(*) filter (where status = 'Failed' or status = 'Killed'),
                count(*) filter (where ",
        dead!(),
        ")
         from apalis.jobs
         where starts_with(job_type, 'email.') and run_at > now() - make_interval(days => $1)"
    ))
    .bind(days)
    .fetch_one(conn)
    .await
    .map_err(queue_error)
}
