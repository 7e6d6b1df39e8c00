//! Tenants in the admin API: search, detail, the audited actions, and the audit logs.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use tenantkit_kernel::TenantId;
use tenantkit_platform::{
    audit_log::{self, AuditFilter},
    directory::{self, TenantQuery, TenantSort},
    tenant_actions, tenant_view,
};
use tenantkit_tenancy::TenantStatus;
use uuid::Uuid;

use super::{Done, ReasonBody, reading, reason};
use crate::{
    ApiError, AppState,
    api::{ApiTags, Items, audit::AuditEventView, caller::Caller, text::Text},
};

pub(crate) struct AdminTenantsApi;

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum ApiTenantStatus {
    Active,
    Suspended,
    Deleted,
    Purged,
}

impl From<TenantStatus> for ApiTenantStatus {
    fn from(status: TenantStatus) -> Self {
        match status {
            TenantStatus::Active => Self::Active,
            TenantStatus::Suspended => Self::Suspended,
            TenantStatus::Deleted => Self::Deleted,
            TenantStatus::Purged => Self::Purged,
        }
    }
}

impl From<ApiTenantStatus> for TenantStatus {
    fn from(status: ApiTenantStatus) -> Self {
        match status {
            ApiTenantStatus::Active => Self::Active,
            ApiTenantStatus::Suspended => Self::Suspended,
            ApiTenantStatus::Deleted => Self::Deleted,
            ApiTenantStatus::Purged => Self::Purged,
        }
    }
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum ApiTenantSort {
    Newest,
    Oldest,
    Name,
}

#[derive(Object)]
struct AdminTenant {
    id: Uuid,
    slug: String,
    name: String,
    status: ApiTenantStatus,
    plan: String,
    created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    owner_email: Option<String>,
    members: i64,
}

#[derive(Object)]
struct TenantPageView {
    items: Vec<AdminTenant>,
    /// Pass as `after` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next: Option<String>,
}

#[derive(Object)]
struct AdminTenantDetail {
    tenant: AdminTenant,
    #[oai(skip_serializing_if_is_none)]
    status_reason: Option<String>,
    entitlement_overrides: serde_json::Value,
    seats: i64,
    api_keys: i64,
    pending_invitations: i64,
    /// Bytes of the tenant's stored files.
    storage_bytes: i64,
}

#[derive(Object)]
struct PlanBody {
    #[oai(validator(min_length = 1, max_length = 40))]
    plan: Text,
    #[oai(validator(min_length = 1, max_length = 500))]
    reason: Text,
}

/// Entitlements that hold whatever the plan says; an empty object removes every override.
#[derive(Object)]
struct EntitlementsBody {
    /// Keys `seats`, `storage_bytes`, `api_requests_per_minute`, `features` (names).
    overrides: serde_json::Value,
    #[oai(validator(min_length = 1, max_length = 500))]
    reason: Text,
}

#[derive(ApiResponse)]
enum TenantsResponse {
    #[oai(status = 200)]
    Ok(Json<TenantPageView>),
}

#[derive(ApiResponse)]
enum TenantResponse {
    #[oai(status = 200)]
    Ok(Json<AdminTenantDetail>),
}

#[derive(ApiResponse)]
enum EventsResponse {
    #[oai(status = 200)]
    Ok(Json<Items<AuditEventView>>),
}

/// The tenant actions that need nothing but a reason.
enum TenantAction {
    Suspend,
    Reactivate,
    Delete,
}

async fn act_on_tenant(
    state: &AppState,
    caller: &Caller,
    tenant: Uuid,
    action: TenantAction,
    body: &ReasonBody,
) -> Result<Done, ApiError> {
    let admin = caller.platform_admin()?;
    let reason = reason(&body.reason)?;
    let (db, tenant) = (&state.db, TenantId::from_uuid(tenant));
    match action {
        TenantAction::Suspend => tenant_actions::suspend(db, admin, tenant, &reason).await?,
        TenantAction::Reactivate => tenant_actions::reactivate(db, admin, tenant, &reason).await?,
        TenantAction::Delete => {
            let retention = state.settings.admin.deleted_tenant_retention;
            tenant_actions::delete(db, admin, tenant, retention, &reason).await?
        }
    }
    Ok(Done::NoContent)
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminTenantsApi {
    /// Tenants: search (name, slug, owner or member email), filter, sort, keyset pages.
    #[oai(path = "/admin/tenants", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn tenants(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        #[oai(validator(max_length = 200))] q: Query<Option<String>>,
        status: Query<Option<ApiTenantStatus>>,
        #[oai(validator(max_length = 40))] plan: Query<Option<String>>,
        sort: Query<Option<ApiTenantSort>>,
        #[oai(validator(max_length = 400))] after: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<i64>>,
    ) -> Result<TenantsResponse, ApiError> {
        let admin = caller.platform_admin()?;
        let query = TenantQuery {
            text: q.0,
            status: status.0.map(Into::into),
            plan: plan.0,
            sort: match sort.0 {
                Some(ApiTenantSort::Oldest) => TenantSort::Oldest,
                Some(ApiTenantSort::Name) => TenantSort::Name,
                _ => TenantSort::Newest,
            },
            after: after.0,
            limit: limit.0.unwrap_or(50),
        };
        let mut tx = state
            .db
            .platform(admin.id(), reading("tenant list"))
            .await?;
        let found = directory::search(&mut tx, &query).await?;
        tx.commit().await?;
        Ok(TenantsResponse::Ok(Json(TenantPageView {
            items: found
                .rows
                .into_iter()
                .map(|t| AdminTenant {
                    id: t.id.as_uuid(),
                    slug: t.slug,
                    name: t.name,
                    status: t.status.into(),
                    plan: t.plan,
                    created_at: t.created_at,
                    owner_email: t.owner_email,
                    members: t.members,
                })
                .collect(),
            next: found.next,
        })))
    }

    /// One tenant with its usage.
    #[oai(path = "/admin/tenants/:tenant_id", method = "get")]
    async fn tenant(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
    ) -> Result<TenantResponse, ApiError> {
        let admin = caller.platform_admin()?;
        let tenant = TenantId::from_uuid(tenant_id.0);
        let mut tx = state
            .db
            .platform(admin.id(), reading("tenant detail").concerning(tenant))
            .await?;
        let view = tenant_view::view(&mut tx, tenant).await?;
        tx.commit().await?;
        let p = view.profile;
        Ok(TenantResponse::Ok(Json(AdminTenantDetail {
            tenant: AdminTenant {
                id: p.id.as_uuid(),
                slug: p.slug,
                name: p.name,
                status: p.status.into(),
                plan: p.plan,
                created_at: p.created_at,
                owner_email: view
                    .members
                    .iter()
                    .find(|m| m.role == tenantkit_kernel::Role::Owner)
                    .map(|m| m.email.clone()),
                members: view.usage.seats,
            },
            status_reason: p.status_reason,
            entitlement_overrides: p.entitlement_overrides,
            seats: view.usage.seats,
            api_keys: view.usage.api_keys,
            pending_invitations: view.usage.pending_invitations,
            storage_bytes: view.usage.storage_bytes,
        })))
    }

    /// Suspend: the tenant's users see a suspended page, its API answers 403, its jobs wait.
    #[oai(path = "/admin/tenants/:tenant_id/suspend", method = "post")]
    async fn suspend(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_tenant(&state, &caller, tenant_id.0, TenantAction::Suspend, &body.0).await
    }

    /// Reactivate a suspended tenant, or restore a deleted one before its purge.
    #[oai(path = "/admin/tenants/:tenant_id/reactivate", method = "post")]
    async fn reactivate(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_tenant(
            &state,
            &caller,
            tenant_id.0,
            TenantAction::Reactivate,
            &body.0,
        )
        .await
    }

    /// Soft delete; a scheduled job purges the data after the retention period.
    #[oai(path = "/admin/tenants/:tenant_id/delete", method = "post")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_tenant(&state, &caller, tenant_id.0, TenantAction::Delete, &body.0).await
    }

    /// Put the tenant on one of the configured plans.
    #[oai(path = "/admin/tenants/:tenant_id/plan", method = "post")]
    async fn plan(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<PlanBody>,
    ) -> Result<Done, ApiError> {
        let admin = caller.platform_admin()?;
        let reason = reason(&body.0.reason)?;
        tenant_actions::change_plan(
            &state.db,
            admin,
            TenantId::from_uuid(tenant_id.0),
            body.0.plan.0.trim(),
            &state.settings.admin.plans,
            &reason,
        )
        .await?;
        Ok(Done::NoContent)
    }

    /// Override the tenant's entitlements (seats, storage, API rate, features).
    #[oai(path = "/admin/tenants/:tenant_id/entitlements", method = "post")]
    async fn entitlements(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<EntitlementsBody>,
    ) -> Result<Done, ApiError> {
        let admin = caller.platform_admin()?;
        let reason = reason(&body.0.reason)?;
        let overrides = match &body.0.overrides {
            serde_json::Value::Object(_) => {
                tenant_actions::EntitlementOverrides::parse(&body.0.overrides.to_string())?
            }
            _ => return Err(ApiError::invalid("overrides", "Give an object.")),
        };
        tenant_actions::override_entitlements(
            &state.db,
            admin,
            TenantId::from_uuid(tenant_id.0),
            &overrides,
            &reason,
        )
        .await?;
        Ok(Done::NoContent)
    }

    /// Every audit trail, newest first (at most `limit`).
    #[oai(path = "/admin/audit-events", method = "get")]
    async fn audit_events(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        #[oai(validator(max_length = 100))] action: Query<Option<String>>,
        tenant_id: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
    ) -> Result<EventsResponse, ApiError> {
        let admin = caller.platform_admin()?;
        let filter = AuditFilter {
            action: action.0,
            tenant: tenant_id.0.map(TenantId::from_uuid),
            limit: limit.0.unwrap_or(100),
            ..AuditFilter::default()
        };
        let mut tx = state.db.platform(admin.id(), reading("audit log")).await?;
        let rows = audit_log::all_events(&mut tx, &filter).await?;
        tx.commit().await?;
        Ok(EventsResponse::Ok(Json(Items {
            items: rows.into_iter().map(Into::into).collect(),
        })))
    }
}
