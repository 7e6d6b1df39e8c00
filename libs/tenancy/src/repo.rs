//! SQL for tenants and memberships. Row level security scopes every statement to the
//! transaction's tenant; the explicit `tenant_id` values only satisfy the `with check` policies.

use tenantkit_db::{DbError, PlatformTx, TenantTx};
use tenantkit_kernel::{Role, UserId};

use crate::{Membership, TenancyError, Tenant, TenantName, TenantSlug, TenantStatus};

pub async fn insert_tenant(
    tx: &mut TenantTx,
    slug: &TenantSlug,
    name: &TenantName,
) -> Result<(), TenancyError> {
    let id = tx.tenant_id();
    sqlx::query!(
        "insert into tenants (id, slug, name) values ($1, $2, $3)",
        id.as_uuid(),
        slug.as_str(),
        name.as_str()
    )
    .execute(tx.conn())
    .await
    .map_err(|e| match DbError::from(e) {
        DbError::UniqueViolation(c) if c == "tenants_slug_key" => {
            TenancyError::SlugTaken(slug.as_str().to_owned())
        }
        other => TenancyError::Db(other),
    })?;
    Ok(())
}

/// The transaction's own tenant.
pub async fn current_tenant(tx: &mut TenantTx) -> Result<Option<Tenant>, DbError> {
    let row = sqlx::query!("select id, slug, name, status, created_at from tenants")
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.map(|r| Tenant {
        id: tenantkit_kernel::TenantId::from_uuid(r.id),
        slug: r.slug,
        name: r.name,
        status: TenantStatus::from_db(&r.status),
        created_at: r.created_at,
    }))
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
    let rows = sqlx::query!("select tenant_id, user_id, role from memberships order by created_at")
        .fetch_all(tx.conn())
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Membership {
                tenant_id: tenantkit_kernel::TenantId::from_uuid(r.tenant_id),
                user_id: UserId::from_uuid(r.user_id),
                role: r.role.parse().map_err(|e: tenantkit_kernel::UnknownRole| {
                    DbError::Other(sqlx::Error::Decode(e.into()))
                })?,
            })
        })
        .collect()
}

/// Every tenant, newest first: the platform admin's cross-tenant read (audited by `PlatformTx`).
pub async fn all_tenants(tx: &mut PlatformTx, limit: i64) -> Result<Vec<Tenant>, DbError> {
    let rows = sqlx::query!(
        "select id, slug, name, status, created_at from tenants order by id desc limit $1",
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Tenant {
            id: tenantkit_kernel::TenantId::from_uuid(r.id),
            slug: r.slug,
            name: r.name,
            status: TenantStatus::from_db(&r.status),
            created_at: r.created_at,
        })
        .collect())
}
