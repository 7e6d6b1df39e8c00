//! The `files` table.

use chrono::{DateTime, Utc};
use tenantkit_db::{DbError, TenantTx};
use tenantkit_kernel::{TenantId, UserId};
use uuid::Uuid;

use crate::{FileCursor, FileId, FileName, FileSort, Folder, StoredFile};

/// A row as PostgreSQL types it; only parsed names and folders are ever written.
struct FileRow {
    tenant_id: Uuid,
    id: Uuid,
    name: String,
    folder: String,
    size: i64,
    content_type: String,
    sha256: String,
    uploader_user_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<FileRow> for StoredFile {
    fn from(row: FileRow) -> Self {
        Self {
            tenant_id: TenantId::from_uuid(row.tenant_id),
            id: FileId::from_uuid(row.id),
            name: FileName::from_stored(row.name),
            folder: Folder::from_stored(row.folder),
            size: u64::try_from(row.size).unwrap_or_default(),
            content_type: row.content_type,
            sha256: row.sha256,
            uploader: row.uploader_user_id.map(UserId::from_uuid),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The columns every `FileRow` is read with.
macro_rules! select_files {
    ($rest:tt $(, $arg:expr)*) => {
        sqlx::query_as!(
            FileRow,
            "select tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id,
                    created_at, updated_at
             from files "
                + $rest
            $(, $arg)*
        )
    };
}

pub(crate) async fn name_taken(
    tx: &mut TenantTx,
    folder: &Folder,
    name: &FileName,
) -> Result<bool, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_scalar!(
        r#"select exists(select 1 from files where tenant_id = $1 and folder = $2 and name = $3)
           as "taken!""#,
        tenant.as_uuid(),
        folder.as_str(),
        name.as_str()
    )
    .fetch_one(tx.conn())
    .await?)
}

/// Fails with `DbError::UniqueViolation("files_folder_name_key")` when the name is taken.
pub(crate) async fn insert_file(tx: &mut TenantTx, file: &StoredFile) -> Result<(), DbError> {
    sqlx::query!(
        "insert into files (tenant_id, id, name, folder, size, content_type, sha256,
                            uploader_user_id, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        tx.tenant_id().as_uuid(),
        file.id.as_uuid(),
        file.name.as_str(),
        file.folder.as_str(),
        i64::try_from(file.size).unwrap_or(i64::MAX),
        file.content_type,
        file.sha256,
        file.uploader.map(|u| u.as_uuid()),
        file.created_at,
        file.updated_at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub(crate) async fn find_file(
    tx: &mut TenantTx,
    id: FileId,
) -> Result<Option<StoredFile>, DbError> {
    let tenant = tx.tenant_id();
    Ok(select_files!(
        "where tenant_id = $1 and id = $2",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(StoredFile::from))
}

/// One page in `sort` order after `after` (from the start without one). Each order and
/// folder filter has its own statement, so each uses its index with every parameter bound;
/// a missing cursor is the position before the first row.
pub(crate) async fn list_files(
    tx: &mut TenantTx,
    folder: Option<&Folder>,
    sort: FileSort,
    after: Option<&FileCursor>,
    limit: i64,
) -> Result<Vec<StoredFile>, DbError> {
    let tenant = tx.tenant_id().as_uuid();
    let folder = folder.map(Folder::as_str);
    let rows = match (after, sort) {
        (Some(FileCursor::Name { name, id }), _) => {
            by_name(tx, tenant, folder, name, *id, limit).await?
        }
        (None, FileSort::Name) => by_name(tx, tenant, folder, "", Uuid::nil(), limit).await?,
        (Some(FileCursor::Newest { id }), _) => newest(tx, tenant, folder, *id, limit).await?,
        (None, FileSort::Newest) => newest(tx, tenant, folder, Uuid::max(), limit).await?,
        (Some(FileCursor::Size { size, id }), _) => {
            by_size(tx, tenant, folder, *size, *id, limit).await?
        }
        (None, FileSort::Size) => by_size(tx, tenant, folder, i64::MAX, Uuid::max(), limit).await?,
    };
    Ok(rows.into_iter().map(StoredFile::from).collect())
}

async fn by_name(
    tx: &mut TenantTx,
    tenant: Uuid,
    folder: Option<&str>,
    name: &str,
    id: Uuid,
    limit: i64,
) -> Result<Vec<FileRow>, DbError> {
    Ok(match folder {
        None => {
            select_files!(
                "where tenant_id = $1 and (name, id) > ($2, $3) order by name, id limit $4",
                tenant,
                name,
                id,
                limit
            )
            .fetch_all(tx.conn())
            .await?
        }
        Some(folder) => {
            select_files!(
                "where tenant_id = $1 and folder = $2 and (name, id) > ($3, $4)
             order by name, id limit $5",
                tenant,
                folder,
                name,
                id,
                limit
            )
            .fetch_all(tx.conn())
            .await?
        }
    })
}

/// Newest first: ids are UUIDv7, so their order is upload order.
async fn newest(
    tx: &mut TenantTx,
    tenant: Uuid,
    folder: Option<&str>,
    id: Uuid,
    limit: i64,
) -> Result<Vec<FileRow>, DbError> {
    Ok(match folder {
        None => {
            select_files!(
                "where tenant_id = $1 and id < $2 order by id desc limit $3",
                tenant,
                id,
                limit
            )
            .fetch_all(tx.conn())
            .await?
        }
        Some(folder) => {
            select_files!(
                "where tenant_id = $1 and folder = $2 and id < $3 order by id desc limit $4",
                tenant,
                folder,
                id,
                limit
            )
            .fetch_all(tx.conn())
            .await?
        }
    })
}

async fn by_size(
    tx: &mut TenantTx,
    tenant: Uuid,
    folder: Option<&str>,
    size: i64,
    id: Uuid,
    limit: i64,
) -> Result<Vec<FileRow>, DbError> {
    Ok(match folder {
        None => select_files!(
            "where tenant_id = $1 and (size, id) < ($2, $3) order by size desc, id desc limit $4",
            tenant,
            size,
            id,
            limit
        )
        .fetch_all(tx.conn())
        .await?,
        Some(folder) => {
            select_files!(
                "where tenant_id = $1 and folder = $2 and (size, id) < ($3, $4)
             order by size desc, id desc limit $5",
                tenant,
                folder,
                size,
                id,
                limit
            )
            .fetch_all(tx.conn())
            .await?
        }
    })
}

/// The names of the folders directly inside `folder` that hold files (at any depth).
pub(crate) async fn subfolders(tx: &mut TenantTx, folder: &Folder) -> Result<Vec<String>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_scalar!(
        r#"select distinct split_part(substr(folder, char_length($2) + 1), '/', 1) as "child!"
           from files where tenant_id = $1 and starts_with(folder, $2) and folder <> $3
           order by 1 limit 1000"#,
        tenant.as_uuid(),
        folder.child_prefix(),
        folder.as_str()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Fails with `DbError::UniqueViolation` when the target name is taken.
pub(crate) async fn rename_file(
    tx: &mut TenantTx,
    id: FileId,
    name: &FileName,
    folder: &Folder,
) -> Result<Option<StoredFile>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        FileRow,
        "update files set name = $3, folder = $4 where tenant_id = $1 and id = $2
         returning tenant_id, id, name, folder, size, content_type, sha256, uploader_user_id,
                   created_at, updated_at",
        tenant.as_uuid(),
        id.as_uuid(),
        name.as_str(),
        folder.as_str()
    )
    .fetch_optional(tx.conn())
    .await?
    .map(StoredFile::from))
}

/// Removes the row; its size, or `None` when there was no such file.
pub(crate) async fn delete_file(tx: &mut TenantTx, id: FileId) -> Result<Option<i64>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_scalar!(
        "delete from files where tenant_id = $1 and id = $2 returning size",
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}
