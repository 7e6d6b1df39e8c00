//! Signed download link tokens (storage `Storage::verify_link_token`):
//! `base64url(1 ‖ tenant ‖ file ‖ expiry ‖ HMAC-SHA256)` under a key derived from the secret key.
//! The tokens are written here from that description, independently of the crate.
//!
//! * A token is accepted exactly when it is, byte for byte, the token we would write for its
//!   tenant, file and expiry, and now is before the expiry: a forged, altered or re-encoded
//!   token never names a file. An expired answer is only given for a genuine token.
//! * Refusals are told apart: malformed (not 73 bytes of version 1 in canonical base64url, or
//!   over 128 characters), bad signature, expired.
//! * A written token verifies until its expiry, names its tenant and file, is refused under
//!   another secret key, and any one-character edit of it is refused.

use std::sync::OnceLock;

use arbitrary::Unstructured;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use tenantkit_config::{StorageBackend, StorageSettings};
use tenantkit_kernel::TenantId;
use tenantkit_storage::{FileId, LinkError, Storage};
use uuid::Uuid;

use crate::input::{choice, clock, edit, number, text, uuid};

const SECRET: &str = "fuzz secret key";
const OTHER_SECRET: &str = "another deployment's secret key";
const NOW: i64 = 1_700_000_000;

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let now = clock(&mut u, NOW);
    let Some(now) = DateTime::from_timestamp(now, 0) else {
        return;
    };
    if choice(&mut u, 2) == 0 {
        let token = text(u.take_rest());
        check_answer(&token, now);
        return;
    }
    let (tenant, file) = (uuid(&mut u), uuid(&mut u));
    let expires = match choice(&mut u, 4) {
        0 => number(&mut u),
        _ => now.timestamp() + i64::from(number::<i16>(&mut u)),
    };
    let token = write(&key(SECRET), tenant, file, expires);
    let named = (TenantId::from_uuid(tenant), FileId::from_uuid(file));
    let answer = if now.timestamp() < expires {
        Ok(named)
    } else {
        Err(LinkError::Expired)
    };
    assert_eq!(storage(SECRET).verify_link_token(&token, now), answer);
    assert_eq!(
        storage(OTHER_SECRET).verify_link_token(&token, now),
        Err(LinkError::BadSignature)
    );
    let edited = edit(&mut u, &token);
    if edited != token {
        assert!(
            matches!(
                storage(SECRET).verify_link_token(&edited, now),
                Err(LinkError::Malformed | LinkError::BadSignature)
            ),
            "{edited:?}, an edit of {token:?}"
        );
    }
    check_answer(&edited, now);
}

/// Compares the answer for any text with what the token format says it must be.
fn check_answer(token: &str, now: DateTime<Utc>) {
    let answer = storage(SECRET).verify_link_token(token, now);
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .filter(|b| token.len() <= 128 && b.len() == 73 && b[0] == 1);
    let Some(bytes) = bytes else {
        assert_eq!(answer, Err(LinkError::Malformed), "{token:?}");
        return;
    };
    let tenant = Uuid::from_slice(&bytes[1..17]).expect("16 bytes");
    let file = Uuid::from_slice(&bytes[17..33]).expect("16 bytes");
    let expires = i64::from_be_bytes(bytes[33..41].try_into().expect("8 bytes"));
    let expected = if write(&key(SECRET), tenant, file, expires) != token {
        Err(LinkError::BadSignature)
    } else if now.timestamp() >= expires {
        Err(LinkError::Expired)
    } else {
        Ok((TenantId::from_uuid(tenant), FileId::from_uuid(file)))
    };
    assert_eq!(answer, expected, "{token:?}");
}

type HmacSha256 = Hmac<Sha256>;

/// The link key: HMAC-SHA256 of the purpose under the secret key.
fn key(secret: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"tenantkit/storage/signed-link/v1");
    mac.finalize().into_bytes().into()
}

fn write(key: &[u8; 32], tenant: Uuid, file: Uuid, expires: i64) -> String {
    let mut token = vec![1];
    token.extend_from_slice(tenant.as_bytes());
    token.extend_from_slice(file.as_bytes());
    token.extend_from_slice(&expires.to_be_bytes());
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    mac.update(&token);
    token.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(token)
}

/// A filesystem storage (the backend whose links are tokens) under a temporary folder; made
/// once per process and secret.
fn storage(secret: &'static str) -> &'static Storage {
    static OURS: OnceLock<Storage> = OnceLock::new();
    static OTHER: OnceLock<Storage> = OnceLock::new();
    let cell = if secret == SECRET { &OURS } else { &OTHER };
    cell.get_or_init(|| {
        let settings = StorageSettings {
            backend: StorageBackend::Local {
                root: std::env::temp_dir().join("tenantkit-fuzz-links"),
            },
            ..StorageSettings::default()
        };
        let storage = Storage::new(&settings, &SecretString::from(secret)).expect("local storage");
        assert!(!storage.links_are_presigned());
        storage
    })
}
