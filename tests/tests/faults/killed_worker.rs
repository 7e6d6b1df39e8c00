//! A worker killed with SIGKILL mid-job, again and again: no job is lost or stuck, every email
//! arrives, and repeats stay within the at-least-once bound.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rand::Rng;
use tenantkit_accounts::emails::AccountEmail;
use tenantkit_jobs::Job;
use tenantkit_tests::{
    TestDb,
    process::{sigkill, sigterm, slow_replies_relay},
    worker,
};
use uuid::Uuid;

use super::{
    consumer_names, deliveries, duplicates, eventually, exit_within, job_statuses,
    queue_account_emails, smtp_upstream, soak,
};

/// Each killed worker claims and runs few jobs at a time, so a kill strands few; the orphan
/// timeout is short so the stranded ones come back within the test.
const KILLED_WORKER: [(&str, &str); 4] = [
    ("TENANTKIT_WORKER__HEARTBEAT_SECS", "1"),
    ("TENANTKIT_WORKER__ORPHAN_AFTER_SECS", "3"),
    ("TENANTKIT_WORKER__CONCURRENCY", "2"),
    ("TENANTKIT_WORKER__FETCH_BATCH", "2"),
];
const KILLED_WORKER_CONCURRENCY: usize = 2;

/// An SMTP server that takes this long over each reply (as one that checks a message before
/// accepting it): deliveries last long enough for kills to land in them, including between
/// the server taking the message and the worker recording it.
const SLOW_SMTP_REPLY: Duration = Duration::from_millis(30);

/// Jobs claimed and not finished by consumers registered since `known` was read.
async fn held_by_consumers_since(owner: &sqlx::PgPool, known: &[String]) -> i64 {
    sqlx::query_scalar(
        "select count(*) from apalis.jobs
         where status in ('Queued', 'Running')
           and lock_by in (select id from apalis.workers where not (id = any($1)))",
    )
    .bind(known)
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_again_and_again_loses_no_email_and_repeats_within_the_bound() {
    let (kills, jobs) = if soak() { (1_000, 2_000) } else { (100, 200) };
    let began = Instant::now();
    let db = TestDb::new().await;
    let label = format!("kill-{}", Uuid::now_v7().simple());
    let recipients = queue_account_emails(&db, &label, jobs).await;
    let relay = slow_replies_relay(smtp_upstream(), SLOW_SMTP_REPLY).await;
    let smtp = format!("smtp://127.0.0.1:{relay}");

    let (mut interrupting_kills, mut jobs_held_at_kills) = (0, 0);
    for _ in 0..kills {
        let known = consumer_names(&db.owner).await;
        let worker = worker::binary_command(&db.app_url, &smtp, &KILLED_WORKER)
            .spawn()
            .expect("start the worker");
        let alive = rand::rng().random_range(50..=500);
        tokio::time::sleep(Duration::from_millis(alive)).await;
        sigkill(&worker);
        exit_within(worker, Duration::from_secs(5))
            .await
            .expect("the killed worker is gone");
        let held = held_by_consumers_since(&db.owner, &known).await;
        interrupting_kills += usize::from(held > 0);
        jobs_held_at_kills += held;
    }
    let killing = began.elapsed();
    let done_during_kills = job_statuses(&db.owner, AccountEmail::QUEUE)
        .await
        .get("Done")
        .copied()
        .unwrap_or(0);

    // One last worker, left alone: the killed workers' jobs come back after the orphan timeout.
    let known = consumer_names(&db.owner).await.len();
    let last = worker::binary_command(&db.app_url, &smtp, &KILLED_WORKER)
        .spawn()
        .expect("start the last worker");
    // Up (its nine consumers registered), so it has its SIGTERM handler when it gets one.
    let up = eventually(Duration::from_secs(20), || async {
        consumer_names(&db.owner).await.len() >= known + 9
    })
    .await;
    assert!(up.is_some(), "the last worker did not start");
    let drain_limit = Duration::from_secs(if soak() { 600 } else { 120 });
    let drained = eventually(drain_limit, || async {
        job_statuses(&db.owner, AccountEmail::QUEUE)
            .await
            .get("Done")
            .copied()
            .unwrap_or(0)
            == i64::try_from(jobs).unwrap()
    })
    .await;
    sigterm(&last);
    let exit = exit_within(last, Duration::from_secs(30)).await;
    let statuses = job_statuses(&db.owner, AccountEmail::QUEUE).await;
    assert!(
        drained.is_some(),
        "not every job was done {drain_limit:?} after the last kill: {statuses:?}"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "the last worker did not stop cleanly: {exit:?}"
    );
    assert_eq!(
        statuses,
        HashMap::from([("Done".to_owned(), i64::try_from(jobs).unwrap())]),
        "jobs stuck or failed"
    );
    let max_attempts: i32 =
        sqlx::query_scalar("select max(attempts) from apalis.jobs where job_type = $1")
            .bind(AccountEmail::QUEUE)
            .fetch_one(&db.owner)
            .await
            .unwrap();

    // Each job's email was handed to the SMTP server before the job was done.
    let received = deliveries(&recipients);
    let missing: Vec<_> = recipients
        .iter()
        .filter(|r| !received.contains_key(*r))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {jobs} emails never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // A repeat is the same message: receiving systems can drop it by its Message-ID.
    for (recipient, ids) in &received {
        assert!(
            ids.iter()
                .all(|id| id == &ids[0] && id.starts_with("<account.")),
            "{recipient} got different messages: {ids:?}"
        );
    }
    let repeated = duplicates(&received);
    // A repeat needs a kill after the SMTP server took the message and before the ledger's
    // commit, at most once per job running at the kill.
    let bound = kills * KILLED_WORKER_CONCURRENCY;
    assert!(
        repeated <= bound,
        "{repeated} duplicate emails, more than the bound {bound}"
    );
    let total = began.elapsed();
    let total_limit = Duration::from_secs(if soak() { 3_600 } else { 240 });
    assert!(total < total_limit, "took {total:?}");
    println!(
        "SIGKILL: {kills} kills (50-500 ms after start) over {jobs} email jobs; \
         {interrupting_kills} kills caught {jobs_held_at_kills} claimed jobs unfinished; \
         {done_during_kills} jobs done while killing ({:.1}s); the last worker finished the rest \
         in \
         {:.1}s; all {jobs} Done, 0 stuck, most attempts of a job {max_attempts}; \
         {repeated} duplicate emails (bound {bound}), each with its original Message-ID; \
         {:.1}s in all",
        killing.as_secs_f64(),
        drained.unwrap_or_default().as_secs_f64(),
        total.as_secs_f64(),
    );
}
