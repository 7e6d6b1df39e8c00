//! Sign-ups are limited per client address, and API calls per organisation by its plan;
//! counted in Redis and shared by every server.

use reqwest::Method;
use serde_json::json;
use tenantkit_kernel::Role;
use tenantkit_tests::{TestApp, TestDb, api, content_type, settings_for};

fn sign_up_body(n: usize) -> serde_json::Value {
    json!({
        "organisation": format!("Org {n}"), "name": "Ada", "email": format!("ada{n}@limit.test"),
        "password": "correct horse battery staple",
    })
}

async fn app_with(overrides: &[(&str, &str)]) -> TestApp {
    let db = TestDb::new().await;
    let settings = settings_for(&db, overrides);
    TestApp::spawn_with(db, settings).await
}

#[tokio::test]
async fn sign_ups_beyond_the_hourly_allowance_get_429_with_retry_after() {
    let app = app_with(&[("rate_limit.signups_per_hour", "3")]).await;
    for n in 0..3 {
        assert_eq!(
            app.post_json("/api/v1/signups", sign_up_body(n))
                .await
                .status(),
            202
        );
    }
    let refused = app.post_json("/api/v1/signups", sign_up_body(3)).await;
    assert_eq!(refused.status(), 429);
    assert!(content_type(&refused).starts_with("application/problem+json"));
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(users, 3, "a refused sign-up must write nothing");

    // Another deployment (another key prefix) on the same Redis has its own counters.
    let other = app_with(&[("rate_limit.signups_per_hour", "3")]).await;
    assert_eq!(
        other
            .post_json("/api/v1/signups", sign_up_body(9))
            .await
            .status(),
        202
    );
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    let post = |app: &TestApp, n: usize, forwarded: &str| {
        app.client
            .post(app.url("/api/v1/signups"))
            .header("x-forwarded-for", forwarded.to_owned())
            .json(&sign_up_body(n))
            .send()
    };
    // No trusted proxy: a client cannot dodge the limit by inventing addresses.
    let direct = app_with(&[("rate_limit.signups_per_hour", "1")]).await;
    assert_eq!(post(&direct, 0, "192.0.2.1").await.unwrap().status(), 202);
    assert_eq!(post(&direct, 1, "192.0.2.2").await.unwrap().status(), 429);

    // One trusted proxy: the address it appended identifies the client.
    let proxied = app_with(&[
        ("rate_limit.signups_per_hour", "1"),
        ("server.trusted_proxy_hops", "1"),
    ])
    .await;
    assert_eq!(
        post(&proxied, 0, "198.51.100.1").await.unwrap().status(),
        202
    );
    assert_eq!(
        post(&proxied, 1, "198.51.100.2").await.unwrap().status(),
        202
    );
    assert_eq!(
        post(&proxied, 2, "6.6.6.6, 198.51.100.1")
            .await
            .unwrap()
            .status(),
        429
    );
}

#[tokio::test]
async fn without_redis_sign_ups_still_work_and_readiness_says_why() {
    let closed = tenantkit_tests::process::free_port();
    let redis = format!("redis://127.0.0.1:{closed}");
    let app = app_with(&[
        ("redis.url", redis.as_str()),
        ("rate_limit.signups_per_hour", "1"),
    ])
    .await;
    for n in 0..3 {
        assert_eq!(
            app.post_json("/api/v1/signups", sign_up_body(n))
                .await
                .status(),
            202,
            "the limit fails open"
        );
    }
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_ne!(body["checks"]["redis"], "ok");
    assert_eq!(body["checks"]["postgres"], "ok");
}

/// A Redis server of this test's own, which it may stop and start.
fn start_redis(port: u16) -> std::process::Child {
    std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed by scripts/test")
}

#[tokio::test]
async fn readiness_and_limits_recover_when_redis_comes_back_without_a_restart() {
    let port = tenantkit_tests::process::free_port();
    let mut redis = start_redis(port);
    assert!(
        tenantkit_tests::process::wait_for_port(port, std::time::Duration::from_secs(10)).await
    );
    let url = format!("redis://127.0.0.1:{port}");
    let app = app_with(&[
        ("redis.url", url.as_str()),
        ("rate_limit.signups_per_hour", "1"),
    ])
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    redis.kill().unwrap();
    redis.wait().unwrap();
    assert_eq!(app.get("/readyz").await.status(), 503);

    let mut redis = start_redis(port);
    assert!(
        tenantkit_tests::process::wait_for_port(port, std::time::Duration::from_secs(10)).await
    );
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(ready, "not ready again after Redis came back");
    // And the limit is enforced again.
    assert_eq!(
        app.post_json("/api/v1/signups", sign_up_body(0))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post_json("/api/v1/signups", sign_up_body(1))
            .await
            .status(),
        429
    );
    redis.kill().unwrap();
    redis.wait().unwrap();
}

/// Each organisation's API calls are limited per minute by its plan (here an admin's
/// override of 5); other organisations keep their own allowance.
#[tokio::test]
async fn api_calls_beyond_the_plans_allowance_per_minute_get_429() {
    let app = TestApp::spawn().await;
    let limited = api::org(&app, "Limited").await;
    let other = api::org(&app, "Other").await;
    sqlx::query(
        "update tenants set entitlement_overrides = '{\"api_requests_per_minute\": 5}'
         where id = $1",
    )
    .bind(limited.tenant)
    .execute(&app.db.owner)
    .await
    .unwrap();
    let limited_key = api::key(&app, &limited, Role::Member).await;
    let other_key = api::key(&app, &other, Role::Member).await;
    let members = |org: &api::Org| format!("/tenants/{}/members", org.tenant);
    // The window is the clock's minute: start early in one so the six calls share it.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    for n in 0..5 {
        let (status, body) =
            api::call(&app, &limited_key, Method::GET, &members(&limited), None).await;
        assert_eq!(status, 200, "call {n}: {body}");
    }
    let refused = app
        .client
        .get(app.url(&format!("/api/v1{}", members(&limited))))
        .bearer_auth(&limited_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(content_type(&refused).starts_with("application/problem+json"));
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("allows 5 API"),
        "{problem}"
    );
    // The other organisation is not affected.
    for _ in 0..6 {
        let (status, _) = api::call(&app, &other_key, Method::GET, &members(&other), None).await;
        assert_eq!(status, 200);
    }
}
