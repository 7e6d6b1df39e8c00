//! Sign-up: a new organisation with its owner, in one transaction — tenant, user, owner
//! membership, audit event and the verification email job commit together or not at all.
//!
//! An email that already has an account gets the same answer, after the same work (a password
//! hash, the address check), and its owner an email saying so: sign-up must not reveal who
//! has an account.

use secrecy::SecretString;
use serde_json::json;
use tenantkit_accounts::{
    DisplayName, Email, NewUser, PasswordHasher, PlainPassword,
    emails::{AccountEmail, AccountEmailKind},
};
use tenantkit_db::{Database, TenantTx};
use tenantkit_kernel::{Role, TenantId, UserId};

use crate::{TenancyError, TenantName, TenantSlug, audit, repo};

pub struct SignUp {
    pub organisation: String,
    /// Optional: derived from the organisation's name when absent.
    pub slug: Option<String>,
    pub name: String,
    pub email: String,
    pub password: SecretString,
}

/// What happened; callers answer both the same way.
#[derive(Debug)]
pub enum SignUpOutcome {
    Created(SignedUp),
    /// The email has an account; its owner was emailed.
    AccountExists,
}

#[derive(Debug)]
pub struct SignedUp {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub slug: String,
}

pub async fn sign_up(
    db: &Database,
    hasher: &PasswordHasher,
    form: SignUp,
) -> Result<SignUpOutcome, TenancyError> {
    // Validate everything before the expensive hash and before any write.
    let organisation = TenantName::parse(&form.organisation)?;
    let chosen_slug = form.slug.as_deref().map(TenantSlug::parse).transpose()?;
    let display_name = DisplayName::parse(&form.name)?;
    let email = Email::parse(&form.email)?;
    let password = PlainPassword::new_for(form.password, Some(email.as_str()))?;
    let password_hash = hasher.hash(password).await?;

    let mut global = db.global().await?;
    if let Some(existing) =
        tenantkit_accounts::repo::find_by_email(global.conn(), email.as_str()).await?
    {
        // The same address check a new account goes through, then nothing is kept of it.
        let mut probe = db.tenant(TenantId::new()).await?;
        claim_slug(&mut probe, chosen_slug, &organisation).await?;
        probe.rollback().await?;
        AccountEmail::new(existing.id, AccountEmailKind::AccountExists)
            .enqueue(global.conn())
            .await?;
        global.commit().await?;
        return Ok(SignUpOutcome::AccountExists);
    }
    global.commit().await?;

    let tenant_id = TenantId::new();
    let user = NewUser {
        id: UserId::new(),
        email,
        display_name,
        password_hash,
        is_platform_admin: false,
    };
    let mut tx = db.tenant(tenant_id).await?;
    let slug = claim_slug(&mut tx, chosen_slug, &organisation).await?;
    tenantkit_accounts::repo::insert(tx.conn(), &user).await?;
    repo::add_member(&mut tx, user.id, Role::Owner).await?;
    audit::record(
        &mut tx,
        Some(user.id),
        "tenant.created",
        json!({ "slug": slug.as_str() }),
    )
    .await?;
    AccountEmail::new(user.id, AccountEmailKind::VerifyEmail)
        .enqueue(tx.conn())
        .await?;
    tx.commit().await?;
    tracing::info!(%tenant_id, user_id = %user.id, "tenant signed up");
    Ok(SignUpOutcome::Created(SignedUp {
        tenant_id,
        user_id: user.id,
        slug: slug.as_str().to_owned(),
    }))
}

/// How many suffixed addresses to try when the derived one is taken.
const DERIVED_SLUG_ATTEMPTS: usize = 5;

/// Inserts the tenant under the address the customer chose (taken → conflict), or under one
/// derived from its name, adding a random suffix while that is taken.
async fn claim_slug(
    tx: &mut TenantTx,
    chosen: Option<TenantSlug>,
    organisation: &TenantName,
) -> Result<TenantSlug, TenancyError> {
    if let Some(slug) = chosen {
        return match repo::insert_tenant(tx, &slug, organisation).await? {
            true => Ok(slug),
            false => Err(TenancyError::SlugTaken(slug.as_str().to_owned())),
        };
    }
    let base = TenantSlug::from_name(organisation);
    let mut candidate = base.clone();
    for _ in 0..DERIVED_SLUG_ATTEMPTS {
        if repo::insert_tenant(tx, &candidate, organisation).await? {
            return Ok(candidate);
        }
        let suffix: u16 = rand::random();
        candidate = base.with_suffix(&format!("{suffix:04x}"));
    }
    Err(TenancyError::SlugTaken(base.as_str().to_owned()))
}
