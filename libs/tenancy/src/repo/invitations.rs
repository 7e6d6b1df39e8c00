//! SQL for invitations (tenant-owned: every statement names the transaction's tenant on top
//! of row level security; see the `repo` module).

use chrono::{DateTime, Utc};
use tenantkit_db::{DbError, TenantTx};
use tenantkit_kernel::{InvitationId, Role, TenantId, UserId};

use crate::{Invitation, InvitationStatus, TenantStatus};

macro_rules! select_invitations {
    ($rest:tt $(, $arg:expr)*) => {
        sqlx::query_as!(
            Invitation,
            r#"select tenant_id as "tenant_id: TenantId", id as "id: InvitationId", email,
                      role as "role: Role", invited_by as "invited_by: UserId",
                      status as "status: InvitationStatus", expires_at, created_at
               from invitations "# + $rest
            $(, $arg)*
        )
    };
}

/// Creates a pending invitation; `None` when one is already pending for the address.
pub async fn insert(
    tx: &mut TenantTx,
    email: &str,
    role: Role,
    invited_by: Option<UserId>,
    expires_at: DateTime<Utc>,
) -> Result<Option<InvitationId>, DbError> {
    let id = InvitationId::new();
    let tenant = tx.tenant_id();
    let inserted = sqlx::query!(
        "insert into invitations (tenant_id, id, email, role, invited_by, expires_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (tenant_id, lower(email)) where status = 'pending' do nothing",
        tenant.as_uuid(),
        id.as_uuid(),
        email,
        role.as_str(),
        invited_by.map(|u| u.as_uuid()),
        expires_at
    )
    .execute(tx.conn())
    .await?;
    Ok((inserted.rows_affected() == 1).then_some(id))
}

pub async fn pending_for_email(
    tx: &mut TenantTx,
    email: &str,
) -> Result<Option<Invitation>, DbError> {
    let tenant = tx.tenant_id();
    Ok(select_invitations!(
        "where tenant_id = $1 and status = 'pending' and lower(email) = lower($2)",
        tenant.as_uuid(),
        email
    )
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn find(tx: &mut TenantTx, id: InvitationId) -> Result<Option<Invitation>, DbError> {
    let tenant = tx.tenant_id();
    Ok(select_invitations!(
        "where tenant_id = $1 and id = $2",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// An invitation with what its email says about it: the organisation (name and status) and
/// the inviter's display name (`None` when nobody or an account since deleted invited).
pub struct InvitationToSend {
    pub invitation: Invitation,
    pub organisation: String,
    pub tenant_status: TenantStatus,
    pub inviter_name: Option<String>,
}

/// [`find`] with the tenant and the inviter, in one statement: the email job runs it for every
/// invitation email, and three lookups were half of each email's round trips.
pub async fn find_to_send(
    tx: &mut TenantTx,
    id: InvitationId,
) -> Result<Option<InvitationToSend>, DbError> {
    let tenant = tx.tenant_id();
    let row = sqlx::query!(
        r#"select i.tenant_id as "tenant_id: TenantId", i.id as "id: InvitationId", i.email,
                  i.role as "role: Role", i.invited_by as "invited_by: UserId",
                  i.status as "status: InvitationStatus", i.expires_at, i.created_at,
                  t.name as organisation, t.status as "tenant_status: TenantStatus",
                  u.display_name as "inviter_name?"
           from invitations i
           join tenants t on t.id = i.tenant_id
           left join users u on u.id = i.invited_by
           where i.tenant_id = $1 and i.id = $2 and t.id = $1"#,
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|row| InvitationToSend {
        invitation: Invitation {
            tenant_id: row.tenant_id,
            id: row.id,
            email: row.email,
            role: row.role,
            invited_by: row.invited_by,
            status: row.status,
            expires_at: row.expires_at,
            created_at: row.created_at,
        },
        organisation: row.organisation,
        tenant_status: row.tenant_status,
        inviter_name: row.inviter_name,
    }))
}

/// Locks the invitation for the rest of the transaction (accepting it twice at once must not
/// create two memberships).
pub async fn find_for_update(
    tx: &mut TenantTx,
    id: InvitationId,
) -> Result<Option<Invitation>, DbError> {
    let tenant = tx.tenant_id();
    Ok(select_invitations!(
        "where tenant_id = $1 and id = $2 for update",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

pub async fn pending(tx: &mut TenantTx) -> Result<Vec<Invitation>, DbError> {
    let tenant = tx.tenant_id();
    Ok(select_invitations!(
        "where tenant_id = $1 and status = 'pending' order by created_at desc",
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// A resent invitation gets a fresh expiry.
pub async fn extend(
    tx: &mut TenantTx,
    id: InvitationId,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let done = sqlx::query!(
        "update invitations set expires_at = $3
         where tenant_id = $1 and id = $2 and status = 'pending'",
        tenant.as_uuid(),
        id.as_uuid(),
        expires_at
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke(tx: &mut TenantTx, id: InvitationId) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let done = sqlx::query!(
        "update invitations set status = 'revoked'
         where tenant_id = $1 and id = $2 and status = 'pending'",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn mark_accepted(
    tx: &mut TenantTx,
    id: InvitationId,
    user: UserId,
) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let done = sqlx::query!(
        "update invitations set status = 'accepted', accepted_by = $3
         where tenant_id = $1 and id = $2 and status = 'pending'",
        tenant.as_uuid(),
        id.as_uuid(),
        user.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}
