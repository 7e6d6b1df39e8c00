//! Background jobs in the admin API: queue depths, dead-lettered jobs with their last error,
//! and the audited retry or discard of one.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use tenantkit_jobs::dead_letters::{self, DeadJob, QueueDepth};
use tenantkit_platform::dead_jobs::{self, Decision};
use uuid::Uuid;

use super::{Done, ReasonBody, reading, reason};
use crate::{
    ApiError, AppState,
    api::{ApiTags, caller::Caller},
};

pub(crate) struct AdminJobsApi;

#[derive(Object)]
struct QueueView {
    queue: String,
    /// Waiting to run (pending, or failed with attempts left).
    waiting: i64,
    running: i64,
    dead: i64,
}

impl From<QueueDepth> for QueueView {
    fn from(depth: QueueDepth) -> Self {
        Self {
            queue: depth.queue,
            waiting: depth.waiting,
            running: depth.running,
            dead: depth.dead,
        }
    }
}

#[derive(Object)]
struct DeadJobView {
    id: String,
    queue: String,
    attempts: i32,
    max_attempts: i32,
    /// The last error the job reported.
    #[oai(skip_serializing_if_is_none)]
    error: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    tenant_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    failed_at: Option<DateTime<Utc>>,
}

impl From<DeadJob> for DeadJobView {
    fn from(job: DeadJob) -> Self {
        Self {
            id: job.id,
            queue: job.queue,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            error: job.error,
            tenant_id: job.tenant_id,
            failed_at: job.failed_at,
        }
    }
}

#[derive(Object)]
struct JobsView {
    queues: Vec<QueueView>,
    /// The most recent dead-lettered jobs (at most 200).
    dead_jobs: Vec<DeadJobView>,
}

#[derive(ApiResponse)]
enum JobsResponse {
    #[oai(status = 200)]
    Ok(Json<JobsView>),
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    job_id: &str,
    decision: Decision,
    body: &ReasonBody,
) -> Result<Done, ApiError> {
    let admin = caller.platform_admin()?;
    let reason = reason(&body.reason)?;
    dead_jobs::decide(&state.db, admin, job_id, decision, &reason).await?;
    Ok(Done::NoContent)
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminJobsApi {
    /// Each queue's depth and the dead-lettered jobs.
    #[oai(path = "/admin/jobs", method = "get")]
    async fn jobs(&self, state: Data<&AppState>, caller: Caller) -> Result<JobsResponse, ApiError> {
        let admin = caller.platform_admin()?;
        let mut tx = state.db.platform(admin.id(), reading("jobs")).await?;
        let queues = dead_letters::depth_by_queue(tx.conn())
            .await
            .map_err(|error| ApiError::internal(&error))?;
        let dead = dead_letters::list(tx.conn(), None, None, 200)
            .await
            .map_err(|error| ApiError::internal(&error))?;
        tx.commit().await?;
        Ok(JobsResponse::Ok(Json(JobsView {
            queues: queues.into_iter().map(Into::into).collect(),
            dead_jobs: dead.into_iter().map(Into::into).collect(),
        })))
    }

    /// Run a dead-lettered job again (its attempts start over).
    #[oai(path = "/admin/jobs/:job_id/retry", method = "post")]
    async fn retry(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        #[oai(validator(max_length = 100))] job_id: Path<String>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        decide(&state, &caller, &job_id.0, Decision::Retry, &body.0).await
    }

    /// Drop a dead-lettered job for good.
    #[oai(path = "/admin/jobs/:job_id/discard", method = "post")]
    async fn discard(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        #[oai(validator(max_length = 100))] job_id: Path<String>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        decide(&state, &caller, &job_id.0, Decision::Discard, &body.0).await
    }
}
