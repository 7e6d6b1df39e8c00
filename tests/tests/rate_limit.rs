//! Sign-ups are limited per client address, counted in Redis and shared by every server.

use serde_json::json;
use tenantkit_tests::{TestApp, TestDb, content_type, settings_for};

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
