//! Tenant isolation is enforced by PostgreSQL itself, whatever the query forgets.

use sqlx::Row;
use tenantkit_db::{DbError, PlatformAccessReason};
use tenantkit_kernel::{TenantId, UserId};
use tenantkit_tests::{TestApp, TestDb};

/// Tables with a tenant_id column, read from the catalog (so a new table is covered at once).
async fn tenant_tables(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "select c.table_name::text from information_schema.columns c
         join information_schema.tables t using (table_schema, table_name)
         where c.table_schema = 'public' and c.column_name = 'tenant_id' and t.table_type = 'BASE TABLE'
         order by 1",
    )
    .fetch_all(&db.owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_tenant_table_has_forced_rls_and_a_policy_and_the_app_role_owns_nothing() {
    let db = TestDb::new().await;
    let tables = tenant_tables(&db).await;
    assert!(
        tables.len() >= 3,
        "expected tenant tables, found {tables:?}"
    );
    for table in tables.iter().map(String::as_str).chain(["tenants"]) {
        let row = sqlx::query(
            "select c.relrowsecurity, c.relforcerowsecurity,
                    (select count(*) from pg_policies p where p.schemaname = 'public' and p.tablename = c.relname)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'public' and c.relname = $1",
        )
        .bind(table)
        .fetch_one(&db.owner)
        .await
        .unwrap();
        assert!(
            row.get::<bool, _>(0),
            "{table}: row level security is not enabled"
        );
        assert!(
            row.get::<bool, _>(1),
            "{table}: row level security is not forced"
        );
        assert!(row.get::<i64, _>(2) > 0, "{table}: no policy");
        // Every policy is one of the two standard ones, so no table can carry a looser rule.
        // (name, command, using, with check, roles)
        type Policy = (String, String, Option<String>, Option<String>, Vec<String>);
        let policies: Vec<Policy> = sqlx::query_as(
            "select policyname::text, cmd::text, qual, with_check, roles::text[] from pg_policies
             where schemaname = 'public' and tablename = $1 order by policyname",
        )
        .bind(table)
        .fetch_all(&db.owner)
        .await
        .unwrap();
        for (name, command, using, check, roles) in &policies {
            match name.as_str() {
                "tenant_isolation" => {
                    assert_eq!(command, "ALL", "{table}");
                    for expression in [using, check] {
                        let expression = expression.as_deref().unwrap_or_default();
                        assert!(
                            expression.contains("tenantkit_current_tenant()"),
                            "{table}: {expression}"
                        );
                    }
                }
                "platform_read" => {
                    assert_eq!(
                        command, "SELECT",
                        "{table}: platform access must be read-only"
                    );
                    assert_eq!(
                        using.as_deref(),
                        Some("tenantkit_platform_access()"),
                        "{table}"
                    );
                }
                // A signed-in user reads their own memberships and tenants (db::UserTx).
                "member_self_read" if matches!(table, "memberships" | "tenants") => {
                    assert_eq!(command, "SELECT", "{table}: self-read must be read-only");
                    let expression = using.as_deref().unwrap_or_default();
                    assert!(
                        expression.contains("tenantkit_current_user()"),
                        "{table}: {expression}"
                    );
                }
                // The admin's tenant search (tenantkit_directory_matches) runs as this role,
                // which no login may use; any other role must never get it.
                "directory_read" if matches!(table, "memberships" | "tenants") => {
                    assert_eq!(command, "SELECT", "{table}: directory reads only");
                    assert_eq!(roles, &["tenantkit_directory"], "{table}");
                }
                other => panic!("{table}: unexpected policy {other}"),
            }
        }
        assert!(
            policies.iter().any(|p| p.0 == "tenant_isolation"),
            "{table}: no isolation policy"
        );
    }
    // tenant_id leads the primary key of every tenant table.
    for table in &tables {
        let first: String = sqlx::query_scalar(
            "select a.attname::text from pg_index i
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
             where i.indrelid = ('public.' || $1)::regclass and i.indisprimary",
        )
        .bind(table)
        .fetch_one(&db.owner)
        .await
        .unwrap();
        assert_eq!(
            first, "tenant_id",
            "{table}: tenant_id does not lead the primary key"
        );
    }

    // The role the application connects as.
    let mut tx = db.app.global().await.unwrap();
    let (user, superuser, bypass): (String, bool, bool) = sqlx::query_as(
        "select current_user::text, rolsuper, rolbypassrls from pg_roles where rolname = current_user",
    )
    .fetch_one(tx.conn())
    .await
    .unwrap();
    assert!(!superuser, "{user} is a superuser");
    assert!(!bypass, "{user} has BYPASSRLS");
    let owned: i64 = sqlx::query_scalar(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('public', 'apalis') and pg_has_role(current_user, c.relowner, 'USAGE')",
    )
    .fetch_one(tx.conn())
    .await
    .unwrap();
    assert_eq!(
        owned, 0,
        "{user} owns (or inherits ownership of) {owned} relations"
    );
}

/// Two tenants, each with an owner, a membership and audit rows.
async fn two_tenants(app: &TestApp) -> (TenantId, TenantId) {
    let a = app.sign_up("Alpha", "owner@alpha.test").await;
    let b = app.sign_up("Beta", "owner@beta.test").await;
    let id = |v: &serde_json::Value| {
        v["tenant_id"]
            .as_str()
            .unwrap()
            .parse::<TenantId>()
            .unwrap()
    };
    (id(&a), id(&b))
}

#[tokio::test]
async fn a_tenant_transaction_sees_only_its_own_rows_and_no_tenant_sees_none() {
    let app = TestApp::spawn().await;
    let (a, b) = two_tenants(&app).await;
    let mut tables = tenant_tables(&app.db).await;
    tables.push("tenants".to_owned());
    for table in &tables {
        let column = if table == "tenants" {
            "id"
        } else {
            "tenant_id"
        };
        let total: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
                .fetch_one(&app.db.owner)
                .await
                .unwrap();
        for tenant in [a, b] {
            let mut tx = app.db.app.tenant(tenant).await.unwrap();
            let seen: Vec<uuid::Uuid> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select {column} from {table}")))
                    .fetch_all(tx.conn())
                    .await
                    .unwrap();
            assert!(
                seen.iter().all(|id| *id == tenant.as_uuid()),
                "{table}: tenant {tenant} saw another tenant's rows"
            );
            if ["tenants", "memberships", "tenant_audit_events"].contains(&table.as_str()) {
                assert!(
                    !seen.is_empty(),
                    "{table}: tenant {tenant} sees none of its own rows"
                );
            }
        }
        let mut tx = app.db.app.global().await.unwrap();
        let unscoped: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
                .fetch_one(tx.conn())
                .await
                .unwrap();
        assert_eq!(
            unscoped, 0,
            "{table}: {unscoped} of {total} rows visible without a tenant"
        );
    }
}

#[tokio::test]
async fn writing_a_row_for_another_tenant_is_refused() {
    let app = TestApp::spawn().await;
    let (a, b) = two_tenants(&app).await;
    let user: uuid::Uuid =
        sqlx::query_scalar("select id from users where email = 'owner@alpha.test'")
            .fetch_one(&app.db.owner)
            .await
            .unwrap();

    let mut tx = app.db.app.tenant(a).await.unwrap();
    let write =
        sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, 'member')")
            .bind(b.as_uuid())
            .bind(user)
            .execute(tx.conn())
            .await
            .map_err(DbError::from);
    assert!(
        matches!(write, Err(DbError::TenantViolation)),
        "cross-tenant insert was not refused: {write:?}"
    );
    drop(tx);

    // Updates and deletes cannot reach the other tenant's rows either: they match nothing.
    let mut tx = app.db.app.tenant(a).await.unwrap();
    let updated = sqlx::query("update tenants set name = 'owned' where id = $1")
        .bind(b.as_uuid())
        .execute(tx.conn())
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("delete from memberships where tenant_id = $1")
        .bind(b.as_uuid())
        .execute(tx.conn())
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    // And a row cannot be moved into the other tenant.
    let moved = sqlx::query("update memberships set tenant_id = $1")
        .bind(b.as_uuid())
        .execute(tx.conn())
        .await
        .map_err(DbError::from);
    assert!(moved.is_err(), "a row was moved to another tenant");
    drop(tx);

    let name: String = sqlx::query_scalar("select name from tenants where id = $1")
        .bind(b.as_uuid())
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(name, "Beta");
}

#[tokio::test]
async fn the_audit_trail_is_append_only_for_the_application() {
    let app = TestApp::spawn().await;
    let (a, _) = two_tenants(&app).await;
    let mut tx = app.db.app.tenant(a).await.unwrap();
    let update = sqlx::query("update tenant_audit_events set action = 'forged'")
        .execute(tx.conn())
        .await;
    assert!(update.is_err(), "the app role could update the audit trail");
    drop(tx);
    let mut tx = app.db.app.tenant(a).await.unwrap();
    let delete = sqlx::query("delete from tenant_audit_events")
        .execute(tx.conn())
        .await;
    assert!(
        delete.is_err(),
        "the app role could delete from the audit trail"
    );
}

#[tokio::test]
async fn reading_across_tenants_needs_a_platform_admin_and_leaves_an_audit_row() {
    let app = TestApp::spawn().await;
    two_tenants(&app).await;
    let reason = PlatformAccessReason::new("support ticket 42").unwrap();

    // A customer cannot open the platform path.
    let customer: uuid::Uuid =
        sqlx::query_scalar("select id from users where email = 'owner@alpha.test'")
            .fetch_one(&app.db.owner)
            .await
            .unwrap();
    let refused = app
        .db
        .app
        .platform(UserId::from_uuid(customer), reason.clone())
        .await;
    assert!(matches!(refused, Err(DbError::TenantViolation)));

    let admin = UserId::new();
    sqlx::query("insert into users (id, email, display_name, is_platform_admin) values ($1, 'admin@platform.test', 'Admin', true)")
        .bind(admin.as_uuid())
        .execute(&app.db.owner)
        .await
        .unwrap();
    let mut tx = app.db.app.platform(admin, reason).await.unwrap();
    let tenants = tenantkit_tenancy::repo::all_tenants(&mut tx, 10)
        .await
        .unwrap();
    assert_eq!(tenants.len(), 2);
    // Read only: the platform path cannot write tenant rows.
    let write = sqlx::query("update tenants set name = 'x'")
        .execute(tx.conn())
        .await
        .unwrap();
    assert_eq!(write.rows_affected(), 0);
    tx.commit().await.unwrap();

    let audited: (String, String) =
        sqlx::query_as("select action, reason from platform_audit_events where actor_user_id = $1")
            .bind(admin.as_uuid())
            .fetch_one(&app.db.owner)
            .await
            .unwrap();
    assert_eq!(
        audited,
        ("platform.read".to_owned(), "support ticket 42".to_owned())
    );
    assert!(PlatformAccessReason::new("   ").is_none());
}

#[tokio::test]
async fn a_runaway_statement_is_cancelled_and_reported_as_unavailable() {
    let db = TestDb::new().await;
    let settings = tenantkit_tests::settings_for(&db, &[("database.statement_timeout_secs", "1")]);
    let configured = tenantkit_db::Database::connect_lazy(&settings.database).unwrap();
    let mut tx = configured.global().await.unwrap();
    let started = std::time::Instant::now();
    let result = sqlx::query("select pg_sleep(5)")
        .execute(tx.conn())
        .await
        .map_err(DbError::from);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the statement was not cancelled"
    );
    assert!(
        matches!(result, Err(ref e) if e.is_unavailable()),
        "{result:?}"
    );
}
