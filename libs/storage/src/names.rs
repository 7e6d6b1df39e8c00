//! The names users give files and folders, validated at the edge. They are labels in the
//! database only: an object's key is `t/<tenant>/<file id>`, so no name ever becomes a path.
//! Both parsers are total (any input gives a value or an error, never a panic): they are fuzzed.

use std::fmt;

/// Longest file name, in bytes (what common filesystems allow, so downloads keep their names).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest folder path, in bytes.
pub const MAX_FOLDER_BYTES: usize = 1024;

/// Why a name or folder was refused; `field` is `"name"` or `"folder"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidName {
    pub field: &'static str,
    pub message: &'static str,
}

/// A file's name: 1 to 255 bytes of printable text, no path separators.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName(String);

impl FileName {
    /// Refuses empty or blank names, more than 255 bytes, `/`, `\`, NUL and other control
    /// characters, bidirectional overrides (they disguise `evil\u{202e}fdp.exe` as
    /// `evilexe.pdf`), and the names `.` and `..`. The name is kept exactly as given.
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let invalid = |message| InvalidName {
            field: "name",
            message,
        };
        if text.trim().is_empty() {
            return Err(invalid("must not be empty"));
        }
        if text.len() > MAX_NAME_BYTES {
            return Err(invalid("must be at most 255 bytes"));
        }
        if text == "." || text == ".." {
            return Err(invalid("must not be . or .."));
        }
        if text.contains('/') {
            return Err(invalid("must not contain a slash"));
        }
        if let Some(message) = forbidden_character(text) {
            return Err(invalid(message));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name read back from the database, where only parsed names are written.
    pub(crate) fn from_stored(text: String) -> Self {
        Self(text)
    }
}

/// A folder: `/` or `/a/b`, without empty, `.` or `..` segments and without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Folder(String);

impl Folder {
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Normalises `a/b`, `/a//b/` and `/a/b` to `/a/b` (and `""` to `/`); refuses `.` and `..`
    /// segments, `\`, NUL and other control characters, segments over 255 bytes and paths
    /// over 1024 bytes.
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let invalid = |message| InvalidName {
            field: "folder",
            message,
        };
        if text.len() > MAX_FOLDER_BYTES {
            return Err(invalid("must be at most 1024 bytes"));
        }
        if let Some(message) = forbidden_character(text) {
            return Err(invalid(message));
        }
        let mut normalised = String::with_capacity(text.len() + 1);
        for segment in text.split('/').filter(|s| !s.is_empty()) {
            if segment == "." || segment == ".." {
                return Err(invalid("must not contain . or .. segments"));
            }
            if segment.trim().is_empty() {
                return Err(invalid("must not contain blank segments"));
            }
            if segment.len() > MAX_NAME_BYTES {
                return Err(invalid("segments must be at most 255 bytes"));
            }
            normalised.push('/');
            normalised.push_str(segment);
        }
        if normalised.is_empty() {
            normalised.push('/');
        }
        // Measured again with the `/` a relative path gains: what is stored must parse again.
        if normalised.len() > MAX_FOLDER_BYTES {
            return Err(invalid("must be at most 1024 bytes"));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// What the paths of folders inside this one start with: `/a/b/` (`/` for the root).
    pub fn child_prefix(&self) -> String {
        if self.is_root() {
            "/".to_owned()
        } else {
            format!("{}/", self.0)
        }
    }

    /// The folder `name` inside this one.
    pub fn child(&self, name: &str) -> Result<Self, InvalidName> {
        Self::parse(&format!("{}{name}", self.child_prefix()))
    }

    /// A folder read back from the database, where only parsed folders are written.
    pub(crate) fn from_stored(text: String) -> Self {
        Self(text)
    }
}

impl Default for Folder {
    fn default() -> Self {
        Self::root()
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters no name or folder may hold, whatever the position.
fn forbidden_character(text: &str) -> Option<&'static str> {
    for c in text.chars() {
        match c {
            '\\' => return Some("must not contain a backslash"),
            '\0' => return Some("must not contain NUL"),
            c if c.is_control() => return Some("must not contain control characters"),
            // Bidirectional embeddings, overrides, isolates and marks.
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                return Some("must not contain bidirectional control characters");
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_kept_exactly() {
        for name in [
            "report.pdf",
            "Quarterly report (final) v2.xlsx",
            ".bashrc",
            "...",
            "naïve café 🎉.txt",
            " leading space.txt",
            &"a".repeat(255),
        ] {
            assert_eq!(FileName::parse(name).unwrap().as_str(), name);
        }
        // 85 three-byte characters are 255 bytes; one more is too many.
        assert!(FileName::parse(&"€".repeat(85)).is_ok());
        assert!(FileName::parse(&"€".repeat(86)).is_err());
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            "   ",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "/",
            "a\\b",
            "..\\..\\windows",
            "nul\0byte",
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
            "evil\u{202e}fdp.exe",
            "isolate\u{2066}x",
            &"a".repeat(256),
        ] {
            let error = FileName::parse(name).expect_err(name);
            assert_eq!(error.field, "name");
        }
    }

    #[test]
    fn folders_are_normalised() {
        for (given, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("docs", "/docs"),
            ("/docs/", "/docs"),
            ("/docs//2026/", "/docs/2026"),
            ("docs/2026", "/docs/2026"),
            ("/a b/c.d/...", "/a b/c.d/..."),
        ] {
            assert_eq!(
                Folder::parse(given).unwrap().as_str(),
                expected,
                "{given:?}"
            );
        }
        let docs = Folder::parse("/docs").unwrap();
        assert_eq!(docs.child_prefix(), "/docs/");
        assert_eq!(Folder::root().child_prefix(), "/");
        assert_eq!(docs.child("2026").unwrap().as_str(), "/docs/2026");
        assert!(docs.child("..").is_err());
    }

    #[test]
    fn hostile_folders_are_refused() {
        for folder in [
            "..",
            "/..",
            "/docs/../../etc",
            "/docs/./x",
            "a\\b",
            "/a\0b",
            "/a\nb",
            "/ /x",
            "/x\u{202e}",
            &format!("/{}", "a".repeat(256)),
            &"/a".repeat(600),
        ] {
            let error = Folder::parse(folder).expect_err(folder);
            assert_eq!(error.field, "folder");
        }
    }

    #[test]
    fn a_relative_folder_is_measured_with_its_leading_slash() {
        // Found by the fuzzer (tests/fuzz, target `folder`): 1024 bytes without the leading `/`
        // were accepted as 1025 with it, a folder that did not parse again.
        let longest = format!("{}b", "a/".repeat(511));
        let folder = Folder::parse(&longest).unwrap();
        assert_eq!(folder.as_str().len(), MAX_FOLDER_BYTES);
        assert_eq!(Folder::parse(folder.as_str()).unwrap(), folder);
        let error = Folder::parse(&format!("{longest}c")).unwrap_err();
        assert_eq!(error.field, "folder");
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_input() {
        // A cheap deterministic fuzz: every byte value at every position of short strings,
        // plus lossy decodings of random-looking byte soup.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (seed.rotate_left(i as u32 * 7) & 0xff) as u8)
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = FileName::parse(&text);
            if let Ok(folder) = Folder::parse(&text) {
                // Normalising is idempotent and the result passes again.
                assert_eq!(Folder::parse(folder.as_str()).unwrap(), folder);
                assert!(!folder.as_str().contains("//"));
            }
        }
    }
}
