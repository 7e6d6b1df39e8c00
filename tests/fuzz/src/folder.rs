//! Folder paths (storage `Folder::parse`), which normalise as well as validate.
//!
//! * A folder is accepted exactly when it is at most 1024 bytes as given and as normalised,
//!   holds no `\`, control or bidirectional control characters, and none of its segments is
//!   `.`, `..`, blank or over 255 bytes.
//! * The result is the input's segments joined under `/`: it starts with `/`, has no `//`,
//!   ends without `/` (but the root), and parses again to itself (normalising is idempotent),
//!   so a folder read back from the database or extended with `child` stays valid.

use tenantkit_storage::{Folder, MAX_FOLDER_BYTES, MAX_NAME_BYTES};

use crate::{file_name::forbidden, input::text};

pub fn check(data: &[u8]) {
    let text = text(data);
    let segments: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    let normalised = format!("/{}", segments.join("/"));
    let acceptable = text.len() <= MAX_FOLDER_BYTES
        && normalised.len() <= MAX_FOLDER_BYTES
        && !text.chars().any(|c| c != '/' && forbidden(c))
        && segments
            .iter()
            .all(|s| *s != "." && *s != ".." && !s.trim().is_empty() && s.len() <= MAX_NAME_BYTES);
    let parsed = Folder::parse(&text);
    assert_eq!(parsed.is_ok(), acceptable, "{text:?}: {parsed:?}");
    let folder = match parsed {
        Ok(folder) => folder,
        Err(error) => {
            assert_eq!(error.field, "folder");
            return;
        }
    };
    let path = folder.as_str();
    assert_eq!(path, normalised);
    assert!(path.starts_with('/') && !path.contains("//"));
    assert_eq!(folder.is_root(), path == "/");
    assert!(folder.is_root() || !path.ends_with('/'));
    assert_eq!(
        Folder::parse(path),
        Ok(folder.clone()),
        "normalising {text:?} again"
    );
    let prefix = folder.child_prefix();
    assert!(prefix.starts_with(path) && prefix.ends_with('/'));
    assert_eq!(
        folder.child("x").is_ok(),
        prefix.len() < MAX_FOLDER_BYTES,
        "{path:?}/x"
    );
}
