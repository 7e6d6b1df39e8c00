//! The team: members, roles, invitations. Every change takes the acting member's role into
//! account, is audit-logged, and keeps at least one owner.
//!
//! Rules: owners do everything; admins invite, change roles and remove members below owner;
//! members manage nothing but may leave. Only an owner grants or takes away ownership.

use chrono::Utc;
use secrecy::SecretString;
use serde_json::json;
use tenantkit_accounts::{
    DisplayName, Email, NewUser, PasswordHasher, PlainPassword,
    tokens::{TokenError, TokenPurpose, TokenSigner},
};
use tenantkit_db::{Database, TenantTx};
use tenantkit_kernel::{ApiKeyId, InvitationId, Role, TenantId, UserId};

use crate::{
    Invitation, InvitationStatus, Member, TenancyError, audit, emails::InvitationEmail, repo,
};

/// How long an invitation stays open.
const INVITATION_LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// Who acts in a tenant: one of its members, or one of its API keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    User(UserId),
    ApiKey(ApiKeyId),
}

/// The principal acting, with their role in the transaction's tenant.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub principal: Principal,
    pub role: Role,
}

impl Actor {
    pub fn member(user: UserId, role: Role) -> Self {
        Self {
            principal: Principal::User(user),
            role,
        }
    }

    pub fn api_key(key: ApiKeyId, role: Role) -> Self {
        Self {
            principal: Principal::ApiKey(key),
            role,
        }
    }

    /// The acting member, if a member (not a key) acts.
    pub fn user(&self) -> Option<UserId> {
        match self.principal {
            Principal::User(user) => Some(user),
            Principal::ApiKey(_) => None,
        }
    }

    /// Leaving and handing over ownership are a person's acts, never a key's.
    fn require_person(&self) -> Result<UserId, TenancyError> {
        self.user().ok_or(TenancyError::Forbidden(
            "an API key cannot do this; sign in as the member",
        ))
    }

    fn require_manager(&self) -> Result<(), TenancyError> {
        if self.role.can_manage_members() {
            Ok(())
        } else {
            Err(TenancyError::Forbidden(
                "only owners and admins manage the team",
            ))
        }
    }

    /// Granting, taking away or touching ownership is for owners.
    fn require_owner_for(&self, role: Role) -> Result<(), TenancyError> {
        if role == Role::Owner && self.role != Role::Owner {
            return Err(TenancyError::Forbidden(
                "only an owner can do this to an owner",
            ));
        }
        Ok(())
    }
}

/// The tenant's members; every member may see who else is in the team.
pub async fn members(tx: &mut TenantTx) -> Result<Vec<Member>, TenancyError> {
    Ok(repo::members_with_users(tx).await?)
}

/// The pending invitations, for those who manage the team.
pub async fn pending_invitations(
    tx: &mut TenantTx,
    actor: Actor,
) -> Result<Vec<Invitation>, TenancyError> {
    actor.require_manager()?;
    Ok(repo::invitations::pending(tx).await?)
}

/// Invites `email` with `role`, or resends the pending invitation for that address.
/// `seats` is the plan's member limit (billing's entitlements; `None`: no limit): members and
/// open invitations together stay within it. The count is taken under a lock on the tenant,
/// so two invitations at once cannot both take the last seat.
pub async fn invite(
    tx: &mut TenantTx,
    actor: Actor,
    email: &str,
    role: Role,
    seats: Option<u32>,
) -> Result<InvitationId, TenancyError> {
    actor.require_manager()?;
    actor.require_owner_for(role)?;
    let email = Email::parse(email)?;
    let already_member = repo::members_with_users(tx)
        .await?
        .iter()
        .any(|m| m.email.eq_ignore_ascii_case(email.as_str()));
    if already_member {
        return Err(TenancyError::invalid(
            "email",
            "is already a member of this organisation",
        ));
    }
    if let Some(seats) = seats {
        let taken = repo::lock_seats_taken(tx).await?;
        let resending = repo::invitations::pending_for_email(tx, email.as_str())
            .await?
            .is_some();
        if !resending && taken >= i64::from(seats) {
            return Err(TenancyError::SeatLimit(seats));
        }
    }
    let expires_at = Utc::now() + INVITATION_LIFETIME;
    let id = match repo::invitations::insert(tx, email.as_str(), role, actor.user(), expires_at)
        .await?
    {
        Some(id) => id,
        None => {
            let pending = repo::invitations::pending_for_email(tx, email.as_str())
                .await?
                .ok_or(TenancyError::NotFound)?;
            repo::invitations::extend(tx, pending.id, expires_at).await?;
            pending.id
        }
    };
    InvitationEmail::enqueue(tx, id).await?;
    audit::record_by(
        tx,
        actor,
        "invitation.sent",
        json!({ "invitation_id": id, "role": role }),
    )
    .await?;
    Ok(id)
}

pub async fn resend_invitation(
    tx: &mut TenantTx,
    actor: Actor,
    id: InvitationId,
) -> Result<(), TenancyError> {
    invitation_to_manage(tx, actor, id).await?;
    if !repo::invitations::extend(tx, id, Utc::now() + INVITATION_LIFETIME).await? {
        return Err(TenancyError::NotFound);
    }
    InvitationEmail::enqueue(tx, id).await?;
    audit::record_by(
        tx,
        actor,
        "invitation.resent",
        json!({ "invitation_id": id }),
    )
    .await?;
    Ok(())
}

/// An invitation `actor` may resend or revoke: managers only, and owner invitations only by
/// owners.
async fn invitation_to_manage(
    tx: &mut TenantTx,
    actor: Actor,
    id: InvitationId,
) -> Result<crate::Invitation, TenancyError> {
    actor.require_manager()?;
    let invitation = repo::invitations::find(tx, id)
        .await?
        .ok_or(TenancyError::NotFound)?;
    actor.require_owner_for(invitation.role)?;
    Ok(invitation)
}

pub async fn revoke_invitation(
    tx: &mut TenantTx,
    actor: Actor,
    id: InvitationId,
) -> Result<(), TenancyError> {
    invitation_to_manage(tx, actor, id).await?;
    if !repo::invitations::revoke(tx, id).await? {
        return Err(TenancyError::NotFound);
    }
    audit::record_by(
        tx,
        actor,
        "invitation.revoked",
        json!({ "invitation_id": id }),
    )
    .await?;
    Ok(())
}

pub async fn change_role(
    tx: &mut TenantTx,
    actor: Actor,
    member: UserId,
    role: Role,
) -> Result<(), TenancyError> {
    actor.require_manager()?;
    let current = repo::role_of(tx, member)
        .await?
        .ok_or(TenancyError::NotFound)?;
    actor.require_owner_for(current)?;
    actor.require_owner_for(role)?;
    if current == Role::Owner && role != Role::Owner && repo::lock_owner_count(tx).await? <= 1 {
        return Err(TenancyError::LastOwner);
    }
    repo::set_role(tx, member, role).await?;
    audit::record_by(
        tx,
        actor,
        "member.role_changed",
        json!({ "user_id": member, "from": current, "to": role }),
    )
    .await?;
    Ok(())
}

pub async fn remove_member(
    tx: &mut TenantTx,
    actor: Actor,
    member: UserId,
) -> Result<(), TenancyError> {
    if Some(member) == actor.user() {
        return leave(tx, actor).await;
    }
    actor.require_manager()?;
    let role = repo::role_of(tx, member)
        .await?
        .ok_or(TenancyError::NotFound)?;
    actor.require_owner_for(role)?;
    if role == Role::Owner && repo::lock_owner_count(tx).await? <= 1 {
        return Err(TenancyError::LastOwner);
    }
    repo::remove_member(tx, member).await?;
    let change =
        audit::record_by(tx, actor, "member.removed", json!({ "user_id": member })).await?;
    tenantkit_billing::enqueue_seat_sync(tx, &format!("member-removed:{member}:{change}")).await?;
    Ok(())
}

/// The actor leaves the tenant (not as its last owner).
pub async fn leave(tx: &mut TenantTx, actor: Actor) -> Result<(), TenancyError> {
    let user = actor.require_person()?;
    if actor.role == Role::Owner && repo::lock_owner_count(tx).await? <= 1 {
        return Err(TenancyError::LastOwner);
    }
    repo::remove_member(tx, user).await?;
    let change = audit::record_by(tx, actor, "member.left", json!({})).await?;
    tenantkit_billing::enqueue_seat_sync(tx, &format!("member-left:{user}:{change}")).await?;
    Ok(())
}

/// Makes `new_owner` an owner and the acting owner an admin.
pub async fn transfer_ownership(
    tx: &mut TenantTx,
    actor: Actor,
    new_owner: UserId,
) -> Result<(), TenancyError> {
    let user = actor.require_person()?;
    if actor.role != Role::Owner {
        return Err(TenancyError::Forbidden(
            "only an owner can transfer ownership",
        ));
    }
    if new_owner == user {
        return Err(TenancyError::invalid("new_owner", "is already the owner"));
    }
    repo::role_of(tx, new_owner)
        .await?
        .ok_or(TenancyError::NotFound)?;
    repo::lock_owner_count(tx).await?;
    repo::set_role(tx, new_owner, Role::Owner).await?;
    repo::set_role(tx, user, Role::Admin).await?;
    audit::record_by(
        tx,
        actor,
        "tenant.ownership_transferred",
        json!({ "to": new_owner }),
    )
    .await?;
    Ok(())
}

/// An invitation link, checked: its tenant and the open invitation it names.
pub async fn open_invitation(
    db: &Database,
    signer: &TokenSigner,
    token: &str,
) -> Result<Invitation, TenancyError> {
    let claims = signer.verify(token, TokenPurpose::Invitation, Utc::now())?;
    let tenant = TenantId::from_uuid(claims.tenant.ok_or(TokenError::Invalid)?);
    let mut tx = db.tenant(tenant).await?;
    let invitation = repo::invitations::find(&mut tx, InvitationId::from_uuid(claims.subject))
        .await?
        .ok_or(TokenError::Invalid)?;
    if !invitation.is_open(Utc::now()) {
        return Err(match invitation.status {
            InvitationStatus::Pending => TokenError::Expired.into(),
            InvitationStatus::Accepted => TokenError::Used.into(),
            InvitationStatus::Revoked => TenancyError::InvitationRevoked,
        });
    }
    Ok(invitation)
}

/// Who accepts an invitation: a signed-in user whose email matches, or a new account.
pub enum Acceptor {
    Existing(UserId),
    New {
        name: String,
        password: SecretString,
    },
}

/// An acceptor, checked and ready to write.
enum Joining {
    Existing(UserId),
    New(NewUser),
}

/// Accepts an invitation; returns the member's user id and the tenant they joined.
pub async fn accept_invitation(
    db: &Database,
    hasher: &PasswordHasher,
    signer: &TokenSigner,
    token: &str,
    acceptor: Acceptor,
) -> Result<(UserId, TenantId), TenancyError> {
    let invitation = open_invitation(db, signer, token).await?;
    // Validate and hash before opening the writing transaction.
    let joining = match acceptor {
        Acceptor::Existing(user) => {
            let mut tx = db.global().await?;
            let found = tenantkit_accounts::repo::find(tx.conn(), user)
                .await?
                .ok_or(TenancyError::NotFound)?;
            if !found.email.eq_ignore_ascii_case(&invitation.email) {
                return Err(TenancyError::Forbidden(
                    "this invitation was sent to another address",
                ));
            }
            Joining::Existing(user)
        }
        Acceptor::New { name, password } => {
            let display_name = DisplayName::parse(&name)?;
            let password = PlainPassword::new_for(password, Some(&invitation.email))?;
            Joining::New(NewUser {
                id: UserId::new(),
                email: Email::parse(&invitation.email)?,
                display_name,
                password_hash: hasher.hash(password).await?,
                is_platform_admin: false,
            })
        }
    };
    let mut tx = db.tenant(invitation.tenant_id).await?;
    let locked = repo::invitations::find_for_update(&mut tx, invitation.id)
        .await?
        .filter(|i| i.is_open(Utc::now()))
        .ok_or(TokenError::Used)?;
    let user = match joining {
        Joining::New(new_user) => {
            // The link arrived at this address: it is verified.
            tenantkit_accounts::repo::insert(tx.conn(), &new_user).await?;
            tenantkit_accounts::repo::mark_email_verified(tx.conn(), new_user.id).await?;
            new_user.id
        }
        Joining::Existing(existing) => existing,
    };
    let joined = repo::role_of(&mut tx, user).await?.is_none();
    if joined {
        repo::add_member(&mut tx, user, locked.role).await?;
    }
    repo::invitations::mark_accepted(&mut tx, locked.id, user).await?;
    if joined {
        // The invitation is accepted once: its id names the change.
        tenantkit_billing::enqueue_seat_sync(
            &mut tx,
            &format!("member-added:{user}:{}", locked.id),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        Some(user),
        "invitation.accepted",
        json!({ "invitation_id": locked.id, "role": locked.role }),
    )
    .await?;
    tx.commit().await?;
    Ok((user, invitation.tenant_id))
}
