//! Resumable uploads: a session reserves the declared size, takes chunks at increasing
//! offsets (each streamed to its own object under `t/<tenant>/uploads/<session>/`), and when
//! the last byte arrives streams the chunks, in order, through [`Storage::upload`], which
//! hashes, sniffs, scans and commits the file as for any upload.
//!
//! The session's `storage_pending_objects` row (keyed by the session id) holds the
//! reservation; each chunk pushes its sweep ahead by [`SESSION_GRACE`]. A session left alone
//! that long is swept: its chunks deleted, its reservation returned, its row removed.

use std::time::Duration;

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, WriteMultipart, path::Path};
use tenantkit_db::Database;
use tenantkit_kernel::{TenantId, UserId};

use super::name_taken;
use crate::{
    Appended, ByteStream, NewFile, Storage, StorageError, UploadId, UploadSession, backend, repo,
};

/// A session no chunk has reached for this long is abandoned.
pub(crate) const SESSION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// How long a chunk holds its session without news: each part it writes renews the hold, so
/// a writer that died (with its process) blocks the session no longer than this.
const CHUNK_HOLD: Duration = Duration::from_secs(600);
/// Chunk objects written at once while the next part of the chunk arrives.
const PARTS_IN_FLIGHT: usize = 2;

fn moved_on() -> StorageError {
    StorageError::Conflict("the upload moved on meanwhile: ask where it stands".to_owned())
}

impl Storage {
    /// Starts a resumable upload of `size` bytes as `target`, reserving them against
    /// `quota_bytes` at once. `Conflict` when the folder holds the name, `TooLarge` past
    /// `max_file_bytes`, `QuotaExceeded` when the size does not fit.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, size))]
    pub async fn start_upload(
        &self,
        db: &Database,
        tenant: TenantId,
        uploader: Option<UserId>,
        target: &NewFile,
        size: u64,
        quota_bytes: u64,
    ) -> Result<UploadSession, StorageError> {
        if size == 0 {
            return Err(StorageError::invalid(
                "size",
                "a resumable upload has at least one byte; send an empty file in one request",
            ));
        }
        let max = self.inner.max_file_bytes;
        if size > max {
            return Err(StorageError::TooLarge { max });
        }
        self.sweep_quietly(db, tenant).await;
        let session = UploadSession {
            tenant_id: tenant,
            id: UploadId::new(),
            name: target.name.clone(),
            folder: target.folder.clone(),
            size,
            received: 0,
            chunks: 0,
            uploader,
            created_at: Utc::now().trunc_subsecs(6),
        };
        let mut tx = db.tenant(tenant).await?;
        if repo::name_taken(&mut tx, &target.folder, &target.name).await? {
            return Err(name_taken());
        }
        repo::ensure_usage_row(&mut tx).await?;
        let pending = session.id.pending_id();
        repo::add_pending(&mut tx, pending, SESSION_GRACE).await?;
        if !repo::reserve(&mut tx, size, quota_bytes).await? {
            return Err(StorageError::QuotaExceeded { quota: quota_bytes });
        }
        repo::extend_pending(&mut tx, pending, size, SESSION_GRACE).await?;
        repo::insert_session(&mut tx, &session).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// The session, as far as it got. `NotFound` for another tenant's id, a finished or
    /// abandoned session alike.
    pub async fn find_upload(
        &self,
        db: &Database,
        tenant: TenantId,
        id: UploadId,
    ) -> Result<UploadSession, StorageError> {
        let mut tx = db.tenant(tenant).await?;
        let session = repo::find_session(&mut tx, id).await?;
        tx.rollback().await?;
        session.ok_or(StorageError::NotFound)
    }

    /// Adds the chunk `body`, which must start at `offset` (the bytes received so far), and
    /// completes the file when it brings the last byte. An empty chunk at the end retries a
    /// completion that failed for a passing reason (the store or database down).
    ///
    /// `Conflict` when `offset` is not where the upload stands or another chunk is being
    /// written; `Invalid` when the chunk passes the declared size; `Body` when the chunk
    /// broke off (nothing of it counts: resume from the same offset). `quota_bytes` is the
    /// plan's quota, for the completion.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, upload_id = %id, offset))]
    pub async fn append_upload<S>(
        &self,
        db: &Database,
        tenant: TenantId,
        id: UploadId,
        offset: u64,
        quota_bytes: u64,
        body: S,
    ) -> Result<Appended, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let session = self.claim(db, tenant, id, offset).await?;
        // If this future is dropped mid-chunk (the client went away), the guard lets the
        // session go and deletes the partial chunk in the background.
        let mut guard = ChunkGuard {
            storage: self.clone(),
            db: db.clone(),
            session: Some((tenant, id, session.chunks)),
        };
        let written = if offset < session.size {
            self.write_chunk(db, &session, body).await
        } else {
            Ok(0)
        };
        guard.session = None;
        let written = match written {
            Ok(0) if offset < session.size => Err(StorageError::invalid(
                "body",
                "a chunk carries at least one byte",
            )),
            other => other,
        };
        let mut tx = db.tenant(tenant).await?;
        let len = match written {
            Ok(len) => len,
            Err(error) => {
                // Deleted before the session is let go: the next writer reuses its index.
                if offset < session.size {
                    self.delete_chunk(tenant, id, session.chunks).await;
                }
                repo::release_session(&mut tx, id).await?;
                tx.commit().await?;
                return Err(error);
            }
        };
        if len > 0 && !repo::record_chunk(&mut tx, id, offset, len, CHUNK_HOLD).await? {
            return Err(moved_on());
        }
        repo::extend_pending(&mut tx, id.pending_id(), 0, SESSION_GRACE).await?;
        if offset + len < session.size {
            tx.commit().await?;
            return Ok(Appended::Partial(UploadSession {
                received: offset + len,
                chunks: session.chunks + 1,
                ..session
            }));
        }
        // Complete: the session stays held (a chunk cannot slip in) while the file is made.
        tx.commit().await?;
        let chunks = if len > 0 {
            session.chunks + 1
        } else {
            session.chunks
        };
        self.complete(db, &session, chunks, quota_bytes).await
    }

    /// Ends a session: its chunks are deleted and its reservation returned. `Conflict` while
    /// a chunk is being written.
    pub async fn abort_upload(
        &self,
        db: &Database,
        tenant: TenantId,
        id: UploadId,
    ) -> Result<(), StorageError> {
        let mut tx = db.tenant(tenant).await?;
        if repo::find_session(&mut tx, id).await?.is_none() {
            return Err(StorageError::NotFound);
        }
        if !repo::delete_idle_session(&mut tx, id).await? {
            return Err(StorageError::Conflict(
                "a chunk is being written: abort after it ends".to_owned(),
            ));
        }
        repo::sweep_now(&mut tx, id.as_uuid()).await?;
        tx.commit().await?;
        self.sweep(db, tenant).await?;
        Ok(())
    }

    async fn claim(
        &self,
        db: &Database,
        tenant: TenantId,
        id: UploadId,
        offset: u64,
    ) -> Result<UploadSession, StorageError> {
        let mut tx = db.tenant(tenant).await?;
        if let Some(session) = repo::claim_session(&mut tx, id, offset, CHUNK_HOLD).await? {
            tx.commit().await?;
            return Ok(session);
        }
        match repo::find_session(&mut tx, id).await? {
            None => Err(StorageError::NotFound),
            Some(s) if s.received != offset => Err(StorageError::Conflict(format!(
                "the upload is at byte {}: send the chunk that starts there",
                s.received
            ))),
            Some(_) => Err(StorageError::Conflict(
                "another chunk of this upload is being written".to_owned(),
            )),
        }
    }

    /// Streams the chunk to its object; its length. Stops at the declared size.
    async fn write_chunk<S>(
        &self,
        db: &Database,
        session: &UploadSession,
        mut body: S,
    ) -> Result<u64, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let room = session.size - session.received;
        let key = chunk_key(session.tenant_id, session.id, session.chunks);
        let store = &self.inner.backend.store;
        let upload = store
            .put_multipart(&key)
            .await
            .map_err(StorageError::Backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.inner.part_bytes);
        let part_bytes = self.inner.part_bytes as u64;
        let mut len = 0u64;
        let streamed = async {
            while let Some(bytes) = body.next().await {
                let bytes = bytes.map_err(StorageError::Body)?;
                len += bytes.len() as u64;
                if len > room {
                    return Err(StorageError::invalid(
                        "body",
                        format!(
                            "the chunk passes the declared size of {} bytes",
                            session.size
                        ),
                    ));
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(StorageError::Backend)?;
                let parts_before = (len - bytes.len() as u64) / part_bytes;
                writer.put(bytes);
                if len / part_bytes > parts_before {
                    let mut tx = db.tenant(session.tenant_id).await?;
                    repo::hold_session(&mut tx, session.id, CHUNK_HOLD).await?;
                    tx.commit().await?;
                }
            }
            Ok(())
        }
        .await;
        match streamed {
            Ok(()) => {
                writer.finish().await.map_err(StorageError::Backend)?;
                Ok(len)
            }
            Err(error) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, "could not abort a broken chunk's upload");
                }
                Err(error)
            }
        }
    }

    async fn delete_chunk(&self, tenant: TenantId, id: UploadId, index: u32) {
        match self
            .inner
            .backend
            .store
            .delete(&chunk_key(tenant, id, index))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            // The session's sweep removes it with the rest, if it comes to that.
            Err(error) => tracing::warn!(%error, "could not delete a broken chunk"),
        }
    }

    /// Streams the chunks into the file. A refusal that retrying cannot change (the name is
    /// taken now, the scanner refused the file, the quota shrank) ends the session; a
    /// passing failure leaves it complete, to be retried with an empty chunk.
    async fn complete(
        &self,
        db: &Database,
        session: &UploadSession,
        chunks: u32,
        quota_bytes: u64,
    ) -> Result<Appended, StorageError> {
        let tenant = session.tenant_id;
        let target = NewFile {
            name: session.name.clone(),
            folder: session.folder.clone(),
        };
        // The session's own reservation already counts the file: the upload may use it.
        let quota = quota_bytes.saturating_add(session.size);
        let body = self.chunks(tenant, session.id, chunks);
        let stored = self
            .upload(db, tenant, session.uploader, &target, quota, body)
            .await;
        match stored {
            Ok(file) => {
                self.finish(db, tenant, session.id).await?;
                Ok(Appended::Complete(file))
            }
            Err(
                error @ (StorageError::Backend(_) | StorageError::Db(_) | StorageError::Body(_)),
            ) => {
                let mut tx = db.tenant(tenant).await?;
                repo::release_session(&mut tx, session.id).await?;
                tx.commit().await?;
                Err(error)
            }
            Err(error) => {
                self.finish(db, tenant, session.id).await?;
                Err(error)
            }
        }
    }

    /// Removes a session that is over: its row now, its chunks and reservation by the sweep.
    async fn finish(
        &self,
        db: &Database,
        tenant: TenantId,
        id: UploadId,
    ) -> Result<(), StorageError> {
        let mut tx = db.tenant(tenant).await?;
        repo::delete_session(&mut tx, id.as_uuid()).await?;
        repo::sweep_now(&mut tx, id.as_uuid()).await?;
        tx.commit().await?;
        self.sweep_quietly(db, tenant).await;
        Ok(())
    }

    /// The chunks' bytes, in order.
    fn chunks(&self, tenant: TenantId, id: UploadId, count: u32) -> ByteStream {
        let storage = self.clone();
        futures::stream::iter(0..count)
            .then(move |index| {
                let storage = storage.clone();
                async move {
                    storage
                        .read(&chunk_key(tenant, id, index), None)
                        .await
                        .map_err(std::io::Error::other)
                }
            })
            .try_flatten()
            .boxed()
    }
}

/// A chunk being written; dropped while still set, it undoes the chunk in the background.
struct ChunkGuard {
    storage: Storage,
    db: Database,
    session: Option<(TenantId, UploadId, u32)>,
}

impl Drop for ChunkGuard {
    fn drop(&mut self) {
        let Some((tenant, id, index)) = self.session.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (storage, db) = (self.storage.clone(), self.db.clone());
        runtime.spawn(async move {
            storage.delete_chunk(tenant, id, index).await;
            let released = async {
                let mut tx = db.tenant(tenant).await?;
                repo::release_session(&mut tx, id).await?;
                tx.commit().await
            };
            if let Err(error) = released.await {
                tracing::warn!(%error, "could not release an interrupted chunk's session");
            }
        });
    }
}

/// `t/<tenant>/uploads/<session>/`: where a session's chunks are.
pub(crate) fn chunks_prefix(tenant: TenantId, id: uuid::Uuid) -> Path {
    Path::from(format!("{}/uploads/{id}", backend::tenant_prefix(tenant)))
}

fn chunk_key(tenant: TenantId, id: UploadId, index: u32) -> Path {
    chunks_prefix(tenant, id.as_uuid()).join(format!("{index:06}"))
}
