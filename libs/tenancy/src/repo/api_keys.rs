//! SQL for API keys (tenant-owned). Only a SHA-256 of each secret is stored.

use tenantkit_db::{DbError, TenantTx};
use tenantkit_kernel::{ApiKeyId, Role, UserId};

use crate::{ApiKey, TenantStatus};

pub async fn insert(
    tx: &mut TenantTx,
    id: ApiKeyId,
    name: &str,
    role: Role,
    secret_hash: &[u8],
    created_by: Option<UserId>,
) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into api_keys (tenant_id, id, name, role, secret_hash, created_by)
         values ($1, $2, $3, $4, $5, $6)",
        tenant.as_uuid(),
        id.as_uuid(),
        name,
        role.as_str(),
        secret_hash,
        created_by.map(|u| u.as_uuid())
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn list(tx: &mut TenantTx) -> Result<Vec<ApiKey>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        ApiKey,
        r#"select id as "id: ApiKeyId", name, role as "role: Role", created_by as "created_by: UserId",
                  created_at, last_used_at, revoked_at
           from api_keys where tenant_id = $1 order by created_at desc"#,
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// A live key as the request that presents it needs it.
pub struct LiveKey {
    pub role: Role,
    pub secret_hash: Vec<u8>,
    /// Its use was recorded less than a minute ago: [`touch`] would change nothing.
    pub recently_used: bool,
    /// Its organisation's status (`None`: no such row), read with it: every API request
    /// checks it, and a statement of its own was a round trip per request.
    pub tenant_status: Option<TenantStatus>,
}

/// A live (unrevoked) key. Runs on every API request: the tenant is named so the lookup is
/// one primary key probe, not a scan of every tenant's keys.
pub async fn live_key(tx: &mut TenantTx, id: ApiKeyId) -> Result<Option<LiveKey>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        LiveKey,
        r#"select k.role as "role: Role", k.secret_hash,
                  coalesce(k.last_used_at >= now() - interval '1 minute', false) as "recently_used!",
                  t.status as "tenant_status?: TenantStatus"
           from api_keys k
           left join tenants t on t.id = k.tenant_id and t.id = $1
           where k.tenant_id = $1 and k.id = $2 and k.revoked_at is null"#,
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// Records use at most once a minute per key: a write on every request would cost more than
/// the request.
pub async fn touch(tx: &mut TenantTx, id: ApiKeyId) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update api_keys set last_used_at = now()
         where tenant_id = $1 and id = $2
           and (last_used_at is null or last_used_at < now() - interval '1 minute')",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn revoke(tx: &mut TenantTx, id: ApiKeyId) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let done = sqlx::query!(
        "update api_keys set revoked_at = now()
         where tenant_id = $1 and id = $2 and revoked_at is null",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}
