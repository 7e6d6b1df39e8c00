//! Purging a soft-deleted tenant after its retention period: a job scheduled by the deletion.
//! The tenant's data goes (members, invitations, API keys, the email ledger); the tenant row
//! stays, renamed and marked purged, so the audit trail keeps pointing at something.

use apalis::prelude::{Attempt, BoxDynError, Data, TaskId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenantkit_db::Database;
use tenantkit_jobs::Job;
use tenantkit_kernel::{AuditEventId, TenantId};
use tenantkit_storage::jobs::PurgeTenantFiles;
use tenantkit_tenancy::TenantStatus;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PurgeTenant {
    pub tenant_id: TenantId,
    /// The deletion this purge belongs to: a tenant restored and deleted again gets a new one.
    pub purge_after: DateTime<Utc>,
}

impl PurgeTenant {
    pub fn new(tenant_id: TenantId, purge_after: DateTime<Utc>) -> Self {
        Self {
            tenant_id,
            purge_after,
        }
    }
}

impl Job for PurgeTenant {
    const QUEUE: &'static str = "tenant.purge";

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    fn idempotency_key(&self) -> String {
        format!(
            "purge:{}:{}",
            self.tenant_id,
            self.purge_after.timestamp_micros()
        )
    }
}

/// What a purge found.
#[derive(Debug, PartialEq, Eq)]
pub enum Purged {
    Done,
    /// Restored (or already purged) meanwhile: nothing to do.
    NotDeleted,
    /// Not due yet (the job ran early, say after a clock change): it waits.
    NotDue(DateTime<Utc>),
}

pub async fn purge(db: &Database, tenant: TenantId) -> Result<Purged, crate::PlatformError> {
    let mut tx = db.tenant(tenant).await?;
    let Some(row) = sqlx::query!(
        r#"select status as "status: TenantStatus", purge_after from tenants where id = $1
           for update"#,
        tenant.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    else {
        return Ok(Purged::NotDeleted);
    };
    if row.status != TenantStatus::Deleted {
        return Ok(Purged::NotDeleted);
    }
    if let Some(due) = row.purge_after.filter(|due| *due > Utc::now()) {
        return Ok(Purged::NotDue(due));
    }
    let id = tenant.as_uuid();
    let members = sqlx::query!("delete from memberships where tenant_id = $1", id)
        .execute(tx.conn())
        .await?
        .rows_affected();
    sqlx::query!("delete from invitations where tenant_id = $1", id)
        .execute(tx.conn())
        .await?;
    sqlx::query!("delete from api_keys where tenant_id = $1", id)
        .execute(tx.conn())
        .await?;
    sqlx::query!("delete from sent_emails where tenant_id = $1", id)
        .execute(tx.conn())
        .await?;
    // Billing's copies of Stripe's objects (Stripe keeps its own; the deletion queued the
    // cancellation of any live subscription).
    sqlx::query!("delete from billing_invoices where tenant_id = $1", id)
        .execute(tx.conn())
        .await?;
    sqlx::query!("delete from billing_subscriptions where tenant_id = $1", id)
        .execute(tx.conn())
        .await?;
    sqlx::query!("delete from billing_accounts where tenant_id = $1", id)
        .execute(tx.conn())
        .await?;
    sqlx::query!(
        "update tenants set status = 'purged', name = 'Purged organisation',
                slug = 'purged-' || replace(id::text, '-', ''), entitlement_overrides = '{}',
                status_reason = null
         where id = $1",
        id
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!(
        "insert into tenant_audit_events (tenant_id, id, action, detail)
         values ($1, $2, 'tenant.purged', $3)",
        id,
        AuditEventId::new().as_uuid(),
        json!({ "members_removed": members })
    )
    .execute(tx.conn())
    .await?;
    // The files go by a job of their own: deleting objects can take long and must be retried
    // alone; queued in this transaction, it happens exactly when the purge does.
    tenantkit_jobs::enqueue(&mut tx, &PurgeTenantFiles { tenant_id: tenant }).await?;
    tx.commit().await?;
    Ok(Purged::Done)
}

#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id))]
pub async fn run_purge(
    job: PurgeTenant,
    db: Data<Database>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = match purge(&db, job.tenant_id).await {
        Ok(Purged::NotDue(due)) => match &task {
            Some(task) => {
                let wait = (due - Utc::now()).to_std().unwrap_or_default();
                tenantkit_jobs::defer(&db, &task.to_string(), wait)
                    .await
                    .map_err(BoxDynError::from)
            }
            None => Err("a purge that is not due has no task id to defer".into()),
        },
        Ok(outcome) => {
            tracing::info!(?outcome, "tenant purge");
            Ok(())
        }
        Err(error) => Err(BoxDynError::from(error)),
    };
    tenantkit_jobs::back_off_on_failure(
        &db,
        task,
        attempt.current(),
        std::time::Duration::from_secs(60),
        result,
    )
    .await
}
