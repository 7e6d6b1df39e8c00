//! Users across tenants: search, one user's memberships, lock/unlock, forced password reset.
//! Ending sessions is the web layer's (sessions live in Redis); it records that here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tenantkit_accounts::{
    audit::{self, AccountEvent},
    emails::{AccountEmail, AccountEmailKind},
};
use tenantkit_db::{Database, GlobalTx, PlatformTx};
use tenantkit_kernel::{Role, TenantId, UserId};

use crate::{Admin, PlatformError, Reason};

#[derive(Clone, Debug, Serialize)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub is_platform_admin: bool,
    pub two_factor: bool,
    pub verified: bool,
    pub locked: bool,
    pub created_at: DateTime<Utc>,
    pub tenants: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserMembership {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub role: Role,
}

/// Users whose email starts with `text` or whose name contains it, by email; pages continue
/// after the last email shown.
pub async fn search(
    tx: &mut PlatformTx,
    text: Option<&str>,
    after_email: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, PlatformError> {
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(crate::directory::escape_like);
    Ok(sqlx::query_as!(
        UserRow,
        r#"-- cross-tenant: each user's memberships in every tenant, by memberships_user_idx
           select u.id as "id: UserId", u.email, u.display_name, u.is_platform_admin,
                  u.totp_enabled_at is not null as "two_factor!",
                  u.email_verified_at is not null as "verified!",
                  u.locked_at is not null as "locked!", u.created_at,
                  (select count(*) from memberships m where m.user_id = u.id) as "tenants!"
           from users u
           where ($1::text is null or lower(u.email) like lower($1) || '%'
                  or lower(u.display_name) like '%' || lower($1) || '%')
             and ($2::text is null or lower(u.email) > lower($2))
           order by lower(u.email) limit $3"#,
        text,
        after_email,
        limit.clamp(1, 200)
    )
    .fetch_all(tx.conn())
    .await?)
}

pub async fn find(
    tx: &mut PlatformTx,
    user: UserId,
) -> Result<(UserRow, Vec<UserMembership>), PlatformError> {
    let row = sqlx::query_as!(
        UserRow,
        r#"-- cross-tenant: the user's memberships in every tenant, by memberships_user_idx
           select u.id as "id: UserId", u.email, u.display_name, u.is_platform_admin,
                  u.totp_enabled_at is not null as "two_factor!",
                  u.email_verified_at is not null as "verified!",
                  u.locked_at is not null as "locked!", u.created_at,
                  (select count(*) from memberships m where m.user_id = u.id) as "tenants!"
           from users u where u.id = $1"#,
        user.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .ok_or(PlatformError::NotFound)?;
    let memberships = sqlx::query_as!(
        UserMembership,
        r#"-- cross-tenant: the user's memberships in every tenant, by memberships_user_idx
           select t.id as "tenant_id: TenantId", t.name as tenant_name, m.role as "role: Role"
           from memberships m join tenants t on t.id = m.tenant_id
           where m.user_id = $1 order by m.created_at"#,
        user.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok((row, memberships))
}

/// Opens the global transaction of a change by `admin` to `user`, refusing self-service
/// (an admin locking themself out) and unknown users.
async fn open(db: &Database, admin: Admin, user: UserId) -> Result<GlobalTx, PlatformError> {
    if admin.id() == user {
        return Err(PlatformError::Conflict(
            "Admins cannot do this to their own account.".to_owned(),
        ));
    }
    let mut tx = db.global().await?;
    admin.check(tx.conn()).await?;
    let exists = sqlx::query_scalar!(
        "select true from users where id = $1 for update",
        user.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?;
    exists.ok_or(PlatformError::NotFound)?;
    Ok(tx)
}

async fn record(
    tx: &mut GlobalTx,
    admin: Admin,
    user: UserId,
    action: &str,
    reason: &Reason,
    detail: serde_json::Value,
) -> Result<(), PlatformError> {
    audit::record(
        tx.conn(),
        AccountEvent {
            user: Some(user),
            actor: Some(admin.id()),
            action,
            reason: Some(reason.as_str()),
            detail,
            ip: None,
        },
    )
    .await?;
    Ok(())
}

/// Locks the account (sign-in is refused until unlocked; the caller ends its sessions).
pub async fn lock(
    db: &Database,
    admin: Admin,
    user: UserId,
    reason: &Reason,
) -> Result<(), PlatformError> {
    set_locked(db, admin, user, true, reason).await
}

pub async fn unlock(
    db: &Database,
    admin: Admin,
    user: UserId,
    reason: &Reason,
) -> Result<(), PlatformError> {
    set_locked(db, admin, user, false, reason).await
}

async fn set_locked(
    db: &Database,
    admin: Admin,
    user: UserId,
    locked: bool,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let mut tx = open(db, admin, user).await?;
    let changed = sqlx::query!(
        "update users set locked_at = case when $2 then now() end
         where id = $1 and (locked_at is not null) <> $2",
        user.as_uuid(),
        locked
    )
    .execute(tx.conn())
    .await?;
    if changed.rows_affected() == 0 {
        let state = if locked {
            "already locked"
        } else {
            "not locked"
        };
        return Err(PlatformError::Conflict(format!("The user is {state}.")));
    }
    let action = if locked {
        "admin.user.lock"
    } else {
        "admin.user.unlock"
    };
    record(&mut tx, admin, user, action, reason, json!({})).await?;
    Ok(tx.commit().await?)
}

/// Removes the password (sign-in refuses until reset) and emails a reset link. The changed
/// hash also kills every link issued before. The caller ends the user's sessions.
pub async fn force_password_reset(
    db: &Database,
    admin: Admin,
    user: UserId,
    reason: &Reason,
) -> Result<(), PlatformError> {
    let mut tx = open(db, admin, user).await?;
    sqlx::query!(
        "update users set password_hash = null where id = $1",
        user.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    AccountEmail::new(user, AccountEmailKind::PasswordReset)
        .enqueue(tx.conn())
        .await?;
    record(
        &mut tx,
        admin,
        user,
        "admin.user.force_password_reset",
        reason,
        json!({}),
    )
    .await?;
    Ok(tx.commit().await?)
}

/// Records that `admin` ended `ended` of the user's sessions (done in the session store).
pub async fn record_sessions_ended(
    db: &Database,
    admin: Admin,
    user: UserId,
    reason: &Reason,
    ended: usize,
) -> Result<(), PlatformError> {
    let mut tx = open(db, admin, user).await?;
    record(
        &mut tx,
        admin,
        user,
        "admin.user.end_sessions",
        reason,
        json!({ "sessions_ended": ended }),
    )
    .await?;
    Ok(tx.commit().await?)
}
