//! SQL for users. Users are global, so these take a [`GlobalTx`] or a [`TenantTx`]'s connection.

use sqlx::PgConnection;
use tenantkit_db::DbError;
use tenantkit_kernel::UserId;

use crate::{AccountError, Credentials, Email, NewUser, User};

pub async fn insert(conn: &mut PgConnection, user: &NewUser) -> Result<(), AccountError> {
    sqlx::query!(
        "insert into users (id, email, display_name, password_hash, is_platform_admin)
         values ($1, $2, $3, $4, $5)",
        user.id.as_uuid(),
        user.email.as_str(),
        user.display_name.as_str(),
        user.password_hash,
        user.is_platform_admin
    )
    .execute(conn)
    .await
    .map_err(|e| match DbError::from(e) {
        DbError::UniqueViolation(c) if c == "users_email_key" => AccountError::EmailTaken,
        other => AccountError::Db(other),
    })?;
    Ok(())
}

/// The columns every `User` is read with; `id` is typed as `UserId` at the query.
macro_rules! select_users {
    ($filter:tt $(, $arg:expr)*) => {
        sqlx::query_as!(
            User,
            r#"select id as "id: UserId", email, display_name, is_platform_admin from users "# + $filter
            $(, $arg)*
        )
    };
}

pub async fn find(conn: &mut PgConnection, id: UserId) -> Result<Option<User>, DbError> {
    Ok(select_users!("where id = $1", id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

pub async fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>, DbError> {
    Ok(select_users!("where lower(email) = lower($1)", email)
        .fetch_optional(conn)
        .await?)
}

pub async fn list_platform_admins(conn: &mut PgConnection) -> Result<Vec<User>, DbError> {
    Ok(select_users!("where is_platform_admin order by created_at")
        .fetch_all(conn)
        .await?)
}

/// Everything sign-in and the account flows need about one user.
macro_rules! select_credentials {
    ($filter:tt $(, $arg:expr)*) => {
        sqlx::query_as!(
            Credentials,
            r#"select id as "id: UserId", email, display_name, password_hash, is_platform_admin,
                      email_verified_at, totp_secret, totp_enabled_at, totp_last_step, locked_at
               from users "# + $filter
            $(, $arg)*
        )
    };
}

pub async fn credentials(
    conn: &mut PgConnection,
    id: UserId,
) -> Result<Option<Credentials>, DbError> {
    Ok(select_credentials!("where id = $1", id.as_uuid())
        .fetch_optional(conn)
        .await?)
}

pub async fn credentials_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<Credentials>, DbError> {
    Ok(select_credentials!("where lower(email) = lower($1)", email)
        .fetch_optional(conn)
        .await?)
}

pub async fn set_password_hash(
    conn: &mut PgConnection,
    id: UserId,
    hash: &str,
) -> Result<(), DbError> {
    sqlx::query!(
        "update users set password_hash = $2 where id = $1",
        id.as_uuid(),
        hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the email verified; `false` when it already was.
pub async fn mark_email_verified(conn: &mut PgConnection, id: UserId) -> Result<bool, DbError> {
    let done = sqlx::query!(
        "update users set email_verified_at = now() where id = $1 and email_verified_at is null",
        id.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A confirmed new address (the link was opened from it, so it is verified).
pub async fn set_email(
    conn: &mut PgConnection,
    id: UserId,
    email: &Email,
) -> Result<(), AccountError> {
    sqlx::query!(
        "update users set email = $2, email_verified_at = now() where id = $1",
        id.as_uuid(),
        email.as_str()
    )
    .execute(conn)
    .await
    .map_err(|e| match DbError::from(e) {
        DbError::UniqueViolation(c) if c == "users_email_key" => AccountError::EmailTaken,
        other => AccountError::Db(other),
    })?;
    Ok(())
}

/// Stores a secret being enrolled (not yet required at sign-in).
pub async fn set_pending_totp_secret(
    conn: &mut PgConnection,
    id: UserId,
    secret: &str,
) -> Result<(), DbError> {
    sqlx::query!(
        "update users set totp_secret = $2, totp_enabled_at = null, totp_last_step = null
         where id = $1",
        id.as_uuid(),
        secret
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn enable_totp(conn: &mut PgConnection, id: UserId, step: i64) -> Result<(), DbError> {
    sqlx::query!(
        "update users set totp_enabled_at = now(), totp_last_step = $2 where id = $1",
        id.as_uuid(),
        step
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn disable_totp(conn: &mut PgConnection, id: UserId) -> Result<(), DbError> {
    sqlx::query!(
        "update users set totp_secret = null, totp_enabled_at = null, totp_last_step = null
         where id = $1",
        id.as_uuid()
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "delete from recovery_codes where user_id = $1",
        id.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the time step of an accepted code; `false` when that step (or a later one) was
/// already used — a replayed code. Atomic, so two concurrent uses cannot both pass.
pub async fn claim_totp_step(
    conn: &mut PgConnection,
    id: UserId,
    step: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query!(
        "update users set totp_last_step = $2
         where id = $1 and (totp_last_step is null or totp_last_step < $2)",
        id.as_uuid(),
        step
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn replace_recovery_codes(
    conn: &mut PgConnection,
    id: UserId,
    hashes: &[String],
) -> Result<(), DbError> {
    sqlx::query!(
        "delete from recovery_codes where user_id = $1",
        id.as_uuid()
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into recovery_codes (user_id, code_hash) select $1, unnest($2::text[])",
        id.as_uuid(),
        hashes
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses up a recovery code; `false` when it does not exist or was used.
pub async fn use_recovery_code(
    conn: &mut PgConnection,
    id: UserId,
    hash: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query!(
        "update recovery_codes set used_at = now()
         where user_id = $1 and code_hash = $2 and used_at is null",
        id.as_uuid(),
        hash
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn unused_recovery_codes(conn: &mut PgConnection, id: UserId) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar!(
        "select count(*) from recovery_codes where user_id = $1 and used_at is null",
        id.as_uuid()
    )
    .fetch_one(conn)
    .await?
    .unwrap_or(0))
}
