//! Admin pages about tenants: the dashboard, the list, one tenant, its export, and actions.

use askama::Template;
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Form, Path, Query},
};
use serde::Deserialize;
use tenantkit_kernel::TenantId;
use tenantkit_platform::{
    dashboard as admin_dashboard,
    directory::{self, TenantQuery, TenantRow, TenantSort},
    tenant_actions::{self, EntitlementOverrides},
    tenant_view::{self, TenantView},
};
use tenantkit_tenancy::TenantStatus;

use super::{ActionForm, AdminSession, action_message, layout_after, reading};
use crate::{
    browser::{Browser, SignedIn},
    pages::{DoneQuery, Layout, PageError, files, page, page_with_status, redirect_with_notice},
};

#[derive(Template)]
#[template(path = "admin_dashboard.html")]
struct DashboardPage {
    layout: Layout,
    tenants: Vec<(String, String, i64)>,
    chart: String,
    signups_total: i64,
    queues: Vec<tenantkit_jobs::dead_letters::QueueDepth>,
    email_failures: (i64, i64),
}

#[handler]
pub(super) async fn dashboard(
    browser: Browser,
    admin_session: AdminSession,
) -> Result<Response, PageError> {
    let (me, admin): (&SignedIn, _) = (&admin_session.me, admin_session.admin);
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("dashboard"))
        .await?;
    let figures = admin_dashboard::load(&mut tx).await?;
    tx.commit().await?;
    let view = DashboardPage {
        layout: Layout::new(&browser, Some(me), "Admin"),
        chart: admin_dashboard::signup_chart(&figures.signups),
        signups_total: figures.signups.iter().map(|(_, n)| n).sum(),
        tenants: figures.tenants,
        queues: figures.queues,
        email_failures: figures.email_failures,
    };
    Ok(page(&browser, &view))
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    sort: String,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_tenants.html")]
struct ListPage {
    layout: Layout,
    q: String,
    status: String,
    plan: String,
    sort: String,
    plans: Vec<String>,
    rows: Vec<TenantRow>,
    next: Option<String>,
}

fn parse_status(text: &str) -> Result<Option<TenantStatus>, String> {
    Ok(match text {
        "" => None,
        "active" => Some(TenantStatus::Active),
        "suspended" => Some(TenantStatus::Suspended),
        "deleted" => Some(TenantStatus::Deleted),
        "purged" => Some(TenantStatus::Purged),
        _ => return Err("Unknown status.".to_owned()),
    })
}

#[handler]
pub(super) async fn list(
    browser: Browser,
    admin_session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let (me, admin): (&SignedIn, _) = (&admin_session.me, admin_session.admin);
    let plans = browser.state.settings.admin.plans.clone();
    let mut view = ListPage {
        layout: Layout::new(&browser, Some(me), "Tenants"),
        q: query.q.clone(),
        status: query.status.clone(),
        plan: query.plan.clone(),
        sort: query.sort.clone(),
        plans,
        rows: vec![],
        next: None,
    };
    let status = parse_status(&query.status);
    let sort = TenantSort::parse(&query.sort);
    let (Ok(status), Some(sort)) = (status, sort) else {
        view.layout = view.layout.error("Unknown status or sort order.");
        return Ok(page_with_status(&browser, StatusCode::BAD_REQUEST, &view));
    };
    let search = TenantQuery {
        text: Some(query.q.clone()),
        status,
        plan: Some(query.plan.clone()).filter(|p| !p.is_empty()),
        sort,
        after: query.after.clone().filter(|a| !a.is_empty()),
        limit: 50,
    };
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("tenant list"))
        .await?;
    match directory::search(&mut tx, &search).await {
        Ok(found) => {
            tx.commit().await?;
            view.rows = found.rows;
            view.next = found.next;
            Ok(page(&browser, &view))
        }
        Err(tenantkit_platform::PlatformError::Invalid { message, .. }) => {
            view.layout = view.layout.error(message);
            Ok(page_with_status(&browser, StatusCode::BAD_REQUEST, &view))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "admin_tenant.html")]
struct DetailPage {
    layout: Layout,
    tenant: TenantView,
    plans: Vec<String>,
    overrides: String,
    api_calls_today: Option<u64>,
    /// "12.0 MiB of 1.0 GiB".
    storage: String,
}

fn tenant_id(raw: &str) -> Result<TenantId, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

async fn detail_page(
    browser: &Browser,
    admin_session: &AdminSession,
    tenant: TenantId,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("tenant detail").concerning(tenant))
        .await?;
    let tenant_view = tenant_view::view(&mut tx, tenant).await?;
    tx.commit().await?;
    let (layout, status) = layout_after(
        browser,
        admin_session,
        &tenant_view.profile.name,
        notice,
        error,
    );
    let overrides = tenant_view.profile.entitlement_overrides.to_string();
    let quota = browser.state.billing.storage_quota(
        &tenant_view.profile.plan,
        &tenant_view.profile.entitlement_overrides,
    );
    let used = u64::try_from(tenant_view.usage.storage_bytes).unwrap_or_default();
    let storage = format!("{} of {}", files::bytes(used), files::bytes(quota));
    let view = DetailPage {
        layout,
        api_calls_today: crate::usage::api_calls_today(&browser.state.kv, tenant).await,
        tenant: tenant_view,
        storage,
        plans: browser.state.settings.admin.plans.clone(),
        overrides: if overrides == "{}" {
            String::new()
        } else {
            overrides
        },
    };
    Ok(page_with_status(browser, status, &view))
}

#[handler]
pub(super) async fn detail(
    browser: Browser,
    admin_session: AdminSession,
    Path(id): Path<String>,
    Query(done): Query<DoneQuery>,
) -> Result<Response, PageError> {
    detail_page(
        &browser,
        &admin_session,
        tenant_id(&id)?,
        done.notice(),
        None,
    )
    .await
}

/// The tenant's data as a JSON download (offered before deleting it).
#[handler]
pub(super) async fn export(
    browser: Browser,
    admin_session: AdminSession,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let tenant = tenant_id(&id)?;
    let reason = tenantkit_platform::Reason::new(format!("admin area: export of tenant {tenant}"))
        .expect("non-empty")
        .concerning(tenant);
    let mut tx = browser.state.db.platform(admin.id(), reason).await?;
    let document = tenant_view::export(&mut tx, tenant).await?;
    tx.commit().await?;
    Ok(Response::builder()
        .content_type("application/json")
        .header("cache-control", "no-store")
        .header(
            "content-disposition",
            format!("attachment; filename=\"tenant-{tenant}.json\""),
        )
        .body(serde_json::to_vec_pretty(&document).unwrap_or_default()))
}

#[handler]
pub(super) async fn act(
    browser: Browser,
    admin_session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let tenant = tenant_id(&id)?;
    let reason = match form.confirmed(&browser)? {
        Ok(reason) => reason,
        Err(message) => {
            return detail_page(&browser, &admin_session, tenant, None, Some(message)).await;
        }
    };
    let state = &browser.state;
    let db = &state.db;
    let (result, notice) = match action.as_str() {
        "suspend" => (
            tenant_actions::suspend(db, admin, tenant, &reason).await,
            "tenant-suspended",
        ),
        "reactivate" => (
            tenant_actions::reactivate(db, admin, tenant, &reason).await,
            "tenant-reactivated",
        ),
        "plan" => (
            tenant_actions::change_plan(
                db,
                admin,
                tenant,
                form.plan.trim(),
                &state.settings.admin.plans,
                &reason,
            )
            .await,
            "plan-changed",
        ),
        "entitlements" => (
            match EntitlementOverrides::parse(&form.overrides) {
                Ok(overrides) => {
                    tenant_actions::override_entitlements(db, admin, tenant, &overrides, &reason)
                        .await
                }
                Err(error) => Err(error),
            },
            "entitlements-changed",
        ),
        "delete" => (
            tenant_actions::delete(
                db,
                admin,
                tenant,
                state.settings.admin.deleted_tenant_retention,
                &reason,
            )
            .await,
            "tenant-deleted",
        ),
        _ => return Err(PageError::NotFound),
    };
    match result {
        Ok(()) => Ok(redirect_with_notice(
            &format!("/admin/tenants/{tenant}"),
            notice,
        )),
        Err(error) => {
            detail_page(
                &browser,
                &admin_session,
                tenant,
                None,
                Some(action_message(error)?),
            )
            .await
        }
    }
}
