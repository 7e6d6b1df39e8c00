//! Password hashing with argon2id at OWASP's recommended cost (19 MiB, 2 passes).
//!
//! Hashing takes tens of milliseconds of CPU: it runs on tokio's blocking pool, never on the
//! executor, behind a semaphore sized to the cores, so logins cannot starve other requests.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::PasswordHasher as _,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::AccountError;

/// A password as typed: secret (never in Debug or logs) and length-checked.
pub struct PlainPassword(SecretString);

impl PlainPassword {
    pub const MIN_LEN: usize = 10;
    /// Bounds the work an attacker can force per request.
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: SecretString) -> Result<Self, AccountError> {
        let length = raw.expose_secret().chars().count();
        if length < Self::MIN_LEN {
            return Err(AccountError::invalid(
                "password",
                format!("must be at least {} characters", Self::MIN_LEN),
            ));
        }
        if length > Self::MAX_LEN {
            return Err(AccountError::invalid("password", "is too long"));
        }
        Ok(Self(raw))
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores)),
        }
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasher {
    pub async fn hash(&self, password: PlainPassword) -> Result<String, AccountError> {
        self.off_the_executor(move || {
            argon2()
                .hash_password(password.0.expose_secret().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| AccountError::Hashing(e.to_string()))
        })
        .await
    }

    pub async fn verify(&self, password: SecretString, hash: String) -> Result<bool, AccountError> {
        self.off_the_executor(move || {
            let parsed =
                PasswordHash::new(&hash).map_err(|e| AccountError::Hashing(e.to_string()))?;
            Ok(argon2()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    /// Runs `work` on the blocking pool once a core is free.
    async fn off_the_executor<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::default();
        let password = PlainPassword::parse(SecretString::from("correct horse battery")).unwrap();
        let hash = hasher.hash(password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify(SecretString::from("correct horse battery"), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(SecretString::from("wrong horse battery"), hash)
                .await
                .unwrap()
        );
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(PlainPassword::parse(SecretString::from("short")).is_err());
    }
}
