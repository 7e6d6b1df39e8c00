//! Two-factor authentication with time-based one-time passwords (RFC 6238) and recovery codes.
//!
//! Pure functions, no database: the caller stores the secret, the last accepted time step (for
//! replay protection) and the recovery code hashes. The parameters are the ones every
//! authenticator app supports without asking: HMAC-SHA1, 6 digits, 30-second steps.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use qrcode::{EcLevel, QrCode, render::svg};
use rand::{Rng as _, RngCore as _};
use sha2::{Digest as _, Sha256};
use totp_rs::{Rfc6238, Secret, TOTP};

const SECRET_LEN: usize = 20;
const DIGITS: usize = 6;
const STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one: covers a phone clock ~30 s off and a code
/// typed just as it rolled over (RFC 6238 §5.2 recommends one).
const SKEW_STEPS: i64 = 1;

/// A TOTP shared secret: 160 random bits, RFC 4226's recommended size. Never printed by Debug.
#[derive(Clone)]
pub struct TotpSecret([u8; SECRET_LEN]);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_LEN];
        // ThreadRng is a CSPRNG seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// RFC 4648 base32 without padding: what authenticator apps take when typed in by hand,
    /// and a text form to store.
    pub fn to_base32(&self) -> String {
        totp(&self.0, DIGITS).get_secret_base32()
    }

    /// Reads [`Self::to_base32`]'s form back, forgiving case, spaces and padding (people copy
    /// it by hand). Anything that is not exactly a 160-bit secret is refused.
    pub fn from_base32(encoded: &str) -> Option<Self> {
        let normalised: String = encoded
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .trim_end_matches('=')
            .to_ascii_uppercase();
        // 160 bits are exactly 32 symbols; a longer string would decode with its tail ignored.
        if normalised.len() != 32 {
            return None;
        }
        let bytes = Secret::Encoded(normalised).to_bytes().ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// Built through `Rfc6238` rather than `TOTP::new`, whose parameter list changes when any crate
/// in the build enables totp-rs's `otpauth` feature; this path compiles either way.
fn totp(secret: &[u8], digits: usize) -> TOTP {
    let mut rfc = Rfc6238::with_defaults(secret.to_vec()).expect("a 160-bit secret is long enough");
    rfc.digits(digits).expect("6 to 8 digits are valid");
    TOTP::from_rfc6238(rfc).expect("the RFC 6238 defaults are valid")
}

/// The code an authenticator shows at `unix_time`.
pub fn code_at(secret: &TotpSecret, unix_time: u64) -> String {
    totp(&secret.0, DIGITS).generate(unix_time)
}

/// Checks a typed code (spaces ignored) against the steps around `unix_time` and returns the
/// step it matched, which the caller stores as the new `last_used_step`. Steps at or before
/// `last_used_step` are never accepted, so an observed code cannot be replayed.
pub fn verify_code(
    secret: &TotpSecret,
    code: &str,
    unix_time: u64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = i64::try_from(unix_time / STEP_SECS).ok()?;
    let totp = totp(&secret.0, DIGITS);
    let mut matched = None;
    // Every candidate is compared (no early return) so timing says nothing about which matched.
    for step in current - SKEW_STEPS..=current + SKEW_STEPS {
        if last_used_step.is_some_and(|last| step <= last) {
            continue;
        }
        let Some(time) = u64::try_from(step)
            .ok()
            .and_then(|s| s.checked_mul(STEP_SECS))
        else {
            continue;
        };
        if constant_time_eq(totp.generate(time).as_bytes(), code.as_bytes()) {
            matched = Some(step);
        }
    }
    matched
}

/// Compares without stopping at the first difference; `black_box` keeps the optimiser from
/// turning the fold back into an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// The `otpauth://` URI authenticator apps read from the QR code (Google Authenticator's
/// key URI format). Issuer and account are percent-encoded (RFC 3986 unreserved characters
/// kept), so a colon or `@` in them cannot be confused with the label's separator.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            write!(encoded, "%{byte:02X}").expect("writing to a String cannot fail");
        }
    }
    encoded
}

/// An SVG document (no XML declaration, so it can also be inlined in HTML) showing `data` as a
/// QR code, at least 200 px square with the quiet zone scanners need.
///
/// The site's Content-Security-Policy forbids inline styles: qrcode's renderer draws with
/// presentation attributes (`fill`, `shape-rendering`) only, never `style=`; a test guards
/// that. Data too long for any QR code (about 2 KB, far beyond an otpauth URI) yields an empty
/// SVG and an error in the log rather than a panic: the secret can still be typed by hand.
pub fn qr_svg(data: &str) -> String {
    let code = match QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(%error, length = data.len(), "cannot render a QR code");
            return r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"/>"#
                .to_owned();
        }
    };
    let svg = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // Drop the `<?xml ...?>` declaration: it is optional for a standalone file and not allowed
    // inside an HTML document.
    match svg.find("<svg") {
        Some(start) => svg[start..].to_owned(),
        None => svg,
    }
}

/// [`qr_svg`] as a `data:` URI for `<img src>` (needs `img-src data:` in the CSP).
pub fn qr_svg_data_uri(data: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(qr_svg(data));
    format!("data:image/svg+xml;base64,{encoded}")
}

pub const RECOVERY_CODE_COUNT: usize = 10;
/// Lowercase letters and digits without the look-alikes 0/o, 1/l/i: 31 symbols.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// 12 symbols of 31 carry 12 × log2(31) ≈ 59.4 bits.
const RECOVERY_SYMBOLS: usize = 12;

/// Ten single-use codes like `abcd-efgh-jk23`, shown to the user once; store only their
/// [`hash_recovery_code`] hashes.
pub fn generate_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut code = String::with_capacity(RECOVERY_SYMBOLS + 2);
            for i in 0..RECOVERY_SYMBOLS {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                let symbol = RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())];
                code.push(char::from(symbol));
            }
            code
        })
        .collect()
}

/// SHA-256 (hex) of the code with surrounding space, inner spaces and hyphens removed and
/// letters lowercased, so however the user types it, it matches the stored hash.
///
/// A fast hash is enough here, unlike for passwords: each code carries ~59 random bits, so
/// even a leaked table of hashes cannot be brute-forced, and lookups can stay exact-match.
pub fn hash_recovery_code(code: &str) -> String {
    let normalised: String = code
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    Sha256::digest(normalised.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 appendix B SHA1 secret.
    fn rfc_secret() -> TotpSecret {
        TotpSecret(*b"12345678901234567890")
    }

    #[test]
    fn rfc_6238_sha1_test_vectors() {
        let secret = rfc_secret();
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, eight) in vectors {
            assert_eq!(totp(&secret.0, 8).generate(time), eight, "T={time}");
            assert_eq!(code_at(&secret, time), eight[2..], "T={time}");
        }
    }

    #[test]
    fn one_step_of_skew_is_accepted_two_are_not() {
        let secret = rfc_secret();
        let now = 1_111_111_111;
        let step = i64::try_from(now / STEP_SECS).unwrap();
        assert_eq!(verify_code(&secret, "050471", now, None), Some(step));
        assert_eq!(
            verify_code(&secret, &code_at(&secret, now - 30), now, None),
            Some(step - 1)
        );
        assert_eq!(
            verify_code(&secret, &code_at(&secret, now + 30), now, None),
            Some(step + 1)
        );
        assert_eq!(
            verify_code(&secret, &code_at(&secret, now - 60), now, None),
            None
        );
        assert_eq!(
            verify_code(&secret, &code_at(&secret, now + 60), now, None),
            None
        );
    }

    #[test]
    fn a_used_step_is_not_accepted_again() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = verify_code(&secret, "005924", now, None).unwrap();
        assert_eq!(verify_code(&secret, "005924", now, Some(step)), None);
        assert_eq!(verify_code(&secret, "005924", now + 30, Some(step)), None);
        // An older code is refused once a newer one was used, and the next one still works.
        let earlier = code_at(&secret, now - 30);
        assert_eq!(verify_code(&secret, &earlier, now, Some(step)), None);
        let next = code_at(&secret, now + 30);
        assert_eq!(
            verify_code(&secret, &next, now + 30, Some(step)),
            Some(step + 1)
        );
    }

    #[test]
    fn codes_must_be_six_digits_spaces_ignored() {
        let secret = rfc_secret();
        let now = 2_000_000_000;
        assert!(verify_code(&secret, " 279 037 ", now, None).is_some());
        for bad in ["", "27903", "2790377", "27903a", "279-037", "２７９０３７"] {
            assert_eq!(verify_code(&secret, bad, now, None), None, "{bad:?}");
        }
        assert_eq!(verify_code(&secret, "279037", 0, None), None);
    }

    #[test]
    fn base32_round_trips_and_is_strict_about_length() {
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let secret = TotpSecret::generate();
        let encoded = secret.to_base32();
        assert_eq!(encoded.len(), 32);
        assert!(
            encoded
                .bytes()
                .all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'))
        );
        let decoded = TotpSecret::from_base32(&encoded).unwrap();
        assert_eq!(decoded.0, secret.0);
        let typed = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
        assert_eq!(TotpSecret::from_base32(typed).unwrap().0, rfc_secret().0);
        for bad in [
            "",
            "GEZDGNBVGY3TQOJQ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQA",
            "0".repeat(32).as_str(),
        ] {
            assert!(TotpSecret::from_base32(bad).is_none(), "{bad:?}");
        }
        assert_ne!(TotpSecret::generate().0, TotpSecret::generate().0);
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let secret = rfc_secret();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "TotpSecret(..)");
        assert!(!shown.contains(&secret.to_base32()));
    }

    #[test]
    fn otpauth_uris_are_percent_encoded() {
        let uri = otpauth_uri(&rfc_secret(), "Acme: Inc", "ada+2fa@acme.test");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%3A%20Inc:ada%2B2fa%40acme.test\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%3A%20Inc\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(percent_encode("a-b.c_d~é"), "a-b.c_d~%C3%A9");
    }

    #[test]
    fn qr_codes_are_svg_without_inline_styles() {
        let svg = qr_svg(&otpauth_uri(&rfc_secret(), "Tenantkit", "ada@acme.test"));
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("style="));
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap();
        assert!(width >= 200, "{width}");

        let uri = qr_svg_data_uri("hello");
        let payload = uri.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), qr_svg("hello"));

        assert!(qr_svg(&"x".repeat(10_000)).starts_with("<svg"));
    }

    #[test]
    fn recovery_codes_are_unambiguous_and_strong() {
        assert!(RECOVERY_SYMBOLS as f64 * (RECOVERY_ALPHABET.len() as f64).log2() >= 50.0);
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        for code in &codes {
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3, "{code}");
            assert!(groups.iter().all(|g| g.len() == 4), "{code}");
            assert!(
                code.bytes()
                    .all(|b| b == b'-' || RECOVERY_ALPHABET.contains(&b))
            );
            assert!(!code.contains(['0', '1', 'o', 'l', 'i']));
        }
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }

    #[test]
    fn recovery_codes_hash_however_they_are_typed() {
        let hash = hash_recovery_code("abcdefghjk12");
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(hash_recovery_code("ABCD-efgh jk12"), hash);
        assert_eq!(hash_recovery_code("  abcd-efgh-jk12\n"), hash);
        assert_ne!(hash_recovery_code("abcd-efgh-jk13"), hash);
        // SHA-256 of "abc", to pin the encoding.
        assert_eq!(
            hash_recovery_code("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
