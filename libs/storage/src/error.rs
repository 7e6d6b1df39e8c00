use tenantkit_db::DbError;

use crate::{InvalidName, RangeNotSatisfiable, ScanError};

/// What storage operations can answer; the web layer maps each variant once.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such file, or another tenant's: the two are never told apart (404).
    #[error("not found")]
    NotFound,
    /// The folder already holds a file of that name (409).
    #[error("{0}")]
    Conflict(String),
    /// Stored files and uploads under way would pass the tenant's quota (413 or 507).
    #[error("the storage quota of {quota} bytes would be exceeded")]
    QuotaExceeded { quota: u64 },
    /// The file passes `storage.max_file_bytes` (413).
    #[error("files may be at most {max} bytes")]
    TooLarge { max: u64 },
    /// A name, folder, cursor or other input the client sent is not acceptable (422).
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The requested byte range lies outside the file (416 with `Content-Range: bytes */len`).
    #[error(transparent)]
    RangeNotSatisfiable(#[from] RangeNotSatisfiable),
    /// Reading the upload's body failed: the client went away or sent a broken body (400).
    #[error("the upload was interrupted: {0}")]
    Body(#[source] std::io::Error),
    /// The malware scanner refused the file, or could not be asked (see [`ScanError`]).
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// The object store failed or is unreachable (503; worth a retry).
    #[error("the file store is unavailable: {0}")]
    Backend(#[source] object_store::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl StorageError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }

    /// The store failed, as opposed to an outcome the client caused.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Backend(_) => true,
            Self::Scan(scan) => !matches!(scan, ScanError::Infected { .. }),
            Self::Db(db) => db.is_unavailable(),
            _ => false,
        }
    }
}

impl From<InvalidName> for StorageError {
    fn from(error: InvalidName) -> Self {
        Self::invalid(error.field, error.message)
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<object_store::Error> for StorageError {
    fn from(error: object_store::Error) -> Self {
        match error {
            // The row was there but the object is gone: a delete won the race.
            object_store::Error::NotFound { .. } => Self::NotFound,
            other => Self::Backend(other),
        }
    }
}

/// Why a signed link token is refused. The web answers 404 for each: a link that does not
/// work says nothing about the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is malformed")]
    Malformed,
    /// Altered, or signed with another key.
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
}
