//! A pooled connection never carries one tenant's context to the next borrower, even when
//! futures are cancelled in the middle of a transaction.

use std::{sync::Arc, time::Duration};

use rand::Rng;
use tenantkit_db::Database;
use tenantkit_kernel::TenantId;
use tenantkit_tests::TestDb;

const TENANTS: usize = 50;
const TASKS: usize = 16;
const ROUNDS_PER_TASK: usize = 250;

async fn seed_tenants(db: &TestDb) -> Vec<TenantId> {
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let tenant = TenantId::new();
        let user = uuid::Uuid::now_v7();
        sqlx::query("insert into tenants (id, slug, name) values ($1, $2, $2)")
            .bind(tenant.as_uuid())
            .bind(format!("tenant-{i}"))
            .execute(&db.owner)
            .await
            .unwrap();
        sqlx::query("insert into users (id, email, display_name) values ($1, $2, 'u')")
            .bind(user)
            .bind(format!("user{i}@leak.test"))
            .execute(&db.owner)
            .await
            .unwrap();
        sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, 'owner')")
            .bind(tenant.as_uuid())
            .bind(user)
            .execute(&db.owner)
            .await
            .unwrap();
        tenants.push(tenant);
    }
    tenants
}

/// One round: read as `tenant`, sometimes slowly enough to be cancelled half-way.
async fn read_as(db: &Database, tenant: TenantId, pause_ms: u64) -> Vec<uuid::Uuid> {
    let mut tx = db.tenant(tenant).await.unwrap();
    let first: Vec<uuid::Uuid> = sqlx::query_scalar("select tenant_id from memberships")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    // pg_sleep keeps a query in flight on the connection when the future is dropped.
    sqlx::query("select pg_sleep($1)")
        .bind(pause_ms as f64 / 1000.0)
        .execute(tx.conn())
        .await
        .unwrap();
    let mut second: Vec<uuid::Uuid> = sqlx::query_scalar("select id from tenants")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    second.extend(first);
    second
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_and_cancelled_transactions_never_see_another_tenant() {
    let test_db = TestDb::new().await;
    let tenants = Arc::new(seed_tenants(&test_db).await);
    // A small pool forces constant reuse of the same connections.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&test_db.app_url)
        .await
        .unwrap();
    let db = Database::from_pool(pool.clone());

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let db = db.clone();
        let tenants = tenants.clone();
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let (mut completed, mut cancelled, mut checked) = (0, 0, 0);
            for _ in 0..ROUNDS_PER_TASK {
                let (tenant, pause, deadline, check_fresh) = {
                    let mut rng = rand::rng();
                    (
                        tenants[rng.random_range(0..tenants.len())],
                        rng.random_range(0..3u64),
                        rng.random_range(1..30u64),
                        rng.random_bool(0.2),
                    )
                };
                match tokio::time::timeout(
                    Duration::from_millis(deadline),
                    read_as(&db, tenant, pause),
                )
                .await
                {
                    Ok(seen) => {
                        assert!(!seen.is_empty(), "tenant {tenant} saw none of its rows");
                        assert!(
                            seen.iter().all(|id| *id == tenant.as_uuid()),
                            "tenant {tenant} saw {seen:?}"
                        );
                        completed += 1;
                    }
                    Err(_) => cancelled += 1,
                }
                if check_fresh {
                    // A connection straight from the pool must carry no tenant at all.
                    let mut conn = pool.acquire().await.unwrap();
                    let setting: Option<String> =
                        sqlx::query_scalar("select current_setting('app.tenant_id', true)")
                            .fetch_one(&mut *conn)
                            .await
                            .unwrap();
                    assert!(
                        setting.as_deref().unwrap_or("").is_empty(),
                        "pooled connection carries tenant {setting:?}"
                    );
                    let visible: i64 = sqlx::query_scalar("select count(*) from memberships")
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap();
                    assert_eq!(visible, 0, "a pooled connection sees tenant rows");
                    // Nor a transaction left open (by a cancelled begin): a savepoint is
                    // refused outside a transaction block (SQLSTATE 25P01).
                    let savepoint = sqlx::query("savepoint probe").execute(&mut *conn).await;
                    assert!(
                        savepoint.as_ref().is_err_and(|e| e
                            .as_database_error()
                            .and_then(|e| e.code())
                            .is_some_and(|code| code == "25P01")),
                        "a pooled connection is inside an earlier transaction: {savepoint:?}"
                    );
                    checked += 1;
                }
            }
            (completed, cancelled, checked)
        }));
    }
    let (mut completed, mut cancelled, mut checked) = (0, 0, 0);
    for task in tasks {
        let (c, x, k) = task.await.unwrap();
        completed += c;
        cancelled += x;
        checked += k;
    }
    eprintln!(
        "{completed} completed, {cancelled} cancelled mid-flight, {checked} pooled connections checked"
    );
    assert_eq!(completed + cancelled, TASKS * ROUNDS_PER_TASK);
    // Both paths must really have been exercised for the test to mean anything.
    assert!(completed > 100, "only {completed} rounds completed");
    assert!(cancelled > 100, "only {cancelled} rounds were cancelled");
    assert!(checked > 100, "only {checked} fresh connections checked");
}
