//! What an admin does to a tenant. Each action runs in the tenant's own transaction: checks
//! the admin, locks the tenant row, refuses what does not apply to its current state, changes
//! it, and writes exactly one audit row (admin and reason) to the tenant's trail, all or
//! nothing.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tenantkit_db::{Database, TenantTx};
use tenantkit_kernel::{AuditEventId, TenantId};
use tenantkit_tenancy::TenantStatus;

use crate::{Admin, PlatformError, Reason, purge::PurgeTenant};

/// Opens the tenant for a change by `admin`: the admin is checked and the tenant row locked.
async fn open(
    db: &Database,
    admin: Admin,
    tenant: TenantId,
) -> Result<(TenantTx, TenantStatus), PlatformError> {
    let mut tx = db.tenant(tenant).await?;
    admin.check(tx.conn()).await?;
    let status = sqlx::query_scalar!(
        r#"select status as "status: TenantStatus" from tenants where id = $1 for update"#,
        tenant.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(PlatformError::NotFound)?;
    Ok((tx, status))
}

/// The audit row of an admin action, in the tenant's own trail.
async fn record(
    tx: &mut TenantTx,
    admin: Admin,
    action: &str,
    reason: &Reason,
    detail: Value,
) -> Result<(), PlatformError> {
    sqlx::query!(
        "insert into tenant_audit_events (tenant_id, id, actor_user_id, action, reason, detail)
         values ($1, $2, $3, $4, $5, $6)",
        tx.tenant_id().as_uuid(),
        AuditEventId::new().as_uuid(),
        admin.id().as_uuid(),
        action,
        reason.as_str(),
        detail
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// A suspended tenant's users see a page saying so, its API answers 403, its jobs wait.
pub async fn suspend(
    db: &Database,
    admin: Admin,
    tenant: TenantId,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let (mut tx, status) = open(db, admin, tenant).await?;
    if status != TenantStatus::Active {
        return Err(PlatformError::Conflict(format!(
            "Only an active tenant can be suspended; this one is {}.",
            status.as_str()
        )));
    }
    sqlx::query!(
        "update tenants set status = 'suspended', status_reason = $2 where id = $1",
        tenant.as_uuid(),
        reason.as_str()
    )
    .execute(tx.conn())
    .await?;
    record(&mut tx, admin, "admin.tenant.suspend", reason, json!({})).await?;
    Ok(tx.commit().await?)
}

/// Reactivates a suspended tenant, or restores a deleted one before it is purged.
pub async fn reactivate(
    db: &Database,
    admin: Admin,
    tenant: TenantId,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let (mut tx, status) = open(db, admin, tenant).await?;
    if !matches!(status, TenantStatus::Suspended | TenantStatus::Deleted) {
        return Err(PlatformError::Conflict(format!(
            "Only a suspended or deleted tenant can be reactivated; this one is {}.",
            status.as_str()
        )));
    }
    sqlx::query!(
        "update tenants set status = 'active', status_reason = null, deleted_at = null,
                purge_after = null
         where id = $1",
        tenant.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    record(
        &mut tx,
        admin,
        "admin.tenant.reactivate",
        reason,
        json!({ "from": status.as_str() }),
    )
    .await?;
    Ok(tx.commit().await?)
}

/// Puts the tenant on one of the configured plans.
pub async fn change_plan(
    db: &Database,
    admin: Admin,
    tenant: TenantId,
    plan: &str,
    known_plans: &[String],
    reason: &Reason,
) -> Result<(), PlatformError> {
    if !known_plans.iter().any(|p| p == plan) {
        return Err(PlatformError::invalid(
            "plan",
            format!("Choose one of: {}.", known_plans.join(", ")),
        ));
    }
    let (mut tx, status) = open(db, admin, tenant).await?;
    if status == TenantStatus::Purged {
        return Err(PlatformError::Conflict("The tenant was purged.".to_owned()));
    }
    let old = sqlx::query_scalar!(
        "update tenants t set plan = $2 from tenants old
         where t.id = $1 and old.id = t.id returning old.plan",
        tenant.as_uuid(),
        plan
    )
    .fetch_one(tx.conn())
    .await?;
    record(
        &mut tx,
        admin,
        "admin.tenant.plan",
        reason,
        json!({ "from": old, "to": plan }),
    )
    .await?;
    Ok(tx.commit().await?)
}

/// Entitlements an admin may override, whatever the plan says.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_requests_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl EntitlementOverrides {
    /// Parses the JSON an admin typed; unknown keys and odd feature names are refused.
    pub fn parse(text: &str) -> Result<Self, PlatformError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let overrides: Self = serde_json::from_str(text).map_err(|e| {
            PlatformError::invalid(
                "overrides",
                format!(
                    "Not valid overrides ({e}). Use keys seats, storage_bytes, \
                     api_requests_per_minute and features."
                ),
            )
        })?;
        let feature_ok = |f: &String| {
            !f.is_empty()
                && f.len() <= 40
                && f.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
        };
        if overrides.features.len() > 50 || !overrides.features.iter().all(feature_ok) {
            return Err(PlatformError::invalid(
                "overrides",
                "Features are up to 50 names of lowercase letters, digits, '_' or '-'.",
            ));
        }
        Ok(overrides)
    }
}

pub async fn override_entitlements(
    db: &Database,
    admin: Admin,
    tenant: TenantId,
    overrides: &EntitlementOverrides,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let (mut tx, status) = open(db, admin, tenant).await?;
    if status == TenantStatus::Purged {
        return Err(PlatformError::Conflict("The tenant was purged.".to_owned()));
    }
    let value = serde_json::to_value(overrides).expect("overrides serialise");
    sqlx::query!(
        "update tenants set entitlement_overrides = $2 where id = $1",
        tenant.as_uuid(),
        value
    )
    .execute(tx.conn())
    .await?;
    record(
        &mut tx,
        admin,
        "admin.tenant.entitlements",
        reason,
        json!({ "overrides": value }),
    )
    .await?;
    Ok(tx.commit().await?)
}

/// Soft delete: users are locked out at once and its subscriptions are canceled in Stripe
/// (by a job); the data stays `retention` long (export and restore remain possible), then a
/// scheduled job purges it.
pub async fn delete(
    db: &Database,
    admin: Admin,
    tenant: TenantId,
    retention: Duration,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let (mut tx, status) = open(db, admin, tenant).await?;
    if !matches!(status, TenantStatus::Active | TenantStatus::Suspended) {
        return Err(PlatformError::Conflict(format!(
            "This tenant is already {}.",
            status.as_str()
        )));
    }
    let purge_at = SystemTime::now() + retention;
    let purge_after = chrono::DateTime::<chrono::Utc>::from(purge_at);
    sqlx::query!(
        "update tenants set status = 'deleted', status_reason = $2, deleted_at = now(),
                purge_after = $3
         where id = $1",
        tenant.as_uuid(),
        reason.as_str(),
        purge_after
    )
    .execute(tx.conn())
    .await?;
    tenantkit_jobs::enqueue_at(&mut tx, &PurgeTenant::new(tenant, purge_after), purge_at).await?;
    // Locked out, so no longer billed: its subscriptions are canceled in Stripe now.
    let cancellations = tenantkit_billing::enqueue_cancellations(&mut tx).await?;
    record(
        &mut tx,
        admin,
        "admin.tenant.delete",
        reason,
        json!({ "purge_after": purge_after, "subscriptions_canceled": cancellations }),
    )
    .await?;
    Ok(tx.commit().await?)
}
