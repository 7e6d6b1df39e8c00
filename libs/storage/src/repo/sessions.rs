//! `storage_upload_sessions`: resumable uploads under way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantkit_db::{DbError, TenantTx};
use tenantkit_kernel::{TenantId, UserId};
use uuid::Uuid;

use crate::{FileName, Folder, UploadId, UploadSession};

struct SessionRow {
    tenant_id: Uuid,
    id: Uuid,
    name: String,
    folder: String,
    size: i64,
    received: i64,
    chunks: i32,
    uploader_user_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl From<SessionRow> for UploadSession {
    fn from(row: SessionRow) -> Self {
        Self {
            tenant_id: TenantId::from_uuid(row.tenant_id),
            id: UploadId::from_uuid(row.id),
            name: FileName::from_stored(row.name),
            folder: Folder::from_stored(row.folder),
            size: u64::try_from(row.size).unwrap_or_default(),
            received: u64::try_from(row.received).unwrap_or_default(),
            chunks: u32::try_from(row.chunks).unwrap_or_default(),
            uploader: row.uploader_user_id.map(UserId::from_uuid),
            created_at: row.created_at,
        }
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn insert_session(tx: &mut TenantTx, s: &UploadSession) -> Result<(), DbError> {
    sqlx::query!(
        "insert into storage_upload_sessions
             (tenant_id, id, name, folder, size, uploader_user_id, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
        tx.tenant_id().as_uuid(),
        s.id.as_uuid(),
        s.name.as_str(),
        s.folder.as_str(),
        signed(s.size),
        s.uploader.map(|u| u.as_uuid()),
        s.created_at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub(crate) async fn find_session(
    tx: &mut TenantTx,
    id: UploadId,
) -> Result<Option<UploadSession>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        SessionRow,
        "select tenant_id, id, name, folder, size, received, chunks, uploader_user_id, created_at
         from storage_upload_sessions where tenant_id = $1 and id = $2",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(Into::into))
}

/// Takes the session for writing the chunk that starts at `offset`, for at most `hold`:
/// `None` when it is elsewhere (another offset, another writer, or gone).
pub(crate) async fn claim_session(
    tx: &mut TenantTx,
    id: UploadId,
    offset: u64,
    hold: Duration,
) -> Result<Option<UploadSession>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        SessionRow,
        "update storage_upload_sessions
         set writing_until = now() + make_interval(secs => $4)
         where tenant_id = $1 and id = $2 and received = $3
           and (writing_until is null or writing_until < now())
         returning tenant_id, id, name, folder, size, received, chunks, uploader_user_id,
                   created_at",
        tenant.as_uuid(),
        id.as_uuid(),
        signed(offset),
        hold.as_secs_f64()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(Into::into))
}

/// Records a chunk of `len` bytes written at `offset` and lets the next writer in, unless it
/// was the last: then the session stays held for `hold` while the file is made. `false` when
/// the session moved meanwhile (its claim expired and another writer took it).
pub(crate) async fn record_chunk(
    tx: &mut TenantTx,
    id: UploadId,
    offset: u64,
    len: u64,
    hold: Duration,
) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let recorded = sqlx::query!(
        "update storage_upload_sessions
         set received = received + $4, chunks = chunks + 1,
             writing_until = case when received + $4 >= size
                                  then now() + make_interval(secs => $5) end
         where tenant_id = $1 and id = $2 and received = $3",
        tenant.as_uuid(),
        id.as_uuid(),
        signed(offset),
        signed(len),
        hold.as_secs_f64()
    )
    .execute(tx.conn())
    .await?;
    Ok(recorded.rows_affected() == 1)
}

/// Keeps holding the session for the chunk being written (a slow chunk proves it is alive).
pub(crate) async fn hold_session(
    tx: &mut TenantTx,
    id: UploadId,
    hold: Duration,
) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update storage_upload_sessions set writing_until = now() + make_interval(secs => $3)
         where tenant_id = $1 and id = $2 and writing_until is not null",
        tenant.as_uuid(),
        id.as_uuid(),
        hold.as_secs_f64()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Lets the next writer in without recording anything (the chunk failed).
pub(crate) async fn release_session(tx: &mut TenantTx, id: UploadId) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update storage_upload_sessions set writing_until = null
         where tenant_id = $1 and id = $2",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Removes the session row, unless a chunk is being written (then `false`).
pub(crate) async fn delete_idle_session(tx: &mut TenantTx, id: UploadId) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    let deleted = sqlx::query!(
        "delete from storage_upload_sessions
         where tenant_id = $1 and id = $2 and (writing_until is null or writing_until < now())",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(deleted.rows_affected() == 1)
}

/// Removes the session row whatever its state (the sweep, a finished upload).
pub(crate) async fn delete_session(tx: &mut TenantTx, id: Uuid) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "delete from storage_upload_sessions where tenant_id = $1 and id = $2",
        tenant.as_uuid(),
        id
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Makes the pending object `id` due for the next sweep.
pub(crate) async fn sweep_now(tx: &mut TenantTx, id: Uuid) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update storage_pending_objects set sweep_after = now() - interval '1 second'
         where tenant_id = $1 and file_id = $2",
        tenant.as_uuid(),
        id
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
