//! The queue itself: a worker asks the database for jobs only when there may be some, a claim
//! reads a batch rather than the queue, and a backlog or a job due later is still run.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tenantkit_tests::{TestDb, settings_for, worker::RunningWorker};

/// Inserts `count` no-op seat syncs (a no-op without Stripe keys) due `after` from now, in the
/// shape `tenantkit_jobs::enqueue` writes; their ids (ULIDs, as apalis reads them) start after
/// `first`.
async fn insert_seat_syncs(owner: &PgPool, first: i32, count: i32, after: Duration) {
    sqlx::query(
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  priority, idempotency_key)
         select lpad((n + $3)::text, 26, '0'), 'billing.seats',
                convert_to(json_build_object('tenant_id', gen_random_uuid(),
                                             'change_key', 'queue-test-' || (n + $3),
                                             'members', 1)::text, 'UTF8'),
                'Pending', 0, 20, now() + make_interval(secs => $2), 0,
                'queue-test-' || (n + $3)
         from generate_series(1, $1) n",
    )
    .bind(count)
    .bind(after.as_secs_f64())
    .bind(first)
    .execute(owner)
    .await
    .unwrap();
}

async fn done_jobs(owner: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from apalis.jobs where job_type = 'billing.seats' and status = 'Done'",
    )
    .fetch_one(owner)
    .await
    .unwrap()
}

async fn wait_until_done(owner: &PgPool, count: i64, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let done = done_jobs(owner).await;
        if done == count {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{done} of {count} jobs done after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Claims run (`apalis.get_jobs` calls) and transactions committed in the test's database.
async fn queue_activity(owner: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "select (select coalesce(sum(calls), 0)::int8 from pg_stat_user_functions
                 where schemaname = 'apalis' and funcname = 'get_jobs'),
                (select xact_commit from pg_stat_database where datname = current_database())",
    )
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_idle_worker_does_not_poll_the_queue() {
    let db = TestDb::new().await;
    // Counts function calls for the connections opened from now on (the worker's).
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter database {} set track_functions = 'all'",
        db.name
    )))
    .execute(&db.owner)
    .await
    .unwrap();
    let worker = RunningWorker::start(settings_for(&db, &[]));
    // Every queue's consumer registered, and its first fetch done.
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>("select count(*) from apalis.workers")
        .fetch_one(&db.owner)
        .await
        .unwrap()
        < 9
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A backend that went idle soon after its last report reports again 10 s later: wait for
    // the start-up's counts to arrive before counting.
    tokio::time::sleep(Duration::from_secs(11)).await;

    let (claims_before, commits_before) = queue_activity(&db.owner).await;
    let watched = Duration::from_secs(12);
    tokio::time::sleep(watched).await;
    let (claims_after, commits_after) = queue_activity(&db.owner).await;
    let secs = watched.as_secs_f64();
    let claims = (claims_after - claims_before) as f64 / secs;
    // One due check a second, a heartbeat every 10 s, and whatever autovacuum commits in a
    // new database; apalis's own consumers made ~1,700 a second.
    let commits = (commits_after - commits_before - 1) as f64 / secs;
    assert!(
        claims == 0.0 && commits <= 5.0,
        "an idle worker (nine queues) ran {claims:.1} claims/s and {commits:.1} transactions/s"
    );

    // Idle is not asleep: a new job still runs at once (the insert's notification).
    insert_seat_syncs(&db.owner, 0, 1, Duration::ZERO).await;
    let took = wait_until_done(&db.owner, 1, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(3), "a new job waited {took:?}");
    worker.stop_within(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_backlog_and_jobs_due_later_all_run() {
    let db = TestDb::new().await;
    // Due in 3 s: no notification announces them when they fall due (the trigger fires on
    // insert, when they are not due yet); the due check must find them.
    insert_seat_syncs(&db.owner, 0, 5, Duration::from_secs(3)).await;
    // A backlog of many batches, there before the worker starts.
    insert_seat_syncs(&db.owner, 5, 1_000, Duration::ZERO).await;
    let worker = RunningWorker::start(settings_for(&db, &[("worker.fetch_batch", "20")]));
    wait_until_done(&db.owner, 1_005, Duration::from_secs(60)).await;
    let stuck: i64 = sqlx::query_scalar("select count(*) from apalis.jobs where status <> 'Done'")
        .fetch_one(&db.owner)
        .await
        .unwrap();
    assert_eq!(stuck, 0);
    worker.stop_within(Duration::from_secs(30)).await;
}

/// With statistics that lagged behind a burst of jobs, the planner once served a claim from
/// apalis's unique index on (job_type, idempotency_key) and sorted the whole queue's history
/// (the W6 benchmark, 10.5 ms per claim). Only the claim's partial index may lead with the
/// queue, so that plan cannot be chosen whatever the statistics; uniqueness of a key within
/// its queue still holds.
#[tokio::test]
async fn only_the_claim_index_can_serve_a_search_by_queue_and_keys_stay_unique() {
    let db = TestDb::new().await;
    let leading_with_queue: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_index i
         join pg_class c on c.oid = i.indexrelid
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
         where i.indrelid = 'apalis.jobs'::regclass and a.attname = 'job_type'
         order by 1",
    )
    .fetch_all(&db.owner)
    .await
    .unwrap();
    assert_eq!(leading_with_queue, ["idx_apalis_jobs_fetch_partial"]);

    insert_seat_syncs(&db.owner, 0, 1, Duration::ZERO).await;
    let again = sqlx::query(
        "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
                                  priority, idempotency_key)
         select 'again', job_type, job, 'Pending', 0, 20, now(), 0, idempotency_key
         from apalis.jobs limit 1",
    )
    .execute(&db.owner)
    .await
    .unwrap_err();
    assert!(
        again
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{again}"
    );
}

#[tokio::test]
async fn claiming_a_batch_reads_the_batch_not_the_whole_queue() {
    let db = TestDb::new().await;
    insert_seat_syncs(&db.owner, 0, 100_000, Duration::ZERO).await;
    sqlx::query("insert into apalis.workers (id, worker_type, storage_name) values ('w', 'billing.seats', 'test')")
        .execute(&db.owner)
        .await
        .unwrap();
    // With statistics the planner knows the queue is large: what made apalis's own claim
    // hash-join the whole table.
    sqlx::query("analyze apalis.jobs")
        .execute(&db.owner)
        .await
        .unwrap();
    let table_pages: i32 =
        sqlx::query_scalar("select relpages from pg_class where oid = 'apalis.jobs'::regclass")
            .fetch_one(&db.owner)
            .await
            .unwrap();

    for _ in 0..3 {
        let plan: serde_json::Value = sqlx::query_scalar(
            "explain (analyze, buffers, format json) select * from apalis.get_jobs('w', 'billing.seats', 10)",
        )
        .fetch_one(&db.owner)
        .await
        .unwrap();
        let node = &plan[0]["Plan"];
        assert_eq!(node["Actual Rows"], 10, "{plan}");
        let pages = node["Shared Hit Blocks"].as_i64().unwrap()
            + node["Shared Read Blocks"].as_i64().unwrap();
        assert!(
            pages < i64::from(table_pages) / 3,
            "a claim of 10 read {pages} pages of a {table_pages}-page queue"
        );
    }
}
