use figment::{Figment, providers::Serialized};
use secrecy::ExposeSecret;

use crate::{Environment, Settings};

fn base() -> Figment {
    Figment::new()
        .merge(Serialized::default(
            "database.url",
            "postgres://app:db-password@localhost/tenantkit",
        ))
        .merge(Serialized::default("redis.url", "redis://localhost:6379"))
}

fn problems(figment: Figment) -> Vec<String> {
    Settings::load_from(figment)
        .expect_err("should be invalid")
        .problems
}

#[test]
fn defaults_fill_everything_but_the_connections() {
    let settings = Settings::load_from(base()).unwrap();
    assert_eq!(settings.environment, Environment::Development);
    assert_eq!(settings.server.bind.port(), 8000);
    assert_eq!(settings.database.max_connections, 10);
    assert!(!settings.server.secure_cookies);
    // The migration URL falls back to the application URL.
    assert_eq!(
        settings.database.migration_url.expose_secret(),
        settings.database.url.expose_secret()
    );
}

#[test]
fn missing_connections_are_each_reported() {
    let found = problems(Figment::new());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("database.url is missing")
            && found[0].contains("TENANTKIT_DATABASE__URL")
    );
    assert!(found[1].contains("redis.url is missing"));
}

#[test]
fn each_invalid_value_gets_its_own_message() {
    let found = problems(
        base()
            .merge(Serialized::default("environment", "staging"))
            .merge(Serialized::default("server.bind", "not-an-address"))
            .merge(Serialized::default("server.shutdown_timeout_secs", "-3"))
            .merge(Serialized::default("database.max_connections", 0))
            .merge(Serialized::default("log.format", "xml"))
            .merge(Serialized::default("redis.url", "http://localhost")),
    );
    let expect = [
        "environment",
        "server.bind",
        "server.shutdown_timeout_secs",
        "log.format",
        "redis.url",
        "database.max_connections",
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for key in expect {
        assert!(
            found.iter().any(|p| p.starts_with(key)),
            "no message for {key}: {found:#?}"
        );
    }
}

#[test]
fn production_refuses_missing_and_weak_secret_keys() {
    let production = base().merge(Serialized::default("environment", "production"));
    assert!(problems(production.clone())[0].contains("secret_key is missing"));
    for weak in [
        "short",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        crate::settings::DEVELOPMENT_SECRET_KEY,
    ] {
        let found = problems(
            production
                .clone()
                .merge(Serialized::default("secret_key", weak)),
        );
        assert!(
            found.iter().any(|p| p.starts_with("secret_key")),
            "{weak:?} accepted: {found:?}"
        );
    }
    let strong = production.merge(Serialized::default(
        "secret_key",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ));
    assert!(Settings::load_from(strong).is_ok());
}

#[test]
fn secrets_are_redacted_in_debug_output_and_in_errors() {
    let settings = Settings::load_from(base().merge(Serialized::default(
        "secret_key",
        "super-secret-key-material",
    )))
    .unwrap();
    let debug = format!("{settings:?}");
    assert!(!debug.contains("db-password"), "{debug}");
    assert!(!debug.contains("super-secret-key-material"), "{debug}");
    let bad = problems(base().merge(Serialized::default(
        "database.url",
        "mysql://root:hunter2@db/x",
    )));
    assert!(bad.iter().all(|p| !p.contains("hunter2")), "{bad:?}");
    assert_eq!(
        crate::redacted_url(&settings.database.url),
        "postgres://app:***@localhost/tenantkit"
    );
}

#[test]
fn secrets_can_come_from_files() {
    let path = std::env::temp_dir().join(format!("tenantkit-secret-{}", std::process::id()));
    std::fs::write(&path, "key-from-a-mounted-secret-file-0123456789\n").unwrap();
    let settings = Settings::load_from(base().merge(Serialized::default(
        "secret_key_file",
        path.to_str().unwrap(),
    )))
    .unwrap();
    assert_eq!(
        settings.secret_key.expose_secret(),
        "key-from-a-mounted-secret-file-0123456789"
    );
    std::fs::remove_file(&path).unwrap();
    let missing = problems(base().merge(Serialized::default(
        "secret_key_file",
        "/nonexistent/secret",
    )));
    assert!(missing[0].starts_with("secret_key_file"), "{missing:?}");
}

#[test]
fn deploy_check_flags_each_unsafe_setting() {
    let settings = Settings::load_from(base()).unwrap();
    let keys: Vec<&str> = settings.deploy_problems().iter().map(|p| p.key).collect();
    for key in [
        "environment",
        "secret_key",
        "server.secure_cookies",
        "server.public_url",
        "database.url",
        "redis.url",
        "smtp.url",
    ] {
        assert!(keys.contains(&key), "{key} not flagged: {keys:?}");
    }
    let safe = Settings::load_from(
        Figment::new()
            .merge(Serialized::default("environment", "production"))
            .merge(Serialized::default(
                "secret_key",
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ))
            .merge(Serialized::default(
                "server.public_url",
                "https://app.example.com/",
            ))
            .merge(Serialized::default(
                "database.url",
                "postgres://app:pw@db/tk?sslmode=verify-full",
            ))
            .merge(Serialized::default("redis.url", "rediss://cache:6380"))
            .merge(Serialized::default("smtp.url", "smtps://mail.example.com")),
    )
    .unwrap();
    assert_eq!(safe.deploy_problems(), vec![]);
}

#[test]
fn numbers_from_the_environment_are_read() {
    // Env values are typed by figment: "1" arrives as an unsigned number, "-3" as a signed one.
    let settings = Settings::load_from(
        base()
            .merge(Serialized::default("database.acquire_timeout_secs", 1usize))
            .merge(Serialized::default("server.shutdown_timeout_secs", 7u8)),
    )
    .unwrap();
    assert_eq!(settings.database.acquire_timeout.as_secs(), 1);
    assert_eq!(settings.server.shutdown_timeout.as_secs(), 7);
    let negative = problems(base().merge(Serialized::default("worker.concurrency", -3i64)));
    assert!(
        negative[0].starts_with("worker.concurrency"),
        "{negative:?}"
    );
}

#[test]
fn the_smtp_pool_size_defaults_to_16_and_is_at_least_one() {
    assert_eq!(Settings::load_from(base()).unwrap().smtp.pool_size, 16);
    // As TENANTKIT_SMTP__POOL_SIZE=4 arrives from the environment.
    let four = Settings::load_from(base().merge(Serialized::default("smtp.pool_size", 4usize)));
    assert_eq!(four.unwrap().smtp.pool_size, 4);
    let zero = problems(base().merge(Serialized::default("smtp.pool_size", 0usize)));
    assert_eq!(zero, ["smtp.pool_size must be at least 1"]);
    let negative = problems(base().merge(Serialized::default("smtp.pool_size", -2i64)));
    assert!(negative[0].starts_with("smtp.pool_size"), "{negative:?}");
}

#[test]
fn worker_liveness_defaults_to_10_and_30_seconds_and_orphans_after_two_heartbeats_at_least() {
    let defaults = Settings::load_from(base()).unwrap().worker;
    assert_eq!(
        (
            defaults.heartbeat.as_secs(),
            defaults.orphan_after.as_secs()
        ),
        (10, 30)
    );
    let quick = Settings::load_from(
        base()
            .merge(Serialized::default("worker.heartbeat_secs", 1usize))
            .merge(Serialized::default("worker.orphan_after_secs", 3usize)),
    )
    .unwrap()
    .worker;
    assert_eq!(
        (quick.heartbeat.as_secs(), quick.orphan_after.as_secs()),
        (1, 3)
    );
    let zero = problems(base().merge(Serialized::default("worker.heartbeat_secs", 0usize)));
    assert_eq!(zero, ["worker.heartbeat_secs must be at least 1"]);
    // A live worker whose heartbeat is a little late must not lose its jobs.
    let too_soon = problems(base().merge(Serialized::default("worker.orphan_after_secs", 15usize)));
    assert_eq!(
        too_soon,
        ["worker.orphan_after_secs must be at least twice worker.heartbeat_secs (20)"]
    );
}

/// Billing settings: plans, Stripe credentials, and what `admin.plans` became.
mod billing;

/// Storage settings: backends, the names the Helm chart sets, limits and secrets.
mod storage;
