//! Verifying a new owner's email: the link verifies the address, and the welcome email for
//! their organisation is queued in the same transaction.

use chrono::Utc;
use tenantkit_accounts::{
    Credentials,
    emails::{AccountEmail, AccountEmailKind},
    tokens::{TokenPurpose, TokenSigner},
};
use tenantkit_db::Database;
use tenantkit_kernel::UserId;

use crate::{TenancyError, repo};

pub async fn verify_email(
    db: &Database,
    signer: &TokenSigner,
    token: &str,
) -> Result<Credentials, TenancyError> {
    // The transaction acts for the user the link names (to see their tenants); the link itself
    // is fully checked inside.
    let claims = signer.verify(token, TokenPurpose::VerifyEmail, Utc::now())?;
    let mut tx = db.user(UserId::from_uuid(claims.subject)).await?;
    let user = tenantkit_accounts::email_flows::verify_email(tx.conn(), signer, token).await?;
    if let Some(first) = repo::tenants_of_user(&mut tx).await?.into_iter().next() {
        AccountEmail::new(
            user.id,
            AccountEmailKind::Welcome {
                organisation: first.name,
            },
        )
        .enqueue(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok(user)
}
