//! The `Stripe-Signature` header (billing `signature::parse_header` and `verify`).
//!
//! * An event is accepted exactly when one of the header's `v1` values is HMAC-SHA256 of
//!   `"{t}.{body}"` under one of our secrets (computed here, independently of the crate) and
//!   `t` is within the tolerance of now. So nothing is accepted that was not signed with our
//!   secret, for that body and that timestamp, whatever else the header holds.
//! * What Stripe sends (`t=..,v1=..`, `v0` values, decoy or several `v1`, spaces) is accepted
//!   within the tolerance; `signature::sign` writes what Stripe writes.
//! * A parsed header holds 1 to 16 signatures and a non-negative timestamp, and written back in
//!   Stripe's form parses to the same thing; only a blank header is "missing".

use arbitrary::Unstructured;
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use tenantkit_billing::signature::{self, SignatureError, SignatureHeader};

use crate::input::{bytes, choice, clock, edit, hex, number, string};

/// Ours: the current endpoint secret and the one being rolled out.
const SECRETS: [&str; 2] = ["whsec_fuzz_current", "whsec_fuzz_previous"];
const NOW: i64 = 1_700_000_000;

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let now = clock(&mut u, NOW);
    let tolerance = match choice(&mut u, 4) {
        0 => number(&mut u),
        _ => 300,
    };
    let (header, payload, genuine) = match choice(&mut u, 3) {
        0 => {
            let header = string(&mut u);
            (header, u.take_rest().to_vec(), None)
        }
        _ => signed(&mut u, now),
    };
    let secrets = SECRETS.map(SecretString::from);
    let verified = signature::verify(&header, &payload, &secrets, now, tolerance);

    let parsed = signature::parse_header(&header);
    let expected = parsed.clone().and_then(|parsed| {
        let ours = SECRETS.map(|secret| mac(secret, parsed.timestamp, &payload));
        if !parsed.v1.iter().any(|v1| ours.contains(v1)) {
            Err(SignatureError::NoMatch)
        } else if now.abs_diff(parsed.timestamp) > tolerance {
            Err(SignatureError::OutsideTolerance)
        } else {
            Ok(parsed.timestamp)
        }
    });
    assert_eq!(verified, expected, "{header:?}");
    if let Some(t) = genuine {
        let within = now.abs_diff(t) <= tolerance;
        let answer = if within {
            Ok(t)
        } else {
            Err(SignatureError::OutsideTolerance)
        };
        assert_eq!(verified, answer, "Stripe's own header {header:?}");
    }

    match parsed {
        Ok(parsed) => {
            assert!((1..=16).contains(&parsed.v1.len()) && parsed.timestamp >= 0);
            assert!(header.trim().len() <= 4096);
            assert_eq!(signature::parse_header(&written(&parsed)), Ok(parsed));
        }
        Err(error) => assert_eq!(
            error == SignatureError::Missing,
            header.trim().is_empty(),
            "{header:?}: {error:?}"
        ),
    }
}

/// A header as Stripe writes it, for a body signed with one of our secrets or another key,
/// with decoys, `v0` values and spaces; then perhaps tampered with. Also says the timestamp
/// when the header is genuine and untouched (it must then be accepted within the tolerance).
fn signed(u: &mut Unstructured, now: i64) -> (String, Vec<u8>, Option<i64>) {
    let t: i64 = match choice(u, 4) {
        0 => u.int_in_range(0..=i64::MAX).unwrap_or(0),
        _ => now.saturating_add(i64::from(number::<i16>(u))).max(0),
    };
    let mut payload = bytes(u).to_vec();
    let (key, ours) = match choice(u, 4) {
        0 => (SECRETS[0].to_owned(), true),
        1 => (SECRETS[1].to_owned(), true),
        _ => (string(u), false),
    };
    let signature = signature::sign(&payload, &key, t);
    assert_eq!(
        signature,
        hex(&mac(&key, t, &payload)),
        "sign writes Stripe's v1"
    );

    let mut items = vec![format!("t={t}"), format!("v1={signature}")];
    for _ in 0..choice(u, 15) {
        let decoy: [u8; 32] = number(u);
        let scheme = if number::<bool>(u) { "v0" } else { "v1" };
        items.push(format!("{scheme}={}", hex(&decoy)));
    }
    // Stripe's order is t first, but any order is the same header.
    let (first, second) = (
        u.choose_index(items.len()).unwrap_or(0),
        u.choose_index(items.len()).unwrap_or(0),
    );
    items.swap(first, second);
    let mut header = String::new();
    for (i, item) in items.iter().enumerate() {
        let space = [" ", ""][usize::from(choice(u, 2))];
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!("{space}{item}{space}"));
    }
    let mut genuine = ours.then_some(t);
    match choice(u, 4) {
        0 => {
            let tampered = edit(u, &header);
            if tampered != header {
                genuine = None;
            }
            header = tampered;
        }
        1 if !payload.is_empty() => {
            let at = u.choose_index(payload.len()).unwrap_or(0);
            payload[at] ^= number::<u8>(u).max(1);
            genuine = None;
        }
        2 => {
            let more = bytes(u);
            if !more.is_empty() {
                payload.extend_from_slice(more);
                genuine = None;
            }
        }
        _ => {}
    }
    (header, payload, genuine)
}

/// HMAC-SHA256 of `"{t}.{payload}"`: what Stripe signs.
fn mac(secret: &str, t: i64, payload: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

fn written(header: &SignatureHeader) -> String {
    let mut text = format!("t={}", header.timestamp);
    for v1 in &header.v1 {
        text.push_str(&format!(",v1={}", hex(v1)));
    }
    text
}
