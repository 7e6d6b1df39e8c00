//! Clients hanging up mid-request by the thousand, as sessions (Redis) and API keys
//! (PostgreSQL) of several tenants: no completed answer is ever another caller's.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use serde_json::Value;
use tenantkit_kernel::Role;
use tenantkit_tests::{TestApp, TestDb, api, env, process::slow_replies_relay, settings_for};
use uuid::Uuid;

use super::{
    load::{http, signed_in_cookie},
    soak,
};

/// Who a call is made as, and what its answer must name.
enum Caller {
    /// A signed-in user: `GET /api/v1/me` names their email.
    Session { cookie: String, email: String },
    /// An organisation's API key: `GET /api/v1/tenants` names its tenant.
    Key { key: String, tenant: Uuid },
}

impl Caller {
    fn request(&self, client: &reqwest::Client, app: &TestApp) -> reqwest::RequestBuilder {
        match self {
            Self::Session { cookie, .. } => {
                client.get(app.url("/api/v1/me")).header("cookie", cookie)
            }
            Self::Key { key, .. } => client.get(app.url("/api/v1/tenants")).bearer_auth(key),
        }
    }

    /// Whether `body` is this caller's own answer.
    fn owns(&self, body: &Value) -> bool {
        match self {
            Self::Session { email, .. } => body["email"] == email.as_str(),
            Self::Key { tenant, .. } => {
                body["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 1)
                    && body["items"][0]["id"] == tenant.to_string().as_str()
            }
        }
    }
}

/// `http_requests_total` for the two routes called, from the server's own metrics.
async fn served(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter(|l| l.contains("route=\"/api/v1/me\"") || l.contains("route=\"/api/v1/tenants\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

const CONCURRENT_CALLS: usize = 32;

/// What a call that was not cancelled got: its status and body.
type Answer = Result<(u16, String), reqwest::Error>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_requests_cancelled_mid_flight_never_hand_a_reply_to_another_caller() {
    let requests = if soak() { 30_000 } else { 3_000 };
    let db = TestDb::new().await;
    // Redis a little way off, so cancellations often land while its replies are on the way.
    let redis = env("TENANTKIT_TEST_REDIS");
    let relay = slow_replies_relay(
        redis.trim_start_matches("redis://").to_owned(),
        Duration::from_millis(1),
    )
    .await;
    let settings = settings_for(&db, &[("redis.url", &format!("redis://127.0.0.1:{relay}"))]);
    let app = TestApp::spawn_with(db, settings).await;
    let base = format!("http://{}", app.address);
    // Six organisations, each called by its owner's session and by its own API key.
    let mut callers = Vec::new();
    for n in 0..6 {
        let org = api::org(&app, &format!("Cancel{n}")).await;
        sqlx::query(
            "update tenants set entitlement_overrides = '{\"api_requests_per_minute\": 1000000}'
             where id = $1",
        )
        .bind(org.tenant)
        .execute(&app.db.owner)
        .await
        .unwrap();
        let key = api::key(&app, &org, Role::Member).await;
        callers.push(Caller::Key {
            key,
            tenant: org.tenant,
        });
        let cookie = signed_in_cookie(&base, &org.email).await;
        callers.push(Caller::Session {
            cookie,
            email: org.email,
        });
    }
    let client = http(Duration::from_secs(30), true);

    // How long a call takes at this concurrency, so the cancellations spread over a call's
    // whole course.
    let mut took: Vec<Duration> = futures::stream::iter(callers.iter().cycle().take(192))
        .map(|caller| async {
            let started = Instant::now();
            let response = caller.request(&client, &app).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(caller.owns(&response.json().await.unwrap()));
            started.elapsed()
        })
        .buffer_unordered(CONCURRENT_CALLS)
        .collect()
        .await;
    took.sort_unstable();
    let median = took[took.len() / 2];

    let served_before = served(&app).await;
    let callers = &callers;
    let (client, app_ref) = (&client, &app);
    let outcomes: Vec<(usize, Option<Answer>)> = futures::stream::iter(0..requests)
        .map(|_| {
            let (who, cancel_after) = {
                let mut rng = rand::rng();
                let micros = u64::try_from(median.as_micros()).unwrap();
                (
                    rng.random_range(0..callers.len()),
                    rng.random_bool(0.5)
                        .then(|| Duration::from_micros(rng.random_range(0..=micros))),
                )
            };
            let request = callers[who].request(client, app_ref);
            async move {
                let call = async {
                    let response = request.send().await?;
                    let status = response.status().as_u16();
                    Ok((status, response.text().await?))
                };
                let outcome = match cancel_after {
                    // The client hangs up: the request's future is dropped where it stands.
                    Some(after) => tokio::time::timeout(after, call).await.ok(),
                    None => Some(call.await),
                };
                (who, outcome)
            }
        })
        .buffer_unordered(CONCURRENT_CALLS)
        .collect()
        .await;
    let served = served(&app).await - served_before;

    let (mut completed, mut cancelled, mut foreign, mut errors) = (0, 0, Vec::new(), Vec::new());
    for (who, outcome) in outcomes {
        match outcome {
            None => cancelled += 1,
            Some(Ok((200, body))) => {
                completed += 1;
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if !callers[who].owns(&body) {
                    foreign.push(body);
                }
            }
            Some(Ok((status, body))) => errors.push(format!("{status}: {body}")),
            Some(Err(error)) => errors.push(format!("{error:?}")),
        }
    }
    assert!(
        foreign.is_empty(),
        "{} of {completed} answers were another caller's: {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(3)]
    );
    assert!(
        errors.is_empty(),
        "{} calls failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    // Both paths must really have been taken, and the server must really have seen hang-ups.
    assert!(
        completed > requests / 5 && cancelled > requests / 5,
        "{completed} completed, {cancelled} cancelled"
    );
    let cut_short = u64::try_from(requests).unwrap().saturating_sub(served);
    assert!(cut_short > 0, "no handler was cut short by a hang-up");
    // And afterwards every caller still gets its own answer.
    for caller in callers {
        let response = caller.request(client, &app).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(caller.owns(&response.json().await.unwrap()));
    }
    println!(
        "hang-ups: {requests} requests by 12 callers (6 sessions, 6 API keys of 6 tenants), \
         {CONCURRENT_CALLS} at a time, half cancelled after 0-{:.1} ms (the median call at this \
         concurrency); {completed} completed, all naming their own caller (0 foreign), \
         {cancelled} cancelled by the client, {cut_short} never finished on the server (handler \
         dropped mid-way or never reached), 0 errors",
        median.as_secs_f64() * 1000.0
    );
}
