//! Cleaning up after processes that died mid-way.
//!
//! An upload, a resumable upload's session, or a deletion records its object in `storage_pending_objects` before touching
//! the store, and removes the record when it is done. A record past its `sweep_after` was
//! left by a process that died (or a store that failed): the sweep deletes its object (and,
//! on the filesystem, the staging file of an interrupted multipart upload), gives back the
//! bytes it had reserved and removes it. Uploads and deletions of a tenant sweep first, so a
//! tenant never waits long for quota a dead upload held; the sweep only touches records past
//! their grace, which live uploads keep pushing ahead.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use tenantkit_db::Database;
use tenantkit_kernel::TenantId;

use crate::{FileId, Storage, StorageError, backend, repo, upload};

/// What a sweep cleaned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub objects: u64,
    pub released_bytes: u64,
}

/// Records taken per sweep; the rest wait for the next one.
const SWEEP_BATCH: i64 = 100;

impl Storage {
    /// Removes the tenant's abandoned uploads and unfinished deletions (see the module).
    pub async fn sweep(&self, db: &Database, tenant: TenantId) -> Result<Swept, StorageError> {
        let mut tx = db.tenant(tenant).await?;
        let abandoned = repo::lock_abandoned(&mut tx, SWEEP_BATCH).await?;
        if abandoned.is_empty() {
            return Ok(Swept::default());
        }
        let mut swept = Swept::default();
        for (file, reserved) in abandoned {
            // While this transaction holds the record, its upload (if it still runs) cannot
            // commit or reserve: it finds the record gone afterwards and gives up.
            self.remove_object(tenant, file).await?;
            // A resumable upload's session shares its id with its pending row.
            repo::delete_session(&mut tx, file.as_uuid()).await?;
            repo::remove_pending(&mut tx, file).await?;
            swept.objects += 1;
            swept.released_bytes += reserved;
        }
        repo::settle(&mut tx, 0, swept.released_bytes).await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant, ?swept, "swept abandoned storage objects");
        Ok(swept)
    }

    /// A sweep whose failure must not fail the operation that runs it.
    pub(crate) async fn sweep_quietly(&self, db: &Database, tenant: TenantId) {
        if let Err(error) = self.sweep(db, tenant).await {
            tracing::warn!(%error, tenant_id = %tenant, "storage sweep failed; next time");
        }
    }

    async fn remove_object(&self, tenant: TenantId, file: FileId) -> Result<(), StorageError> {
        let key = backend::object_key(tenant, file);
        match self.inner.backend.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(StorageError::Backend(error)),
        }
        // The chunks of a resumable upload, if the record is one's.
        let store = &self.inner.backend.store;
        let chunks = store
            .list(Some(&upload::chunks_prefix(tenant, file.as_uuid())))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = store.delete_stream(chunks);
        while let Some(outcome) = deleted.next().await {
            match outcome {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(StorageError::Backend(error)),
            }
        }
        if let Some(root) = &self.inner.backend.local_root {
            // Staging files of chunks cut off mid-way are not listed as objects.
            let chunks = root.join(upload::chunks_prefix(tenant, file.as_uuid()).as_ref());
            match tokio::fs::remove_dir_all(&chunks).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => tracing::warn!(%error, "could not remove a session's chunks"),
            }
            // object_store stages multipart uploads beside the object as `<file id>#<n>`.
            let folder = root.join(backend::tenant_prefix(tenant).as_ref());
            let staged = format!("{file}#");
            if let Ok(mut entries) = tokio::fs::read_dir(&folder).await {
                while let Ok(Some(entry)) = entries.next_entry().await {
                    if entry.file_name().to_string_lossy().starts_with(&staged) {
                        let _ = tokio::fs::remove_file(entry.path()).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes every object under the tenant's prefix; how many.
    pub(crate) async fn remove_tenant_objects(
        &self,
        tenant: TenantId,
    ) -> Result<u64, StorageError> {
        let store = &self.inner.backend.store;
        let prefix = backend::tenant_prefix(tenant);
        let locations = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = store.delete_stream(locations);
        let mut count = 0;
        while let Some(outcome) = deleted.next().await {
            match outcome {
                Ok(_) => count += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(StorageError::Backend(error)),
            }
        }
        if let Some(root) = &self.inner.backend.local_root {
            // Staging files of interrupted uploads are not listed as objects.
            match tokio::fs::remove_dir_all(root.join(prefix.as_ref())).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(StorageError::Backend(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(error),
                    }));
                }
            }
        }
        Ok(count)
    }
}
