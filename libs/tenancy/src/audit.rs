//! The tenant's audit trail: append-only (the application role may only insert and read).

use serde_json::Value;
use tenantkit_db::{DbError, TenantTx};
use tenantkit_kernel::{AuditEventId, UserId};

use crate::team::{Actor, Principal};

pub async fn record(
    tx: &mut TenantTx,
    actor: Option<UserId>,
    action: &str,
    detail: Value,
) -> Result<AuditEventId, DbError> {
    let id = AuditEventId::new();
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into tenant_audit_events (tenant_id, id, actor_user_id, action, detail)
         values ($1, $2, $3, $4, $5)",
        tenant.as_uuid(),
        id.as_uuid(),
        actor.map(|a| a.as_uuid()),
        action,
        detail
    )
    .execute(tx.conn())
    .await?;
    Ok(id)
}

/// Records what `actor` did; a key's id goes into the detail, as keys are not users.
pub async fn record_by(
    tx: &mut TenantTx,
    actor: Actor,
    action: &str,
    mut detail: Value,
) -> Result<AuditEventId, DbError> {
    if let (Principal::ApiKey(key), Value::Object(fields)) = (actor.principal, &mut detail) {
        fields.insert("api_key_id".to_owned(), Value::String(key.to_string()));
    }
    record(tx, actor.user(), action, detail).await
}
