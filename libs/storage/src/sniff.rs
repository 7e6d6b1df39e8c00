//! A file's content type, decided from its first bytes only: the client's declared type is
//! never trusted. Binary formats are recognised by their magic numbers (the `infer` crate);
//! text that looks like markup is named as markup (HTML, SVG, XML), because a browser would
//! sniff it as such; other valid UTF-8 is `text/plain`; anything else is
//! `application/octet-stream`.

/// How many leading bytes decide the type.
pub(crate) const SNIFF_BYTES: usize = 16 * 1024;

pub const TEXT_PLAIN: &str = "text/plain";
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The content type of a file that starts with `head`. `complete` says whether `head` is the
/// whole file (otherwise a multi-byte character cut at its end is not a UTF-8 error).
pub(crate) fn content_type(head: &[u8], complete: bool) -> &'static str {
    if head.is_empty() {
        return OCTET_STREAM;
    }
    // `infer` also knows a few text formats (HTML, XML, shell scripts); markup is named below,
    // where an SVG behind an XML prolog is told apart from other XML.
    let detected = infer::get(head);
    if let Some(kind) = detected.filter(|k| k.matcher_type() != infer::MatcherType::Text) {
        return kind.mime_type();
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut inside a character at the end of an incomplete head: the rest is still text.
        Err(error) if !complete && error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return OCTET_STREAM,
    };
    markup_type(text)
        .or(detected.map(|k| k.mime_type()))
        .unwrap_or(TEXT_PLAIN)
}

/// Text whose first non-blank character opens a tag: what browsers would render as a page or
/// an image, so it must never be called plain text.
fn markup_type(text: &str) -> Option<&'static str> {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if !trimmed.starts_with('<') {
        return None;
    }
    let lower = trimmed
        .chars()
        .take(4096)
        .collect::<String>()
        .to_ascii_lowercase();
    Some(if lower.contains("<svg") {
        "image/svg+xml"
    } else if lower.starts_with("<?xml") && !lower.contains("<html") {
        "application/xml"
    } else {
        "text/html"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";

    #[test]
    fn binary_formats_are_known_by_their_magic_numbers() {
        assert_eq!(content_type(PNG, false), "image/png");
        assert_eq!(
            content_type(b"\xff\xd8\xff\xe0\0\x10JFIF", false),
            "image/jpeg"
        );
        assert_eq!(content_type(b"GIF89a\x01\0\x01\0", true), "image/gif");
        assert_eq!(content_type(PDF, false), "application/pdf");
        assert_eq!(
            content_type(b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", false),
            "video/mp4"
        );
        assert_eq!(content_type(b"ID3\x04\0\0\0\0\0\0", false), "audio/mpeg");
        assert_eq!(
            content_type(b"PK\x03\x04\x14\0\0\0", false),
            "application/zip"
        );
    }

    #[test]
    fn text_is_plain_unless_it_is_markup() {
        assert_eq!(content_type(b"hello, world\n", true), TEXT_PLAIN);
        assert_eq!(content_type("naïve café".as_bytes(), true), TEXT_PLAIN);
        assert_eq!(content_type(b"<!DOCTYPE html><p>hi", true), "text/html");
        assert_eq!(
            content_type(b"\n  <script>alert(1)</script>", true),
            "text/html"
        );
        assert_eq!(
            content_type(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", true),
            "image/svg+xml"
        );
        assert_eq!(
            content_type(b"<?xml version=\"1.0\"?><svg onload=\"x()\"/>", true),
            "image/svg+xml"
        );
        assert_eq!(
            content_type(b"<?xml version=\"1.0\"?><note/>", true),
            "application/xml"
        );
        assert_eq!(content_type("\u{feff}<html>".as_bytes(), true), "text/html");
        assert_eq!(
            content_type(b"#!/bin/sh\nrm -rf /\n", true),
            "text/x-shellscript"
        );
    }

    #[test]
    fn a_character_cut_at_the_end_of_a_partial_head_is_still_text() {
        let text = "é".repeat(10);
        let cut = &text.as_bytes()[..5];
        assert_eq!(content_type(cut, false), TEXT_PLAIN);
        // ...but the same bytes as a whole file are not valid UTF-8.
        assert_eq!(content_type(cut, true), OCTET_STREAM);
    }

    #[test]
    fn other_bytes_are_octet_streams() {
        assert_eq!(content_type(b"", true), OCTET_STREAM);
        assert_eq!(content_type(b"\xff\xfe\xfd\x00\x01", true), OCTET_STREAM);
    }
}
