//! Platform administration (tenantkit-platform) against a real database: every admin action
//! leaves exactly one audit row (and a refused one none), the audit trails are append-only even
//! for the owner, the tenant directory pages and searches correctly over 100,000 tenants on its
//! indexes, and a purge removes a deleted tenant's data but keeps its row and its trail.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use tenantkit_kernel::{Role, TenantId, UserId};
use tenantkit_platform::{
    Admin, PlatformError, Reason,
    dead_jobs::{self, Decision},
    directory::{self, TenantQuery, TenantRow, TenantSort},
    purge::{self, Purged},
    tenant_actions::{self, EntitlementOverrides},
    users,
};
use tenantkit_tenancy::TenantStatus;
use tenantkit_tests::{
    TestApp, TestDb,
    api::{call, key, org},
    platform_admin,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn reason(text: &str) -> Reason {
    Reason::new(text).expect("a valid reason")
}

fn plans() -> Vec<String> {
    ["free", "team", "business"].map(String::from).to_vec()
}

/// A platform admin, created directly (there is no sign-up for admins).
async fn tenant_status(db: &TestDb, tenant: Uuid) -> String {
    sqlx::query_scalar("select status from tenants where id = $1")
        .bind(tenant)
        .fetch_one(&db.owner)
        .await
        .unwrap()
}

/// The three audit trails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trail {
    Tenant,
    Account,
    Platform,
}

impl Trail {
    const ALL: [Trail; 3] = [Trail::Tenant, Trail::Account, Trail::Platform];

    fn table(self) -> &'static str {
        match self {
            Trail::Tenant => "tenant_audit_events",
            Trail::Account => "account_audit_events",
            Trail::Platform => "platform_audit_events",
        }
    }

    /// Whom a row is about.
    fn subject(self) -> &'static str {
        match self {
            Trail::Tenant => "tenant_id",
            Trail::Account => "user_id",
            Trail::Platform => "subject_tenant_id",
        }
    }
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    subject: Option<Uuid>,
    actor: Option<Uuid>,
    action: String,
    reason: Option<String>,
    detail: Value,
    /// The whole row as JSON, to see that nothing at all changed.
    whole: Value,
}

/// Every row of every trail, read as the owner (no row level security).
#[derive(Clone, Debug, PartialEq)]
struct Snapshot(Vec<Vec<AuditRow>>);

async fn snapshot(owner: &PgPool) -> Snapshot {
    let mut trails = Vec::new();
    for trail in Trail::ALL {
        let rows: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select id, {subject} as subject, actor_user_id as actor, action, reason, detail,
                    to_jsonb(e) as whole
             from {table} e order by id",
            subject = trail.subject(),
            table = trail.table()
        )))
        .fetch_all(owner)
        .await
        .unwrap();
        trails.push(rows);
    }
    Snapshot(trails)
}

impl Snapshot {
    fn rows(&self, trail: Trail) -> &[AuditRow] {
        &self.0[Trail::ALL.iter().position(|t| *t == trail).unwrap()]
    }
}

/// The rows added to each trail since `before`; fails if any earlier row changed or went.
async fn new_rows(owner: &PgPool, before: &Snapshot) -> Vec<(Trail, AuditRow)> {
    let after = snapshot(owner).await;
    let mut added = Vec::new();
    for trail in Trail::ALL {
        let old = before.rows(trail);
        let now = after.rows(trail);
        for row in old {
            assert!(
                now.contains(row),
                "{}: an earlier audit row changed or disappeared: {row:?}",
                trail.table()
            );
        }
        for row in now {
            if !old.iter().any(|o| o.id == row.id) {
                added.push((trail, row.clone()));
            }
        }
    }
    added
}

/// Exactly one new row, in `trail`, by `actor`, with `action`, `reason` and `subject`.
async fn assert_one_audit_row(
    db: &TestDb,
    before: &Snapshot,
    trail: Trail,
    action: &str,
    actor: Admin,
    why: &Reason,
    subject: Option<Uuid>,
) -> AuditRow {
    let added = new_rows(&db.owner, before).await;
    assert_eq!(
        added.len(),
        1,
        "{action}: expected exactly one new audit row, got {added:#?}"
    );
    let (found_in, row) = added.into_iter().next().unwrap();
    assert_eq!(
        found_in, trail,
        "{action}: audited in the wrong trail: {row:?}"
    );
    assert_eq!(row.action, action);
    assert_eq!(row.actor, Some(actor.id().as_uuid()), "{action}: actor");
    assert_eq!(
        row.reason.as_deref(),
        Some(why.as_str()),
        "{action}: reason"
    );
    assert_eq!(row.subject, subject, "{action}: subject");
    row
}

async fn assert_no_audit_row(db: &TestDb, before: &Snapshot, what: &str) {
    let added = new_rows(&db.owner, before).await;
    assert!(added.is_empty(), "{what}: wrote audit rows {added:#?}");
}

/// A job that gave up (status Killed), in the tenant.purge queue, about `tenant`.
async fn dead_job(db: &TestDb, tenant: Uuid, error: &str) -> String {
    let id = format!("dead-{}", Uuid::now_v7().simple());
    let job = json!({ "tenant_id": tenant, "purge_after": "2026-01-01T00:00:00Z" });
    sqlx::query(
        "insert into apalis.jobs
             (job, id, job_type, status, attempts, max_attempts, last_result, done_at)
         values (convert_to($1, 'UTF8'), $2, 'tenant.purge', 'Killed', 3, 3,
                 jsonb_build_object('Err', $3::text), now())",
    )
    .bind(job.to_string())
    .bind(&id)
    .bind(error)
    .execute(&db.owner)
    .await
    .expect("insert a dead job");
    id
}

async fn job_status(db: &TestDb, id: &str) -> Option<(String, i32)> {
    sqlx::query_as("select status, attempts from apalis.jobs where id = $1")
        .bind(id)
        .fetch_optional(&db.owner)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// 1. Audit: exactly one row per action
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_admin_action_writes_exactly_one_audit_row() {
    let app = TestApp::spawn().await;
    let db = &app.db;
    let acme = org(&app, "Acme").await;
    let admin = platform_admin(db, "admin").await;
    let tenant = TenantId::from_uuid(acme.tenant);
    let owner = UserId::from_uuid(acme.owner);
    let some_tenant = Some(acme.tenant);

    // Suspend.
    let why = reason("chargeback on invoice 1001");
    let before = snapshot(&db.owner).await;
    tenant_actions::suspend(&db.app, admin, tenant, &why)
        .await
        .unwrap();
    assert_one_audit_row(
        db,
        &before,
        Trail::Tenant,
        "admin.tenant.suspend",
        admin,
        &why,
        some_tenant,
    )
    .await;
    let (status, status_reason): (String, Option<String>) =
        sqlx::query_as("select status, status_reason from tenants where id = $1")
            .bind(acme.tenant)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert_eq!(status, "suspended");
    assert_eq!(status_reason.as_deref(), Some(why.as_str()));

    // Suspending twice does not apply: Conflict, and no trace.
    let before = snapshot(&db.owner).await;
    let again = tenant_actions::suspend(&db.app, admin, tenant, &reason("again")).await;
    assert!(
        matches!(again, Err(PlatformError::Conflict(_))),
        "{again:?}"
    );
    assert_no_audit_row(db, &before, "a second suspend").await;

    // Reactivate.
    let why = reason("invoice paid");
    let before = snapshot(&db.owner).await;
    tenant_actions::reactivate(&db.app, admin, tenant, &why)
        .await
        .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Tenant,
        "admin.tenant.reactivate",
        admin,
        &why,
        some_tenant,
    )
    .await;
    assert_eq!(row.detail, json!({ "from": "suspended" }));
    assert_eq!(tenant_status(db, acme.tenant).await, "active");
    let before = snapshot(&db.owner).await;
    let again = tenant_actions::reactivate(&db.app, admin, tenant, &why).await;
    assert!(
        matches!(again, Err(PlatformError::Conflict(_))),
        "{again:?}"
    );
    assert_no_audit_row(db, &before, "reactivating an active tenant").await;

    // Change the plan.
    let why = reason("upgraded by sales");
    let before = snapshot(&db.owner).await;
    tenant_actions::change_plan(&db.app, admin, tenant, "team", &plans(), &why)
        .await
        .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Tenant,
        "admin.tenant.plan",
        admin,
        &why,
        some_tenant,
    )
    .await;
    assert_eq!(row.detail, json!({ "from": "free", "to": "team" }));
    let plan: String = sqlx::query_scalar("select plan from tenants where id = $1")
        .bind(acme.tenant)
        .fetch_one(&db.owner)
        .await
        .unwrap();
    assert_eq!(plan, "team");
    // A plan that is not configured is refused before anything is written.
    let before = snapshot(&db.owner).await;
    let unknown =
        tenant_actions::change_plan(&db.app, admin, tenant, "enterprise", &plans(), &why).await;
    assert!(
        matches!(unknown, Err(PlatformError::Invalid { field: "plan", .. })),
        "{unknown:?}"
    );
    assert_no_audit_row(db, &before, "an unknown plan").await;

    // Override entitlements.
    let why = reason("pilot customer");
    let overrides = EntitlementOverrides {
        seats: Some(250),
        features: vec!["sso".to_owned()],
        ..Default::default()
    };
    let before = snapshot(&db.owner).await;
    tenant_actions::override_entitlements(&db.app, admin, tenant, &overrides, &why)
        .await
        .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Tenant,
        "admin.tenant.entitlements",
        admin,
        &why,
        some_tenant,
    )
    .await;
    assert_eq!(
        row.detail,
        json!({ "overrides": { "seats": 250, "features": ["sso"] } })
    );

    // Users: lock, unlock, force a password reset, record ended sessions.
    let subject = Some(acme.owner);
    let why = reason("account takeover suspected");
    let before = snapshot(&db.owner).await;
    users::lock(&db.app, admin, owner, &why).await.unwrap();
    assert_one_audit_row(
        db,
        &before,
        Trail::Account,
        "admin.user.lock",
        admin,
        &why,
        subject,
    )
    .await;
    let locked: bool = sqlx::query_scalar("select locked_at is not null from users where id = $1")
        .bind(acme.owner)
        .fetch_one(&db.owner)
        .await
        .unwrap();
    assert!(locked);
    let before = snapshot(&db.owner).await;
    let again = users::lock(&db.app, admin, owner, &why).await;
    assert!(
        matches!(again, Err(PlatformError::Conflict(_))),
        "{again:?}"
    );
    assert_no_audit_row(db, &before, "a second lock").await;

    let why = reason("identity confirmed by phone");
    let before = snapshot(&db.owner).await;
    users::unlock(&db.app, admin, owner, &why).await.unwrap();
    assert_one_audit_row(
        db,
        &before,
        Trail::Account,
        "admin.user.unlock",
        admin,
        &why,
        subject,
    )
    .await;
    let before = snapshot(&db.owner).await;
    let again = users::unlock(&db.app, admin, owner, &why).await;
    assert!(
        matches!(again, Err(PlatformError::Conflict(_))),
        "{again:?}"
    );
    assert_no_audit_row(db, &before, "unlocking an unlocked user").await;

    let why = reason("password found in a breach corpus");
    let before = snapshot(&db.owner).await;
    users::force_password_reset(&db.app, admin, owner, &why)
        .await
        .unwrap();
    assert_one_audit_row(
        db,
        &before,
        Trail::Account,
        "admin.user.force_password_reset",
        admin,
        &why,
        subject,
    )
    .await;
    let no_password: bool =
        sqlx::query_scalar("select password_hash is null from users where id = $1")
            .bind(acme.owner)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert!(no_password);

    let why = reason("ended after the password reset");
    let before = snapshot(&db.owner).await;
    users::record_sessions_ended(&db.app, admin, owner, &why, 3)
        .await
        .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Account,
        "admin.user.end_sessions",
        admin,
        &why,
        subject,
    )
    .await;
    assert_eq!(row.detail, json!({ "sessions_ended": 3 }));

    // An admin cannot act on their own account.
    let before = snapshot(&db.owner).await;
    let own = users::lock(&db.app, admin, admin.id(), &why).await;
    assert!(matches!(own, Err(PlatformError::Conflict(_))), "{own:?}");
    assert_no_audit_row(db, &before, "an admin locking themself").await;

    // Dead jobs: retry one, discard another; each in the platform trail, about its tenant.
    let retried = dead_job(db, acme.tenant, "smtp said no").await;
    let discarded = dead_job(db, acme.tenant, "template missing").await;
    let why = reason("SMTP outage is over");
    let before = snapshot(&db.owner).await;
    dead_jobs::decide(&db.app, admin, &retried, Decision::Retry, &why)
        .await
        .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Platform,
        "admin.job.retry",
        admin,
        &why,
        some_tenant,
    )
    .await;
    assert_eq!(
        row.detail,
        json!({ "job_id": retried, "queue": "tenant.purge", "last_error": "smtp said no" })
    );
    assert_eq!(
        job_status(db, &retried).await,
        Some(("Pending".to_owned(), 0))
    );
    // It is no longer dead: deciding again finds nothing, and writes nothing.
    let before = snapshot(&db.owner).await;
    let again = dead_jobs::decide(&db.app, admin, &retried, Decision::Retry, &why).await;
    assert!(matches!(again, Err(PlatformError::NotFound)), "{again:?}");
    assert_no_audit_row(db, &before, "retrying a job that is not dead").await;

    let why = reason("obsolete template");
    let before = snapshot(&db.owner).await;
    dead_jobs::decide(&db.app, admin, &discarded, Decision::Discard, &why)
        .await
        .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Platform,
        "admin.job.discard",
        admin,
        &why,
        some_tenant,
    )
    .await;
    assert_eq!(row.detail["last_error"], "template missing");
    assert_eq!(job_status(db, &discarded).await, None);

    // Delete (soft): last, as it ends the tenant's life.
    let why = reason("customer asked to close the account");
    let before = snapshot(&db.owner).await;
    tenant_actions::delete(
        &db.app,
        admin,
        tenant,
        Duration::from_secs(30 * 24 * 3600),
        &why,
    )
    .await
    .unwrap();
    let row = assert_one_audit_row(
        db,
        &before,
        Trail::Tenant,
        "admin.tenant.delete",
        admin,
        &why,
        some_tenant,
    )
    .await;
    assert!(row.detail["purge_after"].is_string(), "{:?}", row.detail);
    assert_eq!(tenant_status(db, acme.tenant).await, "deleted");
    let purges: i64 = sqlx::query_scalar(
        "select count(*) from apalis.jobs where job_type = 'tenant.purge' and status = 'Pending'
           and run_at > now() + interval '29 days'
           and convert_from(job, 'UTF8')::jsonb ->> 'tenant_id' = $1::text",
    )
    .bind(acme.tenant)
    .fetch_one(&db.owner)
    .await
    .unwrap();
    assert_eq!(
        purges, 1,
        "the purge is scheduled after the retention period"
    );
    let before = snapshot(&db.owner).await;
    let again = tenant_actions::delete(&db.app, admin, tenant, Duration::ZERO, &why).await;
    assert!(
        matches!(again, Err(PlatformError::Conflict(_))),
        "{again:?}"
    );
    let suspend = tenant_actions::suspend(&db.app, admin, tenant, &why).await;
    assert!(
        matches!(suspend, Err(PlatformError::Conflict(_))),
        "{suspend:?}"
    );
    assert_no_audit_row(db, &before, "acting on a deleted tenant").await;
}

#[tokio::test]
async fn a_non_admin_or_a_locked_admin_is_refused_and_leaves_no_trace() {
    let app = TestApp::spawn().await;
    let db = &app.db;
    let acme = org(&app, "Acme").await;
    let other = org(&app, "Other").await;
    let tenant = TenantId::from_uuid(acme.tenant);
    let real_admin = platform_admin(db, "admin").await;
    // The owner of a tenant is not a platform admin; neither is a locked admin.
    let customer = Admin(UserId::from_uuid(acme.owner));
    let locked = platform_admin(db, "locked").await;
    sqlx::query("update users set locked_at = now() where id = $1")
        .bind(locked.id().as_uuid())
        .execute(&db.owner)
        .await
        .unwrap();
    let target = UserId::from_uuid(other.owner);
    let job = dead_job(db, acme.tenant, "boom").await;
    let why = reason("trying my luck");

    for actor in [customer, locked] {
        let before = snapshot(&db.owner).await;
        let results: Vec<(&str, Result<(), PlatformError>)> = vec![
            (
                "suspend",
                tenant_actions::suspend(&db.app, actor, tenant, &why).await,
            ),
            (
                "reactivate",
                tenant_actions::reactivate(&db.app, actor, tenant, &why).await,
            ),
            (
                "change_plan",
                tenant_actions::change_plan(&db.app, actor, tenant, "business", &plans(), &why)
                    .await,
            ),
            (
                "override_entitlements",
                tenant_actions::override_entitlements(
                    &db.app,
                    actor,
                    tenant,
                    &EntitlementOverrides {
                        seats: Some(1000),
                        ..Default::default()
                    },
                    &why,
                )
                .await,
            ),
            (
                "delete",
                tenant_actions::delete(&db.app, actor, tenant, Duration::ZERO, &why).await,
            ),
            ("lock", users::lock(&db.app, actor, target, &why).await),
            ("unlock", users::unlock(&db.app, actor, target, &why).await),
            (
                "force_password_reset",
                users::force_password_reset(&db.app, actor, target, &why).await,
            ),
            (
                "record_sessions_ended",
                users::record_sessions_ended(&db.app, actor, target, &why, 1).await,
            ),
            (
                "job retry",
                dead_jobs::decide(&db.app, actor, &job, Decision::Retry, &why).await,
            ),
            (
                "job discard",
                dead_jobs::decide(&db.app, actor, &job, Decision::Discard, &why).await,
            ),
        ];
        for (what, result) in results {
            assert!(
                matches!(result, Err(PlatformError::NotAdmin)),
                "{what} by {actor:?}: {result:?}"
            );
        }
        assert_no_audit_row(db, &before, "actions by a non-admin").await;
        // Nor did anything change.
        let row: (String, String, Value, bool, bool) = sqlx::query_as(
            "select t.status, t.plan, t.entitlement_overrides,
                    u.locked_at is null, u.password_hash is not null
             from tenants t, users u where t.id = $1 and u.id = $2",
        )
        .bind(acme.tenant)
        .bind(other.owner)
        .fetch_one(&db.owner)
        .await
        .unwrap();
        assert_eq!(
            row,
            (
                "active".to_owned(),
                "free".to_owned(),
                json!({}),
                true,
                true
            )
        );
        assert_eq!(job_status(db, &job).await, Some(("Killed".to_owned(), 3)));
        let purges: i64 =
            sqlx::query_scalar("select count(*) from apalis.jobs where job_type = 'tenant.purge'")
                .fetch_one(&db.owner)
                .await
                .unwrap();
        assert_eq!(purges, 1, "only the dead job: no purge was scheduled");
    }

    // The same actions work for a real admin (the refusals above were about the actor).
    tenant_actions::suspend(&db.app, real_admin, tenant, &why)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. The audit trails are append-only
// ---------------------------------------------------------------------------------------------

fn db_error(
    statement: &str,
    result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>,
) -> (String, String) {
    match result {
        Err(sqlx::Error::Database(e)) => (
            e.code().map(|c| c.into_owned()).unwrap_or_default(),
            e.message().to_owned(),
        ),
        other => panic!("{statement}: expected a database error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_audit_trails_are_append_only_for_the_application_and_the_owner() {
    let app = TestApp::spawn().await;
    let db = &app.db;
    let acme = org(&app, "Acme").await;
    let admin = platform_admin(db, "admin").await;
    let tenant = TenantId::from_uuid(acme.tenant);
    let why = reason("fill the trails");
    // A row in each trail, by the admin.
    tenant_actions::suspend(&db.app, admin, tenant, &why)
        .await
        .unwrap();
    users::lock(&db.app, admin, UserId::from_uuid(acme.owner), &why)
        .await
        .unwrap();
    db.app
        .platform(admin.id(), why.clone())
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let original = snapshot(&db.owner).await;
    for trail in Trail::ALL {
        assert!(
            original
                .rows(trail)
                .iter()
                .any(|r| r.actor == Some(admin.id().as_uuid())),
            "{}: no row by the admin to work with",
            trail.table()
        );
    }

    // As the application role: no privilege to change or remove anything.
    for trail in Trail::ALL {
        let table = trail.table();
        for statement in [
            format!("update {table} set action = 'forged'"),
            format!("update {table} set actor_user_id = null"),
            format!("delete from {table}"),
            format!("truncate {table}"),
        ] {
            let result = if trail == Trail::Tenant {
                // Inside the tenant's transaction, where row level security shows its rows.
                let mut tx = db.app.tenant(tenant).await.unwrap();
                let visible: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "select count(*) from {table}"
                )))
                .fetch_one(tx.conn())
                .await
                .unwrap();
                assert!(visible > 0, "{table}: the tenant sees none of its rows");
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(tx.conn())
                    .await
            } else {
                let mut tx = db.app.global().await.unwrap();
                let visible: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "select count(*) from {table}"
                )))
                .fetch_one(tx.conn())
                .await
                .unwrap();
                assert!(
                    visible > 0,
                    "{table}: the application sees none of its rows"
                );
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(tx.conn())
                    .await
            };
            let (code, message) = db_error(&statement, result);
            assert_eq!(code, "42501", "{statement}: {message}");
            assert!(
                message.contains("permission denied"),
                "{statement}: {message}"
            );
        }
    }
    assert_eq!(
        snapshot(&db.owner).await,
        original,
        "the application changed the trails"
    );

    // As the owner (superuser): the trigger refuses rewriting, removing and truncating.
    for trail in Trail::ALL {
        let table = trail.table();
        for statement in [
            format!("update {table} set action = 'forged'"),
            format!("update {table} set reason = null"),
            format!("update {table} set actor_user_id = null, detail = '{{\"forged\": true}}'"),
            format!("update {table} set occurred_at = occurred_at - interval '1 day'"),
            // A reference may become NULL, never point somewhere else.
            format!("update {table} set actor_user_id = '{}'", acme.owner),
            format!("delete from {table}"),
            format!("truncate {table}"),
            format!("truncate {table} cascade"),
        ] {
            let result = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&db.owner)
                .await;
            let (code, message) = db_error(&statement, result);
            assert_eq!(message, "audit events are append-only", "{statement}");
            assert_eq!(code, "42501", "{statement}");
        }
    }
    assert_eq!(
        snapshot(&db.owner).await,
        original,
        "the owner changed the trails"
    );

    // What `on delete set null` does is allowed: the reference alone becomes NULL.
    for trail in Trail::ALL {
        let table = trail.table();
        let changed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "update {table} set actor_user_id = null where actor_user_id = $1"
        )))
        .bind(admin.id().as_uuid())
        .execute(&db.owner)
        .await
        .unwrap_or_else(|e| panic!("{table}: setting the actor to NULL was refused: {e}"));
        assert!(changed.rows_affected() > 0, "{table}");
    }
    let nulled = snapshot(&db.owner).await;
    for trail in Trail::ALL {
        let (before, after) = (original.rows(trail), nulled.rows(trail));
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(after) {
            let mut expected = b.clone();
            if expected.actor == Some(admin.id().as_uuid()) {
                expected.actor = None;
                expected.whole["actor_user_id"] = Value::Null;
            }
            assert_eq!(
                a,
                &expected,
                "{}: more than the actor changed",
                trail.table()
            );
        }
    }
    // And the database's own `on delete set null`: deleting the locked user keeps the rows
    // about them, without the reference.
    let about_owner: i64 =
        sqlx::query_scalar("select count(*) from account_audit_events where user_id = $1")
            .bind(acme.owner)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert!(about_owner > 0);
    let total_before = nulled.rows(Trail::Account).len();
    sqlx::query("delete from users where id = $1")
        .bind(acme.owner)
        .execute(&db.owner)
        .await
        .expect("deleting a user sets their audit references to NULL");
    let after = snapshot(&db.owner).await;
    assert_eq!(after.rows(Trail::Account).len(), total_before);
    assert!(
        after
            .rows(Trail::Account)
            .iter()
            .all(|r| r.subject != Some(acme.owner) && r.actor != Some(acme.owner))
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Search and pagination over 100,000 tenants
// ---------------------------------------------------------------------------------------------

const TENANTS: i64 = 100_000;
const MEMBERS: i64 = 20_000;

/// 100,000 tenants named after `g % 5000` (so every name is shared by 20 tenants), created in
/// buckets of 1,000 per hour (ties on created_at), every 200th suspended, plans round-robin;
/// three named "Zebrafish Analytics"; the first 20,000 each with an owner
/// member<g>.x@seed<g % 50>.example. Ids are md5-derived: unrelated to the order of g.
async fn seed_100k(db: &TestDb) -> (Duration, Duration) {
    let started = Instant::now();
    let mut tx = db.owner.begin().await.unwrap();
    sqlx::query(
        "insert into tenants (id, slug, name, status, plan, created_at, updated_at)
         select md5('tenant' || g)::uuid, 'org-' || g,
                case when g in (3, 54321, 77777) then 'Zebrafish Analytics ' || g
                     else (array['Acme','Globex','Initech','Umbrella','Hooli','Stark','Wayne','Wonka'])
                              [1 + (g % 5000) % 8]
                          || ' ' || (array['Labs','Systems','Holdings','Studio','Works','Group'])
                              [1 + ((g % 5000) / 8) % 6]
                          || ' ' || (g % 5000) end,
                case when g % 200 = 0 then 'suspended' else 'active' end,
                (array['free','team','business'])[1 + g % 3],
                timestamptz '2025-01-01 00:00:00+00' + (g / 1000) * interval '1 hour',
                now()
         from generate_series(1, $1::bigint) g",
    )
    .bind(TENANTS)
    .execute(&mut *tx)
    .await
    .expect("seed tenants");
    sqlx::query(
        "insert into users (id, email, display_name, email_verified_at)
         select md5('user' || g)::uuid, 'member' || g || '.x@seed' || (g % 50) || '.example',
                'Member ' || g, now()
         from generate_series(1, $1::bigint) g",
    )
    .bind(MEMBERS)
    .execute(&mut *tx)
    .await
    .expect("seed users");
    sqlx::query(
        "insert into memberships (tenant_id, user_id, role)
         select md5('tenant' || g)::uuid, md5('user' || g)::uuid, 'owner'
         from generate_series(1, $1::bigint) g",
    )
    .bind(MEMBERS)
    .execute(&mut *tx)
    .await
    .expect("seed memberships");
    tx.commit().await.unwrap();
    let seeded = started.elapsed();
    let started = Instant::now();
    sqlx::query("analyze tenants, users, memberships")
        .execute(&db.owner)
        .await
        .unwrap();
    (seeded, started.elapsed())
}

async fn id_of_slug(db: &TestDb, slug: &str) -> Uuid {
    sqlx::query_scalar("select id from tenants where slug = $1")
        .bind(slug)
        .fetch_one(&db.owner)
        .await
        .unwrap()
}

/// One page, through the audited platform path, timed.
async fn page(db: &TestDb, admin: Admin, query: &TenantQuery) -> (directory::TenantPage, Duration) {
    let mut tx = db
        .app
        .platform(admin.id(), reason("tenant directory test"))
        .await
        .unwrap();
    let started = Instant::now();
    let page = directory::search(&mut tx, query)
        .await
        .unwrap_or_else(|e| panic!("{query:?}: {e}"));
    let took = started.elapsed();
    tx.commit().await.unwrap();
    (page, took)
}

/// Every page of `query` following `next`, at most `max_pages`.
struct Pages {
    rows: Vec<TenantRow>,
    pages: usize,
    slowest: Duration,
    /// `next` was still set after `max_pages` pages.
    unfinished: bool,
}

async fn all_pages(db: &TestDb, admin: Admin, mut query: TenantQuery, max_pages: usize) -> Pages {
    let mut all = Pages {
        rows: Vec::new(),
        pages: 0,
        slowest: Duration::ZERO,
        unfinished: false,
    };
    loop {
        let (found, took) = page(db, admin, &query).await;
        all.pages += 1;
        all.slowest = all.slowest.max(took);
        assert!(
            found.rows.len() as i64 <= query.limit,
            "{query:?}: page too long"
        );
        if found.next.is_some() {
            assert_eq!(
                found.rows.len() as i64,
                query.limit,
                "{query:?}: a page before the last is short"
            );
        }
        all.rows.extend(found.rows);
        match found.next {
            Some(next) if all.pages < max_pages => query.after = Some(next),
            Some(_) => {
                all.unfinished = true;
                break;
            }
            None => break,
        }
    }
    all
}

/// The `next` a page ending at the `offset`-th tenant (0-based, in `sort` order) would carry:
/// base64url of `t|id|micros` or `n|id|lower(name)`, built in SQL to jump deep into the list.
async fn cursor_at(db: &TestDb, sort: TenantSort, offset: i64) -> String {
    let key = match sort {
        TenantSort::Name => "'n|' || id || '|' || lower(name)",
        _ => "'t|' || id || '|' || (extract(epoch from created_at) * 1000000)::bigint",
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select rtrim(translate(encode(convert_to({key}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')
         from tenants order by {} offset $1 limit 1",
        order_by(sort)
    )))
    .bind(offset)
    .fetch_one(&db.owner)
    .await
    .unwrap()
}

fn order_by(sort: TenantSort) -> &'static str {
    match sort {
        TenantSort::Newest => "created_at desc, id desc",
        TenantSort::Oldest => "created_at, id",
        TenantSort::Name => "lower(name), id",
    }
}

/// The ids matching `filter` (SQL, as the owner) in the order of `sort`.
async fn expected_ids(db: &TestDb, filter: &str, sort: TenantSort) -> Vec<Uuid> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select id from tenants where {filter} order by {}",
        order_by(sort)
    )))
    .fetch_all(&db.owner)
    .await
    .unwrap()
}

fn ids(rows: &[TenantRow]) -> Vec<Uuid> {
    rows.iter().map(|r| r.id.as_uuid()).collect()
}

/// Where two id lists first differ, for a readable failure.
fn first_difference(got: &[Uuid], want: &[Uuid]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let mut seen = std::collections::HashSet::new();
    let duplicates = got.iter().filter(|id| !seen.insert(**id)).count();
    format!(
        "got {} rows ({duplicates} repeated), expected {}; first difference at {at}: {:?} vs {:?}",
        got.len(),
        want.len(),
        got.get(at),
        want.get(at)
    )
}

#[tokio::test]
async fn the_directory_pages_and_searches_100k_tenants() {
    let db = TestDb::new().await;
    let (seeded, analyzed) = seed_100k(&db).await;
    eprintln!(
        "seeded {TENANTS} tenants, {MEMBERS} users and memberships in {seeded:?}; analyze {analyzed:?}"
    );
    // About 5 s on an idle 2-core machine, 10-12 s while other builds run; the bound is loose
    // so that a busy machine does not fail the test.
    assert!(
        seeded + analyzed < Duration::from_secs(60),
        "seeding took {seeded:?} + {analyzed:?}"
    );
    let admin = platform_admin(&db, "admin").await;

    // Filtered lists, every sort: each matching tenant exactly once, in order.
    let cases = [
        (
            "status = 'suspended'",
            Some(TenantStatus::Suspended),
            None,
            50,
        ),
        (
            "status = 'suspended' and plan = 'team'",
            Some(TenantStatus::Suspended),
            Some("team"),
            50,
        ),
    ];
    for (filter, status, plan, limit) in cases {
        for sort in [TenantSort::Newest, TenantSort::Oldest, TenantSort::Name] {
            let want = expected_ids(&db, filter, sort).await;
            assert!(want.len() > 100, "{filter}: only {} tenants", want.len());
            let started = Instant::now();
            let all = all_pages(
                &db,
                admin,
                TenantQuery {
                    status,
                    plan: plan.map(str::to_owned),
                    sort,
                    limit,
                    ..Default::default()
                },
                want.len() / limit as usize + 3,
            )
            .await;
            eprintln!(
                "{filter}, {}: {} tenants in {} pages, {:?} in all, slowest page {:?}",
                sort.as_str(),
                all.rows.len(),
                all.pages,
                started.elapsed(),
                all.slowest
            );
            let got = ids(&all.rows);
            assert!(
                got == want && !all.unfinished,
                "{filter}, sort {}: {}",
                sort.as_str(),
                first_difference(&got, &want)
            );
            let rows = &all.rows;
            assert!(rows.iter().all(|r| Some(r.status) == status));
            assert!(plan.is_none_or(|p| rows.iter().all(|r| r.plan == p)));
        }
    }

    // Unfiltered: the first page, and pages deep in the list (cursors made in SQL).
    for sort in [TenantSort::Newest, TenantSort::Oldest, TenantSort::Name] {
        let want = expected_ids(&db, "true", sort).await;
        assert_eq!(want.len() as i64, TENANTS);
        let (first, first_took) = page(
            &db,
            admin,
            &TenantQuery {
                sort,
                limit: 50,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            ids(&first.rows),
            want[..50],
            "{}: first page",
            sort.as_str()
        );
        let mut took = Vec::new();
        for offset in [999, 49_999, 99_899] {
            let (deep, deep_took) = page(
                &db,
                admin,
                &TenantQuery {
                    sort,
                    limit: 50,
                    after: Some(cursor_at(&db, sort, offset).await),
                    ..Default::default()
                },
            )
            .await;
            let from = offset as usize + 1;
            let to = (from + 50).min(want.len());
            assert_eq!(
                ids(&deep.rows),
                want[from..to],
                "{}: the page after row {offset}",
                sort.as_str()
            );
            assert_eq!(deep.next.is_some(), to < want.len());
            took.push((offset + 1, deep_took));
        }
        eprintln!(
            "unfiltered, {}: first page {first_took:?}; pages after row (n, time) {took:?}",
            sort.as_str()
        );
    }

    // Search by the start of a member's email, whatever its case: exactly that tenant.
    let tenant_12345 = id_of_slug(&db, "org-12345").await;
    let (found, took) = page(
        &db,
        admin,
        &TenantQuery {
            text: Some("Member12345.X@".to_owned()),
            limit: 50,
            ..Default::default()
        },
    )
    .await;
    eprintln!("email prefix search: {took:?}");
    assert_eq!(ids(&found.rows), vec![tenant_12345], "{:?}", found.rows);
    assert_eq!(
        found.rows[0].owner_email.as_deref(),
        Some("member12345.x@seed45.example")
    );
    assert_eq!(found.rows[0].members, 1);
    assert!(found.next.is_none());

    // Search by a fragment of the name: the three Zebrafish tenants, newest first.
    let zebrafish = vec![
        id_of_slug(&db, "org-77777").await,
        id_of_slug(&db, "org-54321").await,
        id_of_slug(&db, "org-3").await,
    ];
    for text in ["zebrafish", "EBRAFISH anal", "Analytics 5432"] {
        let (found, took) = page(
            &db,
            admin,
            &TenantQuery {
                text: Some(text.to_owned()),
                limit: 50,
                ..Default::default()
            },
        )
        .await;
        eprintln!("name fragment search {text:?}: {took:?}");
        let want: Vec<Uuid> = if text == "Analytics 5432" {
            vec![zebrafish[1]]
        } else {
            zebrafish.clone()
        };
        assert_eq!(ids(&found.rows), want, "{text}: {:?}", found.rows);
    }

    // Search by a fragment of the slug, paged (ties on created_at broken by id).
    for sort in [TenantSort::Newest, TenantSort::Oldest, TenantSort::Name] {
        let want = expected_ids(&db, "slug = 'org-4242' or slug like 'org-4242_'", sort).await;
        assert_eq!(want.len(), 11);
        let started = Instant::now();
        let all = all_pages(
            &db,
            admin,
            TenantQuery {
                text: Some("org-4242".to_owned()),
                sort,
                limit: 5,
                ..Default::default()
            },
            6,
        )
        .await;
        eprintln!(
            "slug fragment search, {}: {} pages in {:?}",
            sort.as_str(),
            all.pages,
            started.elapsed()
        );
        let got = ids(&all.rows);
        assert!(
            got == want && !all.unfinished,
            "slug search, sort {}: {}",
            sort.as_str(),
            first_difference(&got, &want)
        );
    }

    // LIKE wildcards in the search text match literally.
    let (found, _) = page(
        &db,
        admin,
        &TenantQuery {
            text: Some("%".to_owned()),
            limit: 50,
            ..Default::default()
        },
    )
    .await;
    assert!(
        found.rows.is_empty(),
        "'%' matched {} tenants",
        found.rows.len()
    );
}

// The SQL of directory.rs, fragment by fragment (checked against the source below), so the
// plans explained here are the plans of the real queries.
const SELECT: &str = r#"select t.id as "id: TenantId", t.slug, t.name, t.status as "status: TenantStatus",
                      t.plan, t.created_at,
                      (select u.email from memberships m join users u on u.id = m.user_id
                        where m.tenant_id = t.id and m.role = 'owner'
                        order by m.created_at limit 1) as owner_email,
                      (select count(*) from memberships m where m.tenant_id = t.id) as "members!",
                      t.name_key as "name_key!"
               from tenants t
               where ($1::text is null or t.status = $1) and ($2::text is null or t.plan = $2) "#;
const SEARCHED: &str = " and t.id in (select tenantkit_directory_matches($3)) ";
const PLAIN: &str = " and $3::text is null ";
const NEWEST: &str = r#"
            and ($4::timestamptz is null or (t.created_at, t.id) < ($4, $5))
            order by t.created_at desc, t.id desc limit $6"#;
const BY_NAME: &str = r#"
            and ($4::text is null or (t.name_key, t.id) > ($4, $5))
            order by t.name_key, t.id limit $6"#;
// The search inside tenantkit_directory_matches (checked against its migration), `pattern`
// being the lowercased search.
const MATCHES: &str = r#"
        select t.id from tenants t where t.name_key like '%' || pattern || '%'
        union
        select t.id from tenants t where t.slug like '%' || pattern || '%'
        union
        select m.tenant_id from users u join memberships m on m.user_id = u.id
        where lower(u.email) like pattern || '%';"#;

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_explained_sql_is_the_sql_of_directory_rs() {
    let source = squash(include_str!("../../libs/platform/src/directory.rs"));
    for fragment in [SELECT, SEARCHED, PLAIN, NEWEST, BY_NAME] {
        assert!(
            source.contains(&squash(fragment)),
            "directory.rs no longer contains:\n{fragment}"
        );
    }
    let migration = squash(include_str!(
        "../../libs/db/migrations/20261127000001_directory_search.sql"
    ));
    assert!(
        migration.contains(&squash(MATCHES)),
        "tenantkit_directory_matches no longer contains:\n{MATCHES}"
    );
}

enum Key {
    Time(Option<chrono::DateTime<chrono::Utc>>),
    Name(Option<String>),
}

/// EXPLAIN of one directory query, as the application inside the audited platform path.
async fn explain(
    db: &TestDb,
    admin: Admin,
    sql: String,
    status: Option<&str>,
    search: Option<&str>,
    key: Key,
    id: Option<Uuid>,
) -> String {
    let mut tx = db
        .app
        .platform(admin.id(), reason("explain the directory"))
        .await
        .unwrap();
    let query =
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("explain (costs off) {sql}")))
            .bind(status)
            .bind(None::<&str>)
            .bind(search);
    let query = match key {
        Key::Time(at) => query.bind(at),
        Key::Name(name) => query.bind(name),
    };
    let lines = query
        .bind(id)
        .bind(51_i64)
        .fetch_all(tx.conn())
        .await
        .unwrap_or_else(|e| panic!("explain failed: {e}\n{sql}"));
    tx.commit().await.unwrap();
    lines.join("\n")
}

/// EXPLAIN of the search inside tenantkit_directory_matches, as the role that runs it, with
/// the pattern as the constant its custom plan sees.
async fn explain_matches(db: &TestDb, pattern: &str) -> String {
    let mut tx = db.owner.begin().await.unwrap();
    for statement in [
        "select set_config('app.platform_access', 'on', true)",
        "set local role tenantkit_directory",
    ] {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    let literal = format!("'{}'", pattern.replace('\'', "''"));
    let sql = MATCHES.replace("pattern", &literal);
    let lines: Vec<String> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("explain (costs off) {sql}")))
            .fetch_all(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("explain failed: {e}\n{sql}"));
    tx.rollback().await.unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn the_directory_queries_use_indexes_at_100k_tenants() {
    let db = TestDb::new().await;
    let (seeded, analyzed) = seed_100k(&db).await;
    eprintln!("seeded in {seeded:?}; analyze {analyzed:?}");
    let admin = platform_admin(&db, "admin").await;
    let cursor_id = id_of_slug(&db, "org-50000").await;
    let cursor_time: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select created_at from tenants where id = $1")
            .bind(cursor_id)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    let newest_plain = format!("{SELECT}{PLAIN}{NEWEST}");
    let newest_searched = format!("{SELECT}{SEARCHED}{NEWEST}");
    let name_plain = format!("{SELECT}{PLAIN}{BY_NAME}");

    struct Case {
        name: &'static str,
        plan: String,
        /// Each must appear in the plan.
        expect: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "(a) first page, newest",
            plan: explain(
                &db,
                admin,
                newest_plain.clone(),
                None,
                None,
                Key::Time(None),
                None,
            )
            .await,
            expect: vec!["Index Scan using tenants_created_idx on tenants t"],
        },
        Case {
            name: "(a) first page, newest, suspended",
            plan: explain(
                &db,
                admin,
                newest_plain.clone(),
                Some("suspended"),
                None,
                Key::Time(None),
                None,
            )
            .await,
            expect: vec![
                "Index Scan using tenants_status_created_idx on tenants t",
                "Index Cond: (status = 'suspended'::text)",
            ],
        },
        Case {
            name: "(b) a page after a cursor, newest",
            plan: explain(
                &db,
                admin,
                newest_plain.clone(),
                None,
                None,
                Key::Time(Some(cursor_time)),
                Some(cursor_id),
            )
            .await,
            // The cursor must bound the index scan, not filter rows read from the start.
            expect: vec![
                "Index Scan using tenants_created_idx on tenants t",
                "Index Cond: (ROW(created_at, id) < ROW(",
            ],
        },
        Case {
            name: "(b) a page after a cursor, by name",
            plan: explain(
                &db,
                admin,
                name_plain.clone(),
                None,
                None,
                Key::Name(Some("stark works 1500".to_owned())),
                Some(cursor_id),
            )
            .await,
            expect: vec![
                "Index Scan using tenants_name_key_idx on tenants t",
                "Index Cond: (ROW(name_key, id) > ROW(",
            ],
        },
        Case {
            name: "(c) a search",
            plan: explain(
                &db,
                admin,
                newest_searched.clone(),
                None,
                Some("zebrafish"),
                Key::Time(None),
                None,
            )
            .await,
            expect: vec![
                "Index Scan using tenants_pkey on tenants t",
                "Index Cond: (id = (tenantkit_directory_matches('zebrafish'::text)))",
            ],
        },
        Case {
            name: "(c) inside the search: a name fragment",
            plan: explain_matches(&db, "zebrafish").await,
            expect: vec![
                "Bitmap Index Scan on tenants_name_key_trgm_idx",
                "Bitmap Index Scan on tenants_slug_trgm_idx",
            ],
        },
        Case {
            name: "(d) inside the search: an email prefix",
            plan: explain_matches(&db, "member12345.x@").await,
            expect: vec!["Index Scan using users_email_prefix_idx on users u"],
        },
    ];

    let mut problems = Vec::new();
    for case in &cases {
        eprintln!("----- {}\n{}", case.name, case.plan);
        for expected in &case.expect {
            if !case.plan.contains(expected) {
                problems.push(format!("{}: the plan has no `{expected}`", case.name));
            }
        }
        for forbidden in ["Seq Scan on tenants", "Seq Scan on users"] {
            if case.plan.contains(forbidden) {
                problems.push(format!("{}: the plan has a `{forbidden}`", case.name));
            }
        }
    }

    // What each costs for real, through directory::search (the same plans, custom per call).
    let timings = [
        ("first page", None, None),
        ("name fragment", Some("zebrafish"), None),
        ("email prefix", Some("member12345.x@"), None),
        ("name sort", None, Some(TenantSort::Name)),
    ];
    for (what, text, sort) in timings {
        let (_, took) = page(
            &db,
            admin,
            &TenantQuery {
                text: text.map(str::to_owned),
                sort: sort.unwrap_or_default(),
                limit: 50,
                ..Default::default()
            },
        )
        .await;
        eprintln!("directory::search, {what}: {took:?}");
    }
    // A page deep in the list by name and by date: the cost shows whether the cursor bounds
    // the index scan (newest) or the scan reads every row before it (name).
    for sort in [TenantSort::Newest, TenantSort::Name] {
        let mut took = Vec::new();
        for offset in [999, 49_999, 99_899] {
            let (_, t) = page(
                &db,
                admin,
                &TenantQuery {
                    sort,
                    limit: 50,
                    after: Some(cursor_at(&db, sort, offset).await),
                    ..Default::default()
                },
            )
            .await;
            took.push((offset + 1, t));
        }
        eprintln!(
            "directory::search, {} after row (n, time): {took:?}",
            sort.as_str()
        );
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The search function reads every tenant: it must answer nothing outside the audited platform
/// path (a tenant's transaction, a user's, none at all), and the application must not be able
/// to become the role it runs as, nor read through that role's policy.
#[tokio::test]
async fn the_directory_search_function_answers_only_the_platform_path() {
    let db = TestDb::new().await;
    let acme = Uuid::now_v7();
    sqlx::query("insert into tenants (id, slug, name) values ($1, 'acme-search', 'Acme Search')")
        .bind(acme)
        .execute(&db.owner)
        .await
        .unwrap();
    let mut conn = db.app.infrastructure_pool().acquire().await.unwrap();
    let outside: Vec<Uuid> = sqlx::query_scalar("select tenantkit_directory_matches('acme')")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert!(
        outside.is_empty(),
        "outside any transaction kind: {outside:?}"
    );
    let mut tx = db.app.tenant(TenantId::from_uuid(acme)).await.unwrap();
    let in_tenant: Vec<Uuid> = sqlx::query_scalar("select tenantkit_directory_matches('acme')")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert!(
        in_tenant.is_empty(),
        "inside the tenant's own transaction: {in_tenant:?}"
    );
    tx.rollback().await.unwrap();

    let refused = sqlx::query("set role tenantkit_directory")
        .execute(&mut *conn)
        .await
        .expect_err("the application became tenantkit_directory");
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    let members: Vec<String> = sqlx::query_scalar(
        "select r.rolname::text from pg_auth_members a
           join pg_roles r on r.oid = a.member
           join pg_roles g on g.oid = a.roleid
          where g.rolname = 'tenantkit_directory' and not r.rolsuper",
    )
    .fetch_all(&db.owner)
    .await
    .unwrap();
    assert!(
        members.is_empty(),
        "roles that could read every tenant through tenantkit_directory: {members:?}"
    );
    let definer_only: bool = sqlx::query_scalar(
        "select p.prosecdef and pg_get_userbyid(p.proowner) = 'tenantkit_directory'
                and not has_function_privilege('public', p.oid, 'execute')
           from pg_proc p where p.proname = 'tenantkit_directory_matches'",
    )
    .fetch_one(&db.owner)
    .await
    .unwrap();
    assert!(definer_only, "the function's owner or grants changed");
}

/// Where Rust's and PostgreSQL's lowercase differ (Greek final sigma, dotted capital I), paging
/// by name neither repeats nor skips a tenant and a search finds them all: the cursor carries
/// the database's `name_key` and the search is lowercased by the database.
#[tokio::test]
async fn name_paging_and_search_agree_with_the_databases_lowercase() {
    let db = TestDb::new().await;
    let admin = platform_admin(&db, "admin").await;
    for (slug, name, status) in [
        ("odos-a", "ΟΔΟΣ Α", "suspended"),
        ("odos-b", "ΟΔΟΣ Β", "suspended"),
        ("odos-c", "ΟΔΟΣ Γ", "suspended"),
        ("izmir-1", "İzmir Ltd", "deleted"),
        ("izmir-2", "İzmir Ltd", "deleted"),
        ("izmir-3", "İzmir Ltd", "deleted"),
    ] {
        sqlx::query("insert into tenants (id, slug, name, status) values ($1, $2, $3, $4)")
            .bind(Uuid::now_v7())
            .bind(slug)
            .bind(name)
            .bind(status)
            .execute(&db.owner)
            .await
            .unwrap();
    }
    let lowered: Vec<String> = sqlx::query_scalar("select lower(name) from tenants order by slug")
        .fetch_all(&db.owner)
        .await
        .unwrap();
    eprintln!(
        "PostgreSQL lower(): {lowered:?}; Rust: {:?}",
        ["ΟΔΟΣ Α".to_lowercase(), "İzmir Ltd".to_lowercase()]
    );

    let mut problems = Vec::new();
    for (filter, status) in [
        ("status = 'suspended'", TenantStatus::Suspended),
        ("status = 'deleted'", TenantStatus::Deleted),
    ] {
        let want = expected_ids(&db, filter, TenantSort::Name).await;
        let all = all_pages(
            &db,
            admin,
            TenantQuery {
                status: Some(status),
                sort: TenantSort::Name,
                limit: 1,
                ..Default::default()
            },
            want.len() + 2,
        )
        .await;
        let got = ids(&all.rows);
        if got != want || all.unfinished {
            problems.push(format!(
                "{filter}, by name, 1 per page ({} pages{}): {}",
                all.pages,
                if all.unfinished {
                    ", still not at the end"
                } else {
                    ""
                },
                first_difference(&got, &want)
            ));
        }
    }
    for text in ["ΟΔΟΣ", "İzmir"] {
        let (found, _) = page(
            &db,
            admin,
            &TenantQuery {
                text: Some(text.to_owned()),
                limit: 50,
                ..Default::default()
            },
        )
        .await;
        if found.rows.len() != 3 {
            problems.push(format!(
                "searching {text:?} found {} of its 3 tenants",
                found.rows.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. Purge
// ---------------------------------------------------------------------------------------------

async fn count_of(db: &TestDb, table: &str, tenant: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from {table} where tenant_id = $1"
    )))
    .bind(tenant)
    .fetch_one(&db.owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_deleted_tenant_is_purged_but_its_row_and_trail_remain() {
    let app = TestApp::spawn().await;
    let db = &app.db;
    let admin = platform_admin(db, "admin").await;
    let acme = org(&app, "Acme").await;
    let tenant = TenantId::from_uuid(acme.tenant);
    // Data of the tenant: a key and an invitation besides the owner's membership.
    let owner_key = key(&app, &acme, Role::Owner).await;
    let (status, invitation) = call(
        &app,
        &owner_key,
        reqwest::Method::POST,
        &format!("/tenants/{}/invitations", acme.tenant),
        Some(json!({ "email": "new.person@purge.test", "role": "member" })),
    )
    .await;
    assert_eq!(status, 201, "{invitation}");
    for table in ["memberships", "invitations", "api_keys"] {
        assert!(count_of(db, table, acme.tenant).await > 0, "{table}");
    }

    // Not deleted: nothing to purge.
    assert_eq!(
        purge::purge(&db.app, tenant).await.unwrap(),
        Purged::NotDeleted
    );

    // Deleted with a retention period: not due yet.
    let why = reason("closing the account");
    tenant_actions::delete(&db.app, admin, tenant, Duration::from_secs(3600), &why)
        .await
        .unwrap();
    assert!(
        matches!(purge::purge(&db.app, tenant).await, Ok(Purged::NotDue(_))),
        "a purge before the retention period ends"
    );
    assert!(count_of(db, "memberships", acme.tenant).await > 0);
    tenant_actions::reactivate(&db.app, admin, tenant, &reason("changed their mind"))
        .await
        .unwrap();

    // Deleted with no retention: purged.
    tenant_actions::delete(&db.app, admin, tenant, Duration::ZERO, &why)
        .await
        .unwrap();
    let trail_before: Vec<(Uuid, String)> = sqlx::query_as(
        "select id, action from tenant_audit_events where tenant_id = $1 order by id",
    )
    .bind(acme.tenant)
    .fetch_all(&db.owner)
    .await
    .unwrap();
    assert!(trail_before.iter().any(|(_, a)| a == "admin.tenant.delete"));
    assert_eq!(purge::purge(&db.app, tenant).await.unwrap(), Purged::Done);
    for table in ["memberships", "invitations", "api_keys", "sent_emails"] {
        assert_eq!(count_of(db, table, acme.tenant).await, 0, "{table}");
    }
    let (status, name, slug): (String, String, String) =
        sqlx::query_as("select status, name, slug from tenants where id = $1")
            .bind(acme.tenant)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert_eq!(status, "purged");
    assert_eq!(name, "Purged organisation");
    assert_eq!(slug, format!("purged-{}", acme.tenant.simple()));
    let trail_after: Vec<(Uuid, String)> = sqlx::query_as(
        "select id, action from tenant_audit_events where tenant_id = $1 order by id",
    )
    .bind(acme.tenant)
    .fetch_all(&db.owner)
    .await
    .unwrap();
    assert!(
        trail_before.iter().all(|row| trail_after.contains(row)),
        "the purge removed audit rows"
    );
    assert_eq!(trail_after.len(), trail_before.len() + 1, "{trail_after:?}");
    assert!(trail_after.iter().any(|(_, a)| a == "tenant.purged"));
    // The owner's account survives (it may belong to other tenants).
    let owner_exists: bool =
        sqlx::query_scalar("select exists (select 1 from users where id = $1)")
            .bind(acme.owner)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert!(owner_exists);
    // Purging again does nothing; neither does restoring a purged tenant.
    assert_eq!(
        purge::purge(&db.app, tenant).await.unwrap(),
        Purged::NotDeleted
    );
    let restore = tenant_actions::reactivate(&db.app, admin, tenant, &why).await;
    assert!(
        matches!(restore, Err(PlatformError::Conflict(_))),
        "{restore:?}"
    );

    // A tenant deleted and then reactivated is not purged, even when its job runs.
    let beta = org(&app, "Beta").await;
    let beta_tenant = TenantId::from_uuid(beta.tenant);
    tenant_actions::delete(&db.app, admin, beta_tenant, Duration::ZERO, &why)
        .await
        .unwrap();
    tenant_actions::reactivate(&db.app, admin, beta_tenant, &reason("restored"))
        .await
        .unwrap();
    assert_eq!(
        purge::purge(&db.app, beta_tenant).await.unwrap(),
        Purged::NotDeleted
    );
    assert_eq!(tenant_status(db, beta.tenant).await, "active");
    assert_eq!(count_of(db, "memberships", beta.tenant).await, 1);
    let row: (String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("select name, purge_after from tenants where id = $1")
            .bind(beta.tenant)
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert_eq!(row, ("Beta".to_owned(), None));
}
