//! `tenants list|show|suspend|reactivate`: what a platform admin does to tenants, from a shell.
//!
//! The acting admin is named with `--as EMAIL` (or `TENANTKIT_ADMIN_EMAIL`) and must be an
//! existing, unlocked platform admin. Reads go through the audited platform path (a
//! `platform.read` row with the reason); each change writes one row to the tenant's own audit
//! trail (see `tenantkit_platform::tenant_actions`). Exit codes: 0 done, 1 not found or the
//! action does not apply (or the database failed), 2 usage or configuration errors.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tenantkit_db::{Database, DbError, PlatformTx};
use tenantkit_kernel::TenantId;
use tenantkit_platform::{
    Admin, PlatformError, Reason,
    directory::{self, TenantQuery, TenantSort},
    tenant_actions, tenant_view,
};
use tenantkit_tenancy::{InvitationStatus, TenantStatus};

use crate::{fail, table, usage_error};

#[derive(Args)]
pub struct TenantsArgs {
    /// The email of the platform admin acting (recorded in the audit trails).
    #[arg(
        long = "as",
        value_name = "EMAIL",
        env = "TENANTKIT_ADMIN_EMAIL",
        global = true
    )]
    acting: Option<String>,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// List tenants, newest first by default; `--after` the `next` of a page for the next one.
    List {
        /// Part of a name or slug, or the start of a member's email.
        #[arg(long = "q", value_name = "TEXT")]
        text: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long, value_enum, default_value_t = SortArg::Newest)]
        sort: SortArg,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=200))]
        limit: i64,
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        #[arg(long)]
        json: bool,
        /// Why you read across tenants (kept in the platform audit trail).
        #[arg(long, default_value = "tenantkit-admin tenants list")]
        reason: String,
    },
    /// One tenant: profile, members with their roles, usage, pending invitations, recent audit
    /// events.
    Show {
        /// The tenant's id or slug.
        #[arg(value_name = "TENANT")]
        tenant: String,
        #[arg(long)]
        json: bool,
        /// Why you look at this tenant (kept in the platform audit trail).
        #[arg(long, default_value = "tenantkit-admin tenants show")]
        reason: String,
    },
    /// Suspend an active tenant: its users see a page saying so, its API answers 403.
    Suspend {
        /// The tenant's id or slug.
        #[arg(value_name = "TENANT")]
        tenant: String,
        /// Why (1 to 500 characters); stored with the tenant's audit row.
        #[arg(long)]
        reason: String,
    },
    /// Reactivate a suspended tenant (or restore a deleted one before it is purged).
    Reactivate {
        /// The tenant's id or slug.
        #[arg(value_name = "TENANT")]
        tenant: String,
        /// Why (1 to 500 characters); stored with the tenant's audit row.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Active,
    Suspended,
    Deleted,
    Purged,
}

impl From<StatusArg> for TenantStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Active => Self::Active,
            StatusArg::Suspended => Self::Suspended,
            StatusArg::Deleted => Self::Deleted,
            StatusArg::Purged => Self::Purged,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SortArg {
    Newest,
    Oldest,
    Name,
}

impl From<SortArg> for TenantSort {
    fn from(sort: SortArg) -> Self {
        match sort {
            SortArg::Newest => Self::Newest,
            SortArg::Oldest => Self::Oldest,
            SortArg::Name => Self::Name,
        }
    }
}

/// Why a command stops early: the exit code is already chosen and the message printed.
struct Stop(ExitCode);

type Outcome<T> = Result<T, Stop>;

fn stop_fail(message: &str) -> Stop {
    Stop(fail(message))
}

fn stop_usage(message: &str) -> Stop {
    Stop(usage_error(message))
}

pub async fn run(db: &Database, args: TenantsArgs) -> ExitCode {
    let acting = args.acting;
    let result = async {
        match args.command {
            TenantsCommand::List {
                text,
                status,
                plan,
                sort,
                limit,
                after,
                json,
                reason,
            } => {
                let reason = reason_of(&reason)?;
                let admin = acting_admin(db, acting.as_deref()).await?;
                let query = TenantQuery {
                    text,
                    status: status.map(Into::into),
                    plan,
                    sort: sort.into(),
                    after,
                    limit,
                };
                list(db, admin, reason, &query, json).await
            }
            TenantsCommand::Show {
                tenant,
                json,
                reason,
            } => {
                let reason = reason_of(&reason)?;
                let admin = acting_admin(db, acting.as_deref()).await?;
                show(db, admin, reason, &tenant, json).await
            }
            TenantsCommand::Suspend { tenant, reason } => {
                let reason = reason_of(&reason)?;
                let admin = acting_admin(db, acting.as_deref()).await?;
                change(db, admin, &reason, &tenant, Change::Suspend).await
            }
            TenantsCommand::Reactivate { tenant, reason } => {
                let reason = reason_of(&reason)?;
                let admin = acting_admin(db, acting.as_deref()).await?;
                change(db, admin, &reason, &tenant, Change::Reactivate).await
            }
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop(code)) => code,
    }
}

fn reason_of(text: &str) -> Outcome<Reason> {
    Reason::new(text).ok_or_else(|| stop_usage("--reason must be 1 to 500 characters"))
}

/// The platform admin named by `--as`: exit 2 unless it is an existing, unlocked admin.
async fn acting_admin(db: &Database, email: Option<&str>) -> Outcome<Admin> {
    let Some(email) = email.map(str::trim).filter(|e| !e.is_empty()) else {
        return Err(stop_usage(
            "name the acting platform admin with --as EMAIL (or TENANTKIT_ADMIN_EMAIL)",
        ));
    };
    let user = async {
        let mut tx = db.global().await?;
        tenantkit_accounts::repo::credentials_by_email(tx.conn(), email).await
    }
    .await
    .map_err(|error| stop_fail(&error.to_string()))?;
    match user {
        Some(user) if user.is_platform_admin && user.locked_at.is_none() => Ok(Admin(user.id)),
        Some(user) if user.is_platform_admin => Err(stop_usage(&format!(
            "--as {email}: this platform admin is locked"
        ))),
        Some(_) => Err(stop_usage(&format!(
            "--as {email}: this user is not a platform admin"
        ))),
        None => Err(stop_usage(&format!("--as {email}: no user has this email"))),
    }
}

/// Opens the audited cross-tenant read path.
async fn platform(db: &Database, admin: Admin, reason: Reason) -> Outcome<PlatformTx> {
    db.platform(admin.id(), reason)
        .await
        .map_err(|error| match error {
            // The admin was demoted (or removed) since `acting_admin` looked.
            DbError::TenantViolation => stop_usage("platform admins only"),
            error => stop_fail(&error.to_string()),
        })
}

/// Commits the read so its `platform.read` audit row stays, whatever the read found.
async fn finish(tx: PlatformTx) -> Outcome<()> {
    tx.commit()
        .await
        .map_err(|error| stop_fail(&error.to_string()))
}

fn platform_error(error: PlatformError, tenant: &str) -> Stop {
    match error {
        PlatformError::NotFound => stop_fail(&format!("no tenant {tenant}")),
        PlatformError::Conflict(message) => stop_fail(&message),
        PlatformError::NotAdmin => stop_usage("platform admins only"),
        error @ PlatformError::Invalid { .. } => stop_usage(&error.to_string()),
        error => stop_fail(&error.to_string()),
    }
}

/// Finds a tenant by id or slug. An id-shaped key that is no tenant's id may still be a slug.
async fn resolve(tx: &mut PlatformTx, key: &str) -> Outcome<Option<TenantId>> {
    let key = key.trim();
    if let Ok(id) = key.parse::<TenantId>() {
        let profile = tenant_view::profile(tx, id)
            .await
            .map_err(|error| platform_error(error, key))?;
        if profile.is_some() {
            return Ok(Some(id));
        }
    }
    directory::find_by_slug(tx, key)
        .await
        .map_err(|error| platform_error(error, key))
}

async fn list(
    db: &Database,
    admin: Admin,
    reason: Reason,
    query: &TenantQuery,
    json: bool,
) -> Outcome<()> {
    let mut tx = platform(db, admin, reason).await?;
    let page = directory::search(&mut tx, query).await;
    finish(tx).await?;
    let page = page.map_err(|error| platform_error(error, ""))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "tenants": page.rows, "next": page.next }))
                .unwrap_or_default()
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = page
        .rows
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.slug.clone(),
                t.name.clone(),
                t.status.as_str().to_owned(),
                t.plan.clone(),
                t.members.to_string(),
                t.owner_email.clone().unwrap_or_else(|| "-".to_owned()),
                t.created_at.format("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "ID", "SLUG", "NAME", "STATUS", "PLAN", "MEMBERS", "OWNER", "CREATED",
        ],
        &rows,
    );
    match &page.next {
        Some(next) => println!("more: --after {next}"),
        None if rows.is_empty() => println!("no tenants found"),
        None => {}
    }
    Ok(())
}

async fn show(db: &Database, admin: Admin, reason: Reason, key: &str, json: bool) -> Outcome<()> {
    let mut tx = platform(db, admin, reason).await?;
    let view = match resolve(&mut tx, key).await {
        Ok(Some(id)) => tenant_view::view(&mut tx, id)
            .await
            .map_err(|error| platform_error(error, key)),
        Ok(None) => Err(stop_fail(&format!("no tenant {key}"))),
        Err(stop) => Err(stop),
    };
    finish(tx).await?;
    let view = view?;
    if json {
        let failed_jobs: Vec<_> = view
            .failed_jobs
            .iter()
            .map(|job| {
                json!({
                    "id": job.id, "queue": job.queue, "attempts": job.attempts,
                    "error": job.error, "failed_at": job.failed_at,
                })
            })
            .collect();
        let document = json!({
            "tenant": view.profile,
            "members": view.members,
            "usage": view.usage,
            "invitations": view.invitations,
            "audit": view.audit,
            "emails": view.emails,
            "failed_jobs": failed_jobs,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        );
        return Ok(());
    }
    let p = &view.profile;
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut facts = vec![
        ("tenant", format!("{} ({})", p.name, p.slug)),
        ("id", p.id.to_string()),
        (
            "status",
            match &p.status_reason {
                Some(reason) => format!("{} ({reason})", p.status.as_str()),
                None => p.status.as_str().to_owned(),
            },
        ),
        ("plan", p.plan.clone()),
        ("created", time(&p.created_at)),
    ];
    if let Some(at) = &p.deleted_at {
        facts.push(("deleted", time(at)));
    }
    if let Some(at) = &p.purge_after {
        facts.push(("purge after", time(at)));
    }
    if p.entitlement_overrides
        .as_object()
        .is_some_and(|o| !o.is_empty())
    {
        facts.push(("overrides", p.entitlement_overrides.to_string()));
    }
    let u = &view.usage;
    facts.push((
        "usage",
        format!(
            "seats {}, API keys {}, pending invitations {}, storage {} bytes",
            u.seats, u.api_keys, u.pending_invitations, u.storage_bytes
        ),
    ));
    if !view.failed_jobs.is_empty() {
        facts.push(("failed jobs", view.failed_jobs.len().to_string()));
    }
    for (label, value) in &facts {
        // One line each: a reason may hold line breaks.
        let value: String = value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        println!("{label:<12} {value}");
    }
    println!();
    let members: Vec<Vec<String>> = view
        .members
        .iter()
        .map(|m| {
            vec![
                m.email.clone(),
                m.display_name.clone(),
                m.role.as_str().to_owned(),
                m.joined_at.format("%Y-%m-%d").to_string(),
                if m.locked { "locked" } else { "" }.to_owned(),
            ]
        })
        .collect();
    table::print(&["EMAIL", "NAME", "ROLE", "JOINED", ""], &members);
    if !view.invitations.is_empty() {
        println!();
        let invitations: Vec<Vec<String>> = view
            .invitations
            .iter()
            .map(|i| {
                vec![
                    i.email.clone(),
                    i.role.as_str().to_owned(),
                    match i.status {
                        InvitationStatus::Pending => "pending",
                        InvitationStatus::Accepted => "accepted",
                        InvitationStatus::Revoked => "revoked",
                    }
                    .to_owned(),
                    i.expires_at.format("%Y-%m-%d").to_string(),
                ]
            })
            .collect();
        table::print(&["INVITED", "ROLE", "STATUS", "EXPIRES"], &invitations);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Change {
    Suspend,
    Reactivate,
}

async fn change(
    db: &Database,
    admin: Admin,
    reason: &Reason,
    key: &str,
    change: Change,
) -> Outcome<()> {
    // An id is used as given (the action itself reports an unknown one); a slug is looked up
    // through the audited read path first.
    let by_id = key.trim().parse::<TenantId>().ok();
    let tenant = match by_id {
        Some(id) => id,
        None => lookup(db, admin, reason, key).await?,
    };
    let apply = |tenant| async move {
        match change {
            Change::Suspend => tenant_actions::suspend(db, admin, tenant, reason).await,
            Change::Reactivate => tenant_actions::reactivate(db, admin, tenant, reason).await,
        }
    };
    let result = match apply(tenant).await {
        // An id-shaped slug.
        Err(PlatformError::NotFound) if by_id.is_some() => {
            apply(lookup(db, admin, reason, key).await?).await
        }
        result => result,
    };
    result.map_err(|error| platform_error(error, key))?;
    let done = match change {
        Change::Suspend => "suspended",
        Change::Reactivate => "reactivated",
    };
    println!("tenant {} {done}", key.trim());
    Ok(())
}

/// A tenant's id by id or slug, read through the audited platform path; exit 1 if none.
async fn lookup(db: &Database, admin: Admin, reason: &Reason, key: &str) -> Outcome<TenantId> {
    let mut tx = platform(db, admin, reason.clone()).await?;
    let found = resolve(&mut tx, key).await;
    finish(tx).await?;
    found?.ok_or_else(|| stop_fail(&format!("no tenant {key}")))
}
