//! The caller themselves: who they are, their organisations, and the roles there are.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use tenantkit_tenancy::{TenantStatus, repo};
use uuid::Uuid;

use super::{ApiRole, ApiTags, Items, caller::Caller};
use crate::{ApiError, AppState};

pub(crate) struct AccountApi;

#[derive(Object)]
struct Me {
    id: Uuid,
    email: String,
    name: String,
    #[oai(skip_serializing_if_is_none)]
    email_verified_at: Option<DateTime<Utc>>,
    two_factor_enabled: bool,
    is_platform_admin: bool,
    /// The token to send in `X-CSRF-Token` with unsafe requests that use the session cookie.
    csrf_token: String,
}

#[derive(Object)]
struct TenantView {
    id: Uuid,
    slug: String,
    name: String,
    /// `active`, `suspended` or `deleted`.
    status: String,
    /// The caller's role in this organisation.
    role: ApiRole,
}

#[derive(Object)]
struct RoleView {
    name: ApiRole,
    description: String,
    can_manage_members: bool,
}

#[derive(ApiResponse)]
enum MeResponse {
    #[oai(status = 200)]
    Ok(Json<Me>),
}

#[derive(ApiResponse)]
enum TenantsResponse {
    #[oai(status = 200)]
    Ok(Json<Items<TenantView>>),
}

#[derive(ApiResponse)]
enum RolesResponse {
    #[oai(status = 200)]
    Ok(Json<Items<RoleView>>),
}

fn status_name(status: TenantStatus) -> String {
    status.as_str().to_owned()
}

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// The signed-in user, with the CSRF token for their session. API keys act for an
    /// organisation, not a person: they get 403 here.
    #[oai(path = "/me", method = "get")]
    async fn me(&self, caller: Caller) -> Result<MeResponse, ApiError> {
        let Caller::Session { me, csrf_token } = caller else {
            return Err(ApiError::forbidden(
                "An API key acts for its organisation, not for a user.",
            ));
        };
        let two_factor_enabled = me.user.two_factor_enabled();
        let user = me.user;
        Ok(MeResponse::Ok(Json(Me {
            id: user.id.as_uuid(),
            email: user.email,
            name: user.display_name,
            email_verified_at: user.email_verified_at,
            two_factor_enabled,
            is_platform_admin: user.is_platform_admin,
            csrf_token,
        })))
    }

    /// The organisations the caller belongs to, with their role in each. An API key sees its
    /// own organisation.
    #[oai(path = "/tenants", method = "get")]
    async fn tenants(
        &self,
        state: Data<&AppState>,
        caller: Caller,
    ) -> Result<TenantsResponse, ApiError> {
        let items = match caller {
            Caller::Session { me, .. } => me
                .tenants
                .into_iter()
                .map(|t| TenantView {
                    id: t.id.as_uuid(),
                    slug: t.slug,
                    name: t.name,
                    status: status_name(t.status),
                    role: t.role.into(),
                })
                .collect(),
            Caller::Key(key) => {
                let mut tx = key.tenant_tx(&state).await?;
                let tenant = repo::current_tenant(&mut tx).await?;
                tx.commit().await?;
                tenant
                    .map(|t| TenantView {
                        id: t.id.as_uuid(),
                        slug: t.slug,
                        name: t.name,
                        status: status_name(t.status),
                        role: key.principal.role.into(),
                    })
                    .into_iter()
                    .collect()
            }
        };
        Ok(TenantsResponse::Ok(Json(Items { items })))
    }

    /// The roles a member or API key can have, and what each may do.
    #[oai(path = "/roles", method = "get")]
    async fn roles(&self) -> RolesResponse {
        let items = [
            (
                ApiRole::Owner,
                "Everything, including ownership, billing and deleting the organisation.",
            ),
            (
                ApiRole::Admin,
                "Manages members below owner, invitations and API keys.",
            ),
            (
                ApiRole::Member,
                "Uses the organisation's data; manages nothing.",
            ),
        ]
        .into_iter()
        .map(|(name, description)| RoleView {
            can_manage_members: tenantkit_kernel::Role::from(name).can_manage_members(),
            name,
            description: description.to_owned(),
        })
        .collect();
        RolesResponse::Ok(Json(Items { items }))
    }
}
