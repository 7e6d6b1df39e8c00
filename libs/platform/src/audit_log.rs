//! Reading the audit trails: a tenant's own (its owners see it, row level security keeps it
//! theirs) and all of them together for platform admins. Filters, keyset pages, CSV export.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantkit_db::{PlatformTx, TenantTx};
use tenantkit_kernel::TenantId;
use uuid::Uuid;

use crate::PlatformError;

#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    /// `tenant`, `account` or `platform`: which trail the row is from.
    pub scope: String,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub tenant_id: Option<Uuid>,
    pub tenant_name: Option<String>,
    /// Who did it (an email; "platform admin" in a tenant's view of staff actions).
    pub actor: Option<String>,
    /// Whom it was about, for account events.
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Actions starting with this (`admin.`, `login`).
    pub action: Option<String>,
    /// Actors whose email starts with this.
    pub actor: Option<String>,
    /// One tenant's events (the all-trails view only).
    pub tenant: Option<TenantId>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows older than this row (the last of the previous page).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

impl AuditFilter {
    fn actor_pattern(&self) -> Option<String> {
        self.actor
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| format!("{}%", a.to_lowercase().replace(['%', '_', '\\'], "")))
    }

    fn action_prefix(&self) -> Option<&str> {
        self.action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }
}

/// A tenant's own trail, newest first. Staff actions show "platform admin" as the actor
/// unless the admin is also a member.
pub async fn tenant_events(
    tx: &mut TenantTx,
    filter: &AuditFilter,
) -> Result<Vec<AuditRow>, PlatformError> {
    let (before_at, before_id) = filter.before.unzip();
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        AuditRow,
        r#"select 'tenant' as "scope!", e.id, e.occurred_at, e.action,
                  e.tenant_id as "tenant_id?", t.name as "tenant_name?",
                  case when a.id is null then null
                       when exists (select 1 from memberships m
                                    where m.tenant_id = $8 and m.user_id = a.id) then a.email
                       else 'platform admin' end as "actor?",
                  null::text as "subject?", e.reason, e.detail, null::text as "ip?"
           from tenant_audit_events e
           left join users a on a.id = e.actor_user_id
           left join tenants t on t.id = e.tenant_id
           where e.tenant_id = $8
             and ($1::text is null or starts_with(e.action, $1))
             and ($2::text is null or lower(a.email) like $2)
             and ($3::timestamptz is null or e.occurred_at >= $3)
             and ($4::timestamptz is null or e.occurred_at < $4)
             and ($5::timestamptz is null or (e.occurred_at, e.id) < ($5, $6))
           order by e.occurred_at desc, e.id desc limit $7"#,
        filter.action_prefix(),
        filter.actor_pattern(),
        filter.from,
        filter.until,
        before_at,
        before_id,
        filter.limit.clamp(1, 10_000),
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Every trail together, newest first: what platform admins read.
pub async fn all_events(
    tx: &mut PlatformTx,
    filter: &AuditFilter,
) -> Result<Vec<AuditRow>, PlatformError> {
    let (before_at, before_id) = filter.before.unzip();
    Ok(sqlx::query_as!(
        AuditRow,
        r#"-- cross-tenant: every trail for a platform admin (platform_read); $8 narrows to one tenant
           select scope as "scope!", id as "id!", occurred_at as "occurred_at!",
                  action as "action!", tenant_id, tenant_name, actor, subject, reason,
                  detail as "detail!", ip
           from (
               select 'tenant' as scope, e.id, e.occurred_at, e.action, e.tenant_id,
                      t.name as tenant_name, a.email as actor, null::text as subject, e.reason,
                      e.detail, null::text as ip
               from tenant_audit_events e
               left join users a on a.id = e.actor_user_id
               left join tenants t on t.id = e.tenant_id
               union all
               select 'account', e.id, e.occurred_at, e.action, null, null, a.email, s.email,
                      e.reason, e.detail, e.ip
               from account_audit_events e
               left join users a on a.id = e.actor_user_id
               left join users s on s.id = e.user_id
               union all
               select 'platform', e.id, e.occurred_at, e.action, e.subject_tenant_id, t.name,
                      a.email, null, e.reason, e.detail, null
               from platform_audit_events e
               left join users a on a.id = e.actor_user_id
               left join tenants t on t.id = e.subject_tenant_id
           ) events
           where ($1::text is null or starts_with(action, $1))
             and ($2::text is null or lower(actor) like $2)
             and ($3::timestamptz is null or occurred_at >= $3)
             and ($4::timestamptz is null or occurred_at < $4)
             and ($5::timestamptz is null or (occurred_at, id) < ($5, $6))
             and ($8::uuid is null or tenant_id = $8)
           order by occurred_at desc, id desc limit $7"#,
        filter.action_prefix(),
        filter.actor_pattern(),
        filter.from,
        filter.until,
        before_at,
        before_id,
        filter.limit.clamp(1, 10_000),
        filter.tenant.map(|t| t.as_uuid())
    )
    .fetch_all(tx.conn())
    .await?)
}

/// A tenant's latest events, for the admin's tenant page and the export.
pub(crate) async fn recent_for_tenant(
    tx: &mut PlatformTx,
    tenant: TenantId,
    limit: i64,
) -> Result<Vec<AuditRow>, PlatformError> {
    all_events(
        tx,
        &AuditFilter {
            tenant: Some(tenant),
            limit,
            ..AuditFilter::default()
        },
    )
    .await
}

/// The rows as CSV (RFC 4180). A cell that a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or carriage return) is prefixed with `'`, so an event text
/// typed by an attacker cannot become a formula on an admin's machine.
pub fn to_csv(rows: &[AuditRow]) -> String {
    let mut out =
        String::from("occurred_at,scope,action,tenant,actor,subject,reason,ip,detail\r\n");
    for row in rows {
        let cells = [
            row.occurred_at.to_rfc3339(),
            row.scope.clone(),
            row.action.clone(),
            row.tenant_name.clone().unwrap_or_default(),
            row.actor.clone().unwrap_or_default(),
            row.subject.clone().unwrap_or_default(),
            row.reason.clone().unwrap_or_default(),
            row.ip.clone().unwrap_or_default(),
            row.detail.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_cell(value: &str) -> String {
    let neutral = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_cannot_start_formulas() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\tx");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
    }
}
