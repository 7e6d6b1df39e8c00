//! One tenant as an admin sees it: profile, members, invitations, plan, usage, recent audit
//! events and emails. Read through the audited platform path.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantkit_db::PlatformTx;
use tenantkit_jobs::dead_letters::{self, DeadJob};
use tenantkit_kernel::{Role, TenantId, UserId};
use tenantkit_tenancy::{InvitationStatus, TenantStatus};

use crate::PlatformError;

#[derive(Clone, Debug, Serialize)]
pub struct TenantProfile {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub status: TenantStatus,
    pub status_reason: Option<String>,
    pub plan: String,
    pub entitlement_overrides: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub purge_after: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub locked: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct InvitationRow {
    pub email: String,
    pub role: Role,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EmailRow {
    pub recipient: String,
    pub template: String,
    pub sent_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Usage {
    pub seats: i64,
    pub api_keys: i64,
    pub pending_invitations: i64,
    /// Bytes of the tenant's stored files.
    pub storage_bytes: i64,
}

pub struct TenantView {
    pub profile: TenantProfile,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    pub usage: Usage,
    pub audit: Vec<crate::audit_log::AuditRow>,
    pub emails: Vec<EmailRow>,
    /// Emails (and other jobs) of this tenant that gave up.
    pub failed_jobs: Vec<DeadJob>,
}

pub async fn profile(
    tx: &mut PlatformTx,
    tenant: TenantId,
) -> Result<Option<TenantProfile>, PlatformError> {
    Ok(sqlx::query_as!(
        TenantProfile,
        r#"select id as "id: TenantId", slug, name, status as "status: TenantStatus",
                  status_reason, plan, entitlement_overrides, created_at, deleted_at, purge_after
           from tenants where id = $1"#,
        tenant.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn view(tx: &mut PlatformTx, tenant: TenantId) -> Result<TenantView, PlatformError> {
    let profile = profile(tx, tenant).await?.ok_or(PlatformError::NotFound)?;
    let id = tenant.as_uuid();
    let members = sqlx::query_as!(
        MemberRow,
        r#"select m.user_id as "user_id: UserId", u.email, u.display_name, m.role as "role: Role",
                  m.created_at as joined_at, u.locked_at is not null as "locked!"
           from memberships m join users u on u.id = m.user_id
           where m.tenant_id = $1
           order by case m.role when 'owner' then 0 when 'admin' then 1 else 2 end, m.created_at"#,
        id
    )
    .fetch_all(tx.conn())
    .await?;
    let invitations = sqlx::query_as!(
        InvitationRow,
        r#"select email, role as "role: Role", status as "status: InvitationStatus", expires_at
           from invitations where tenant_id = $1 order by created_at desc limit 50"#,
        id
    )
    .fetch_all(tx.conn())
    .await?;
    let usage = sqlx::query_as!(
        Usage,
        r#"select (select count(*) from memberships where tenant_id = $1) as "seats!",
                  (select count(*) from api_keys where tenant_id = $1 and revoked_at is null)
                      as "api_keys!",
                  (select count(*) from invitations where tenant_id = $1 and status = 'pending'
                      and expires_at > now()) as "pending_invitations!",
                  coalesce((select used_bytes from storage_usage where tenant_id = $1), 0)
                      as "storage_bytes!""#,
        id
    )
    .fetch_one(tx.conn())
    .await?;
    let emails = sqlx::query_as!(
        EmailRow,
        "select recipient, template, sent_at from sent_emails where tenant_id = $1
         order by sent_at desc limit 20",
        id
    )
    .fetch_all(tx.conn())
    .await?;
    let audit = crate::audit_log::recent_for_tenant(tx, tenant, 20).await?;
    let failed_jobs = dead_letters::list(tx.conn(), Some(id), None, 20).await?;
    Ok(TenantView {
        profile,
        members,
        invitations,
        usage,
        audit,
        emails,
        failed_jobs,
    })
}

/// Everything the tenant owns, as one JSON document: offered before a deletion (and to the
/// tenant's owners on request). API keys appear without their secrets (only hashes are kept).
pub async fn export(
    tx: &mut PlatformTx,
    tenant: TenantId,
) -> Result<serde_json::Value, PlatformError> {
    let view = view(tx, tenant).await?;
    let keys = sqlx::query!(
        "select id, name, role, created_at, revoked_at from api_keys where tenant_id = $1
         order by created_at",
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    let audit = crate::audit_log::recent_for_tenant(tx, tenant, 100_000).await?;
    Ok(serde_json::json!({
        "tenant": view.profile,
        "members": view.members,
        "invitations": view.invitations,
        "api_keys": keys.iter().map(|k| serde_json::json!({
            "id": k.id, "name": k.name, "role": k.role,
            "created_at": k.created_at, "revoked_at": k.revoked_at,
        })).collect::<Vec<_>>(),
        "emails_sent": view.emails,
        "audit_events": audit,
        "exported_at": Utc::now(),
    }))
}
