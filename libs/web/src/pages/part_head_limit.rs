//! A bound on the heads of a `multipart/form-data` body's parts (the preamble, each boundary
//! line and the part's headers), checked on the raw bytes as they stream in.
//!
//! multer (behind poem's `Multipart`) buffers a part's head until its blank line arrives, and
//! the preamble until the first boundary: with no bound, a client could send gigabytes of
//! "headers" to the upload form before its CSRF token is even read. The body itself cannot be
//! bounded (it carries the file), so this follows multer's reading: preamble up to the first
//! `--boundary`; after each boundary, padding and the line's CRLF, then headers up to the
//! first CRLF CRLF; then data, up to the next CRLF `--boundary`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use bytes::Bytes;
use futures::{Stream, StreamExt};

/// The most a part's head, or the preamble, may take. A browser's part heads are a few hundred
/// bytes (a long file name included).
pub(crate) const MAX_PART_HEAD_BYTES: usize = 16 * 1024;

/// Finds a byte pattern in a stream fed a byte at a time (Knuth–Morris–Pratt: boundaries often
/// start with dashes, so a naive restart would miss `---…` matches).
struct Finder {
    pattern: Vec<u8>,
    fallback: Vec<usize>,
    matched: usize,
}

impl Finder {
    fn new(pattern: Vec<u8>) -> Self {
        let mut fallback = vec![0; pattern.len()];
        let mut k = 0;
        for i in 1..pattern.len() {
            while k > 0 && pattern[i] != pattern[k] {
                k = fallback[k - 1];
            }
            if pattern[i] == pattern[k] {
                k += 1;
            }
            fallback[i] = k;
        }
        Self {
            pattern,
            fallback,
            matched: 0,
        }
    }

    /// Whether `byte` completes the pattern (the search then starts afresh).
    fn push(&mut self, byte: u8) -> bool {
        while self.matched > 0 && self.pattern[self.matched] != byte {
            self.matched = self.fallback[self.matched - 1];
        }
        if self.pattern[self.matched] == byte {
            self.matched += 1;
        }
        if self.matched == self.pattern.len() {
            self.matched = 0;
            return true;
        }
        false
    }
}

enum Stage {
    /// Before the first `--boundary`.
    Preamble,
    /// After a boundary: `--` (the end), or padding and CRLF, then headers to CRLF CRLF.
    Head {
        after_boundary: Vec<u8>,
        line_ended: bool,
    },
    /// A part's data, up to CRLF `--boundary`.
    Data,
    /// After the closing boundary: multer reads no further.
    Done,
}

/// Tracks where in the body the bytes are, and how long the current head has run.
pub(crate) struct PartHeadLimit {
    stage: Stage,
    head_bytes: usize,
    first_boundary: Finder,
    delimiter: Finder,
    line_end: Finder,
    blank_line: Finder,
}

impl PartHeadLimit {
    pub(crate) fn new(boundary: &str) -> Self {
        Self {
            stage: Stage::Preamble,
            head_bytes: 0,
            first_boundary: Finder::new(format!("--{boundary}").into_bytes()),
            delimiter: Finder::new(format!("\r\n--{boundary}").into_bytes()),
            line_end: Finder::new(b"\r\n".to_vec()),
            blank_line: Finder::new(b"\r\n\r\n".to_vec()),
        }
    }

    fn start_head(&mut self) {
        self.head_bytes = 0;
        self.line_end.matched = 0;
        self.blank_line.matched = 0;
        self.stage = Stage::Head {
            after_boundary: Vec::with_capacity(2),
            line_ended: false,
        };
    }

    /// Reads `chunk`; false once a head (or the preamble) is longer than allowed.
    pub(crate) fn accept(&mut self, chunk: &[u8]) -> bool {
        for &byte in chunk {
            match &mut self.stage {
                Stage::Preamble => {
                    self.head_bytes += 1;
                    if self.first_boundary.push(byte) {
                        self.start_head();
                    }
                }
                Stage::Head {
                    after_boundary,
                    line_ended,
                } => {
                    self.head_bytes += 1;
                    if after_boundary.len() < 2 {
                        after_boundary.push(byte);
                        if after_boundary.as_slice() == b"--" {
                            self.stage = Stage::Done;
                            continue;
                        }
                    }
                    if !*line_ended {
                        *line_ended = self.line_end.push(byte);
                    } else if self.blank_line.push(byte) {
                        self.stage = Stage::Data;
                        self.delimiter.matched = 0;
                    }
                }
                Stage::Data => {
                    if self.delimiter.push(byte) {
                        self.start_head();
                    }
                }
                Stage::Done => return true,
            }
            if self.head_bytes > MAX_PART_HEAD_BYTES {
                return false;
            }
        }
        true
    }
}

/// `body` with its part heads bounded: it fails (and `tripped` is set) at the first head
/// longer than [`MAX_PART_HEAD_BYTES`].
pub(crate) fn bounded<S>(
    body: S,
    boundary: &str,
    tripped: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut limit = PartHeadLimit::new(boundary);
    body.map(move |chunk| {
        let chunk = chunk?;
        if tripped.load(Ordering::Relaxed) || !limit.accept(&chunk) {
            tripped.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("a multipart part's head is too long"));
        }
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(boundary: &str, chunks: &[&[u8]]) -> bool {
        let mut limit = PartHeadLimit::new(boundary);
        chunks.iter().all(|chunk| limit.accept(chunk))
    }

    #[test]
    fn forms_as_browsers_send_them_pass_in_any_chunking() {
        let boundary = "----WebKitFormBoundaryx7";
        let big = vec![b'x'; 3 * MAX_PART_HEAD_BYTES];
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\ntoken\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&big);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert!(fits(boundary, &[&body]));
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert!(fits(boundary, &bytes));
        let sevens: Vec<&[u8]> = body.chunks(7).collect();
        assert!(fits(boundary, &sevens));
    }

    #[test]
    fn long_heads_and_preambles_are_refused() {
        let boundary = "b";
        let long_header = format!(
            "--b\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Junk: {}\r\n\r\ndata",
            "y".repeat(MAX_PART_HEAD_BYTES)
        );
        assert!(!fits(boundary, &[long_header.as_bytes()]));
        let preamble = "p".repeat(MAX_PART_HEAD_BYTES + 1);
        assert!(!fits(boundary, &[preamble.as_bytes()]));
        // A blank line right after the boundary is not the end of the head (multer reads the
        // boundary line's CRLF first, then looks for the headers' end).
        let no_headers = format!("--b\r\n\r\n{}", "z".repeat(MAX_PART_HEAD_BYTES));
        assert!(!fits(boundary, &[no_headers.as_bytes()]));
        // The second part's head counts afresh, and is bounded too.
        let second = format!(
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b\r\nX: {}",
            "q".repeat(MAX_PART_HEAD_BYTES)
        );
        assert!(!fits(boundary, &[second.as_bytes()]));
    }
}
