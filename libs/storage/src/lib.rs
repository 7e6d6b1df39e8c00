//! Tenant-aware file storage: the bytes in an object store (the local filesystem or any
//! S3-compatible store, by configuration), the metadata in PostgreSQL under row level security.
//!
//! * Uploads stream ([`Storage::upload`]): parts go to the store as they arrive, the SHA-256,
//!   size and content type are computed on the way, and quota is reserved part by part in
//!   `storage_usage`, so concurrent uploads can never pass it together. A failed upload leaves
//!   no row, no object and no reservation.
//! * Resumable uploads ([`Storage::start_upload`], [`Storage::append_upload`]): the size is
//!   reserved up front, chunks arrive at increasing offsets (each its own object), a client
//!   that lost its connection asks where it stands and resumes; the last chunk turns them into
//!   the file through the same path as a streaming upload.
//! * Downloads stream too ([`Storage::open`]), whole or as one byte range ([`ByteRange`]).
//! * Objects are keyed `t/<tenant_id>/<file_id>`; names and folders ([`FileName`],
//!   [`Folder`]) are labels in the database only.
//! * Signed links ([`Storage::signed_link`]) are presigned URLs on S3 and HMAC tokens on the
//!   filesystem ([`Storage::verify_link_token`]).
//! * An object that may exist without a row (an upload under way, a deletion in progress) is
//!   recorded in `storage_pending_objects`; if its process dies, [`Storage::sweep`] removes
//!   it and returns its reservation (uploads and deletions of the tenant run it first).
//! * Deleting a tenant removes its objects through the `storage.purge` job ([`jobs`]).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::stream::BoxStream;
use secrecy::SecretString;
use tenantkit_config::StorageSettings;

mod backend;
mod download;
mod error;
mod files;
pub mod jobs;
mod links;
mod model;
mod names;
mod range;
mod repo;
mod scan;
mod sniff;
mod sweep;
mod upload;

pub use error::{LinkError, StorageError};
pub use links::SignedLink;
pub use model::{
    Appended, FileCursor, FileId, FilePage, FileQuery, FileSort, NewFile, StoredFile, UploadId,
    UploadSession, Usage,
};
pub use names::{FileName, Folder, InvalidName, MAX_FOLDER_BYTES, MAX_NAME_BYTES};
pub use range::{ByteRange, RangeNotSatisfiable};
pub use scan::{ClamAv, ScanError, Scanner};
pub use sweep::Swept;

/// The bytes of a download (or of an upload being scanned), as they come from the store.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Storage for the whole deployment. Cheap to clone; build one at start-up and share it.
#[derive(Clone, Debug)]
pub struct Storage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    backend: backend::Backend,
    max_file_bytes: u64,
    /// Bytes sent to the store at a time (one multipart part); reserved before it is sent.
    part_bytes: usize,
    link_ttl: Duration,
    link_key: links::LinkKey,
    scanner: Option<Arc<dyn Scanner>>,
}

/// Parts are at least this big (S3 wants 5 MiB but the last) and bounded in number by S3's
/// 10,000 parts per upload, so the largest allowed file still fits.
const MIN_PART_BYTES: u64 = 8 << 20;
const MAX_PARTS: u64 = 10_000;

impl Storage {
    /// Opens the configured store (creating the local folder if needed). `secret` is the
    /// application's secret key: link tokens are signed with a key derived from it, so rotating
    /// it ends every outstanding filesystem link. A scanner is set up when
    /// `clamav_socket` is configured.
    pub fn new(settings: &StorageSettings, secret: &SecretString) -> Result<Self, StorageError> {
        let backend = backend::Backend::build(&settings.backend)?;
        let part_bytes = MIN_PART_BYTES.max(settings.max_file_bytes.div_ceil(MAX_PARTS));
        let scanner = settings
            .clamav_socket
            .as_deref()
            .map(|socket| Arc::new(ClamAv::new(socket)) as Arc<dyn Scanner>);
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                max_file_bytes: settings.max_file_bytes,
                part_bytes: usize::try_from(part_bytes).unwrap_or(usize::MAX),
                link_ttl: settings.signed_link_ttl,
                link_key: links::LinkKey::derive(secret),
                scanner,
            }),
        })
    }

    /// The same storage with `scanner` checking every upload (replacing any configured one).
    pub fn with_scanner(self, scanner: Arc<dyn Scanner>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                backend: inner.backend.clone(),
                max_file_bytes: inner.max_file_bytes,
                part_bytes: inner.part_bytes,
                link_ttl: inner.link_ttl,
                link_key: inner.link_key.clone(),
                scanner: Some(scanner),
            }),
        }
    }

    pub fn max_file_bytes(&self) -> u64 {
        self.inner.max_file_bytes
    }

    /// Signed links are presigned S3 URLs (else tokens for `/files/shared/{token}`).
    pub fn links_are_presigned(&self) -> bool {
        self.inner.backend.s3.is_some()
    }

    /// Whether the store answers: for readiness checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        use futures::StreamExt;
        let probe = object_store::path::Path::from("t");
        let mut listing = self.inner.backend.store.list(Some(&probe));
        match listing.next().await {
            Some(Err(error)) => Err(StorageError::Backend(error)),
            _ => Ok(()),
        }
    }
}
