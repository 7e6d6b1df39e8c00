//! Signed, expiring, single-use tokens for emailed links (verify email, reset password, confirm
//! a new email, accept an invitation).
//!
//! A token is `base64url(claims JSON) "." base64url(HMAC-SHA256)`: nothing is stored when one is
//! issued, so the worker mints it when the email is sent and no secret link sits in the job
//! queue. A token carries a *stamp* of the account (a digest of its password hash and email),
//! so it dies when either changes; its nonce is written to `used_tokens` when it is used, so it
//! works once.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use tenantkit_db::DbError;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Longer tokens than this are refused before any work (they cannot be ours): the longest we
/// write, an email change to a 254-character address of 4-byte characters, is about 1,650.
const MAX_TOKEN_LEN: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    Invitation,
}

impl TokenPurpose {
    /// How long a link stays valid.
    pub const fn lifetime(self) -> chrono::Duration {
        match self {
            Self::VerifyEmail | Self::ChangeEmail => chrono::Duration::hours(48),
            Self::ResetPassword => chrono::Duration::hours(1),
            Self::Invitation => chrono::Duration::days(7),
        }
    }
}

/// What a token says. Short field names keep links short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    #[serde(rename = "p")]
    pub purpose: TokenPurpose,
    /// The user (or, for invitations, the invitation) the token is about.
    #[serde(rename = "s")]
    pub subject: Uuid,
    /// The tenant of an invitation.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Uuid>,
    /// The new address of an email change.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The account's stamp when the token was issued.
    #[serde(rename = "k")]
    pub stamp: String,
    /// Expiry, in seconds since the epoch.
    #[serde(rename = "e")]
    pub expires: i64,
    #[serde(rename = "n")]
    pub nonce: String,
}

impl TokenClaims {
    pub fn new(purpose: TokenPurpose, subject: Uuid, stamp: String, now: DateTime<Utc>) -> Self {
        Self {
            purpose,
            subject,
            tenant: None,
            email: None,
            stamp,
            expires: (now + purpose.lifetime()).timestamp(),
            nonce: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        }
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.expires, 0).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, forged, for another purpose, or made for an account state that has changed.
    #[error("the link is not valid")]
    Invalid,
    #[error("the link has expired")]
    Expired,
    #[error("the link has already been used")]
    Used,
}

/// Signs and checks tokens with a key derived from the deployment's secret key (a key of its
/// own, so a token can never pass for a session or CSRF value).
#[derive(Clone)]
pub struct TokenSigner {
    key: [u8; 32],
}

impl TokenSigner {
    pub fn new(secret_key: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret_key.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"tenantkit/account-tokens/v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &TokenClaims) -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims always serialise"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of a genuine, unexpired token for `purpose`. The stamp and single use are
    /// checked by the caller against the account ([`consume`]).
    pub fn verify(
        &self,
        token: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;
        let claims: TokenClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Invalid)?;
        if claims.purpose != purpose {
            return Err(TokenError::Invalid);
        }
        if claims.expires < now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// A digest of what must not change while a token is outstanding: the password hash and the
/// email. Changing either invalidates every token issued before.
pub fn account_stamp(password_hash: Option<&str>, email: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(password_hash.unwrap_or_default().as_bytes());
    digest.update([0]);
    digest.update(email.to_lowercase().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.finalize()[..12])
}

/// Marks the token used, inside the transaction that acts on it: a second use (or a
/// concurrent one, once this commits) finds the nonce and is refused.
pub async fn consume(conn: &mut PgConnection, claims: &TokenClaims) -> Result<(), ConsumeError> {
    let inserted = sqlx::query!(
        "insert into used_tokens (nonce, expires_at) values ($1, $2) on conflict do nothing",
        claims.nonce,
        claims.expires_at()
    )
    .execute(&mut *conn)
    .await
    .map_err(DbError::from)?;
    if inserted.rows_affected() == 0 {
        return Err(ConsumeError::Token(TokenError::Used));
    }
    // Opportunistic clean-up keeps the table small without a scheduled job.
    sqlx::query!("delete from used_tokens where expires_at < now() - interval '1 day'")
        .execute(conn)
        .await
        .map_err(DbError::from)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(&SecretString::from("a test key that is long enough to use"))
    }

    fn claims(now: DateTime<Utc>) -> TokenClaims {
        TokenClaims::new(
            TokenPurpose::ResetPassword,
            Uuid::now_v7(),
            account_stamp(Some("hash"), "a@b.co"),
            now,
        )
    }

    #[test]
    fn a_signed_token_verifies_for_its_purpose_only() {
        let now = Utc::now();
        let claims = claims(now);
        let token = signer().sign(&claims);
        assert_eq!(
            signer().verify(&token, TokenPurpose::ResetPassword, now),
            Ok(claims)
        );
        assert_eq!(
            signer().verify(&token, TokenPurpose::VerifyEmail, now),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn altered_forged_and_expired_tokens_are_refused() {
        let now = Utc::now();
        let token = signer().sign(&claims(now));
        let (payload, signature) = token.split_once('.').unwrap();
        // Another subject with the old signature.
        let mut other = claims(now);
        other.purpose = TokenPurpose::ResetPassword;
        let other_payload = signer().sign(&other);
        let forged = format!("{}.{signature}", other_payload.split_once('.').unwrap().0);
        for bad in [
            forged,
            format!("{payload}.{}", "A".repeat(signature.len())),
            format!("{payload}x.{signature}"),
            payload.to_owned(),
            String::new(),
            "x".repeat(5000),
        ] {
            assert_eq!(
                signer().verify(&bad, TokenPurpose::ResetPassword, now),
                Err(TokenError::Invalid),
                "{bad:.40}"
            );
        }
        let other_key = TokenSigner::new(&SecretString::from("another deployment's secret key"));
        assert_eq!(
            other_key.verify(&token, TokenPurpose::ResetPassword, now),
            Err(TokenError::Invalid)
        );
        let later = now + chrono::Duration::hours(2);
        assert_eq!(
            signer().verify(&token, TokenPurpose::ResetPassword, later),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn an_email_change_to_the_longest_address_verifies() {
        // Found by the fuzzer (tests/fuzz, target `account_token`): an address of 254
        // multi-byte characters, which `Email::parse` accepts, made a token over the former
        // 1024-byte limit, so its link could never work.
        let now = Utc::now();
        let email = crate::Email::parse(&format!("{}@example.com", "😀".repeat(242))).unwrap();
        let stamp = account_stamp(Some("hash"), email.as_str());
        let mut claims = TokenClaims::new(TokenPurpose::ChangeEmail, Uuid::now_v7(), stamp, now);
        claims.email = Some(email.as_str().to_owned());
        let token = signer().sign(&claims);
        assert!(token.len() > 1024 && token.len() <= MAX_TOKEN_LEN);
        assert_eq!(
            signer().verify(&token, TokenPurpose::ChangeEmail, now),
            Ok(claims)
        );
    }

    #[test]
    fn the_stamp_changes_with_the_password_or_the_email() {
        let stamp = account_stamp(Some("hash"), "a@b.co");
        assert_eq!(stamp, account_stamp(Some("hash"), "A@B.CO"));
        assert_ne!(stamp, account_stamp(Some("other"), "a@b.co"));
        assert_ne!(stamp, account_stamp(Some("hash"), "c@b.co"));
    }
}
