//! `tenantkit-admin`: scriptable operator commands with meaningful exit codes.

use std::process::{Command, Output};

use tenantkit_tests::{TestDb, env, process::binary};

fn admin(db: &TestDb, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary("tenantkit-admin"));
    command
        .args(args)
        .env_clear()
        .env("DATABASE_URL", &db.app_url)
        .env("REDIS_URL", env("TENANTKIT_TEST_REDIS"));
    for (key, value) in extra_env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn create_admin_prints_a_generated_password_once_and_lists_admins() {
    let db = TestDb::new().await;
    let created = admin(&db, &["create-admin", "--email", "root@platform.test"], &[]);
    assert!(created.status.success(), "{}", text(&created));
    let output = text(&created);
    let password = output
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once): "))
        .expect("a generated password is printed");
    assert_eq!(password.len(), 20);
    let hash: String =
        sqlx::query_scalar("select password_hash from users where email = 'root@platform.test'")
            .fetch_one(&db.owner)
            .await
            .unwrap();
    assert!(!hash.contains(password), "the password is stored hashed");

    // Again: refused, unless the caller says a present admin is fine (scripts/dev does).
    let again = admin(&db, &["create-admin", "--email", "root@platform.test"], &[]);
    assert!(!again.status.success());
    let tolerant = admin(
        &db,
        &[
            "create-admin",
            "--email",
            "root@platform.test",
            "--if-missing",
        ],
        &[],
    );
    assert!(tolerant.status.success(), "{}", text(&tolerant));
    assert!(
        !text(&tolerant).contains("password"),
        "no second password may be printed"
    );

    let listed = admin(&db, &["admins", "--json"], &[]);
    assert!(listed.status.success());
    let admins: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 1);
    assert_eq!(admins[0]["email"], "root@platform.test");
    assert_eq!(admins[0]["is_platform_admin"], true);
}

#[tokio::test]
async fn create_admin_refuses_bad_input_with_a_clear_error() {
    let db = TestDb::new().await;
    let bad_email = admin(&db, &["create-admin", "--email", "nope"], &[]);
    assert_eq!(bad_email.status.code(), Some(1));
    assert!(text(&bad_email).contains("email"));
    let weak = admin(
        &db,
        &["create-admin", "--email", "a@b.test"],
        &[("TENANTKIT_ADMIN_PASSWORD", "short")],
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(text(&weak).contains("password"));
}

#[tokio::test]
async fn check_fails_on_an_unsafe_configuration_and_passes_a_safe_one() {
    let db = TestDb::new().await;
    let unsafe_config = admin(&db, &["check"], &[]);
    assert_eq!(
        unsafe_config.status.code(),
        Some(1),
        "{}",
        text(&unsafe_config)
    );
    let report = text(&unsafe_config);
    for key in [
        "secret_key",
        "server.secure_cookies",
        "server.public_url",
        "database.url",
        "redis.url",
    ] {
        assert!(
            report.contains(&format!("problem: {key}")),
            "{key} not reported:\n{report}"
        );
    }

    let safe = Command::new(binary("tenantkit-admin"))
        .arg("check")
        .env_clear()
        .env("TENANTKIT_ENVIRONMENT", "production")
        .env(
            "TENANTKIT_SECRET_KEY",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        )
        .env("TENANTKIT_SERVER__PUBLIC_URL", "https://app.example.com/")
        .env(
            "DATABASE_URL",
            "postgres://app:pw@db.internal/tenantkit?sslmode=verify-full",
        )
        .env("REDIS_URL", "rediss://cache.internal:6380")
        .env("SMTP_URL", "smtps://mail.example.com")
        .output()
        .unwrap();
    assert!(safe.status.success(), "{}", text(&safe));

    let invalid = Command::new(binary("tenantkit-admin"))
        .arg("check")
        .env_clear()
        .env("TENANTKIT_SERVER__BIND", "nowhere")
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    let message = text(&invalid);
    for key in [
        "server.bind",
        "database.url is missing",
        "redis.url is missing",
    ] {
        assert!(message.contains(key), "{key} not reported:\n{message}");
    }
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let db = TestDb::new().await;
    let url = format!("{}/{}", env("TENANTKIT_TEST_PG"), db.name);
    for _ in 0..2 {
        let output = Command::new(binary("tenantkit-admin"))
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
}
