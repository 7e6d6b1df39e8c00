//! What storage hands out: stored files, their ids, listing queries with opaque cursors, and
//! a tenant's usage.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantkit_kernel::{TenantId, UserId};
use uuid::Uuid;

use crate::{FileName, Folder, InvalidName, sniff};

tenantkit_kernel::uuid_id!(
    /// A stored file, and the key of its object (`t/<tenant>/<file id>`). UUIDv7: ids sort
    /// by upload time.
    FileId
);

tenantkit_kernel::uuid_id!(
    /// A resumable upload session (also the key of its `storage_pending_objects` row).
    UploadId
);

impl UploadId {
    /// The pending-object id its reservation and chunks are recorded under.
    pub(crate) const fn pending_id(&self) -> FileId {
        FileId::from_uuid(self.as_uuid())
    }
}

/// A resumable upload under way: the client sends chunks at `received` until it reaches
/// `size`, then the chunks become the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub tenant_id: TenantId,
    pub id: UploadId,
    pub name: FileName,
    pub folder: Folder,
    /// Declared at the start; reserved against the quota.
    pub size: u64,
    /// Bytes received so far: the offset the next chunk must start at.
    pub received: u64,
    pub chunks: u32,
    pub uploader: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// What a chunk did to its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// More bytes are expected.
    Partial(UploadSession),
    /// The last byte arrived: the file is stored and the session gone.
    Complete(StoredFile),
}

/// Where an upload goes: its name inside a folder (unique there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFile {
    pub name: FileName,
    pub folder: Folder,
}

/// A file's metadata. The bytes are in the object store under `t/<tenant_id>/<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    pub tenant_id: TenantId,
    pub id: FileId,
    pub name: FileName,
    pub folder: Folder,
    pub size: u64,
    /// Sniffed from the first bytes at upload (see the `sniff` module): never the client's.
    pub content_type: String,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    pub uploader: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredFile {
    /// Whether a browser may show the file in the page (`Content-Disposition: inline`).
    ///
    /// True only for types a browser displays without running anything: raster images (not
    /// SVG, which can carry scripts), audio, video, PDF (rendered by the browser's sandboxed
    /// viewer) and plain text (served as `text/plain; charset=utf-8`). Everything else —
    /// HTML, SVG, XML, JavaScript, unknown bytes — must be served as an attachment, always with
    /// `X-Content-Type-Options: nosniff` so the browser cannot second-guess the type.
    pub fn inline_safe(&self) -> bool {
        inline_safe(&self.content_type)
    }

    /// The `Content-Type` to serve: plain text names its charset (uploads were checked to be
    /// UTF-8), everything else is the sniffed type.
    pub fn served_content_type(&self) -> String {
        served_content_type(&self.content_type)
    }

    /// The `Content-Disposition` to serve: `inline` for [`Self::inline_safe`] types, else
    /// `attachment`, with the name as an ASCII fallback and in full (RFC 6266 / RFC 8187).
    pub fn content_disposition(&self) -> String {
        content_disposition(self.inline_safe(), self.name.as_str())
    }
}

pub(crate) fn inline_safe(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    match essence.split_once('/') {
        Some(("image", subtype)) => !subtype.starts_with("svg"),
        Some(("audio" | "video", _)) => true,
        _ => matches!(essence, "application/pdf" | sniff::TEXT_PLAIN),
    }
}

pub(crate) fn served_content_type(content_type: &str) -> String {
    if content_type == sniff::TEXT_PLAIN {
        "text/plain; charset=utf-8".to_owned()
    } else {
        content_type.to_owned()
    }
}

pub(crate) fn content_disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// How a listing is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSort {
    /// By name, A to Z.
    #[default]
    Name,
    /// Most recent upload first.
    Newest,
    /// Largest first.
    Size,
}

/// A listing: one folder (or every folder), an order, where the previous page ended, and a
/// page size (clamped to 1..=[`FileQuery::MAX_LIMIT`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileQuery {
    pub folder: Option<Folder>,
    pub sort: FileSort,
    pub after: Option<FileCursor>,
    pub limit: u32,
}

impl FileQuery {
    pub const MAX_LIMIT: u32 = 500;
    pub const DEFAULT_LIMIT: u32 = 50;

    pub(crate) fn page_size(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            limit => limit.min(Self::MAX_LIMIT),
        }
    }
}

/// One page of a listing; `next` continues it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePage {
    pub files: Vec<StoredFile>,
    pub next: Option<FileCursor>,
}

/// Where a page ended, for the next one. Opaque to clients: [`fmt::Display`] writes it and
/// [`FileCursor::parse`] reads it back. It carries its sort order, so it cannot be replayed
/// against another one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "s")]
pub enum FileCursor {
    #[serde(rename = "n")]
    Name { name: String, id: Uuid },
    #[serde(rename = "t")]
    Newest { id: Uuid },
    #[serde(rename = "z")]
    Size { size: i64, id: Uuid },
}

impl FileCursor {
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let invalid = InvalidName {
            field: "cursor",
            message: "is not a cursor this listing gave out",
        };
        if text.len() > 2048 {
            return Err(invalid);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid.clone())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid)
    }

    pub(crate) fn sort(&self) -> FileSort {
        match self {
            Self::Name { .. } => FileSort::Name,
            Self::Newest { .. } => FileSort::Newest,
            Self::Size { .. } => FileSort::Size,
        }
    }

    pub(crate) fn after(file: &StoredFile, sort: FileSort) -> Self {
        let id = file.id.as_uuid();
        match sort {
            FileSort::Name => Self::Name {
                name: file.name.as_str().to_owned(),
                id,
            },
            FileSort::Newest => Self::Newest { id },
            FileSort::Size => Self::Size {
                size: i64::try_from(file.size).unwrap_or(i64::MAX),
                id,
            },
        }
    }
}

impl fmt::Display for FileCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_vec(self).map_err(|_| fmt::Error)?;
        f.write_str(&URL_SAFE_NO_PAD.encode(json))
    }
}

/// A tenant's storage: bytes of stored files, and bytes held by uploads under way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub reserved_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_types_a_browser_cannot_execute_are_inline() {
        for safe in [
            "image/png",
            "image/jpeg",
            "image/webp",
            "audio/mpeg",
            "video/mp4",
            "video/webm",
            "application/pdf",
            "text/plain",
        ] {
            assert!(inline_safe(safe), "{safe}");
        }
        for unsafe_type in [
            "image/svg+xml",
            "text/html",
            "application/xml",
            "text/xml",
            "application/javascript",
            "text/javascript",
            "text/x-shellscript",
            "application/octet-stream",
            "application/zip",
            "application/xhtml+xml",
        ] {
            assert!(!inline_safe(unsafe_type), "{unsafe_type}");
        }
        assert_eq!(
            served_content_type("text/plain"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(served_content_type("image/png"), "image/png");
    }

    #[test]
    fn dispositions_quote_and_encode_the_name() {
        assert_eq!(
            content_disposition(false, "report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition(true, "a \"b\"\\c é.png"),
            "inline; filename=\"a _b__c _.png\"; filename*=UTF-8''a%20%22b%22%5Cc%20%C3%A9.png"
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = Uuid::now_v7();
        for cursor in [
            FileCursor::Name {
                name: "é/x".to_owned(),
                id,
            },
            FileCursor::Newest { id },
            FileCursor::Size { size: 42, id },
        ] {
            let text = cursor.to_string();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            );
            assert_eq!(FileCursor::parse(&text).unwrap(), cursor);
        }
        for garbage in ["", "!!!", "eyJzIjoicSJ9", &"A".repeat(5000)] {
            assert_eq!(FileCursor::parse(garbage).unwrap_err().field, "cursor");
        }
    }

    #[test]
    fn page_sizes_are_clamped() {
        let query = |limit| FileQuery {
            limit,
            ..FileQuery::default()
        };
        assert_eq!(query(0).page_size(), 50);
        assert_eq!(query(7).page_size(), 7);
        assert_eq!(query(100_000).page_size(), 500);
    }
}
