//! SQL for the delivery ledgers: `sent_emails` for a tenant's emails (row level security) and
//! `account_emails_sent` for emails about an account alone. Both are append-only.

use tenantkit_db::{DbError, PgConnection};
use tenantkit_kernel::{TenantId, UserId};

pub(crate) struct SentEmail<'a> {
    pub key: &'a str,
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub template: &'a str,
}

/// Records the email under its key unless the ledger has the key already; true when this call
/// recorded it (the caller then sends). The key is the primary key: a second run of the same
/// job (an orphan re-run beside a slow original) waits here until the first one's transaction
/// ends, then sees its row if it committed, or records the key itself if it rolled back.
pub(crate) async fn record_tenant_email(
    conn: &mut PgConnection,
    tenant: TenantId,
    sent: &SentEmail<'_>,
) -> Result<bool, DbError> {
    let recorded = sqlx::query_scalar!(
        r#"insert into sent_emails (tenant_id, idempotency_key, message_id, recipient, template)
           values ($1, $2, $3, $4, $5) on conflict do nothing returning true as "recorded!""#,
        tenant.as_uuid(),
        sent.key,
        sent.message_id,
        sent.recipient,
        sent.template
    )
    .fetch_optional(conn)
    .await?;
    Ok(recorded.is_some())
}

/// As [`record_tenant_email`], in the ledger of emails about an account alone.
pub(crate) async fn record_account_email(
    conn: &mut PgConnection,
    user: Option<UserId>,
    sent: &SentEmail<'_>,
) -> Result<bool, DbError> {
    let recorded = sqlx::query_scalar!(
        r#"insert into account_emails_sent (idempotency_key, user_id, message_id, recipient, template)
           values ($1, $2, $3, $4, $5) on conflict do nothing returning true as "recorded!""#,
        sent.key,
        user.map(|u| u.as_uuid()),
        sent.message_id,
        sent.recipient,
        sent.template
    )
    .fetch_optional(conn)
    .await?;
    Ok(recorded.is_some())
}
