//! CSRF tokens for cookie-authenticated requests. A signed-in form carries
//! HMAC(key, "session:" + session key); an anonymous form (sign-up, log-in) carries
//! HMAC(key, "anon:" + a random cookie). Unsafe requests without the matching token are
//! refused. (poem's own `Csrf` middleware defaults to an all-zero key and refuses nothing by
//! itself, so it is not used.)

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub(crate) struct CsrfKey([u8; 32]);

impl CsrfKey {
    pub(crate) fn new(secret_key: &SecretString) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret_key.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"tenantkit/csrf/v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self, binding: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(binding.as_bytes());
        mac
    }

    /// The token for a binding (`session:<key>` or `anon:<cookie>`).
    pub(crate) fn token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(binding).finalize().into_bytes())
    }

    /// Constant-time check of a presented token.
    pub(crate) fn verify(&self, binding: &str, presented: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(presented.trim()) else {
            return false;
        };
        self.mac(binding).verify_slice(&bytes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_its_binding_and_key() {
        let key = CsrfKey::new(&SecretString::from("one secret key"));
        let token = key.token("session:abc");
        assert!(key.verify("session:abc", &token));
        assert!(!key.verify("session:abd", &token));
        assert!(!key.verify("session:abc", ""));
        assert!(!key.verify("session:abc", "not base64!"));
        let other = CsrfKey::new(&SecretString::from("another key"));
        assert!(!other.verify("session:abc", &token));
    }
}
