//! SQL for tenants and memberships. Row level security scopes every statement to the
//! transaction's tenant; the explicit `tenant_id` values only satisfy the `with check` policies.

use tenantkit_db::{DbError, PlatformTx, TenantTx};
use tenantkit_kernel::{Role, TenantId, UserId};

use crate::{Membership, Tenant, TenantName, TenantSlug, TenantStatus};

/// Creates the transaction's tenant; `false` when the address is already taken (by a tenant
/// this transaction cannot see). `do nothing` keeps the transaction usable for another try.
pub async fn insert_tenant(
    tx: &mut TenantTx,
    slug: &TenantSlug,
    name: &TenantName,
) -> Result<bool, DbError> {
    let id = tx.tenant_id();
    let inserted = sqlx::query!(
        "insert into tenants (id, slug, name) values ($1, $2, $3) on conflict (slug) do nothing",
        id.as_uuid(),
        slug.as_str(),
        name.as_str()
    )
    .execute(tx.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The columns every `Tenant` is read with, typed at the query.
macro_rules! select_tenants {
    ($rest:tt $(, $arg:expr)*) => {
        sqlx::query_as!(
            Tenant,
            r#"select id as "id: TenantId", slug, name, status as "status: TenantStatus", created_at from tenants "#
                + $rest
            $(, $arg)*
        )
    };
}

/// The transaction's own tenant (row level security shows no other).
pub async fn current_tenant(tx: &mut TenantTx) -> Result<Option<Tenant>, DbError> {
    Ok(select_tenants!("").fetch_optional(tx.conn()).await?)
}

pub async fn add_member(tx: &mut TenantTx, user: UserId, role: Role) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into memberships (tenant_id, user_id, role) values ($1, $2, $3)",
        tenant.as_uuid(),
        user.as_uuid(),
        role.as_str()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn members(tx: &mut TenantTx) -> Result<Vec<Membership>, DbError> {
    Ok(sqlx::query_as!(
        Membership,
        r#"select tenant_id as "tenant_id: TenantId", user_id as "user_id: UserId", role as "role: Role"
           from memberships order by created_at"#
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Every tenant, newest first: the platform admin's cross-tenant read (audited by `PlatformTx`).
pub async fn all_tenants(tx: &mut PlatformTx, limit: i64) -> Result<Vec<Tenant>, DbError> {
    Ok(select_tenants!("order by id desc limit $1", limit)
        .fetch_all(tx.conn())
        .await?)
}
