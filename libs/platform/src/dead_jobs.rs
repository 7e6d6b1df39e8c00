//! Dead-lettered jobs: an admin retries or discards them; each decision is audited in the
//! platform trail, in the same transaction as the change.

use serde_json::json;
use tenantkit_db::Database;
use tenantkit_jobs::dead_letters;
use tenantkit_kernel::AuditEventId;

use crate::{Admin, PlatformError, Reason};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Retry,
    Discard,
}

pub async fn decide(
    db: &Database,
    admin: Admin,
    job_id: &str,
    decision: Decision,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let mut tx = db.global().await?;
    admin.check(tx.conn()).await?;
    let job = dead_letters::find(tx.conn(), job_id)
        .await?
        .ok_or(PlatformError::NotFound)?;
    let (done, action) = match decision {
        Decision::Retry => (
            dead_letters::retry(tx.conn(), job_id).await?,
            "admin.job.retry",
        ),
        Decision::Discard => (
            dead_letters::discard(tx.conn(), job_id).await?,
            "admin.job.discard",
        ),
    };
    if !done {
        return Err(PlatformError::NotFound);
    }
    sqlx::query!(
        "insert into platform_audit_events
             (id, actor_user_id, action, reason, detail, subject_tenant_id)
         values ($1, $2, $3, $4, $5, $6)",
        AuditEventId::new().as_uuid(),
        admin.id().as_uuid(),
        action,
        reason.as_str(),
        json!({ "job_id": job.id, "queue": job.queue, "last_error": job.error }),
        job.tenant_id
    )
    .execute(tx.conn())
    .await?;
    Ok(tx.commit().await?)
}
