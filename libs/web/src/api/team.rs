//! Members, roles and invitations of one organisation, named in the path. The rules (who may
//! do what, the last owner) are the tenancy crate's; this maps them to HTTP.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use tenantkit_kernel::{InvitationId, TenantId, UserId};
use tenantkit_tenancy::{Invitation, Member, team};
use uuid::Uuid;

use super::{ApiRole, ApiTags, Items, caller::Caller, text::Text};
use crate::{ApiError, AppState};

pub(crate) struct TeamApi;

#[derive(Object)]
struct MemberView {
    user_id: Uuid,
    email: String,
    name: String,
    role: ApiRole,
    joined_at: DateTime<Utc>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id.as_uuid(),
            email: m.email,
            name: m.display_name,
            role: m.role.into(),
            joined_at: m.joined_at,
        }
    }
}

#[derive(Object)]
struct InvitationView {
    id: Uuid,
    email: String,
    role: ApiRole,
    #[oai(skip_serializing_if_is_none)]
    invited_by: Option<Uuid>,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.as_uuid(),
            email: i.email,
            role: i.role.into(),
            invited_by: i.invited_by.map(|u| u.as_uuid()),
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

#[derive(Object)]
struct RoleChange {
    role: ApiRole,
}

#[derive(Object)]
struct NewInvitation {
    #[oai(validator(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.]+(\.[^@\s\x00-\x1f\x7f-\x9f.]+)+$"
    ))]
    email: Text,
    role: ApiRole,
}

#[derive(Object)]
struct OwnershipTransfer {
    /// The member who becomes owner; the caller becomes admin.
    new_owner: Uuid,
}

#[derive(ApiResponse)]
enum MembersResponse {
    #[oai(status = 200)]
    Ok(Json<Items<MemberView>>),
}

#[derive(ApiResponse)]
enum MemberResponse {
    #[oai(status = 200)]
    Ok(Json<MemberView>),
}

#[derive(ApiResponse)]
enum InvitationsResponse {
    #[oai(status = 200)]
    Ok(Json<Items<InvitationView>>),
}

#[derive(ApiResponse)]
enum InvitationResponse {
    /// The invitation is pending and its email is on its way.
    #[oai(status = 201)]
    Created(Json<InvitationView>),
}

#[derive(ApiResponse)]
enum Done {
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
enum Resent {
    /// The invitation's lifetime starts again and its email is on its way.
    #[oai(status = 202)]
    Accepted,
}

#[OpenApi(tag = "ApiTags::Team")]
impl TeamApi {
    /// The organisation's members and their roles.
    #[oai(path = "/tenants/:tenant_id/members", method = "get")]
    async fn members(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
    ) -> Result<MembersResponse, ApiError> {
        let (mut tx, _) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let members = team::members(&mut tx).await?;
        tx.commit().await?;
        Ok(MembersResponse::Ok(Json(Items {
            items: members.into_iter().map(Into::into).collect(),
        })))
    }

    /// Change a member's role. Only owners grant or take away ownership; the last owner
    /// keeps it (409).
    #[oai(path = "/tenants/:tenant_id/members/:user_id", method = "patch")]
    async fn change_role(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: Json<RoleChange>,
    ) -> Result<MemberResponse, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant_to_change(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let user = UserId::from_uuid(user_id.0);
        team::change_role(&mut tx, actor, user, body.0.role.into()).await?;
        let member = team::members(&mut tx)
            .await?
            .into_iter()
            .find(|m| m.user_id == user)
            .ok_or_else(ApiError::not_found)?;
        tx.commit().await?;
        Ok(MemberResponse::Ok(Json(member.into())))
    }

    /// Remove a member. Removing yourself is leaving; the last owner can do neither (409).
    #[oai(path = "/tenants/:tenant_id/members/:user_id", method = "delete")]
    async fn remove_member(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> Result<Done, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        team::remove_member(&mut tx, actor, UserId::from_uuid(user_id.0)).await?;
        tx.commit().await?;
        Ok(Done::NoContent)
    }

    /// Hand ownership to another member; the caller (an owner, signed in) becomes admin.
    #[oai(path = "/tenants/:tenant_id/ownership", method = "post")]
    async fn transfer_ownership(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<OwnershipTransfer>,
    ) -> Result<Done, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant_to_change(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        team::transfer_ownership(&mut tx, actor, UserId::from_uuid(body.0.new_owner)).await?;
        tx.commit().await?;
        Ok(Done::NoContent)
    }

    /// Pending invitations (owners and admins).
    #[oai(path = "/tenants/:tenant_id/invitations", method = "get")]
    async fn invitations(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
    ) -> Result<InvitationsResponse, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let pending = team::pending_invitations(&mut tx, actor).await?;
        tx.commit().await?;
        Ok(InvitationsResponse::Ok(Json(Items {
            items: pending.into_iter().map(Into::into).collect(),
        })))
    }

    /// Invite someone by email with a role; an address with a pending invitation gets it
    /// again. The email goes out through the job queue.
    #[oai(path = "/tenants/:tenant_id/invitations", method = "post")]
    async fn invite(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<NewInvitation>,
    ) -> Result<InvitationResponse, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant_to_change(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let seats = state.billing.entitlements(&mut tx).await?.seats;
        let id = team::invite(&mut tx, actor, &body.0.email.0, body.0.role.into(), seats).await?;
        let invitation = team::pending_invitations(&mut tx, actor)
            .await?
            .into_iter()
            .find(|i| i.id == id)
            .ok_or_else(ApiError::not_found)?;
        tx.commit().await?;
        Ok(InvitationResponse::Created(Json(invitation.into())))
    }

    /// Send a pending invitation again.
    #[oai(
        path = "/tenants/:tenant_id/invitations/:invitation_id/resend",
        method = "post"
    )]
    async fn resend_invitation(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        invitation_id: Path<Uuid>,
    ) -> Result<Resent, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant_to_change(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        team::resend_invitation(&mut tx, actor, InvitationId::from_uuid(invitation_id.0)).await?;
        tx.commit().await?;
        Ok(Resent::Accepted)
    }

    /// Revoke a pending invitation: its link stops working.
    #[oai(
        path = "/tenants/:tenant_id/invitations/:invitation_id",
        method = "delete"
    )]
    async fn revoke_invitation(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        invitation_id: Path<Uuid>,
    ) -> Result<Done, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        team::revoke_invitation(&mut tx, actor, InvitationId::from_uuid(invitation_id.0)).await?;
        tx.commit().await?;
        Ok(Done::NoContent)
    }
}
