//! SQL for users. Users are global, so these take a [`GlobalTx`] or a [`TenantTx`]'s connection.

use sqlx::PgConnection;
use tenantkit_db::DbError;
use tenantkit_kernel::UserId;

use crate::{AccountError, NewUser, User};

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
