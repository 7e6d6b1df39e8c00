//! Signing in: password, then the second factor when it is on. Unknown emails cost the same
//! hash as known ones, so neither the answer nor its timing says whether an account exists.

use secrecy::{ExposeSecret, SecretString};
use tenantkit_db::Database;
use tenantkit_kernel::UserId;
use tokio::sync::OnceCell;

use crate::{
    AccountError, Credentials, PasswordHasher, PlainPassword, repo,
    two_factor::{self, TotpSecret},
};

pub enum SignInOutcome {
    SignedIn(Credentials),
    /// The password was right; a code from the authenticator (or a recovery code) is next.
    NeedsSecondFactor(Credentials),
    /// The password was right but the email is not verified yet.
    NotVerified(Credentials),
    /// Unknown email or wrong password: one answer for both.
    Refused,
    /// The password was right but a platform admin locked the account.
    Locked(Credentials),
}

/// A real argon2id hash of a random password, verified against when the email is unknown.
async fn decoy_hash(hasher: &PasswordHasher) -> Result<&'static str, AccountError> {
    static DECOY: OnceCell<String> = OnceCell::const_new();
    let hash = DECOY
        .get_or_try_init(|| async {
            let random = format!("{:032x}", rand::random::<u128>());
            hasher
                .hash(PlainPassword::parse(SecretString::from(random))?)
                .await
        })
        .await?;
    Ok(hash.as_str())
}

pub async fn sign_in(
    db: &Database,
    hasher: &PasswordHasher,
    email: &str,
    password: SecretString,
) -> Result<SignInOutcome, AccountError> {
    // Over-long input is refused before any work; its answer is the usual one.
    let Ok(typed) = PlainPassword::parse(password.clone()) else {
        return Ok(SignInOutcome::Refused);
    };
    let mut tx = db.global().await?;
    let user = repo::credentials_by_email(tx.conn(), email.trim()).await?;
    tx.commit().await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let hash = match &stored {
        Some(hash) => hash.clone(),
        None => decoy_hash(hasher).await?.to_owned(),
    };
    let matches = hasher.verify(password, hash.clone()).await?;
    let (Some(user), true, Some(_)) = (user, matches, stored) else {
        return Ok(SignInOutcome::Refused);
    };
    if PasswordHasher::needs_rehash(&hash) {
        // Parameters were raised since this hash was made: upgrade it while we have the password.
        let upgraded = hasher.hash(typed).await?;
        let mut tx = db.global().await?;
        repo::set_password_hash(tx.conn(), user.id, &upgraded).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, "password hash upgraded to the current parameters");
    } else {
        drop(typed);
    }
    Ok(if user.locked_at.is_some() {
        SignInOutcome::Locked(user)
    } else if user.email_verified_at.is_none() {
        SignInOutcome::NotVerified(user)
    } else if user.two_factor_enabled() {
        SignInOutcome::NeedsSecondFactor(user)
    } else {
        SignInOutcome::SignedIn(user)
    })
}

/// Checks a code from the authenticator app or a recovery code; each works once.
pub async fn check_second_factor(
    db: &Database,
    user: UserId,
    code: &str,
) -> Result<bool, AccountError> {
    let mut tx = db.global().await?;
    let Some(credentials) = repo::credentials(tx.conn(), user).await? else {
        return Ok(false);
    };
    let Some(secret) = credentials
        .totp_secret
        .as_deref()
        .filter(|_| credentials.two_factor_enabled())
        .and_then(TotpSecret::from_base32)
    else {
        return Ok(false);
    };
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let accepted = if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        match two_factor::verify_code(&secret, &digits, unix_now(), credentials.totp_last_step) {
            Some(step) => repo::claim_totp_step(tx.conn(), user, step).await?,
            None => false,
        }
    } else {
        repo::use_recovery_code(tx.conn(), user, &two_factor::hash_recovery_code(code)).await?
    };
    tx.commit().await?;
    Ok(accepted)
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The secret being enrolled: the pending one if there is one (a reload shows the same QR
/// code), else a new one. `None` when two-factor is already on.
pub async fn enrolment_secret(
    db: &Database,
    user: UserId,
) -> Result<Option<TotpSecret>, AccountError> {
    let mut tx = db.global().await?;
    let credentials = repo::credentials(tx.conn(), user)
        .await?
        .ok_or(AccountError::UnknownUser)?;
    if credentials.two_factor_enabled() {
        return Ok(None);
    }
    if let Some(pending) = credentials
        .totp_secret
        .as_deref()
        .and_then(TotpSecret::from_base32)
    {
        return Ok(Some(pending));
    }
    let secret = TotpSecret::generate();
    repo::set_pending_totp_secret(tx.conn(), user, &secret.to_base32()).await?;
    tx.commit().await?;
    Ok(Some(secret))
}

/// Turns two-factor on once a code from the pending secret checks out; returns the recovery
/// codes, shown once.
pub async fn confirm_enrolment(
    db: &Database,
    user: UserId,
    code: &str,
) -> Result<Vec<String>, AccountError> {
    let mut tx = db.global().await?;
    let credentials = repo::credentials(tx.conn(), user)
        .await?
        .ok_or(AccountError::UnknownUser)?;
    let secret = credentials
        .totp_secret
        .as_deref()
        .and_then(TotpSecret::from_base32)
        .filter(|_| !credentials.two_factor_enabled())
        .ok_or_else(|| AccountError::invalid("code", "start the enrolment again"))?;
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let step = two_factor::verify_code(&secret, &digits, unix_now(), None)
        .ok_or_else(|| AccountError::invalid("code", "is not the current code from your app"))?;
    repo::enable_totp(tx.conn(), user, step).await?;
    let codes = two_factor::generate_recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| two_factor::hash_recovery_code(c))
        .collect();
    repo::replace_recovery_codes(tx.conn(), user, &hashes).await?;
    tx.commit().await?;
    Ok(codes)
}

/// Turns two-factor off; the password is asked again.
pub async fn disable_two_factor(
    db: &Database,
    hasher: &PasswordHasher,
    user: UserId,
    password: SecretString,
) -> Result<(), AccountError> {
    let mut tx = db.global().await?;
    let credentials = repo::credentials(tx.conn(), user)
        .await?
        .ok_or(AccountError::UnknownUser)?;
    check_password(hasher, &credentials, password, "password").await?;
    repo::disable_totp(tx.conn(), user).await?;
    tx.commit().await?;
    Ok(())
}

/// Refuses with a field error unless `password` is the user's.
pub(crate) async fn check_password(
    hasher: &PasswordHasher,
    user: &Credentials,
    password: SecretString,
    field: &'static str,
) -> Result<(), AccountError> {
    let wrong = || AccountError::invalid(field, "is not correct");
    let Some(hash) = user.password_hash.clone() else {
        return Err(wrong());
    };
    if password.expose_secret().chars().count() > PlainPassword::MAX_LEN {
        return Err(wrong());
    }
    match hasher.verify(password, hash).await? {
        true => Ok(()),
        false => Err(wrong()),
    }
}
