//! SQL for tenants and memberships.
//!
//! Every statement on a tenant-owned table names its tenant (`tenant_id = $n` bound from
//! `tx.tenant_id()`, or `id = $n` on `tenants`) on top of row level security. The policies on
//! those tables are OR-ed (`tenant_isolation`, `platform_read`, `member_self_read`), which
//! PostgreSQL can only apply as a filter, never as an index condition, and every primary key
//! leads with `tenant_id`: a statement that leaves its tenant to row level security alone scans
//! the rows of every tenant. Row level security stays the guarantee (defense in depth); the
//! predicate is what lets the planner use the index. A statement that crosses tenants on purpose
//! says so in its text with a `-- cross-tenant:` comment and the reason
//! (`tests/tests/tenant_scoped_queries.rs` enforces both).

use tenantkit_db::{DbError, PlatformTx, TenantTx, UserTx};
use tenantkit_kernel::{Role, TenantId, UserId};

use crate::{Member, Membership, Tenant, TenantName, TenantSlug, TenantStatus, UserTenant};

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

/// The transaction's own tenant (row level security shows no other). The id is named as well:
/// the policies on `tenants` are OR-ed (tenant, member, platform), which the planner can only
/// apply as a filter, so without it every call scanned the whole table (123 ms at 100,000
/// tenants, on every API call of the time).
pub async fn current_tenant(tx: &mut TenantTx) -> Result<Option<Tenant>, DbError> {
    let id = tx.tenant_id();
    Ok(select_tenants!("where id = $1", id.as_uuid())
        .fetch_optional(tx.conn())
        .await?)
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
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        Membership,
        r#"select tenant_id as "tenant_id: TenantId", user_id as "user_id: UserId", role as "role: Role"
           from memberships where tenant_id = $1 order by created_at"#,
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Every tenant, newest first: the platform admin's cross-tenant read (audited by `PlatformTx`).
pub async fn all_tenants(tx: &mut PlatformTx, limit: i64) -> Result<Vec<Tenant>, DbError> {
    Ok(select_tenants!(
        "-- cross-tenant: every tenant, for a platform admin (platform_read)
         order by id desc limit $1",
        limit
    )
    .fetch_all(tx.conn())
    .await?)
}

pub mod api_keys;
pub mod invitations;

/// The user's role in the transaction's tenant, if they belong to it.
pub async fn role_of(tx: &mut TenantTx, user: UserId) -> Result<Option<Role>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_scalar!(
        r#"select role as "role: Role" from memberships where tenant_id = $1 and user_id = $2"#,
        tenant.as_uuid(),
        user.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// Members with their names, owners first. `users` is global; the join is scoped by the
/// tenant's memberships.
pub async fn members_with_users(tx: &mut TenantTx) -> Result<Vec<Member>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        Member,
        r#"select m.user_id as "user_id: UserId", u.email, u.display_name, m.role as "role: Role",
                  m.created_at as joined_at
           from memberships m join users u on u.id = m.user_id
           where m.tenant_id = $1
           order by case m.role when 'owner' then 0 when 'admin' then 1 else 2 end, m.created_at"#,
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Locks the tenant's owner rows and counts them: changes that could remove the last owner
/// run after this, so two concurrent "remove an owner" requests cannot both pass.
pub async fn lock_owner_count(tx: &mut TenantTx) -> Result<i64, DbError> {
    let tenant = tx.tenant_id();
    let owners = sqlx::query_scalar!(
        "select user_id from memberships where tenant_id = $1 and role = 'owner' for update",
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(owners.len() as i64)
}

pub async fn set_role(tx: &mut TenantTx, user: UserId, role: Role) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let done = sqlx::query!(
        "update memberships set role = $3 where tenant_id = $1 and user_id = $2",
        tenant.as_uuid(),
        user.as_uuid(),
        role.as_str()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(tx: &mut TenantTx, user: UserId) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let done = sqlx::query!(
        "delete from memberships where tenant_id = $1 and user_id = $2",
        tenant.as_uuid(),
        user.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Members plus open invitations: the seats taken. Locks the tenant row first, in a statement
/// of its own: a statement's snapshot is taken when it starts, so counting in the locking
/// statement would count what was there before the previous holder committed.
pub async fn lock_seats_taken(tx: &mut TenantTx) -> Result<i64, DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "select id from tenants where id = $1 for no key update",
        tenant.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?;
    Ok(sqlx::query_scalar!(
        r#"select (select count(*) from memberships where tenant_id = $1)
                + (select count(*) from invitations
                    where tenant_id = $1 and status = 'pending' and expires_at > now()) as "taken!""#,
        tenant.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?)
}

pub async fn member_count(tx: &mut TenantTx) -> Result<i64, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_scalar!(
        "select count(*) from memberships where tenant_id = $1",
        tenant.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?
    .unwrap_or(0))
}

/// The user's tenants and roles, oldest membership first (through the `member_self_read`
/// policies: only their own).
pub async fn tenants_of_user(tx: &mut UserTx) -> Result<Vec<UserTenant>, DbError> {
    let user = tx.user_id();
    Ok(sqlx::query_as!(
        UserTenant,
        r#"-- cross-tenant: the user's own memberships (member_self_read), by memberships_user_idx
           select t.id as "id: TenantId", t.slug, t.name, t.status as "status: TenantStatus",
                  m.role as "role: Role"
           from memberships m join tenants t on t.id = m.tenant_id
           where m.user_id = $1
           order by m.created_at"#,
        user.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}
