//! Verifying addresses: resending the verification link, and changing the address, which
//! takes effect only once a link sent to the new address is opened.

use chrono::Utc;
use secrecy::SecretString;
use tenantkit_db::Database;
use tenantkit_kernel::UserId;

use crate::{
    AccountError, Credentials, Email, PasswordHasher,
    emails::{AccountEmail, AccountEmailKind},
    password_flows::rename_field,
    repo,
    sign_in::check_password,
    tokens::{self, TokenError, TokenPurpose, TokenSigner},
};

/// Queues another verification link for an unverified user (a no-op once verified).
pub async fn resend_verification(db: &Database, user: UserId) -> Result<(), AccountError> {
    let mut tx = db.global().await?;
    let credentials = repo::credentials(tx.conn(), user)
        .await?
        .ok_or(AccountError::UnknownUser)?;
    if credentials.email_verified_at.is_none() {
        AccountEmail::new(user, AccountEmailKind::VerifyEmail)
            .enqueue(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Checks a verification link and uses it, inside the caller's transaction; returns the user.
/// A link for an address already verified counts as used.
/// The caller commits (and may queue the welcome email in the same transaction).
pub async fn verify_email(
    conn: &mut tenantkit_db::PgConnection,
    signer: &TokenSigner,
    token: &str,
) -> Result<Credentials, AccountError> {
    let claims = signer.verify(token, TokenPurpose::VerifyEmail, Utc::now())?;
    let user = repo::credentials(conn, UserId::from_uuid(claims.subject))
        .await?
        .filter(|u| u.stamp() == claims.stamp)
        .ok_or(TokenError::Invalid)?;
    tokens::consume(conn, &claims).await?;
    // Any other verification link still in the inbox dies with the first one opened: the
    // address is verified once (and welcomed once).
    if !repo::mark_email_verified(conn, user.id).await? {
        return Err(TokenError::Used.into());
    }
    Ok(user)
}

/// Sends a confirmation link to `new_email`; the address changes when it is opened. A taken
/// address gets the same answer and no email (it must not reveal who has an account).
pub async fn request_email_change(
    db: &Database,
    hasher: &PasswordHasher,
    user_id: UserId,
    new_email: &str,
    password: SecretString,
) -> Result<(), AccountError> {
    let new_email = Email::parse(new_email).map_err(|e| rename_field(e, "new_email"))?;
    let mut tx = db.global().await?;
    let user = repo::credentials(tx.conn(), user_id)
        .await?
        .ok_or(AccountError::UnknownUser)?;
    check_password(hasher, &user, password, "password").await?;
    if user.email.eq_ignore_ascii_case(new_email.as_str()) {
        return Err(AccountError::invalid(
            "new_email",
            "is already your address",
        ));
    }
    if repo::find_by_email(tx.conn(), new_email.as_str())
        .await?
        .is_none()
    {
        AccountEmail::new(
            user.id,
            AccountEmailKind::EmailChange {
                new_email: new_email.as_str().to_owned(),
            },
        )
        .enqueue(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Applies an email change from its link.
pub async fn confirm_email_change(
    db: &Database,
    signer: &TokenSigner,
    token: &str,
) -> Result<UserId, AccountError> {
    let claims = signer.verify(token, TokenPurpose::ChangeEmail, Utc::now())?;
    let new_email = claims
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()?
        .ok_or(TokenError::Invalid)?;
    let mut tx = db.global().await?;
    let user = repo::credentials(tx.conn(), UserId::from_uuid(claims.subject))
        .await?
        .filter(|u| u.stamp() == claims.stamp)
        .ok_or(TokenError::Invalid)?;
    tokens::consume(tx.conn(), &claims).await?;
    repo::set_email(tx.conn(), user.id, &new_email).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "email address changed");
    Ok(user.id)
}
