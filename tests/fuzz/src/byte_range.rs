//! The download `Range` header (storage `ByteRange::parse`), against files of any size.
//!
//! * A served range lies inside the file: `start < end <= size`, `last = end - 1`, never empty.
//! * Written back as `bytes=<start>-<last>` it parses to the same range, and the 206 and 416
//!   `Content-Range` values state exactly what was parsed.
//! * Well-formed headers mean what RFC 9110 says, whatever the letter case of the unit and the
//!   spaces around it: `bytes=a-b` (clamped to the end), `bytes=a-`, `bytes=-n` (the last n
//!   bytes) give the expected range or a refusal; several ranges and other units mean the
//!   whole file (`None`).
//! * `ByteRange::first` (previews) is the first `min(n, size)` bytes.

use arbitrary::Unstructured;
use tenantkit_storage::{ByteRange, RangeNotSatisfiable};

use crate::input::{choice, number, string, text};

/// What a header should give: `Some((start, end))`, `None` (the whole file), or a refusal.
type Expected = Result<Option<(u64, u64)>, ()>;

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let file_len = file_len(&mut u);
    check_first(number(&mut u), file_len);
    let (header, expected) = match choice(&mut u, 5) {
        0 => (text(u.take_rest()), None),
        1 => {
            let (first, a) = position(&mut u, file_len);
            let (last, b) = position(&mut u, file_len);
            let expected = if b < a || a >= file_len {
                Err(())
            } else {
                Ok(Some((a, b.saturating_add(1).min(file_len))))
            };
            (
                byte_header(&mut u, &format!("{first}-{last}")),
                Some(expected),
            )
        }
        2 => {
            let (first, a) = position(&mut u, file_len);
            let expected = if a < file_len {
                Ok(Some((a, file_len)))
            } else {
                Err(())
            };
            (byte_header(&mut u, &format!("{first}-")), Some(expected))
        }
        3 => {
            let (suffix, n) = position(&mut u, file_len);
            let expected = if n == 0 || file_len == 0 {
                Err(())
            } else {
                Ok(Some((file_len - n.min(file_len), file_len)))
            };
            (byte_header(&mut u, &format!("-{suffix}")), Some(expected))
        }
        _ => whole_file(&mut u),
    };
    let parsed = ByteRange::parse(&header, file_len);
    if let Some(expected) = expected {
        let got = parsed
            .map(|r| r.map(|r| (r.start(), r.end())))
            .map_err(|_| ());
        assert_eq!(got, expected, "{header:?} for {file_len} bytes");
    }
    match parsed {
        Ok(Some(range)) => {
            assert!(
                range.start() < range.end() && range.end() <= file_len,
                "{header:?} for {file_len} bytes gave {range:?}"
            );
            assert!(range.fits(file_len) && !range.is_empty());
            assert_eq!(range.len(), range.end() - range.start());
            assert_eq!(range.last(), range.end() - 1);
            assert_eq!(
                range.content_range(file_len),
                format!("bytes {}-{}/{file_len}", range.start(), range.last())
            );
            let canonical = format!("bytes={}-{}", range.start(), range.last());
            assert_eq!(ByteRange::parse(&canonical, file_len), Ok(Some(range)));
            let (unit, spec) = header.trim().split_once('=').expect("a range has a unit");
            assert!(unit.trim().eq_ignore_ascii_case("bytes") && !spec.contains(','));
        }
        Ok(None) => {
            let (unit, spec) = header
                .trim()
                .split_once('=')
                .expect("the whole file only for a header of another unit or several ranges");
            assert!(!unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(','));
        }
        Err(refused) => {
            assert_eq!(refused, RangeNotSatisfiable { len: file_len });
            assert_eq!(refused.content_range(), format!("bytes */{file_len}"));
        }
    }
}

/// Mostly small files (where the edges are), and the extremes.
fn file_len(u: &mut Unstructured) -> u64 {
    match choice(u, 4) {
        0 => u64::from(choice(u, 21)),
        1 => u64::from(number::<u32>(u)),
        2 => u64::MAX - u64::from(number::<u8>(u)),
        _ => number(u),
    }
}

/// A byte position as a client may write it (leading zeros, more digits than a u64 holds) and
/// what it means (too large saturates: past any end).
fn position(u: &mut Unstructured, file_len: u64) -> (String, u64) {
    let value = match choice(u, 4) {
        0 => u64::from(choice(u, 25)),
        1 => file_len
            .saturating_add(u64::from(choice(u, 4)))
            .saturating_sub(u64::from(choice(u, 4))),
        2 => number(u),
        _ => return (format!("{}", u128::MAX), u64::MAX),
    };
    let zeros = usize::from(choice(u, 3));
    (format!("{}{value}", "0".repeat(zeros)), value)
}

/// `bytes=<spec>` with the unit's letter case and the spaces the parser tolerates chosen by the
/// fuzzer (around the header, around the unit, after `=`).
fn byte_header(u: &mut Unstructured, spec: &str) -> String {
    let unit: String = "bytes"
        .chars()
        .map(|c| {
            if number::<bool>(u) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let mut space = || [" ", "", "\t", "  "][usize::from(choice(u, 4))];
    format!("{}{unit}{}={}{spec}{}", space(), space(), space(), space())
}

/// Several ranges, or another unit: both mean "serve the whole file".
fn whole_file(u: &mut Unstructured) -> (String, Option<Expected>) {
    let rest = string(u);
    if number::<bool>(u) {
        (format!("bytes={rest},{}", string(u)), Some(Ok(None)))
    } else {
        let unit: String = rest.chars().filter(|&c| c != '=').collect();
        let expected = (!unit.trim().eq_ignore_ascii_case("bytes")).then_some(Ok(None));
        (format!("{unit}={}", string(u)), expected)
    }
}

fn check_first(n: u64, file_len: u64) {
    match ByteRange::first(n, file_len) {
        Some(range) => {
            assert_eq!((range.start(), range.end()), (0, n.min(file_len)));
            assert!(range.fits(file_len) && !range.is_empty());
        }
        None => assert!(n == 0 || file_len == 0),
    }
}
