//! The audit log pages: every trail for platform admins (/admin/audit), the tenant's own for
//! its owners and admins (/audit). Both filter, page and export CSV (a tenant's export needs
//! its plan's `audit_export` feature).

use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use poem::{Response, handler, http::StatusCode, web::Query};
use serde::Deserialize;
use tenantkit_billing::features;
use tenantkit_kernel::{Role, TenantId};
use tenantkit_platform::audit_log::{self, AuditFilter, AuditRow};
use uuid::Uuid;

use super::{AdminSession, reading};
use crate::{
    browser::{Browser, SignedIn},
    pages::{Layout, PageError, page, page_with_status},
};

const PAGE: i64 = 100;
/// A CSV export holds at most this many rows (narrow the filter for more).
const EXPORT_LIMIT: i64 = 10_000;

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    format: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    action_path: &'static str,
    query: AuditQuery,
    all_tenants: bool,
    rows: Vec<AuditRow>,
    next: Option<String>,
    csv_link: String,
}

fn day(text: &str, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|d| Some(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()))
        .map_err(|_| format!("{field}: use a date like 2026-11-24."))
}

fn cursor_of(row: &AuditRow) -> String {
    format!("{}_{}", row.occurred_at.timestamp_micros(), row.id)
}

impl AuditQuery {
    fn filter(&self, limit: i64) -> Result<AuditFilter, String> {
        let before = if self.before.is_empty() {
            None
        } else {
            let (micros, id) = self
                .before
                .split_once('_')
                .ok_or("This page link is not valid.")?;
            let at = micros
                .parse()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .ok_or("This page link is not valid.")?;
            let id = Uuid::parse_str(id).map_err(|_| "This page link is not valid.")?;
            Some((at, id))
        };
        let tenant = match self.tenant.trim() {
            "" => None,
            t => Some(
                t.parse::<TenantId>()
                    .map_err(|_| "tenant: not a tenant id.")?,
            ),
        };
        Ok(AuditFilter {
            action: Some(self.action.clone()),
            actor: Some(self.actor.clone()),
            tenant,
            from: day(&self.from, "from")?,
            // "until" is inclusive: events before the next midnight.
            until: day(&self.until, "until")?.map(|d| d + chrono::Duration::days(1)),
            before,
            limit,
        })
    }

    /// The same filters as a query string, for links (values are URL-encoded).
    fn link(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("action", &self.action),
            ("actor", &self.actor),
            ("tenant", &self.tenant),
            ("from", &self.from),
            ("until", &self.until),
        ] {
            if !value.is_empty() {
                pairs.append_pair(key, value);
            }
        }
        for (key, value) in extra {
            pairs.append_pair(key, value);
        }
        format!("{path}?{}", pairs.finish())
    }
}

fn csv_response(rows: &[AuditRow], name: &str) -> Response {
    Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-disposition",
            format!("attachment; filename=\"{name}.csv\""),
        )
        .body(audit_log::to_csv(rows))
}

async fn render(
    browser: &Browser,
    layout: Layout,
    path: &'static str,
    query: AuditQuery,
    all_tenants: bool,
    rows: Vec<AuditRow>,
    exportable: bool,
) -> Response {
    let next = (rows.len() as i64 == PAGE)
        .then(|| {
            rows.last()
                .map(|r| query.link(path, &[("before", &cursor_of(r))]))
        })
        .flatten();
    // Without the plan's export feature the page offers no link (the export itself refuses).
    let csv_link = if exportable {
        query.link(path, &[("format", "csv")])
    } else {
        String::new()
    };
    page(
        browser,
        &AuditPage {
            layout,
            action_path: path,
            query,
            all_tenants,
            rows,
            next,
            csv_link,
        },
    )
}

#[handler]
pub(super) async fn all(
    browser: Browser,
    admin_session: AdminSession,
    Query(query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let (me, admin): (&SignedIn, _) = (&admin_session.me, admin_session.admin);
    let csv = query.format == "csv";
    let filter = match query.filter(if csv { EXPORT_LIMIT } else { PAGE }) {
        Ok(filter) => filter,
        Err(message) => {
            let layout = Layout::new(&browser, Some(me), "Audit log").error(message);
            let view = AuditPage {
                layout,
                action_path: "/admin/audit",
                query,
                all_tenants: true,
                rows: vec![],
                next: None,
                csv_link: String::new(),
            };
            return Ok(page_with_status(&browser, StatusCode::BAD_REQUEST, &view));
        }
    };
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("audit log"))
        .await?;
    let rows = audit_log::all_events(&mut tx, &filter).await?;
    tx.commit().await?;
    if csv {
        return Ok(csv_response(&rows, "audit-log"));
    }
    let layout = Layout::new(&browser, Some(me), "Audit log");
    Ok(render(&browser, layout, "/admin/audit", query, true, rows, true).await)
}

/// The active tenant's audit log, for its owners and admins.
#[handler]
pub(crate) async fn tenant_audit(
    browser: Browser,
    Query(mut query): Query<AuditQuery>,
) -> Result<Response, PageError> {
    let me = browser.require_signed_in().await?;
    let tenant = me.open_tenant()?.clone();
    if !matches!(tenant.role, Role::Owner | Role::Admin) {
        return Err(PageError::Forbidden(
            "Only owners and admins can read the audit log.".into(),
        ));
    }
    query.tenant.clear();
    let csv = query.format == "csv";
    let filter = query
        .filter(if csv { EXPORT_LIMIT } else { PAGE })
        .map_err(PageError::Forbidden)?;
    let mut tx = browser.state.db.tenant(tenant.id).await?;
    let billing = &browser.state.billing;
    let entitlements = billing.entitlements(&mut tx).await?;
    if csv {
        billing.require_feature(&entitlements, features::AUDIT_EXPORT)?;
    }
    let rows = audit_log::tenant_events(&mut tx, &filter).await?;
    tx.commit().await?;
    if csv {
        return Ok(csv_response(&rows, &format!("audit-log-{}", tenant.slug)));
    }
    let layout = Layout::new(&browser, Some(&me), "Audit log");
    let exportable = entitlements.has_feature(features::AUDIT_EXPORT);
    Ok(render(&browser, layout, "/audit", query, false, rows, exportable).await)
}
