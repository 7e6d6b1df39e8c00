//! SQL for the sent-email ledger (tenant-scoped, append-only).

use tenantkit_db::{DbError, TenantTx};

pub(crate) async fn already_sent(tx: &mut TenantTx, key: &str) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar!(
        "select exists(select 1 from sent_emails where idempotency_key = $1)",
        key
    )
    .fetch_one(tx.conn())
    .await?
    .unwrap_or(false))
}

pub(crate) async fn record_sent(
    tx: &mut TenantTx,
    key: &str,
    message_id: &str,
    recipient: &str,
    template: &str,
) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into sent_emails (tenant_id, idempotency_key, message_id, recipient, template)
         values ($1, $2, $3, $4, $5) on conflict do nothing",
        tenant.as_uuid(),
        key,
        message_id,
        recipient,
        template
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
