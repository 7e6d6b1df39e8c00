//! Upload file names (storage `FileName::parse`) and the `Content-Disposition` header that
//! downloads write from them.
//!
//! * A name is accepted exactly when it is not blank, at most 255 bytes, not `.` or `..`, and
//!   holds no `/`, `\`, control character or bidirectional control; it is kept as given, so
//!   accepting is idempotent (the stored name parses again to itself), and it is always a valid
//!   folder segment.
//! * The header is visible ASCII only (no CR/LF: no header injection), its quoted fallback has
//!   no quote or backslash and one character per character of the name, and its RFC 8187
//!   `filename*` percent-decodes to the exact name.

use chrono::DateTime;
use tenantkit_kernel::TenantId;
use tenantkit_storage::{FileId, FileName, Folder, MAX_NAME_BYTES, StoredFile};
use uuid::Uuid;

use crate::input::text;

pub fn check(data: &[u8]) {
    let text = text(data);
    let parsed = FileName::parse(&text);
    assert_eq!(parsed.is_ok(), acceptable(&text), "{text:?}: {parsed:?}");
    let name = match parsed {
        Ok(name) => name,
        Err(error) => {
            assert_eq!(error.field, "name");
            return;
        }
    };
    assert_eq!(name.as_str(), text);
    assert_eq!(name.to_string(), text);
    assert_eq!(FileName::parse(name.as_str()), Ok(name.clone()));
    assert_eq!(
        Folder::root()
            .child(name.as_str())
            .map(|f| f.as_str().to_owned()),
        Ok(format!("/{text}"))
    );
    for content_type in ["image/png", "text/html"] {
        check_disposition(&file(name.clone(), content_type));
    }
}

/// What the parser must accept, written out independently.
fn acceptable(text: &str) -> bool {
    !text.trim().is_empty()
        && text.len() <= MAX_NAME_BYTES
        && text != "."
        && text != ".."
        && !text.chars().any(forbidden)
}

/// Path separators, control characters and the bidirectional controls that disguise a name.
pub(crate) fn forbidden(c: char) -> bool {
    matches!(c, '/' | '\\' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || c.is_control()
}

fn file(name: FileName, content_type: &str) -> StoredFile {
    StoredFile {
        tenant_id: TenantId::from_uuid(Uuid::nil()),
        id: FileId::from_uuid(Uuid::nil()),
        name,
        folder: Folder::root(),
        size: 0,
        content_type: content_type.to_owned(),
        sha256: String::new(),
        uploader: None,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

fn check_disposition(file: &StoredFile) {
    let name = file.name.as_str();
    let header = file.content_disposition();
    assert!(
        header.bytes().all(|b| (b' '..=b'~').contains(&b)),
        "not visible ASCII: {header:?}"
    );
    let kind = if file.inline_safe() {
        "inline"
    } else {
        "attachment"
    };
    let quoted = header
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix("; filename=\""))
        .unwrap_or_else(|| panic!("{header:?} does not start with {kind}; filename=\""));
    let (fallback, encoded) = quoted
        .split_once("\"; filename*=UTF-8''")
        .unwrap_or_else(|| panic!("{header:?} has no filename*"));
    assert!(!fallback.contains(['"', '\\']), "{header:?}");
    assert_eq!(fallback.chars().count(), name.chars().count(), "{header:?}");
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)),
        "{header:?}: filename* is not RFC 8187 attr-chars"
    );
    assert_eq!(percent_decode(encoded), name.as_bytes(), "{header:?}");
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            );
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
