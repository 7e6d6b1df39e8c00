//! SQL for the delivery ledgers: `sent_emails` for a tenant's emails (row level security) and
//! `account_emails_sent` for emails about an account alone. Both are append-only.

use tenantkit_db::{DbError, PgConnection};
use tenantkit_kernel::{TenantId, UserId};

/// Holds the email's key for the rest of the transaction, so two runs of the same job (an
/// orphan re-run beside a slow original) cannot both pass the "already sent?" check.
pub(crate) async fn lock_key(conn: &mut PgConnection, key: &str) -> Result<(), DbError> {
    sqlx::query!("select pg_advisory_xact_lock(hashtextextended($1, 0))", key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Names the tenant as well as row level security does: the key alone cannot use the primary
/// key `(tenant_id, idempotency_key)` and would scan every tenant's emails.
pub(crate) async fn tenant_already_sent(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &str,
) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar!(
        "select exists(select 1 from sent_emails where tenant_id = $1 and idempotency_key = $2)",
        tenant.as_uuid(),
        key
    )
    .fetch_one(conn)
    .await?
    .unwrap_or(false))
}

pub(crate) async fn account_already_sent(
    conn: &mut PgConnection,
    key: &str,
) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar!(
        "select exists(select 1 from account_emails_sent where idempotency_key = $1)",
        key
    )
    .fetch_one(conn)
    .await?
    .unwrap_or(false))
}

pub(crate) struct SentEmail<'a> {
    pub key: &'a str,
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub template: &'a str,
}

pub(crate) async fn record_tenant_email(
    conn: &mut PgConnection,
    tenant: TenantId,
    sent: &SentEmail<'_>,
) -> Result<(), DbError> {
    sqlx::query!(
        "insert into sent_emails (tenant_id, idempotency_key, message_id, recipient, template)
         values ($1, $2, $3, $4, $5) on conflict do nothing",
        tenant.as_uuid(),
        sent.key,
        sent.message_id,
        sent.recipient,
        sent.template
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn record_account_email(
    conn: &mut PgConnection,
    user: Option<UserId>,
    sent: &SentEmail<'_>,
) -> Result<(), DbError> {
    sqlx::query!(
        "insert into account_emails_sent (idempotency_key, user_id, message_id, recipient, template)
         values ($1, $2, $3, $4, $5) on conflict do nothing",
        sent.key,
        user.map(|u| u.as_uuid()),
        sent.message_id,
        sent.recipient,
        sent.template
    )
    .execute(conn)
    .await?;
    Ok(())
}
