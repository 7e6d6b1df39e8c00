//! Faults the service must live through, against the real binaries and real PostgreSQL, Redis
//! and SMTP: a worker killed mid-job again and again, jobs that can never run, PostgreSQL or
//! Redis gone for a while under load, SIGTERM under load, and clients that hang up mid-request.
//! Each test prints its figures. `TENANTKIT_SOAK=1` runs the long variants (1,000 kills, 30 s
//! outages, 30,000 requests). One module per fault; this one holds what they share.

use std::{
    collections::{HashMap, HashSet},
    process::Child,
    time::{Duration, Instant},
};

use tenantkit_accounts::emails::{AccountEmail, AccountEmailKind};
use tenantkit_kernel::UserId;
use tenantkit_tests::{TestDb, env, mail};
use uuid::Uuid;

#[path = "faults/hang_ups.rs"]
mod hang_ups;
#[path = "faults/killed_worker.rs"]
mod killed_worker;
#[path = "faults/load.rs"]
mod load;
#[path = "faults/outages.rs"]
mod outages;
#[path = "faults/poison_jobs.rs"]
mod poison_jobs;
#[path = "faults/shutdown.rs"]
mod shutdown;

fn soak() -> bool {
    std::env::var("TENANTKIT_SOAK").is_ok_and(|v| v == "1")
}

fn smtp_upstream() -> String {
    env("TENANTKIT_TEST_SMTP")
        .trim_start_matches("smtp://")
        .to_owned()
}

/// Polls `check` until it holds; how long that took, or `None` after `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Waits for a child process to end, at most `limit`.
async fn exit_within(child: Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let mut child = child;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `count` verified users named after `label`, each with a "password changed" email queued as
/// the product queues it; their addresses.
async fn queue_account_emails(db: &TestDb, label: &str, count: usize) -> HashSet<String> {
    queue_account_emails_in(&db.owner, &db.app, label, count).await
}

/// [`queue_account_emails`] in any database: `owner` (superuser) adds the users, `app` queues.
async fn queue_account_emails_in(
    owner: &sqlx::PgPool,
    app: &tenantkit_db::Database,
    label: &str,
    count: usize,
) -> HashSet<String> {
    let users: Vec<(Uuid, String)> = sqlx::query_as(
        "insert into users (id, email, display_name, email_verified_at)
         select gen_random_uuid(), $1 || '-' || n || '@faults.test', 'User ' || n, now()
         from generate_series(1, $2) n
         returning id, email",
    )
    .bind(label)
    .bind(i32::try_from(count).unwrap())
    .fetch_all(owner)
    .await
    .unwrap();
    let mut tx = app.global().await.unwrap();
    for (id, _) in &users {
        AccountEmail::new(UserId::from_uuid(*id), AccountEmailKind::PasswordChanged)
            .enqueue(tx.conn())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    users.into_iter().map(|(_, email)| email).collect()
}

/// A received message's recipient address (lowercase) and Message-ID.
fn envelope(message: &str) -> Option<(String, String)> {
    let header = |name: &str| {
        message
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    let to = header("To: ")?;
    let to = to
        .rsplit_once('<')
        .map_or(to, |(_, address)| address.trim_end_matches('>'));
    Some((
        to.to_lowercase(),
        header("Message-ID: ").unwrap_or_default().to_owned(),
    ))
}

/// The Message-IDs of the messages each of `recipients` received.
fn deliveries(recipients: &HashSet<String>) -> HashMap<String, Vec<String>> {
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for message in mail::received() {
        if let Some((to, message_id)) = envelope(&message)
            && recipients.contains(&to)
        {
            found.entry(to).or_default().push(message_id);
        }
    }
    found
}

/// Messages beyond the first per recipient.
fn duplicates(received: &HashMap<String, Vec<String>>) -> usize {
    received
        .values()
        .map(|ids| ids.len().saturating_sub(1))
        .sum()
}

async fn job_statuses(owner: &sqlx::PgPool, queue: &str) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "select status, count(*) from apalis.jobs where job_type = $1 group by status",
    )
    .bind(queue)
    .fetch_all(owner)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

async fn consumer_names(owner: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("select id from apalis.workers")
        .fetch_all(owner)
        .await
        .unwrap()
}
