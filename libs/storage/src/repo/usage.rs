//! `storage_usage` (a tenant's used and reserved bytes) and `storage_pending_objects` (objects
//! that may exist without a file row), and the tenant purge of all three tables.

use std::time::Duration;

use tenantkit_db::{DbError, TenantTx};
use uuid::Uuid;

use crate::{FileId, Usage};

fn bytes(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn usage(tx: &mut TenantTx) -> Result<Usage, DbError> {
    let tenant = tx.tenant_id();
    let row = sqlx::query!(
        "select used_bytes, reserved_bytes from storage_usage where tenant_id = $1",
        tenant.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(row
        .map(|row| Usage {
            used_bytes: bytes(row.used_bytes),
            reserved_bytes: bytes(row.reserved_bytes),
        })
        .unwrap_or_default())
}

pub(crate) async fn ensure_usage_row(tx: &mut TenantTx) -> Result<(), DbError> {
    sqlx::query!(
        "insert into storage_usage (tenant_id) values ($1) on conflict (tenant_id) do nothing",
        tx.tenant_id().as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Reserves `amount` more bytes unless stored files and every reservation would then pass
/// `quota`. One statement: the row lock serialises concurrent uploads of the tenant, and the
/// condition is checked again on the row as it is after the lock (read committed), so no
/// two uploads can both take the last bytes.
pub(crate) async fn reserve(tx: &mut TenantTx, amount: u64, quota: u64) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let reserved = sqlx::query!(
        "update storage_usage set reserved_bytes = reserved_bytes + $2
         where tenant_id = $1 and used_bytes + reserved_bytes + $2 <= $3",
        tenant.as_uuid(),
        signed(amount),
        signed(quota)
    )
    .execute(tx.conn())
    .await?;
    Ok(reserved.rows_affected() == 1)
}

/// Adds `used` (negative when files are removed) and gives back `released` reserved bytes.
pub(crate) async fn settle(tx: &mut TenantTx, used: i64, released: u64) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update storage_usage set used_bytes = used_bytes + $2, reserved_bytes = reserved_bytes - $3
         where tenant_id = $1",
        tenant.as_uuid(),
        used,
        signed(released)
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Records an object that may exist without a file row; the sweep takes it after `grace`.
pub(crate) async fn add_pending(
    tx: &mut TenantTx,
    file: FileId,
    grace: Duration,
) -> Result<(), DbError> {
    sqlx::query!(
        "insert into storage_pending_objects (tenant_id, file_id, sweep_after)
         values ($1, $2, now() + make_interval(secs => $3))",
        tx.tenant_id().as_uuid(),
        file.as_uuid(),
        grace.as_secs_f64()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Adds `amount` to an upload's reservation and keeps the sweep away for another `grace`.
/// `false` when the upload's row is gone: the sweep took it as abandoned.
pub(crate) async fn extend_pending(
    tx: &mut TenantTx,
    file: FileId,
    amount: u64,
    grace: Duration,
) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let extended = sqlx::query!(
        "update storage_pending_objects
         set reserved_bytes = reserved_bytes + $3, sweep_after = now() + make_interval(secs => $4)
         where tenant_id = $1 and file_id = $2",
        tenant.as_uuid(),
        file.as_uuid(),
        signed(amount),
        grace.as_secs_f64()
    )
    .execute(tx.conn())
    .await?;
    Ok(extended.rows_affected() == 1)
}

/// Removes the row of a finished upload or deletion; the bytes it had reserved, or `None`
/// when the sweep took it first.
pub(crate) async fn remove_pending(
    tx: &mut TenantTx,
    file: FileId,
) -> Result<Option<u64>, DbError> {
    let tenant = tx.tenant_id();
    let reserved = sqlx::query_scalar!(
        "delete from storage_pending_objects where tenant_id = $1 and file_id = $2
         returning reserved_bytes",
        tenant.as_uuid(),
        file.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?;
    Ok(reserved.map(bytes))
}

/// Up to `limit` pending objects past their grace, locked for this transaction. Rows another
/// sweep (or their own upload) holds are skipped, not waited for.
pub(crate) async fn lock_abandoned(
    tx: &mut TenantTx,
    limit: i64,
) -> Result<Vec<(FileId, u64)>, DbError> {
    let tenant = tx.tenant_id();
    let rows = sqlx::query!(
        "select file_id, reserved_bytes from storage_pending_objects
         where tenant_id = $1 and sweep_after < now()
         order by sweep_after limit $2 for update skip locked",
        tenant.as_uuid(),
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (FileId::from_uuid(row.file_id), bytes(row.reserved_bytes)))
        .collect())
}

/// Whether the tenant's purge has been decided: only then may its files be destroyed.
pub(crate) async fn tenant_is_purged(tx: &mut TenantTx) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let status = sqlx::query_scalar!("select status from tenants where id = $1", tenant.as_uuid())
        .fetch_optional(tx.conn())
        .await?;
    Ok(status.as_deref() == Some("purged"))
}

/// Removes every file row, pending object, upload session and the usage row of the tenant;
/// how many files.
pub(crate) async fn purge_rows(tx: &mut TenantTx) -> Result<u64, DbError> {
    let tenant: Uuid = tx.tenant_id().as_uuid();
    let files = sqlx::query!("delete from files where tenant_id = $1", tenant)
        .execute(tx.conn())
        .await?
        .rows_affected();
    sqlx::query!(
        "delete from storage_pending_objects where tenant_id = $1",
        tenant
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!(
        "delete from storage_upload_sessions where tenant_id = $1",
        tenant
    )
    .execute(tx.conn())
    .await?;
    sqlx::query!("delete from storage_usage where tenant_id = $1", tenant)
        .execute(tx.conn())
        .await?;
    Ok(files)
}
