//! SIGTERM under load: the server fails no request it accepted and exits 0; the worker
//! finishes the job it is running and exits 0.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use tenantkit_accounts::emails::AccountEmail;
use tenantkit_jobs::Job;
use tenantkit_tests::{
    TestDb, env,
    process::{free_port, server_command, sigterm, slow_replies_relay, wait_for_port},
    worker,
};
use uuid::Uuid;

use super::{
    deliveries, eventually, exit_within, job_statuses,
    load::{Call, Load, Outcome, create_keys, http, key_names, list_keys, load_org, tally},
    queue_account_emails, smtp_upstream,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_accepted_request_and_exits_zero() {
    let db = TestDb::new().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = server_command(
        &db.app_url,
        &env("TENANTKIT_TEST_REDIS"),
        port,
        &[(
            "TENANTKIT_REDIS__KEY_PREFIX",
            &format!("faults-term-{port}"),
        )],
    )
    .spawn()
    .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(20)).await);
    let label = format!("term-{}", Uuid::now_v7().simple());
    let org = load_org(&base, &db.owner, &db.app_url, &label).await;

    // A new connection per request: a refused connection is then a request never accepted.
    let client = http(Duration::from_secs(15), false);
    let mut load = Load::new();
    for c in 0..4 {
        load.client(
            "list keys",
            Duration::from_millis(5),
            3,
            list_keys(&client, &base, &org),
        );
        let prefix = format!("term-{c}");
        load.client(
            "create key",
            Duration::from_millis(5),
            3,
            create_keys(&client, &base, &org, &prefix),
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = load.since_start();
    sigterm(&server);
    let exit = exit_within(server, Duration::from_secs(15)).await;
    let exited = load.since_start();
    // Every client has seen the door shut (or is stopped now).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = load.stop().await;

    assert!(exit.is_some_and(|s| s.success()), "exit status {exit:?}");
    let refused = calls
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Refused))
        .count();
    let failed: Vec<&Call> = calls
        .iter()
        .filter(|c| match c.outcome {
            Outcome::Answered { status, .. } => !(200..300).contains(&status),
            Outcome::Failed(_) => true,
            Outcome::Refused => false,
        })
        .collect();
    // A connection the server accepted and then closed or reset without answering (its
    // request unread when shutdown began) is a failed request: the client cannot tell whether
    // a POST was done.
    assert!(
        failed.is_empty(),
        "{} of {} accepted requests failed ({refused} refused): {:?}",
        failed.len(),
        calls.len() - refused,
        &failed[..failed.len().min(5)]
    );
    let drained = calls
        .iter()
        .filter(|c| c.started < signalled && c.ended() > signalled && c.succeeded())
        .count();
    let names = key_names(&db.owner, org.tenant).await;
    let created: Vec<&String> = calls.iter().filter_map(|c| c.created.as_ref()).collect();
    assert!(
        created.iter().all(|n| names.contains(*n)),
        "a 201 key is missing"
    );
    println!(
        "SIGTERM under 8 clients: {} requests {:?}; 0 accepted requests failed, {refused} \
         refused after the listener closed, {drained} in flight at the signal completed; exit 0 \
         {:.2}s after SIGTERM; {} keys answered 201 all present",
        calls.len(),
        tally(&calls),
        (exited - signalled).as_secs_f64(),
        created.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_worker_binary_mid_delivery_finishes_the_job_and_exits_zero() {
    let db = TestDb::new().await;
    let label = format!("drain-{}", Uuid::now_v7().simple());
    let recipients = queue_account_emails(&db, &label, 1).await;
    // Each SMTP reply takes 400 ms: the delivery lasts seconds.
    let relay = slow_replies_relay(smtp_upstream(), Duration::from_millis(400)).await;
    let worker = worker::binary_command(&db.app_url, &format!("smtp://127.0.0.1:{relay}"), &[])
        .spawn()
        .unwrap();
    let claimed = eventually(Duration::from_secs(20), || async {
        job_statuses(&db.owner, AccountEmail::QUEUE)
            .await
            .keys()
            .any(|s| s == "Queued" || s == "Running")
    })
    .await;
    assert!(claimed.is_some(), "the job was never taken");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        deliveries(&recipients).is_empty(),
        "delivered before the signal: not mid-job"
    );
    let signalled = Instant::now();
    sigterm(&worker);
    let exit = exit_within(worker, Duration::from_secs(40)).await;
    let stopped_in = signalled.elapsed();
    assert!(exit.is_some_and(|s| s.success()), "exit status {exit:?}");
    assert_eq!(
        job_statuses(&db.owner, AccountEmail::QUEUE).await,
        HashMap::from([("Done".to_owned(), 1)])
    );
    let received = deliveries(&recipients);
    assert_eq!(received.values().map(Vec::len).sum::<usize>(), 1);
    println!(
        "worker SIGTERM mid-delivery: the job finished (Done, 1 email) and the binary exited 0 \
         {:.1}s after the signal",
        stopped_in.as_secs_f64()
    );
}
