//! Streaming uploads.
//!
//! The body is read chunk by chunk and never held whole: chunks gather into a part of
//! `part_bytes` (8 MiB, or more for a very large `max_file_bytes`), whose size is reserved
//! against the quota before it is sent; parts go to the store as a multipart upload, at most
//! two in flight while the next one fills. A body that ends within its first part is sent in
//! one `put`. The SHA-256 and the size are computed on the way, the content type from the
//! first 16 KiB.
//!
//! Before any byte is reserved the upload is recorded in `storage_pending_objects`; success
//! turns the reservation into usage and inserts the file row in one transaction. Any failure
//! aborts the multipart upload (or deletes the object), gives the reservation back and removes
//! the record, before the error is returned. If the request's future is dropped instead (the
//! client went away), the same clean-up runs in the background. If the process dies, the
//! record outlives it and the tenant's next sweep cleans up (see the sweep module); S3 keeps
//! the parts of an upload that was never aborted until a bucket lifecycle rule
//! (AbortIncompleteMultipartUpload) expires them.

use std::time::Duration;

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use futures::{Stream, StreamExt};
use object_store::{
    Attribute, Attributes, MultipartUpload, PutMultipartOptions, PutOptions, PutPayload, path::Path,
};
use sha2::{Digest, Sha256};
use tenantkit_db::{Database, DbError};
use tenantkit_kernel::{TenantId, UserId};
use tokio::task::JoinSet;

mod cleanup;
mod sessions;

pub(crate) use sessions::chunks_prefix;

use crate::{
    FileId, FileName, NewFile, Storage, StorageError, StoredFile, backend, model, repo,
    sniff::{self, SNIFF_BYTES},
};

/// An upload that has reserved nothing for this long counts as abandoned.
pub(crate) const UPLOAD_GRACE: Duration = Duration::from_secs(3600);
/// Parts sent at once while the next one fills: bounds an upload's memory to ~3 parts.
const PARTS_IN_FLIGHT: usize = 2;

pub(crate) fn name_taken() -> StorageError {
    StorageError::Conflict("a file with this name already exists in this folder".to_owned())
}

fn abandoned() -> StorageError {
    StorageError::Body(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the upload stalled for too long and was abandoned",
    ))
}

impl Storage {
    /// Stores `body` as `target` for `tenant`, within `max_file_bytes` and `quota_bytes` (the
    /// plan's storage quota: `Billing::entitlements(tx).storage_quota_bytes`).
    ///
    /// Answers `Conflict` when the folder holds that name, `TooLarge` / `QuotaExceeded` as
    /// soon as the bytes received pass either limit, `Body` when the body fails, `Scan` when
    /// the scanner refuses the file. On every error nothing is left: no row, no object, no
    /// reservation.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn upload<S>(
        &self,
        db: &Database,
        tenant: TenantId,
        uploader: Option<UserId>,
        target: &NewFile,
        quota_bytes: u64,
        body: S,
    ) -> Result<StoredFile, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        self.sweep_quietly(db, tenant).await;
        let file_id = FileId::new();
        let mut tx = db.tenant(tenant).await?;
        if repo::name_taken(&mut tx, &target.folder, &target.name).await? {
            return Err(name_taken());
        }
        repo::ensure_usage_row(&mut tx).await?;
        repo::add_pending(&mut tx, file_id, UPLOAD_GRACE).await?;
        tx.commit().await?;

        let mut transfer = Transfer {
            storage: self.clone(),
            db: db.clone(),
            tenant,
            file_id,
            key: backend::object_key(tenant, file_id),
            quota: quota_bytes,
            multipart: None,
            object_written: false,
            finished: false,
        };
        let stored = async {
            let received = transfer.receive(&target.name, body).await?;
            transfer.scan().await?;
            let now = Utc::now().trunc_subsecs(6);
            let file = StoredFile {
                tenant_id: tenant,
                id: file_id,
                name: target.name.clone(),
                folder: target.folder.clone(),
                size: received.size,
                content_type: received.content_type.to_owned(),
                sha256: received.sha256,
                uploader,
                created_at: now,
                updated_at: now,
            };
            transfer.commit(&file).await?;
            Ok(file)
        }
        .await;
        if stored.is_err() {
            transfer.clean_up().await;
        }
        stored
    }
}

struct Received {
    size: u64,
    sha256: String,
    content_type: &'static str,
}

/// One upload's state, and what must be undone if it does not finish.
struct Transfer {
    storage: Storage,
    db: Database,
    tenant: TenantId,
    file_id: FileId,
    key: Path,
    quota: u64,
    multipart: Option<Box<dyn MultipartUpload>>,
    /// An object may exist at `key` (set before the write that creates it).
    object_written: bool,
    /// Committed or cleaned up: nothing left to undo.
    finished: bool,
}

/// The chunks of the part being filled (kept as received: no copying).
#[derive(Default)]
struct Part {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Transfer {
    async fn receive<S>(&mut self, name: &FileName, mut body: S) -> Result<Received, StorageError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let max = self.storage.inner.max_file_bytes;
        let part_bytes = self.storage.inner.part_bytes;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut content_type = None;
        let mut part = Part::default();
        let mut in_flight = JoinSet::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            size += chunk.len() as u64;
            if size > max {
                return Err(StorageError::TooLarge { max });
            }
            hasher.update(&chunk);
            if head.len() < SNIFF_BYTES {
                let wanted = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..wanted]);
            }
            part.len += chunk.len();
            part.chunks.push(chunk);
            if part.len >= part_bytes {
                let kind = *content_type.get_or_insert_with(|| sniff::content_type(&head, false));
                self.send_part(std::mem::take(&mut part), name, kind, &mut in_flight)
                    .await?;
            }
        }
        let content_type = content_type.unwrap_or_else(|| sniff::content_type(&head, true));
        if self.multipart.is_none() {
            // The whole body fitted in the first part: one request.
            self.reserve(part.len).await?;
            self.object_written = true;
            let options = PutOptions {
                attributes: self.attributes(content_type, name),
                ..PutOptions::default()
            };
            let payload: PutPayload = part.chunks.into_iter().collect();
            self.storage
                .inner
                .backend
                .store
                .put_opts(&self.key, payload, options)
                .await
                .map_err(StorageError::Backend)?;
        } else {
            if part.len > 0 {
                self.send_part(part, name, content_type, &mut in_flight)
                    .await?;
            }
            while let Some(sent) = in_flight.join_next().await {
                sent.map_err(|e| StorageError::Backend(e.into()))?
                    .map_err(StorageError::Backend)?;
            }
            self.object_written = true;
            if let Some(upload) = self.multipart.as_mut() {
                upload.complete().await.map_err(StorageError::Backend)?;
            }
            self.multipart = None;
        }
        Ok(Received {
            size,
            sha256: format!("{:x}", hasher.finalize()),
            content_type,
        })
    }

    /// Reserves the part's bytes, then sends it, starting the multipart upload with the first.
    async fn send_part(
        &mut self,
        part: Part,
        name: &FileName,
        content_type: &'static str,
        in_flight: &mut JoinSet<object_store::Result<()>>,
    ) -> Result<(), StorageError> {
        self.reserve(part.len).await?;
        if self.multipart.is_none() {
            let options = PutMultipartOptions {
                attributes: self.attributes(content_type, name),
                ..PutMultipartOptions::default()
            };
            let store = &self.storage.inner.backend.store;
            self.multipart = Some(
                store
                    .put_multipart_opts(&self.key, options)
                    .await
                    .map_err(StorageError::Backend)?,
            );
        }
        while in_flight.len() >= PARTS_IN_FLIGHT {
            if let Some(sent) = in_flight.join_next().await {
                sent.map_err(|e| StorageError::Backend(e.into()))?
                    .map_err(StorageError::Backend)?;
            }
        }
        if let Some(upload) = self.multipart.as_mut() {
            in_flight.spawn(upload.put_part(part.chunks.into_iter().collect()));
        }
        Ok(())
    }

    /// Response headers S3 stores with the object, for presigned links (which cannot ask
    /// for them). The filesystem store keeps no attributes.
    fn attributes(&self, content_type: &str, name: &FileName) -> Attributes {
        let mut attributes = Attributes::new();
        if self.storage.inner.backend.s3.is_some() {
            let inline = model::inline_safe(content_type);
            attributes.insert(
                Attribute::ContentType,
                model::served_content_type(content_type).into(),
            );
            attributes.insert(
                Attribute::ContentDisposition,
                model::content_disposition(inline, name.as_str()).into(),
            );
        }
        attributes
    }

    /// Takes `amount` more bytes of the quota for this upload (and proves it is still alive).
    async fn reserve(&mut self, amount: usize) -> Result<(), StorageError> {
        let mut tx = self.db.tenant(self.tenant).await?;
        if !repo::extend_pending(&mut tx, self.file_id, amount as u64, UPLOAD_GRACE).await? {
            return Err(abandoned());
        }
        if amount > 0 && !repo::reserve(&mut tx, amount as u64, self.quota).await? {
            return Err(StorageError::QuotaExceeded { quota: self.quota });
        }
        tx.commit().await?;
        Ok(())
    }

    /// Reads the stored object back through the scanner, when there is one.
    async fn scan(&mut self) -> Result<(), StorageError> {
        let Some(scanner) = self.storage.inner.scanner.clone() else {
            return Ok(());
        };
        // A large file takes a while to stream through clamd: keep the sweep away meanwhile.
        self.reserve(0).await?;
        let object = self.storage.read(&self.key, None).await?;
        scanner.scan(object).await?;
        Ok(())
    }

    /// Turns the reservation into usage and inserts the row, in one transaction.
    async fn commit(&mut self, file: &StoredFile) -> Result<(), StorageError> {
        let mut tx = self.db.tenant(self.tenant).await?;
        let Some(reserved) = repo::remove_pending(&mut tx, self.file_id).await? else {
            return Err(abandoned());
        };
        match repo::insert_file(&mut tx, file).await {
            Err(DbError::UniqueViolation(_)) => return Err(name_taken()),
            other => other?,
        }
        if reserved != file.size {
            tracing::error!(
                reserved,
                size = file.size,
                "an upload reserved other than its size"
            );
        }
        repo::settle(
            &mut tx,
            i64::try_from(file.size).unwrap_or(i64::MAX),
            reserved,
        )
        .await?;
        tx.commit().await?;
        self.finished = true;
        Ok(())
    }
}
