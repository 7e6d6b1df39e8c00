//! PostgreSQL, then Redis, stopped under load and started again: the documented degradation
//! while they are away, nothing committed lost, and recovery without restarting anything.

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};
use tenantkit_accounts::emails::AccountEmail;
use tenantkit_jobs::Job;
use tenantkit_tests::{
    OWNER_PASSWORD, TestDb, env,
    process::{
        PrivatePostgres, PrivateRedis, free_port, server_command, sigterm, slow_replies_relay,
        wait_for_port,
    },
    worker,
};
use uuid::Uuid;

use super::{
    deliveries, duplicates, eventually, exit_within, job_statuses,
    load::{
        ACQUIRE_TIMEOUT, Call, Load, SLACK, assert_only_successes_and_documented_unavailability,
        create_keys, http, key_names, list_keys, load_org, median, poll_readiness,
        signed_in_cookie, tally,
    },
    queue_account_emails_in, smtp_upstream, soak,
};

/// How long PostgreSQL or Redis stays down.
fn outage() -> Duration {
    Duration::from_secs(if soak() { 30 } else { 10 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_under_load_answers_503_loses_no_commit_and_recovers_without_restarts() {
    let outage = outage();
    let pg = PrivatePostgres::start();
    let app_url = pg.migrated_app_url("faults-pw").await;
    let owner = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = server_command(
        &app_url,
        &env("TENANTKIT_TEST_REDIS"),
        port,
        &[
            ("TENANTKIT_REDIS__KEY_PREFIX", &format!("faults-pg-{port}")),
            ("TENANTKIT_RATE_LIMIT__SIGNUPS_PER_HOUR", "100000"),
        ],
    )
    .spawn()
    .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(20)).await);
    // The worker too, its deliveries slow enough that some are under way when PostgreSQL
    // stops: the sign-ups' emails and a backlog must all go out once it is back.
    let relay = slow_replies_relay(smtp_upstream(), Duration::from_millis(100)).await;
    let worker = worker::binary_command(
        &app_url,
        &format!("smtp://127.0.0.1:{relay}"),
        &[
            ("TENANTKIT_WORKER__HEARTBEAT_SECS", "1"),
            ("TENANTKIT_WORKER__ORPHAN_AFTER_SECS", "3"),
            ("TENANTKIT_DATABASE__ACQUIRE_TIMEOUT_SECS", "1"),
        ],
    )
    .spawn()
    .unwrap();
    let label = format!("pg-{}", Uuid::now_v7().simple());
    let org = load_org(&base, &owner, &app_url, &label).await;
    let app = tenantkit_db::Database::from_pool(sqlx::PgPool::connect(&app_url).await.unwrap());

    let client = http(ACQUIRE_TIMEOUT + SLACK, true);
    let mut load = Load::new();
    for c in 0..2 {
        load.client(
            "list keys",
            Duration::from_millis(50),
            usize::MAX,
            list_keys(&client, &base, &org),
        );
        let prefix = format!("load-{c}");
        load.client(
            "create key",
            Duration::from_millis(50),
            usize::MAX,
            create_keys(&client, &base, &org, &prefix),
        );
    }
    let (signup_client, signup_url, signup_label) = (
        client.clone(),
        format!("{base}/api/v1/signups"),
        label.clone(),
    );
    load.client(
        "sign up",
        Duration::from_millis(300),
        usize::MAX,
        Box::new(move |n| {
            let email = format!("{signup_label}-signup-{n}@faults.test");
            let request = signup_client.post(&signup_url).json(&json!({
                "organisation": format!("Signup {n}"), "name": "New", "email": email,
                "password": OWNER_PASSWORD,
            }));
            (request, Some(email))
        }),
    );
    let readiness = poll_readiness(base.clone(), &load);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let backlog = queue_account_emails_in(&owner, &app, &format!("{label}-backlog"), 20).await;
    app.close().await;
    owner.close().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let began = load.began;
    let stopping = load.since_start();
    tokio::task::block_in_place(|| pg.stop());
    let stopped = load.since_start();
    tokio::time::sleep(outage).await;
    let starting = load.since_start();
    tokio::task::block_in_place(|| pg.start_again());
    let started = load.since_start();
    // Left to recover by itself: no restart of the server or the worker.
    let recovered = eventually(Duration::from_secs(30), || async {
        let calls = load.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.started > started && c.what != "sign up")
            .rev()
            .take(8)
            .filter(|c| c.succeeded())
            .count()
            == 8
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let readiness_after = load.since_start();
    let calls = load.stop().await;
    let readiness = readiness.await.unwrap();
    assert!(
        recovered.is_some(),
        "the API did not recover within 30 s: {:?}",
        tally(calls.iter().filter(|c| c.started > started))
    );

    assert_only_successes_and_documented_unavailability(&calls, ACQUIRE_TIMEOUT + SLACK);
    let during: Vec<&Call> = calls
        .iter()
        .filter(|c| c.started >= stopped && c.ended() <= starting)
        .collect();
    assert!(!during.is_empty());
    assert!(
        during.iter().all(|c| c.status() == Some(503)),
        "calls during the outage: {:?}",
        tally(during.iter().copied())
    );
    let first_success = calls
        .iter()
        .filter(|c| c.started >= started && c.succeeded())
        .map(|c| c.ended())
        .min()
        .unwrap();
    let recovery = first_success - started;
    let late_failures: Vec<_> = calls
        .iter()
        .filter(|c| c.started > first_success + Duration::from_secs(1) && !c.succeeded())
        .collect();
    assert!(
        late_failures.is_empty(),
        "failures after recovery: {late_failures:?}"
    );
    let unready_probes = assert_not_ready_during(&readiness, stopped, starting);
    assert_eq!(
        readiness
            .iter()
            .rev()
            .find(|(at, _)| *at < readiness_after)
            .map(|(_, s)| *s),
        Some(200),
        "not ready again"
    );

    // Every write that was answered 2xx is there.
    let owner = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    let names = key_names(&owner, org.tenant).await;
    let created: Vec<&String> = calls
        .iter()
        .filter(|c| c.what == "create key")
        .filter_map(|c| c.created.as_ref())
        .collect();
    let lost: Vec<_> = created.iter().filter(|n| !names.contains(**n)).collect();
    assert!(lost.is_empty(), "answered 201 but missing: {lost:?}");
    let unanswered_but_kept = calls
        .iter()
        .filter(|c| c.what == "create key" && !c.succeeded())
        .count()
        .min(names.len() - 1 - created.len());
    let signed_up: HashSet<String> = calls
        .iter()
        .filter(|c| c.what == "sign up")
        .filter_map(|c| c.created.clone())
        .collect();
    let users: i64 = sqlx::query_scalar("select count(*) from users where email = any($1)")
        .bind(signed_up.iter().cloned().collect::<Vec<_>>())
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(
        users,
        i64::try_from(signed_up.len()).unwrap(),
        "an accepted sign-up was lost"
    );

    // And the worker, also left alone, sends every accepted sign-up's email and the backlog;
    // no job is stuck.
    let all_mail: HashSet<String> = signed_up.union(&backlog).cloned().collect();
    let emails_sent = eventually(Duration::from_secs(90), || async {
        deliveries(&all_mail).len() == all_mail.len()
    })
    .await;
    let emails_sent_at = began.elapsed();
    // A job's acknowledgement follows its email by a moment.
    let _ = eventually(Duration::from_secs(10), || async {
        job_statuses(&owner, AccountEmail::QUEUE).await.len() == 1
    })
    .await;
    let statuses = job_statuses(&owner, AccountEmail::QUEUE).await;
    sigterm(&server);
    sigterm(&worker);
    let server_exit = exit_within(server, Duration::from_secs(15)).await;
    let worker_exit = exit_within(worker, Duration::from_secs(35)).await;
    assert!(
        emails_sent.is_some(),
        "{} of {} emails (sign-ups and backlog) arrived; jobs: {statuses:?}",
        deliveries(&all_mail).len(),
        all_mail.len()
    );
    // The worker starts its consumers again within seconds of PostgreSQL's return, whatever
    // its backoff had grown to during the outage.
    let worker_recovery = emails_sent_at.saturating_sub(started);
    assert!(
        worker_recovery < Duration::from_secs(15),
        "the emails took {worker_recovery:?} after PostgreSQL came back"
    );
    let repeated = duplicates(&deliveries(&all_mail));
    // Only a delivery under way when PostgreSQL went away can be repeated (the SMTP server had
    // it, the ledger's commit failed): at most the worker's concurrency (4).
    assert!(repeated <= 4, "{repeated} duplicate emails");
    let stuck: i64 = statuses
        .iter()
        .filter(|(status, _)| status.as_str() != "Done")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(stuck, 0, "jobs not done: {statuses:?}");
    assert!(
        server_exit.is_some_and(|s| s.success()),
        "server: {server_exit:?}"
    );
    assert!(
        worker_exit.is_some_and(|s| s.success()),
        "worker: {worker_exit:?}"
    );
    let unavailable = calls.iter().filter(|c| c.status() == Some(503)).count();
    let server_errors = calls
        .iter()
        .filter(|c| c.status().is_some_and(|s| s >= 500 && s != 503))
        .count();
    println!(
        "PostgreSQL down {:.1}s (stop took {:.1}s, start {:.1}s) under 5 clients: {} calls {:?}; \
         {unavailable} x 503 (problem+json, Retry-After), {server_errors} other 5xx, 0 without \
         answer, slowest {:.2}s; readiness 503 throughout ({} probes); API back {:.2}s after \
         PostgreSQL, readiness 200 again; {} keys and {} sign-ups answered 2xx all present \
         ({unanswered_but_kept} more committed without a 2xx); {} emails (sign-ups and a backlog \
         of 20 under way at the stop) all sent {:.1}s after PostgreSQL came back, {repeated} \
         duplicates, 0 jobs stuck; server and worker never restarted, exit 0",
        (starting - stopped).as_secs_f64(),
        (stopped - stopping).as_secs_f64(),
        (started - starting).as_secs_f64(),
        calls.len(),
        tally(&calls),
        calls
            .iter()
            .map(|c| c.took)
            .max()
            .unwrap_or_default()
            .as_secs_f64(),
        unready_probes,
        recovery.as_secs_f64(),
        created.len(),
        signed_up.len(),
        all_mail.len(),
        worker_recovery.as_secs_f64(),
    );
}

async fn sign_up_status(client: &reqwest::Client, base: &str, label: &str, n: usize) -> u16 {
    client
        .post(format!("{base}/api/v1/signups"))
        .json(&json!({
            "organisation": format!("Limited {n}"), "name": "New",
            "email": format!("{label}-limited-{n}@faults.test"), "password": OWNER_PASSWORD,
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_load_degrades_as_documented_and_recovers_intact() {
    let outage = outage();
    let db = TestDb::new().await;
    let redis = PrivateRedis::start();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let server = server_command(
        &db.app_url,
        &redis.url(),
        port,
        &[("TENANTKIT_RATE_LIMIT__SIGNUPS_PER_HOUR", "4")],
    )
    .spawn()
    .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(20)).await);
    let label = format!("redis-{}", Uuid::now_v7().simple());
    // One sign-up of the four an address may make in an hour.
    let org = load_org(&base, &db.owner, &db.app_url, &label).await;
    let cookie = signed_in_cookie(&base, &org.email).await;
    let client = http(ACQUIRE_TIMEOUT + SLACK, true);
    // The sign-up limit holds while Redis is up: three more, then 429.
    let before: Vec<u16> =
        futures::future::join_all((0..4).map(|n| sign_up_status(&client, &base, &label, n))).await;
    assert_eq!(
        before.iter().filter(|s| **s == 202).count(),
        3,
        "{before:?}"
    );
    assert!(before.contains(&429), "{before:?}");

    let mut load = Load::new();
    let (me_client, me_url, me_cookie) =
        (client.clone(), format!("{base}/api/v1/me"), cookie.clone());
    load.client(
        "me (session)",
        Duration::from_millis(50),
        usize::MAX,
        Box::new(move |_| (me_client.get(&me_url).header("cookie", &me_cookie), None)),
    );
    load.client(
        "list keys",
        Duration::from_millis(50),
        usize::MAX,
        list_keys(&client, &base, &org),
    );
    load.client(
        "create key",
        Duration::from_millis(50),
        usize::MAX,
        create_keys(&client, &base, &org, "load"),
    );
    let readiness = poll_readiness(base.clone(), &load);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = load.since_start();
    tokio::task::block_in_place(|| redis.stop());
    let stopped = load.since_start();
    tokio::time::sleep(outage / 2).await;
    // Sign-ups are not limited while Redis is down (each still costs a password hash).
    let during_outage: Vec<u16> =
        futures::future::join_all((4..7).map(|n| sign_up_status(&client, &base, &label, n))).await;
    tokio::time::sleep(outage / 2).await;
    let starting = load.since_start();
    tokio::task::block_in_place(|| redis.start_again());
    let started = load.since_start();
    let recovered = eventually(Duration::from_secs(30), || async {
        let calls = load.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.started > started && c.what == "me (session)")
            .rev()
            .take(3)
            .filter(|c| c.succeeded())
            .count()
            == 3
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = load.stop().await;
    let readiness = readiness.await.unwrap();
    assert!(
        recovered.is_some(),
        "sessions did not come back within 30 s"
    );
    let after_outage = sign_up_status(&client, &base, &label, 7).await;

    assert_only_successes_and_documented_unavailability(&calls, ACQUIRE_TIMEOUT + SLACK);
    let during = |what: &str| -> Vec<&Call> {
        calls
            .iter()
            .filter(|c| c.what == what && c.started >= stopped && c.ended() <= starting)
            .collect()
    };
    // Sessions live in Redis: 503 while it is down.
    let sessions = during("me (session)");
    assert!(
        !sessions.is_empty() && sessions.iter().all(|c| c.status() == Some(503)),
        "{:?}",
        tally(sessions.iter().copied())
    );
    // API keys live in PostgreSQL: served, neither counted nor limited.
    let keyed: Vec<&Call> = during("list keys")
        .into_iter()
        .chain(during("create key"))
        .collect();
    assert!(
        !keyed.is_empty() && keyed.iter().all(|c| c.succeeded()),
        "{:?}",
        tally(keyed.iter().copied())
    );
    // Without Redis they wait for no reconnection back-off (it was 1.4 s a call).
    assert!(
        median(&keyed) < Duration::from_millis(500),
        "API-key calls took {:?} (median) while Redis was down",
        median(&keyed)
    );
    assert_eq!(
        during_outage,
        [202, 202, 202],
        "sign-ups while Redis was down"
    );
    let unready_probes = assert_not_ready_during(&readiness, stopped, starting);
    assert_eq!(readiness.last().map(|(_, s)| *s), Some(200));

    // Nothing was lost or mixed up: the same session is the same user, the limit's count
    // survived, and every key answered 201 exists.
    let me: Value = client
        .get(format!("{base}/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], org.email.as_str());
    assert_eq!(after_outage, 429, "the sign-up limit's count was lost");
    let names = key_names(&db.owner, org.tenant).await;
    let created: Vec<&String> = calls.iter().filter_map(|c| c.created.as_ref()).collect();
    assert!(created.iter().all(|n| names.contains(*n)));
    let first_session = calls
        .iter()
        .filter(|c| c.what == "me (session)" && c.started >= started && c.succeeded())
        .map(|c| c.ended())
        .min()
        .unwrap();
    sigterm(&server);
    let exit = exit_within(server, Duration::from_secs(15)).await;
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    let slowest_keyed = keyed.iter().map(|c| c.took).max().unwrap_or_default();
    let keyed_before: Vec<&Call> = calls
        .iter()
        .filter(|c| c.what != "me (session)" && c.ended() < stopping)
        .collect();
    println!(
        "Redis down {:.1}s (stop took {:.1}s) under 3 clients: {} calls {:?}; sessions 503 \
         ({} calls, median {:.2}s), API-key calls 2xx ({} calls, median {:.2}s, slowest {:.2}s; \
         {:.3}s before the outage), 0 other 5xx, readiness 503 ({} probes); sign-ups unlimited \
         while down ({during_outage:?}), limited again after (429); sessions back {:.2}s after \
         Redis, same user; {} keys answered 201 all present",
        (starting - stopped).as_secs_f64(),
        (stopped - stopping).as_secs_f64(),
        calls.len(),
        tally(&calls),
        sessions.len(),
        median(&sessions).as_secs_f64(),
        keyed.len(),
        median(&keyed).as_secs_f64(),
        slowest_keyed.as_secs_f64(),
        median(&keyed_before).as_secs_f64(),
        unready_probes,
        (first_session - started).as_secs_f64(),
        created.len(),
    );
}

/// Every readiness probe from a second after `stopped` until `starting` answered 503, and
/// there was at least one; returns how many there were.
fn assert_not_ready_during(
    readiness: &[(Duration, u16)],
    stopped: Duration,
    starting: Duration,
) -> usize {
    let ready_during: Vec<u16> = readiness
        .iter()
        .filter(|(at, _)| *at > stopped + Duration::from_secs(1) && *at < starting)
        .map(|(_, s)| *s)
        .collect();
    assert!(
        !ready_during.is_empty() && ready_during.iter().all(|s| *s == 503),
        "readiness during the outage: {ready_during:?}"
    );
    ready_during.len()
}
