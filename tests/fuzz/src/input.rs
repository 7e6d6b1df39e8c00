//! Turning the fuzzer's bytes into inputs. `Unstructured` never fails here: when the bytes run
//! out it gives zeros and the smallest choices, so every input means something.

use arbitrary::Unstructured;
use uuid::Uuid;

/// Bytes as text: valid UTF-8 as it is, anything else with replacement characters.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A choice among `n` (0..n).
pub(crate) fn choice(u: &mut Unstructured, n: u8) -> u8 {
    u.int_in_range(0..=n - 1).unwrap_or(0)
}

pub(crate) fn bytes<'a>(u: &mut Unstructured<'a>) -> &'a [u8] {
    u.arbitrary().unwrap_or_default()
}

pub(crate) fn string(u: &mut Unstructured) -> String {
    text(bytes(u))
}

pub(crate) fn uuid(u: &mut Unstructured) -> Uuid {
    Uuid::from_bytes(u.arbitrary().unwrap_or_default())
}

pub(crate) fn number<T: for<'a> arbitrary::Arbitrary<'a> + Default>(u: &mut Unstructured) -> T {
    u.arbitrary().unwrap_or_default()
}

/// One edit of `text`, as an attacker tampering with a token would: a character replaced,
/// inserted or removed. (It may leave the text unchanged: callers compare.)
/// A Unix time: within nine hours of `around` three times in four, else any at all.
pub(crate) fn clock(u: &mut Unstructured, around: i64) -> i64 {
    match choice(u, 4) {
        0 => number(u),
        _ => around + i64::from(number::<i16>(u)),
    }
}

pub(crate) fn edit(u: &mut Unstructured, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = u.choose_index(chars.len() + 1).unwrap_or(0);
    let c: char = u.arbitrary().unwrap_or('A');
    match choice(u, 3) {
        0 if at < chars.len() => chars[at] = c,
        0 | 1 => chars.insert(at, c),
        _ if at < chars.len() => {
            chars.remove(at);
        }
        _ => {
            chars.pop();
        }
    }
    chars.into_iter().collect()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The URL-safe base64 alphabet without padding: what tokens and cursors are written in.
pub(crate) fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
