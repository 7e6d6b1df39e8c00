//! An organisation's own audit log for its owners and admins: newest first, and exported as
//! CSV where the plan includes the `audit_export` feature.

use chrono::{DateTime, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::{Json, PlainText},
};
use tenantkit_billing::features;
use tenantkit_db::TenantTx;
use tenantkit_kernel::{Role, TenantId};
use tenantkit_platform::audit_log::{self, AuditFilter, AuditRow};
use tenantkit_tenancy::team::Actor;
use uuid::Uuid;

use super::{ApiTags, Items, caller::Caller};
use crate::{ApiError, AppState};

/// An export holds at most this many events (narrow the dates for more).
const EXPORT_LIMIT: i64 = 10_000;

pub(crate) struct AuditApi;

#[derive(Object)]
pub(crate) struct AuditEventView {
    scope: String,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    action: String,
    #[oai(skip_serializing_if_is_none)]
    tenant_id: Option<Uuid>,
    #[oai(skip_serializing_if_is_none)]
    actor: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    subject: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    reason: Option<String>,
    detail: serde_json::Value,
}

impl From<AuditRow> for AuditEventView {
    fn from(row: AuditRow) -> Self {
        Self {
            scope: row.scope,
            id: row.id,
            occurred_at: row.occurred_at,
            action: row.action,
            tenant_id: row.tenant_id,
            actor: row.actor,
            subject: row.subject,
            reason: row.reason,
            detail: row.detail,
        }
    }
}

#[derive(ApiResponse)]
enum EventsResponse {
    #[oai(status = 200)]
    Ok(Json<Items<AuditEventView>>),
}

#[derive(ApiResponse)]
enum ExportResponse {
    /// RFC 4180 CSV; a cell a spreadsheet would run as a formula is prefixed with `'`.
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(
        PlainText<String>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// Opens the tenant for an owner or admin: the audit log is theirs to read.
async fn open_for_manager(
    caller: &Caller,
    state: &AppState,
    tenant_id: Uuid,
) -> Result<TenantTx, ApiError> {
    let (tx, actor): (TenantTx, Actor) = caller
        .open_tenant(state, TenantId::from_uuid(tenant_id))
        .await?;
    if !matches!(actor.role, Role::Owner | Role::Admin) {
        return Err(ApiError::forbidden(
            "Only owners and admins can read the audit log.",
        ));
    }
    Ok(tx)
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
}

#[OpenApi(tag = "ApiTags::Team")]
impl AuditApi {
    /// The organisation's own audit log, newest first (owners and admins).
    #[oai(path = "/tenants/:tenant_id/audit-events", method = "get")]
    async fn tenant_audit_events(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        /// Actions starting with this, e.g. `billing.`.
        #[oai(validator(max_length = 100))]
        action: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<Option<i64>>,
    ) -> Result<EventsResponse, ApiError> {
        let mut tx = open_for_manager(&caller, &state, tenant_id.0).await?;
        let filter = AuditFilter {
            action: action.0,
            limit: limit.0.unwrap_or(100),
            ..AuditFilter::default()
        };
        let rows = audit_log::tenant_events(&mut tx, &filter).await?;
        tx.commit().await?;
        Ok(EventsResponse::Ok(Json(Items {
            items: rows.into_iter().map(Into::into).collect(),
        })))
    }

    /// The audit log as CSV, newest first, at most 10,000 events (owners and admins; the plan
    /// must include `audit_export`, or 403 names the plans that do).
    #[oai(path = "/tenants/:tenant_id/audit-events/export", method = "get")]
    async fn export_tenant_audit_events(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        /// Actions starting with this.
        #[oai(validator(max_length = 100))]
        action: Query<Option<String>>,
        /// Events on or after this day (UTC).
        from: Query<Option<NaiveDate>>,
        /// Events on or before this day (UTC).
        until: Query<Option<NaiveDate>>,
    ) -> Result<ExportResponse, ApiError> {
        let mut tx = open_for_manager(&caller, &state, tenant_id.0).await?;
        let entitlements = state.billing.entitlements(&mut tx).await?;
        state
            .billing
            .require_feature(&entitlements, features::AUDIT_EXPORT)?;
        let filter = AuditFilter {
            action: action.0,
            from: from.0.map(midnight),
            until: until.0.and_then(|day| day.succ_opt()).map(midnight),
            limit: EXPORT_LIMIT,
            ..AuditFilter::default()
        };
        let rows = audit_log::tenant_events(&mut tx, &filter).await?;
        tx.commit().await?;
        Ok(ExportResponse::Csv(
            PlainText(audit_log::to_csv(&rows)),
            format!("attachment; filename=\"audit-log-{}.csv\"", tenant_id.0),
            "no-store".to_owned(),
        ))
    }
}
