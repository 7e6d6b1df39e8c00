//! Streaming downloads, whole or as one byte range, and signed links.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use std::{io, ops::Range};

use bytes::BytesMut;
use object_store::{GetOptions, GetRange, GetResultPayload, path::Path, signer::Signer};
use tenantkit_db::Database;
use tenantkit_kernel::TenantId;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::{
    ByteRange, ByteStream, FileId, LinkError, RangeNotSatisfiable, SignedLink, Storage,
    StorageError, StoredFile, backend, links, repo,
};

/// Bytes read from a local file at a time. object_store's own file stream reads 8 KiB per
/// blocking task, which held downloads to about a quarter of upload speed.
const FILE_READ_CHUNK: usize = 256 * 1024;

/// `range` of a local file, read in [`FILE_READ_CHUNK`] pieces.
fn file_stream(file: std::fs::File, range: Range<u64>) -> ByteStream {
    futures::stream::once(async move {
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(range.start)).await?;
        let chunks = futures::stream::try_unfold(
            (file, range.end - range.start),
            |(mut file, remaining)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let want = remaining.min(FILE_READ_CHUNK as u64) as usize;
                let mut chunk = BytesMut::with_capacity(want);
                // Never past the range, whatever capacity the buffer got.
                let mut piece = (&mut file).take(want as u64);
                while chunk.len() < want {
                    if piece.read_buf(&mut chunk).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the stored file is shorter than its record",
                        ));
                    }
                }
                let read = chunk.len() as u64;
                Ok(Some((chunk.freeze(), (file, remaining - read))))
            },
        );
        Ok::<_, io::Error>(chunks)
    })
    .try_flatten()
    .boxed()
}

impl Storage {
    /// The file's metadata and a stream of its bytes (all of them, or `range`). The web
    /// reads the size with [`Storage::find`] first to parse the `Range` header against it.
    /// `NotFound` for another tenant's id; `RangeNotSatisfiable` when `range` does not fit.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, file_id = %id))]
    pub async fn open(
        &self,
        db: &Database,
        tenant: TenantId,
        id: FileId,
        range: Option<ByteRange>,
    ) -> Result<(StoredFile, ByteStream), StorageError> {
        let mut tx = db.tenant(tenant).await?;
        let file = repo::find_file(&mut tx, id)
            .await?
            .ok_or(StorageError::NotFound)?;
        // Read-only: ending it now returns the connection before the (long) download starts.
        tx.rollback().await?;
        if let Some(range) = range
            && !range.fits(file.size)
        {
            return Err(RangeNotSatisfiable { len: file.size }.into());
        }
        let bytes = self.read(&backend::object_key(tenant, id), range).await?;
        Ok((file, bytes))
    }

    /// Streams an object (or a range of it) from the store.
    pub(crate) async fn read(
        &self,
        key: &Path,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start()..r.end())),
            ..GetOptions::default()
        };
        let object = self.inner.backend.store.get_opts(key, options).await?;
        Ok(match object.payload {
            GetResultPayload::File(file, _) => file_stream(file, object.range),
            GetResultPayload::Stream(stream) => stream
                .map_err(|error| std::io::Error::other(StorageError::from(error)))
                .boxed(),
        })
    }

    /// A link that downloads `file` without signing in, valid for `storage.signed_link_ttl`
    /// from `now`: a presigned URL on S3, a token for `/files/shared/{token}` on the
    /// filesystem. `file` must be `tenant`'s (as [`Storage::find`] gives it).
    pub async fn signed_link(
        &self,
        tenant: TenantId,
        file: &StoredFile,
        now: DateTime<Utc>,
    ) -> Result<SignedLink, StorageError> {
        if file.tenant_id != tenant {
            return Err(StorageError::NotFound);
        }
        let expires_at = links::expiry(now, self.inner.link_ttl);
        match &self.inner.backend.s3 {
            Some(s3) => {
                // S3 counts the validity from the signing time (the clock of this machine).
                let valid_for = (expires_at - Utc::now()).to_std().unwrap_or_default();
                let url = s3
                    .signed_url(
                        http::Method::GET,
                        &backend::object_key(tenant, file.id),
                        valid_for,
                    )
                    .await
                    .map_err(StorageError::Backend)?;
                Ok(SignedLink::Presigned { url, expires_at })
            }
            None => Ok(SignedLink::Token {
                token: self.inner.link_key.sign(tenant, file.id, expires_at),
                expires_at,
            }),
        }
    }

    /// The tenant and file a link token names, if it is intact and unexpired at `now`. The
    /// web then opens the file in that tenant: `open(db, tenant, id, range)`.
    pub fn verify_link_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(TenantId, FileId), LinkError> {
        self.inner.link_key.verify(token, now)
    }
}
