//! Reading and changing file metadata, deleting files, and a tenant's usage.

use std::time::Duration;

use object_store::ObjectStoreExt;
use tenantkit_db::{Database, DbError, TenantTx};
use tenantkit_kernel::TenantId;

use crate::{
    FileCursor, FileId, FileName, FilePage, FileQuery, Folder, Storage, StorageError, StoredFile,
    Usage, backend, repo, upload::name_taken,
};

/// A deleted file's object is removed right away; this only delays the sweep's retry when
/// that failed (or the process died in between).
const DELETE_GRACE: Duration = Duration::from_secs(60);

impl Storage {
    /// The file with this id; `NotFound` when there is none in the transaction's tenant.
    pub async fn find(&self, tx: &mut TenantTx, id: FileId) -> Result<StoredFile, StorageError> {
        repo::find_file(tx, id).await?.ok_or(StorageError::NotFound)
    }

    /// One page of the tenant's files (of one folder, or of all), in the query's order.
    pub async fn list(
        &self,
        tx: &mut TenantTx,
        query: &FileQuery,
    ) -> Result<FilePage, StorageError> {
        if let Some(cursor) = &query.after
            && cursor.sort() != query.sort
        {
            return Err(StorageError::invalid(
                "cursor",
                "belongs to a listing in another order",
            ));
        }
        let size = query.page_size();
        let mut files = repo::list_files(
            tx,
            query.folder.as_ref(),
            query.sort,
            query.after.as_ref(),
            i64::from(size) + 1,
        )
        .await?;
        // One row more than asked says whether another page follows.
        let next = if files.len() > size as usize {
            files.truncate(size as usize);
            files.last().map(|last| FileCursor::after(last, query.sort))
        } else {
            None
        };
        Ok(FilePage { files, next })
    }

    /// The folders directly inside `folder` that hold files (folders exist through their
    /// files; there are no empty ones), by name, at most 1,000.
    pub async fn subfolders(
        &self,
        tx: &mut TenantTx,
        folder: &Folder,
    ) -> Result<Vec<Folder>, StorageError> {
        let names = repo::subfolders(tx, folder).await?;
        Ok(names
            .iter()
            .filter_map(|name| folder.child(name).ok())
            .collect())
    }

    /// Renames and/or moves a file. Only metadata changes: the object's key is its id.
    /// `Conflict` when the target folder already holds the name.
    pub async fn rename(
        &self,
        tx: &mut TenantTx,
        id: FileId,
        name: &FileName,
        folder: &Folder,
    ) -> Result<StoredFile, StorageError> {
        match repo::rename_file(tx, id, name, folder).await {
            Ok(Some(file)) => Ok(file),
            Ok(None) => Err(StorageError::NotFound),
            Err(DbError::UniqueViolation(_)) => Err(name_taken()),
            Err(other) => Err(other.into()),
        }
    }

    /// Deletes a file: its row and its usage first, in one transaction (recording the object
    /// as pending), then the object, then the record. A crash in between leaves only an
    /// object without a row, which costs the tenant nothing and which the next sweep
    /// removes; never a row pointing at nothing, never leaked quota.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, file_id = %id))]
    pub async fn delete(
        &self,
        db: &Database,
        tenant: TenantId,
        id: FileId,
    ) -> Result<(), StorageError> {
        let mut tx = db.tenant(tenant).await?;
        let size = repo::delete_file(&mut tx, id)
            .await?
            .ok_or(StorageError::NotFound)?;
        repo::add_pending(&mut tx, id, DELETE_GRACE).await?;
        repo::settle(&mut tx, -size, 0).await?;
        tx.commit().await?;

        let key = backend::object_key(tenant, id);
        match self.inner.backend.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                tracing::warn!(%error, "deleted file's object remains; the sweep will retry");
                return Ok(());
            }
        }
        let mut tx = db.tenant(tenant).await?;
        repo::remove_pending(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What the tenant's files take, and what uploads under way hold.
    pub async fn usage(&self, tx: &mut TenantTx) -> Result<Usage, StorageError> {
        Ok(repo::usage(tx).await?)
    }
}
