//! What billing reads and writes of the tenant itself: its plan and overrides, its members
//! and owners, its audit trail; and the platform admins it tells about restricted tenants.

use serde_json::Value;
use tenantkit_db::{DbError, PgConnection, TenantTx};
use tenantkit_kernel::{AuditEventId, UserId};

pub(crate) struct TenantRow {
    pub name: String,
    pub status: String,
    pub plan: String,
    pub entitlement_overrides: Value,
}

pub(crate) async fn find(tx: &mut TenantTx) -> Result<Option<TenantRow>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        TenantRow,
        "select name, status, plan, entitlement_overrides from tenants where id = $1",
        tenant.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// Puts the tenant on `plan`; returns the plan it was on.
pub(crate) async fn set_plan(tx: &mut TenantTx, plan: &str) -> Result<Option<String>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_scalar!(
        "update tenants t set plan = $2 from tenants old
         where t.id = $1 and old.id = t.id returning old.plan",
        tenant.as_uuid(),
        plan
    )
    .fetch_optional(tx.conn())
    .await?)
}

pub(crate) async fn member_count(tx: &mut TenantTx) -> Result<u64, DbError> {
    let tenant = tx.tenant_id();
    let count = sqlx::query_scalar!(
        r#"select count(*) as "count!" from memberships where tenant_id = $1"#,
        tenant.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) struct Recipient {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
}

/// The tenant's owners, who hear about its payments.
pub(crate) async fn owners(tx: &mut TenantTx) -> Result<Vec<Recipient>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        Recipient,
        r#"select u.id as "user_id: UserId", u.email, u.display_name
           from memberships m join users u on u.id = m.user_id
           where m.tenant_id = $1 and m.role = 'owner' and u.locked_at is null
           order by m.created_at"#,
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Platform admins (a global table), told when a tenant becomes read-only.
pub(crate) async fn platform_admins(conn: &mut PgConnection) -> Result<Vec<Recipient>, DbError> {
    Ok(sqlx::query_as!(
        Recipient,
        r#"select id as "user_id: UserId", email, display_name from users
           where is_platform_admin and locked_at is null order by created_at"#
    )
    .fetch_all(conn)
    .await?)
}

/// An entry in the tenant's audit trail; billing acts on Stripe's word, so no user is the actor.
pub(crate) async fn audit(tx: &mut TenantTx, action: &str, detail: Value) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into tenant_audit_events (tenant_id, id, actor_user_id, action, detail)
         values ($1, $2, null, $3, $4)",
        tenant.as_uuid(),
        AuditEventId::new().as_uuid(),
        action,
        detail
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
