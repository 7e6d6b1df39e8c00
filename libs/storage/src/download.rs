//! Streaming downloads, whole or as one byte range, and signed links.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, path::Path, signer::Signer};
use tenantkit_db::Database;
use tenantkit_kernel::TenantId;

use crate::{
    ByteRange, ByteStream, FileId, LinkError, RangeNotSatisfiable, SignedLink, Storage,
    StorageError, StoredFile, backend, links, repo,
};

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
        Ok(object
            .into_stream()
            .map_err(|error| std::io::Error::other(StorageError::from(error)))
            .boxed())
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
