//! HTTP `Range: bytes=...` for downloads (RFC 9110 §14): one range is served as 206, several
//! as the whole file (200), an unknown unit is ignored, and an invalid or unsatisfiable byte
//! range is refused (the web answers 416 with `Content-Range: bytes */<len>`).

/// A satisfiable range of a file: `start..end` (end exclusive), never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

/// The request's range cannot be served from a file of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the requested range is not satisfiable for {len} bytes")]
pub struct RangeNotSatisfiable {
    pub len: u64,
}

impl RangeNotSatisfiable {
    /// The `Content-Range` header value of the 416 answer: `bytes */<len>`.
    pub fn content_range(&self) -> String {
        format!("bytes */{}", self.len)
    }
}

impl ByteRange {
    /// Parses a `Range` header value against a file of `file_len` bytes.
    ///
    /// * `bytes=a-b` (clamped to the file's end), `bytes=a-` and `bytes=-n` (the last n bytes)
    ///   give `Ok(Some(range))`;
    /// * several ranges (`bytes=0-1,5-9`) and units other than `bytes` give `Ok(None)`: serve
    ///   the whole file;
    /// * malformed byte ranges (`bytes=5-2`, `bytes=x`, `bytes=-0`) and ranges starting at or
    ///   past the end (every range of an empty file) are [`RangeNotSatisfiable`].
    pub fn parse(header: &str, file_len: u64) -> Result<Option<Self>, RangeNotSatisfiable> {
        let refused = RangeNotSatisfiable { len: file_len };
        let Some((unit, spec)) = header.trim().split_once('=') else {
            return Err(refused);
        };
        if !unit.trim().eq_ignore_ascii_case("bytes") {
            return Ok(None);
        }
        if spec.contains(',') {
            return Ok(None);
        }
        let (first, last) = spec.trim().split_once('-').ok_or(refused)?;
        let range = match (first, last) {
            ("", "") => return Err(refused),
            ("", suffix) => {
                let suffix = position(suffix).ok_or(refused)?;
                if suffix == 0 || file_len == 0 {
                    return Err(refused);
                }
                Self {
                    start: file_len.saturating_sub(suffix),
                    end: file_len,
                }
            }
            (first, "") => {
                let start = position(first).ok_or(refused)?;
                Self {
                    start,
                    end: file_len,
                }
            }
            (first, last) => {
                let start = position(first).ok_or(refused)?;
                let last = position(last).ok_or(refused)?;
                if last < start {
                    return Err(refused);
                }
                Self {
                    start,
                    end: last.saturating_add(1).min(file_len),
                }
            }
        };
        if range.start >= file_len {
            return Err(refused);
        }
        Ok(Some(range))
    }

    /// The first `len` bytes (a preview); `None` when `len` or `file_len` is 0.
    pub fn first(len: u64, file_len: u64) -> Option<Self> {
        (len > 0 && file_len > 0).then(|| Self {
            start: 0,
            end: len.min(file_len),
        })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    /// The last byte's position (inclusive, as `Content-Range` writes it).
    pub fn last(&self) -> u64 {
        self.end - 1
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Never true: a range always holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` header value of the 206 answer: `bytes <start>-<last>/<len>`.
    pub fn content_range(&self, file_len: u64) -> String {
        format!("bytes {}-{}/{file_len}", self.start, self.last())
    }

    /// Whether this range lies within a file of `file_len` bytes.
    pub fn fits(&self, file_len: u64) -> bool {
        self.end <= file_len
    }
}

/// A byte position: ASCII digits only (no sign, no spaces). Too many digits saturate, which
/// then lies past any file's end.
fn position(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(header: &str, len: u64) -> Option<(u64, u64)> {
        ByteRange::parse(header, len)
            .unwrap()
            .map(|r| (r.start(), r.last()))
    }

    fn refused(header: &str, len: u64) -> bool {
        ByteRange::parse(header, len) == Err(RangeNotSatisfiable { len })
    }

    #[test]
    fn single_ranges_are_read_and_clamped() {
        assert_eq!(range("bytes=0-0", 10), Some((0, 0)));
        assert_eq!(range("bytes=0-9", 10), Some((0, 9)));
        assert_eq!(range("bytes=2-5", 10), Some((2, 5)));
        assert_eq!(range("bytes=5-", 10), Some((5, 9)));
        assert_eq!(range("bytes=0-", 10), Some((0, 9)));
        assert_eq!(range("bytes=9-", 10), Some((9, 9)));
        // Past the end: clamped to the last byte.
        assert_eq!(range("bytes=5-1000", 10), Some((5, 9)));
        assert_eq!(range("bytes=5-99999999999999999999999", 10), Some((5, 9)));
        // Suffixes: the last n bytes, the whole file when n is larger.
        assert_eq!(range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(range("bytes=-10", 10), Some((0, 9)));
        assert_eq!(range("bytes=-500", 10), Some((0, 9)));
        // The unit is case-insensitive and surrounding spaces are tolerated.
        assert_eq!(range("  Bytes=1-2 ", 10), Some((1, 2)));
        assert_eq!(range("bytes= 1-2", 10), Some((1, 2)));
    }

    #[test]
    fn lengths_and_headers_are_right() {
        let r = ByteRange::parse("bytes=2-5", 10).unwrap().unwrap();
        assert_eq!((r.len(), r.end()), (4, 6));
        assert_eq!(r.content_range(10), "bytes 2-5/10");
        assert!(r.fits(10) && !r.fits(5));
        assert_eq!(
            RangeNotSatisfiable { len: 10 }.content_range(),
            "bytes */10"
        );
        let first = ByteRange::first(4, 3).unwrap();
        assert_eq!((first.start(), first.last()), (0, 2));
        assert_eq!(ByteRange::first(4, 0), None);
    }

    #[test]
    fn several_ranges_and_other_units_mean_the_whole_file() {
        assert_eq!(range("bytes=0-1,5-6", 10), None);
        assert_eq!(range("bytes=0-1, -2", 10), None);
        assert_eq!(range("items=0-1", 10), None);
        assert_eq!(range("none=", 10), None);
    }

    #[test]
    fn malformed_and_unsatisfiable_ranges_are_refused() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=x-1",
            "bytes=1-x",
            "bytes=5-2",
            "bytes=-0",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=1--2",
            "bytes=0x1-2",
            "bytes=1-2-3",
            "bytes=10-",
            "bytes=10-20",
            "bytes=99999999999999999999999-",
        ] {
            assert!(refused(header, 10), "{header:?} should be refused");
        }
        // An empty file has no satisfiable range at all.
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1"] {
            assert!(refused(header, 0), "{header:?} on an empty file");
        }
    }

    #[test]
    fn parsing_never_panics_and_always_fits() {
        let alphabet = [
            "bytes",
            "=",
            "-",
            ",",
            "0",
            "1",
            "9",
            " ",
            "18446744073709551615",
            "x",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut header = String::new();
            for i in 0..(seed % 9) {
                header.push_str(alphabet[(seed.rotate_left(i as u32 * 5) % 10) as usize]);
            }
            let len = seed.rotate_left(17) % 20;
            if let Ok(Some(r)) = ByteRange::parse(&header, len) {
                assert!(
                    r.start() < r.end() && r.fits(len),
                    "{header:?} {len} -> {r:?}"
                );
            }
        }
    }
}
