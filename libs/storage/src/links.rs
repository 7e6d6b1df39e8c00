//! Signed, expiring download links.
//!
//! * On S3 a link is a presigned GET URL from object_store's signer: the browser fetches the
//!   bytes from the store itself. The signer cannot add `response-content-disposition`, so
//!   uploads store `Content-Type` and `Content-Disposition` on the object instead (see the
//!   upload module); the name in it is the one at upload time (a later rename is not seen by
//!   S3 links).
//! * On the filesystem a link is a token for the web's `/files/shared/{token}` route:
//!   `base64url(version ‖ tenant ‖ file ‖ expiry ‖ HMAC-SHA256)`, keyed by a key derived
//!   from the application's secret key. Checking it is constant-time and happens before
//!   anything in it is believed; the web then opens the file in the token's tenant, so a
//!   token can never reach another tenant's file.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tenantkit_kernel::TenantId;
use url::Url;
use uuid::Uuid;

use crate::{FileId, LinkError};

/// A link that downloads one file until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedLink {
    /// A presigned URL of the S3 store: hand it out as it is.
    Presigned { url: Url, expires_at: DateTime<Utc> },
    /// A token for `/files/shared/{token}`, checked by `Storage::verify_link_token`.
    Token {
        token: String,
        expires_at: DateTime<Utc>,
    },
}

impl SignedLink {
    pub fn expires_at(&self) -> DateTime<Utc> {
        match self {
            Self::Presigned { expires_at, .. } | Self::Token { expires_at, .. } => *expires_at,
        }
    }
}

const VERSION: u8 = 1;
const PAYLOAD_BYTES: usize = 1 + 16 + 16 + 8;
const MAC_BYTES: usize = 32;
/// What the link key is derived for: another use of the secret key gets another key.
const KEY_PURPOSE: &[u8] = b"tenantkit/storage/signed-link/v1";

/// The key link tokens are signed with.
#[derive(Clone)]
pub(crate) struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey([REDACTED])")
    }
}

impl LinkKey {
    pub(crate) fn derive(secret: &SecretString) -> Self {
        let mut mac = <Hmac<Sha256>>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(KEY_PURPOSE);
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    pub(crate) fn sign(&self, tenant: TenantId, file: FileId, expires_at: DateTime<Utc>) -> String {
        let mut token = Vec::with_capacity(PAYLOAD_BYTES + MAC_BYTES);
        token.push(VERSION);
        token.extend_from_slice(tenant.as_uuid().as_bytes());
        token.extend_from_slice(file.as_uuid().as_bytes());
        token.extend_from_slice(&expires_at.timestamp().to_be_bytes());
        let mut mac = self.mac();
        mac.update(&token);
        token.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(token)
    }

    pub(crate) fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(TenantId, FileId), LinkError> {
        // Longer text cannot be a token; refusing it first bounds the work an attacker causes.
        if token.len() > 128 {
            return Err(LinkError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| LinkError::Malformed)?;
        if bytes.len() != PAYLOAD_BYTES + MAC_BYTES || bytes[0] != VERSION {
            return Err(LinkError::Malformed);
        }
        let (payload, signature) = bytes.split_at(PAYLOAD_BYTES);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(signature)
            .map_err(|_| LinkError::BadSignature)?;
        let uuid =
            |at: usize| Uuid::from_slice(&payload[at..at + 16]).map_err(|_| LinkError::Malformed);
        let tenant = TenantId::from_uuid(uuid(1)?);
        let file = FileId::from_uuid(uuid(17)?);
        let expires = i64::from_be_bytes(
            payload[33..41]
                .try_into()
                .map_err(|_| LinkError::Malformed)?,
        );
        if now.timestamp() >= expires {
            return Err(LinkError::Expired);
        }
        Ok((tenant, file))
    }
}

/// When a link made at `now` expires: whole seconds, as tokens and S3 both count them.
pub(crate) fn expiry(now: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
    let ttl = TimeDelta::from_std(ttl).unwrap_or(TimeDelta::hours(1));
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now) + ttl
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> LinkKey {
        LinkKey::derive(&SecretString::from(secret))
    }

    #[test]
    fn a_token_names_its_tenant_and_file_until_it_expires() {
        let (tenant, file) = (TenantId::new(), FileId::new());
        let now = Utc::now();
        let expires = expiry(now, std::time::Duration::from_secs(60));
        let token = key("k").sign(tenant, file, expires);
        assert!(token.len() < 100);
        assert_eq!(key("k").verify(&token, now), Ok((tenant, file)));
        assert_eq!(
            key("k").verify(&token, expires - TimeDelta::seconds(1)),
            Ok((tenant, file))
        );
        assert_eq!(key("k").verify(&token, expires), Err(LinkError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let now = Utc::now();
        let token = key("k").sign(TenantId::new(), FileId::new(), now + TimeDelta::hours(1));
        assert_eq!(
            key("other").verify(&token, now),
            Err(LinkError::BadSignature)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for at in [1, 20, 40, 60] {
            bytes[at] ^= 1;
            let altered = URL_SAFE_NO_PAD.encode(&bytes);
            assert_eq!(
                key("k").verify(&altered, now),
                Err(LinkError::BadSignature),
                "byte {at}"
            );
            bytes[at] ^= 1;
        }
        // Pushing the expiry out is an alteration like any other.
        bytes[40] = bytes[40].wrapping_add(100);
        let later = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(key("k").verify(&later, now), Err(LinkError::BadSignature));
        for garbage in ["", "x", "!!!!", &token[..token.len() - 2], &"A".repeat(200)] {
            assert_eq!(
                key("k").verify(garbage, now),
                Err(LinkError::Malformed),
                "{garbage:?}"
            );
        }
    }
}
