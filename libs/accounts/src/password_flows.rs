//! Forgotten and changed passwords. Both end every other session (the caller does that in
//! the session store) and send "your password was changed"; the changed hash also changes the
//! account stamp, so every link issued before dies.

use chrono::Utc;
use secrecy::SecretString;
use tenantkit_db::Database;
use tenantkit_kernel::UserId;

use crate::{
    AccountError, PasswordHasher, PlainPassword,
    emails::{AccountEmail, AccountEmailKind},
    repo,
    sign_in::check_password,
    tokens::{self, TokenError, TokenPurpose, TokenSigner},
};

/// Queues a reset link when the email has an account; answers the same either way.
pub async fn request_password_reset(db: &Database, email: &str) -> Result<(), AccountError> {
    let mut tx = db.global().await?;
    if let Some(user) = repo::credentials_by_email(tx.conn(), email.trim()).await? {
        AccountEmail::new(user.id, AccountEmailKind::PasswordReset)
            .enqueue(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Checks a reset link without using it (to show the form, or an error instead).
pub async fn check_reset_token(
    db: &Database,
    signer: &TokenSigner,
    token: &str,
) -> Result<UserId, AccountError> {
    let claims = signer.verify(token, TokenPurpose::ResetPassword, Utc::now())?;
    let mut tx = db.global().await?;
    let user = repo::credentials(tx.conn(), UserId::from_uuid(claims.subject))
        .await?
        .filter(|u| u.stamp() == claims.stamp)
        .ok_or(TokenError::Invalid)?;
    Ok(user.id)
}

/// Sets a new password from a reset link. The link proves the user reads that mailbox, so the
/// email counts as verified too.
pub async fn reset_password(
    db: &Database,
    hasher: &PasswordHasher,
    signer: &TokenSigner,
    token: &str,
    new_password: SecretString,
) -> Result<UserId, AccountError> {
    let claims = signer.verify(token, TokenPurpose::ResetPassword, Utc::now())?;
    let user_id = UserId::from_uuid(claims.subject);
    let email = {
        let mut tx = db.global().await?;
        let user = repo::credentials(tx.conn(), user_id)
            .await?
            .filter(|u| u.stamp() == claims.stamp)
            .ok_or(TokenError::Invalid)?;
        user.email
    };
    let password = PlainPassword::new_for(new_password, Some(&email))?;
    let hash = hasher.hash(password).await?;
    let mut tx = db.global().await?;
    // Checked again inside the writing transaction: the stamp may have changed meanwhile.
    let user = repo::credentials(tx.conn(), user_id)
        .await?
        .filter(|u| u.stamp() == claims.stamp)
        .ok_or(TokenError::Invalid)?;
    tokens::consume(tx.conn(), &claims).await?;
    repo::set_password_hash(tx.conn(), user.id, &hash).await?;
    repo::mark_email_verified(tx.conn(), user.id).await?;
    AccountEmail::new(user.id, AccountEmailKind::PasswordChanged)
        .enqueue(tx.conn())
        .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password reset");
    Ok(user.id)
}

/// Changes the password of a signed-in user, who must type the current one.
pub async fn change_password(
    db: &Database,
    hasher: &PasswordHasher,
    user_id: UserId,
    current: SecretString,
    new_password: SecretString,
) -> Result<(), AccountError> {
    let user = {
        let mut tx = db.global().await?;
        repo::credentials(tx.conn(), user_id)
            .await?
            .ok_or(AccountError::UnknownUser)?
    };
    check_password(hasher, &user, current, "current_password").await?;
    let password = PlainPassword::new_for(new_password, Some(&user.email))
        .map_err(|e| rename_field(e, "new_password"))?;
    let hash = hasher.hash(password).await?;
    let mut tx = db.global().await?;
    repo::set_password_hash(tx.conn(), user.id, &hash).await?;
    AccountEmail::new(user.id, AccountEmailKind::PasswordChanged)
        .enqueue(tx.conn())
        .await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "password changed");
    Ok(())
}

/// The same rule, reported against the form's own field name.
pub(crate) fn rename_field(error: AccountError, field: &'static str) -> AccountError {
    match error {
        AccountError::Invalid { message, .. } => AccountError::Invalid { field, message },
        other => other,
    }
}
