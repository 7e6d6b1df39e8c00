//! `stripe_events`: every webhook event, stored before it is acted on.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantkit_db::{DbError, PgConnection};
use tenantkit_kernel::TenantId;

/// Stores the event; `false` when its id was already there (a redelivery).
pub(crate) async fn insert(
    conn: &mut PgConnection,
    id: &str,
    event_type: &str,
    created: DateTime<Utc>,
    payload: &Value,
) -> Result<bool, DbError> {
    let inserted = sqlx::query!(
        "insert into stripe_events (id, type, created, payload) values ($1, $2, $3, $4)
         on conflict (id) do nothing",
        id,
        event_type,
        created,
        payload
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub(crate) struct StoredEvent {
    pub payload: Value,
    pub processed: bool,
}

pub(crate) async fn find(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<StoredEvent>, DbError> {
    Ok(sqlx::query_as!(
        StoredEvent,
        r#"select payload, processed_at is not null as "processed!" from stripe_events where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// Whether the event is processed, holding its row until the transaction ends: the check
/// that a second run of the same job makes once it has the tenant's lock.
pub(crate) async fn lock_processed(conn: &mut PgConnection, id: &str) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar!(
        r#"select processed_at is not null as "processed!" from stripe_events where id = $1 for update"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .unwrap_or(true))
}

/// Marks the event done, with what happened and the tenant it concerned.
pub(crate) async fn mark_processed(
    conn: &mut PgConnection,
    id: &str,
    outcome: &str,
    tenant: Option<TenantId>,
) -> Result<(), DbError> {
    sqlx::query!(
        "update stripe_events set processed_at = now(), outcome = $2, subject_tenant_id = $3
         where id = $1 and processed_at is null",
        id,
        outcome,
        tenant.map(|t| t.as_uuid())
    )
    .execute(conn)
    .await?;
    Ok(())
}
