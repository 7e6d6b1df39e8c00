//! Undoing an upload that did not finish: on an error before it is returned, and in the
//! background when the upload's future is dropped (the request was cancelled).

use object_store::ObjectStoreExt;
use tenantkit_db::{Database, DbError};
use tenantkit_kernel::TenantId;

use super::Transfer;
use crate::{FileId, repo};

impl Transfer {
    /// Undoes whatever the upload did: the multipart upload, the object, the reservation.
    pub(super) async fn clean_up(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(mut upload) = self.multipart.take()
            && let Err(error) = upload.abort().await
        {
            tracing::warn!(%error, "could not abort a failed multipart upload");
        }
        let store = &self.storage.inner.backend.store;
        if self.object_written {
            // A commit whose answer was lost may have gone through: the object of a committed
            // row must stay. Unsure (no database), leave it all to the sweep, which only ever
            // takes uncommitted uploads.
            match is_committed(&self.db, self.tenant, self.file_id).await {
                Ok(false) => {}
                Ok(true) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot tell whether a failed upload committed");
                    return;
                }
            }
            match store.delete(&self.key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    // The pending row stays: the sweep deletes the object and returns the
                    // reservation once the row's grace has passed.
                    tracing::warn!(%error, "could not delete a failed upload's object");
                    return;
                }
            }
        }
        let released = async {
            let mut tx = self.db.tenant(self.tenant).await?;
            if let Some(reserved) = repo::remove_pending(&mut tx, self.file_id).await? {
                repo::settle(&mut tx, 0, reserved).await?;
            }
            tx.commit().await
        };
        if let Err(error) = released.await {
            tracing::warn!(%error, "could not release a failed upload's reservation; the sweep will");
        }
    }
}

/// Whether the upload's file row exists (its commit went through).
async fn is_committed(db: &Database, tenant: TenantId, file: FileId) -> Result<bool, DbError> {
    let mut tx = db.tenant(tenant).await?;
    Ok(repo::find_file(&mut tx, file).await?.is_some())
}

impl Drop for Transfer {
    /// The upload's future was dropped mid-way (the request was cancelled): clean up in the
    /// background, since nothing will await it.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut orphan = Transfer {
            storage: self.storage.clone(),
            db: self.db.clone(),
            tenant: self.tenant,
            file_id: self.file_id,
            key: self.key.clone(),
            quota: self.quota,
            multipart: self.multipart.take(),
            object_written: self.object_written,
            finished: false,
        };
        runtime.spawn(async move { orphan.clean_up().await });
    }
}
