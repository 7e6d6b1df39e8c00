//! Password rules and hashing with argon2id at OWASP's recommended cost (19 MiB, 2 passes).
//!
//! New passwords follow NIST SP 800-63B: a minimum length and a check against commonly used
//! and context-specific (email) values, no composition rules.
//!
//! Hashing takes tens of milliseconds of CPU: it runs on tokio's blocking pool, never on the
//! executor, behind a semaphore sized to the cores, so logins cannot starve other requests.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
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

    /// Length rules only: for checking a password someone already has (sign-in), which must
    /// keep working for passwords chosen before stricter rules existed.
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

    /// For a NEW password (sign-up, change, reset): the length rules, and it must not be a
    /// common password, the account's email or contain its local part, or one repeated
    /// character. Messages never repeat the password.
    pub fn new_for(raw: SecretString, email: Option<&str>) -> Result<Self, AccountError> {
        let password = Self::parse(raw)?;
        let normalised = password.0.expose_secret().trim().to_lowercase();
        // Checked before trimming, so ten spaces count as repeated too.
        let mut chars = password.0.expose_secret().chars();
        if let Some(first) = chars.next()
            && chars.all(|c| c == first)
        {
            return Err(AccountError::invalid(
                "password",
                "must not be one character repeated",
            ));
        }
        if let Some(email) = email.map(|e| e.trim().to_lowercase()) {
            let local = email.split('@').next().unwrap_or_default();
            if normalised == email
                || (local.chars().count() >= MIN_EMAIL_PART_LEN && normalised.contains(local))
            {
                return Err(AccountError::invalid(
                    "password",
                    "must not contain your email address",
                ));
            }
        }
        if COMMON_PASSWORDS.contains(normalised.as_str()) {
            return Err(AccountError::invalid("password", "is too common"));
        }
        Ok(password)
    }
}

/// Redacted, so a password can never reach a log through `{:?}`.
impl std::fmt::Debug for PlainPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainPassword(..)")
    }
}

/// Shorter local parts ("al", "bob") occur in too many good passwords to refuse them.
const MIN_EMAIL_PART_LEN: usize = 4;

/// Django's list of 20,000 common passwords, lowercased (see data/COMMON-PASSWORDS-LICENSE.md).
/// Embedded so the check needs no file at run time; parsed on first use (~20k entries).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(Self::concurrency())),
        }
    }
}

const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// argon2's default output length, which `hash` uses.
const OUTPUT_LEN: usize = 32;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(M_COST, T_COST, P_COST, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasher {
    /// How many hashes run at once: one per core.
    pub fn concurrency() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// The time of one hash with the production parameters, on this thread: what a login
    /// costs, and so (with [`Self::concurrency`]) the ceiling of logins per second.
    pub fn time_one_hash() -> std::time::Duration {
        let started = std::time::Instant::now();
        let _ = argon2().hash_password(b"a password of ordinary length");
        started.elapsed()
    }

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

    /// Whether a stored hash was made with anything but today's algorithm and parameters, so
    /// a successful sign-in should store a fresh hash of the password just verified. An
    /// unreadable hash counts as outdated too (verification fails for it anyway).
    pub fn needs_rehash(hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        let current = Params::new(M_COST, T_COST, P_COST, Some(OUTPUT_LEN))
            .expect("OWASP argon2id parameters are valid");
        parsed.algorithm != ARGON2ID_IDENT
            || parsed.version != Some(Version::V0x13 as u32)
            || Params::try_from(&parsed).ok() != Some(current)
    }

    /// Runs `work` on the hashing threads once one is free.
    async fn off_the_executor<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        let (done, result) = tokio::sync::oneshot::channel();
        hashing_threads()
            .lock()
            .map_err(|e| AccountError::Hashing(e.to_string()))?
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        result
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?
    }
}

type HashingWork = Box<dyn FnOnce() + Send>;

/// One thread per core, at the lowest scheduling priority: a login may take all the CPU the
/// requests leave, never the CPU they need, so cheap requests stay fast while logins saturate
/// the cores (measured by `scripts/bench`). They start with the first hash.
fn hashing_threads() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<HashingWork>> {
    static THREADS: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<HashingWork>>> =
        std::sync::OnceLock::new();
    THREADS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<HashingWork>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for n in 0..PasswordHasher::concurrency() {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    if let Err(error) = thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Min,
                    ) {
                        tracing::warn!(?error, "password hashing runs at normal priority");
                    }
                    loop {
                        let next = receiver.lock().map(|r| r.recv());
                        match next {
                            Ok(Ok(work)) => work(),
                            _ => return,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        std::sync::Mutex::new(sender)
    })
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

    fn new_password(raw: &str, email: Option<&str>) -> Result<PlainPassword, String> {
        PlainPassword::new_for(SecretString::from(raw), email).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_new_password_is_accepted() {
        assert!(new_password("correct horse battery staple", Some("ada@acme.test")).is_ok());
        assert!(new_password("correct horse battery staple", None).is_ok());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(COMMON_PASSWORDS.len(), 19_640);
        for common in ["password123", "1234567890", " QwertyUIOP ", "Password1234"] {
            let error = new_password(common, None).unwrap_err();
            assert_eq!(error, "password: is too common");
            assert!(
                !error
                    .to_lowercase()
                    .contains(common.trim().to_lowercase().as_str())
            );
        }
    }

    #[test]
    fn new_passwords_still_follow_the_length_rules() {
        assert!(new_password("short", None).is_err());
        assert!(new_password(&"ab".repeat(600), None).is_err());
    }

    #[test]
    fn the_email_is_not_a_password() {
        let refused = "password: must not contain your email address";
        let email = Some("Ada.Lovelace@Acme.test");
        assert_eq!(
            new_password("ada.lovelace@acme.test", email).unwrap_err(),
            refused
        );
        assert_eq!(
            new_password("my ADA.LOVELACE pass", email).unwrap_err(),
            refused
        );
        // A short local part is too common a substring to refuse.
        assert!(new_password("bob is my uncle", Some("bob@acme.test")).is_ok());
        assert_eq!(
            new_password("bob@acme.test", Some("bob@acme.test")).unwrap_err(),
            refused
        );
    }

    #[test]
    fn one_repeated_character_is_refused() {
        for repeated in ["aaaaaaaaaaaa", "AAAAAAAAAAAA", "............", "          "] {
            assert_eq!(
                new_password(repeated, None).unwrap_err(),
                "password: must not be one character repeated"
            );
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let error = PlainPassword::new_for(SecretString::from("password123"), None).unwrap_err();
        assert!(!format!("{error:?}").contains("password123"));
        let password = PlainPassword::new_for(SecretString::from("tr0ub4dor&3x"), None).unwrap();
        assert_eq!(format!("{password:?}"), "PlainPassword(..)");
    }

    #[test]
    fn hashes_with_old_parameters_need_rehashing() {
        let salt = b"saltsaltsaltsalt";
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        );
        let weak_hash = weak
            .hash_password_with_salt(b"correct horse", salt)
            .unwrap()
            .to_string();
        assert!(PasswordHasher::needs_rehash(&weak_hash));

        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(M_COST, T_COST, P_COST, None).unwrap(),
        );
        let argon2i_hash = argon2i
            .hash_password_with_salt(b"correct horse", salt)
            .unwrap()
            .to_string();
        assert!(PasswordHasher::needs_rehash(&argon2i_hash));

        let current = argon2()
            .hash_password_with_salt(b"correct horse", salt)
            .unwrap()
            .to_string();
        assert!(current.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!PasswordHasher::needs_rehash(&current));

        assert!(PasswordHasher::needs_rehash("not a hash"));
        assert!(PasswordHasher::needs_rehash(
            "$2b$12$abcdefghijklmnopqrstuv"
        ));
    }
}
