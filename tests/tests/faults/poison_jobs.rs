//! Jobs that can never succeed: a payload this version cannot decode, a handler that panics.
//! Each ends dead-lettered with its reason, and the queue goes on.

use std::{
    collections::HashSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use apalis::prelude::{BoxDynError, WorkerBuilder, WorkerBuilderExt};
use serde_json::json;
use tenantkit_accounts::emails::AccountEmail;
use tenantkit_jobs::{Job, Liveness, Wakeups, dead_letters};
use tenantkit_kernel::TenantId;
use tenantkit_tests::{TestDb, settings_for, worker::RunningWorker};
use uuid::Uuid;

use super::{
    consumer_names, deliveries, duplicates, eventually, job_statuses, queue_account_emails,
};

/// Jobs in a real queue whose stored payload this version cannot decode: bytes that are not
/// JSON, JSON of another shape, and a kind this version does not know (from a newer release).
fn poisons(user: Uuid) -> [Vec<u8>; 3] {
    [
        b"\xff\xfe\x00 not json at all".to_vec(),
        br#"{"user_id": 42}"#.to_vec(),
        json!({ "user_id": user, "operation": Uuid::now_v7(), "kind": "account_deleted" })
            .to_string()
            .into_bytes(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_cannot_be_decoded_are_dead_lettered_at_once_and_the_queue_goes_on() {
    let db = TestDb::new().await;
    let label = format!("poison-{}", Uuid::now_v7().simple());
    let mut recipients = queue_account_emails(&db, &label, 9).await;
    // Three of the nine are corrupted, and due first.
    let corrupted: Vec<(String, String)> = sqlx::query_as(
        "select j.id, u.email from apalis.jobs j
         join users u on u.id = (convert_from(j.job, 'UTF8')::jsonb ->> 'user_id')::uuid
         order by j.id limit 3",
    )
    .fetch_all(&db.owner)
    .await
    .unwrap();
    for ((id, email), payload) in corrupted.iter().zip(poisons(Uuid::now_v7())) {
        sqlx::query(
            "update apalis.jobs set job = $2, run_at = now() - interval '1 minute' where id = $1",
        )
        .bind(id)
        .bind(payload)
        .execute(&db.owner)
        .await
        .unwrap();
        recipients.remove(email);
    }
    let poisoned: HashSet<&str> = corrupted.iter().map(|(id, _)| id.as_str()).collect();

    let started = Instant::now();
    let worker = RunningWorker::start(settings_for(&db, &[]));
    let settled = eventually(Duration::from_secs(30), || async {
        let statuses = job_statuses(&db.owner, AccountEmail::QUEUE).await;
        statuses.get("Done") == Some(&6) && statuses.get("Killed") == Some(&3)
    })
    .await;
    let statuses = job_statuses(&db.owner, AccountEmail::QUEUE).await;
    assert!(
        settled.is_some(),
        "after 30 s: {statuses:?} (want 6 Done, 3 Killed)"
    );
    // The queue's consumer never failed: one registration per queue, no restart.
    let consumers = consumer_names(&db.owner).await.len();
    assert_eq!(consumers, 9, "the worker restarted its consumers");

    // An admin sees them, with the reason.
    let mut conn = db.owner.acquire().await.unwrap();
    let dead = dead_letters::list(&mut conn, None, Some("email."), 50)
        .await
        .unwrap();
    let dead_ids: HashSet<&str> = dead.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(dead_ids, poisoned);
    for job in &dead {
        let error = job.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("cannot decode the job: ") && job.attempts == 1,
            "{job:?}"
        );
    }
    let depth = dead_letters::depth_by_queue(&mut conn).await.unwrap();
    let email = depth
        .iter()
        .find(|d| d.queue == AccountEmail::QUEUE)
        .unwrap();
    assert_eq!((email.waiting, email.running, email.dead), (0, 0, 3));

    // A retry by an admin kills it again, once: it does not loop.
    let retried = &corrupted[0].0;
    assert!(dead_letters::retry(&mut conn, retried).await.unwrap());
    let killed_again = eventually(Duration::from_secs(10), || async {
        job_statuses(&db.owner, AccountEmail::QUEUE)
            .await
            .get("Killed")
            == Some(&3)
    })
    .await;
    assert!(
        killed_again.is_some(),
        "the retried poison job was not killed"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let attempts: Vec<i32> =
        sqlx::query_scalar("select attempts from apalis.jobs where status = 'Killed' order by id")
            .fetch_all(&db.owner)
            .await
            .unwrap();
    assert_eq!(attempts, [1, 1, 1], "a poison job ran more than once");
    assert_eq!(consumer_names(&db.owner).await.len(), 9);

    // The good jobs' emails went out, once each.
    let received = deliveries(&recipients);
    assert_eq!(received.len(), 6);
    assert_eq!(duplicates(&received), 0);
    worker.stop_within(Duration::from_secs(30)).await;
    println!(
        "poison payloads: 3 undecodable jobs (not JSON, another shape, an unknown kind) ahead of 6 \
         good ones; all 3 dead-lettered with their reason after 1 attempt and the 6 delivered once \
         within {:.1}s; 0 consumer restarts; an admin retry was killed again at once; 0 further \
         attempts in 2 s ({:.1}s in all)",
        settled.unwrap_or_default().as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}

/// A job of the tests' own whose handler panics when told to: no real job's handler panics on
/// its data (they return errors), but a bug could make one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Explosive {
    n: u32,
    explodes: bool,
}

impl Job for Explosive {
    const QUEUE: &'static str = "test.explosive";
    const MAX_ATTEMPTS: usize = 3;

    fn tenant_id(&self) -> Option<TenantId> {
        None
    }

    fn idempotency_key(&self) -> String {
        format!("explosive:{}", self.n)
    }
}

static HANDLED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

async fn explode_or_count(job: Explosive) -> Result<(), BoxDynError> {
    if job.explodes {
        panic!("explosive job {} blew up", job.n);
    }
    HANDLED.lock().unwrap().push(job.n);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_handler_panics_is_dead_lettered_after_its_attempts_and_others_still_run() {
    let db = TestDb::new().await;
    let mut tx = db.app.global().await.unwrap();
    for n in 0..20 {
        let job = Explosive {
            n,
            explodes: n == 3,
        };
        tenantkit_jobs::enqueue_global(tx.conn(), &job)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    // The real backend and panic guard, as apps/worker assembles them, around the test handler.
    let app_db = db.app.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let wakeups = Wakeups::with_liveness(Liveness::default());
                let drive = tokio::spawn(wakeups.clone().drive(app_db.clone()));
                let worker = WorkerBuilder::new("explosive-test")
                    .backend(tenantkit_jobs::consumer::<Explosive>(&app_db, &wakeups, 10))
                    .catch_panic()
                    .concurrency(2)
                    .build(explode_or_count);
                let result = worker
                    .run_until(async {
                        let _ = stopped.await;
                        Ok::<(), std::io::Error>(())
                    })
                    .await;
                drive.abort();
                result.map_err(|e| e.to_string())
            })
    });

    let settled = eventually(Duration::from_secs(30), || async {
        let statuses = job_statuses(&db.owner, Explosive::QUEUE).await;
        let exploded: Option<i32> = sqlx::query_scalar(
            "select attempts from apalis.jobs
             where idempotency_key = 'explosive:3' and status = 'Failed'",
        )
        .fetch_optional(&db.owner)
        .await
        .unwrap();
        statuses.get("Done") == Some(&19) && exploded == Some(3)
    })
    .await;
    let statuses = job_statuses(&db.owner, Explosive::QUEUE).await;
    let _ = stop.send(());
    let ended = tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert!(
        settled.is_some(),
        "after 30 s: {statuses:?} (want 19 Done and the explosive one failed 3 times)"
    );
    assert_eq!(ended, Ok(()), "the consumer ended with an error");
    let mut handled = HANDLED.lock().unwrap().clone();
    handled.sort_unstable();
    assert_eq!(handled, (0..20).filter(|n| *n != 3).collect::<Vec<_>>());
    let mut conn = db.owner.acquire().await.unwrap();
    let dead = dead_letters::list(&mut conn, None, Some("test."), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let error = dead[0].error.clone().unwrap_or_default();
    assert!(error.contains("blew up"), "the panic is not named: {error}");
    println!(
        "panicking handler: 1 of 20 jobs panics; caught, dead-lettered after its 3 attempts with \
         the panic's message ({error:?}), the 19 others done once, the consumer never failed; \
         {:.1}s",
        settled.unwrap_or_default().as_secs_f64()
    );
}
