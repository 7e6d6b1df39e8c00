//! Verifying Stripe's webhook signatures, as pure functions (no clock, no I/O) so they can be
//! tested and fuzzed: no input makes them panic.
//!
//! `Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex>,v0=<hex>` — the `v1` values are
//! HMAC-SHA256 over `"{t}.{raw body}"`, one per active endpoint secret (several while a secret
//! is rolled). We accept when any configured secret matches any `v1` value, in constant time,
//! and the timestamp is within the tolerance of now (either way: a replay from the future is
//! as suspicious as one from the past).

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Malformed,
    NoMatch,
    OutsideTolerance,
}

/// The parts of the header we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub v1: Vec<[u8; 32]>,
}

/// More would only be an attacker making us hash: Stripe sends one per active secret.
const MAX_SIGNATURES: usize = 16;
/// Stripe's headers are a few hundred bytes.
const MAX_HEADER_LEN: usize = 4096;

/// Parses the header. Unknown schemes (`v0`) are skipped; a `v1` that is not 64 hex digits
/// makes the header malformed, as does a missing or repeated `t`.
pub fn parse_header(header: &str) -> Result<SignatureHeader, SignatureError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (key, value) = item.split_once('=').ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                let value = value.trim();
                let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let parsed = value.parse::<i64>().ok().filter(|_| digits_only);
                if timestamp.is_some() || parsed.is_none() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = parsed;
            }
            "v1" => {
                if v1.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                v1.push(decode_hex_32(value.trim()).ok_or(SignatureError::Malformed)?);
            }
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !v1.is_empty() => Ok(SignatureHeader { timestamp, v1 }),
        _ => Err(SignatureError::Malformed),
    }
}

fn decode_hex_32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Checks `header` against `payload` with every secret; `now` and the tolerance in seconds.
/// Returns the signed timestamp.
pub fn verify(
    header: &str,
    payload: &[u8],
    secrets: &[SecretString],
    now_unix: i64,
    tolerance_secs: u64,
) -> Result<i64, SignatureError> {
    let parsed = parse_header(header)?;
    let signed_prefix = format!("{}.", parsed.timestamp);
    let matched = secrets.iter().any(|secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            return false;
        };
        mac.update(signed_prefix.as_bytes());
        mac.update(payload);
        // `verify_slice` compares in constant time; each candidate gets its own copy.
        parsed
            .v1
            .iter()
            .any(|signature| mac.clone().verify_slice(signature).is_ok())
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    let age = now_unix.abs_diff(parsed.timestamp);
    if age > tolerance_secs {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(parsed.timestamp)
}

/// The `v1` signature Stripe would send: for tests and for the fake Stripe server.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","created":1700000000}"#;
    const NOW: i64 = 1_700_000_000;

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values.iter().map(|v| SecretString::from(*v)).collect()
    }

    fn header(t: i64, signatures: &[String]) -> String {
        let mut text = format!("t={t}");
        for s in signatures {
            text.push_str(&format!(",v1={s}"));
        }
        text
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let h = header(NOW, &[sign(BODY, "whsec_a", NOW)]);
        assert_eq!(verify(&h, BODY, &secrets(&["whsec_a"]), NOW, 300), Ok(NOW));
    }

    #[test]
    fn a_forged_signature_or_changed_body_is_refused() {
        let h = header(NOW, &[sign(BODY, "whsec_attacker", NOW)]);
        let ours = secrets(&["whsec_a"]);
        assert_eq!(
            verify(&h, BODY, &ours, NOW, 300),
            Err(SignatureError::NoMatch)
        );
        let h = header(NOW, &[sign(BODY, "whsec_a", NOW)]);
        assert_eq!(
            verify(&h, b"{\"id\":\"evt_2\"}", &ours, NOW, 300),
            Err(SignatureError::NoMatch)
        );
        // The timestamp is signed too: changing it breaks the signature.
        let moved = header(NOW + 1, &[sign(BODY, "whsec_a", NOW)]);
        assert_eq!(
            verify(&moved, BODY, &ours, NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn any_v1_value_may_match_any_configured_secret() {
        // Stripe rolling its secret: two v1 values, only the second is ours.
        let h = header(
            NOW,
            &[
                sign(BODY, "whsec_unknown", NOW),
                sign(BODY, "whsec_new", NOW),
            ],
        );
        assert!(verify(&h, BODY, &secrets(&["whsec_new"]), NOW, 300).is_ok());
        // Us rolling ours: two configured secrets, the event signed with the old one.
        let h = header(NOW, &[sign(BODY, "whsec_old", NOW)]);
        assert!(verify(&h, BODY, &secrets(&["whsec_new", "whsec_old"]), NOW, 300).is_ok());
        assert_eq!(
            verify(&h, BODY, &[], NOW, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn the_tolerance_is_inclusive_and_applies_both_ways() {
        let ours = secrets(&["whsec_a"]);
        let at = |t: i64| header(t, &[sign(BODY, "whsec_a", t)]);
        assert!(verify(&at(NOW - 300), BODY, &ours, NOW, 300).is_ok());
        assert_eq!(
            verify(&at(NOW - 301), BODY, &ours, NOW, 300),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(&at(NOW + 301), BODY, &ours, NOW, 300),
            Err(SignatureError::OutsideTolerance)
        );
    }

    #[test]
    fn the_header_is_parsed_strictly() {
        let sig = sign(BODY, "whsec_a", NOW);
        let parsed = parse_header(&format!(" t={NOW}, v0=abc ,v1={sig}")).unwrap();
        assert_eq!(parsed.timestamp, NOW);
        assert_eq!(parsed.v1.len(), 1);
        assert_eq!(parse_header(""), Err(SignatureError::Missing));
        assert_eq!(parse_header("  "), Err(SignatureError::Missing));
        for malformed in [
            format!("v1={sig}"),
            format!("t={NOW}"),
            format!("t={NOW},t={NOW},v1={sig}"),
            format!("t=-5,v1={sig}"),
            format!("t=+5,v1={sig}"),
            format!("t=1e3,v1={sig}"),
            format!("t={NOW},v1=abc"),
            format!("t={NOW},v1={}", "zz".repeat(32)),
            format!("t={NOW},v1"),
            "garbage".to_owned(),
            format!("t=99999999999999999999,v1={sig}"),
            format!("t={NOW}{}", format!(",v1={sig}").repeat(17)),
            "x".repeat(MAX_HEADER_LEN + 1),
        ] {
            assert_eq!(
                parse_header(&malformed),
                Err(SignatureError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn odd_input_never_panics() {
        // A cheap stand-in for a fuzzer: every prefix of tricky headers, with multi-byte text.
        let samples = [
            format!("t={NOW},v1={}", sign(BODY, "k", NOW)),
            "t=é,v1=ü,=,,==,t=".to_owned(),
            "t=9223372036854775807,v1=".to_owned() + &"0".repeat(64),
            "\u{0}\u{ffff}t=1,v1=ａ".to_owned(),
        ];
        for sample in &samples {
            for end in 0..=sample.len() {
                if let Some(prefix) = sample.get(..end) {
                    let _ = verify(prefix, BODY, &secrets(&["k"]), i64::MIN, u64::MAX);
                    let _ = verify(prefix, BODY, &secrets(&[""]), i64::MAX, 0);
                }
            }
        }
    }
}
