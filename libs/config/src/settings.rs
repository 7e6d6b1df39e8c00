//! The typed settings and how they are loaded.

use std::{fmt, net::SocketAddr, path::Path, str::FromStr, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::{BillingSettings, ConfigError, StorageSettings, reader::Reader};

/// A development-only key: `check` and production start-up reject it.
pub(crate) const DEVELOPMENT_SECRET_KEY: &str =
    "development-only-secret-key-do-not-use-in-production";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" | "dev" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "production" | "prod" => Ok(Self::Production),
            _ => Err("expected development, test or production".to_owned()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json".to_owned()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub smtp: SmtpSettings,
    pub worker: WorkerSettings,
    pub log: LogSettings,
    pub rate_limit: RateLimitSettings,
    pub admin: AdminSettings,
    pub billing: BillingSettings,
    pub storage: StorageSettings,
    /// Signs sessions, CSRF tokens and links.
    pub secret_key: SecretString,
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub public_url: Url,
    /// How long in-flight requests may run after SIGTERM before the server exits.
    pub shutdown_timeout: Duration,
    pub secure_cookies: bool,
    /// Reverse proxies in front of the server that append to `X-Forwarded-For`; 0 trusts no
    /// header and uses the socket's address.
    pub trusted_proxy_hops: usize,
}

#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// The application's connection: a role that owns nothing and cannot bypass RLS.
    pub url: SecretString,
    /// The owner's connection, used only to migrate. Defaults to `url`.
    pub migration_url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels any statement that runs longer (a runaway query cannot hold a
    /// connection forever).
    pub statement_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: SecretString,
    /// Every key starts with this, so several deployments (or tests) can share one Redis.
    pub key_prefix: String,
}

#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    /// Sign-ups accepted per client address per hour (each one costs a password hash).
    pub signups_per_hour: u32,
    /// Sign-in attempts per account (email) per 15 minutes.
    pub logins_per_account: u32,
    /// Sign-in attempts per client address per 15 minutes.
    pub logins_per_address: u32,
}

#[derive(Clone, Debug)]
pub struct SmtpSettings {
    /// e.g. `smtp://127.0.0.1:1025` or `smtps://user:pass@mail.example.com`.
    pub url: SecretString,
    pub from: String,
    /// Bounds connecting and each message's exchange.
    pub timeout: Duration,
    /// SMTP connections kept open and reused, at most; a send waits when all are busy.
    pub pool_size: usize,
}

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub concurrency: usize,
    /// How long a stopping worker waits for its running jobs before releasing them.
    pub shutdown_timeout: Duration,
    /// A failed job's first retry waits this long; each further retry waits twice as long.
    pub retry_base_delay: Duration,
    /// Jobs a queue's consumer claims per fetch. More drains a backlog faster (fewer round
    /// trips); fewer spreads a backlog over more workers and leaves fewer jobs waiting out the
    /// orphan timeout when a worker dies.
    pub fetch_batch: usize,
    /// How often a worker reports its consumers alive.
    pub heartbeat: Duration,
    /// Silence after which a worker is taken for dead and the jobs it held go back to the
    /// queue: how long a crashed worker's jobs wait. At least twice `heartbeat`, so one late
    /// heartbeat never hands a live worker's jobs to another.
    pub orphan_after: Duration,
}

/// What platform admins may do to tenants and users.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// Plan names an admin may assign: `billing.plans` (all of them unless `admin.plans`
    /// names some).
    pub plans: Vec<String>,
    /// How long a deleted tenant's data is kept (and can be exported) before it is purged.
    pub deleted_tenant_retention: Duration,
    /// How long an impersonation lasts at most.
    pub impersonation_ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

impl Settings {
    /// Loads from the process environment and `TENANTKIT_CONFIG` (or `tenantkit.toml` when present).
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("TENANTKIT_CONFIG").ok();
        Self::load_from(Self::figment(file.as_deref()))
    }

    /// For binaries: the settings, or every problem printed to stderr and `None`.
    pub fn load_or_report() -> Option<Self> {
        Self::load().map_err(|error| eprintln!("{error}")).ok()
    }

    /// Defaults live in code; a file overrides them; the environment overrides both.
    /// `DATABASE_URL`, `REDIS_URL` and `SMTP_URL` are accepted as the usual short names.
    pub fn figment(file: Option<&str>) -> Figment {
        let mut figment = Figment::new();
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("tenantkit.toml").exists() => {
                figment = figment.merge(Toml::file_exact("tenantkit.toml"))
            }
            None => {}
        }
        figment
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::raw().only(&["REDIS_URL"]).map(|_| "redis.url".into()))
            .merge(Env::raw().only(&["SMTP_URL"]).map(|_| "smtp.url".into()))
            .merge(Env::prefixed("TENANTKIT_").split("__").ignore(&["CONFIG"]))
    }

    pub fn load_from(figment: Figment) -> Result<Self, ConfigError> {
        let mut r = Reader::new(figment);
        let environment = r.or("environment", Environment::Development);
        let production = environment == Environment::Production;

        let bind = r.or("server.bind", SocketAddr::from(([127, 0, 0, 1], 8000)));
        let public_url = r.optional::<Url>("server.public_url");
        let shutdown_timeout = r.or("server.shutdown_timeout_secs", 30u64);
        let secure_cookies = r.or("server.secure_cookies", production);
        let trusted_proxy_hops = r.or("server.trusted_proxy_hops", 0usize);

        let database_url = r.required_secret("database.url");
        let migration_url = r.secret("database.migration_url");
        let max_connections = r.or("database.max_connections", 10u32);
        let acquire_timeout = r.or("database.acquire_timeout_secs", 5u64);
        let statement_timeout = r.or("database.statement_timeout_secs", 30u64);
        let redis_url = r.required_secret("redis.url");
        let key_prefix = r.or("redis.key_prefix", "tk".to_owned());
        let signups_per_hour = r.or("rate_limit.signups_per_hour", 20u32);
        let smtp_url = r.secret("smtp.url");
        let smtp_from = r.or("smtp.from", "Tenantkit <no-reply@localhost>".to_owned());
        let smtp_timeout = r.or("smtp.timeout_secs", 10u64);
        let smtp_pool_size = r.or("smtp.pool_size", 16usize);
        let concurrency = r.or("worker.concurrency", 4usize);
        let worker_shutdown = r.or("worker.shutdown_timeout_secs", 30u64);
        let retry_base = r.or("worker.retry_base_delay_secs", 5u64);
        let fetch_batch = r.or("worker.fetch_batch", 50usize);
        let heartbeat = r.or("worker.heartbeat_secs", 10u64);
        let orphan_after = r.or("worker.orphan_after_secs", 30u64);
        let logins_per_account = r.or("rate_limit.logins_per_account", 10u32);
        let logins_per_address = r.or("rate_limit.logins_per_address", 100u32);
        let retention_days = r.or("admin.deleted_tenant_retention_days", 30u64);
        let impersonation_minutes = r.or("admin.impersonation_minutes", 30u64);
        let log_format = r.or("log.format", LogFormat::Text);
        let log_filter = r.or("log.filter", "info".to_owned());
        let secret_key = match r.secret("secret_key") {
            Some(key) => Some(key),
            None if production => {
                r.problems.push(
                    "secret_key is missing: production needs TENANTKIT_SECRET_KEY (or TENANTKIT_SECRET_KEY_FILE), 32+ random bytes"
                        .to_owned(),
                );
                None
            }
            None => Some(SecretString::from(DEVELOPMENT_SECRET_KEY)),
        };

        for (key, url, schemes) in [
            (
                "database.url",
                &database_url,
                &["postgres", "postgresql"][..],
            ),
            (
                "database.migration_url",
                &migration_url,
                &["postgres", "postgresql"][..],
            ),
            ("redis.url", &redis_url, &["redis", "rediss"][..]),
            ("smtp.url", &smtp_url, &["smtp", "smtps"][..]),
        ] {
            if let Some(url) = url {
                check_url(&mut r.problems, key, url, schemes);
            }
        }
        if max_connections == 0 {
            r.problems
                .push("database.max_connections must be at least 1".to_owned());
        }
        if key_prefix.is_empty()
            || !key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:.".contains(&b))
        {
            r.problems.push(
                "redis.key_prefix must be non-empty letters, digits, '_', '-', ':' or '.'"
                    .to_owned(),
            );
        }
        let billing = crate::billing::read(&mut r);
        let plans = crate::billing::admin_plans(&mut r, &billing);
        let storage = crate::storage::read(&mut r);
        if impersonation_minutes == 0 || impersonation_minutes > 240 {
            r.problems
                .push("admin.impersonation_minutes must be between 1 and 240".to_owned());
        }
        if smtp_pool_size == 0 {
            r.problems
                .push("smtp.pool_size must be at least 1".to_owned());
        }
        if fetch_batch == 0 {
            r.problems
                .push("worker.fetch_batch must be at least 1".to_owned());
        }
        if concurrency == 0 {
            r.problems
                .push("worker.concurrency must be at least 1".to_owned());
        }
        if heartbeat == 0 {
            r.problems
                .push("worker.heartbeat_secs must be at least 1".to_owned());
        } else if orphan_after < heartbeat.saturating_mul(2) {
            r.problems.push(format!(
                "worker.orphan_after_secs must be at least twice worker.heartbeat_secs ({})",
                heartbeat.saturating_mul(2)
            ));
        }
        if production
            && let Some(key) = &secret_key
            && let Some(problem) = crate::deploy_check::weak_secret_key(key)
        {
            r.problems.push(problem);
        }

        let public_url = public_url.unwrap_or_else(|| {
            Url::parse(&format!("http://{bind}")).expect("a socket address forms a valid URL")
        });
        match (database_url, redis_url, secret_key) {
            (Some(database_url), Some(redis_url), Some(secret_key)) if r.problems.is_empty() => {
                Ok(Settings {
                    environment,
                    server: ServerSettings {
                        bind,
                        public_url,
                        shutdown_timeout: Duration::from_secs(shutdown_timeout),
                        secure_cookies,
                        trusted_proxy_hops,
                    },
                    database: DatabaseSettings {
                        migration_url: migration_url.unwrap_or_else(|| database_url.clone()),
                        url: database_url,
                        max_connections,
                        acquire_timeout: Duration::from_secs(acquire_timeout),
                        statement_timeout: Duration::from_secs(statement_timeout),
                    },
                    redis: RedisSettings {
                        url: redis_url,
                        key_prefix,
                    },
                    admin: AdminSettings {
                        plans,
                        deleted_tenant_retention: Duration::from_secs(retention_days * 86_400),
                        impersonation_ttl: Duration::from_secs(impersonation_minutes * 60),
                    },
                    billing,
                    storage,
                    rate_limit: RateLimitSettings {
                        signups_per_hour,
                        logins_per_account,
                        logins_per_address,
                    },
                    smtp: SmtpSettings {
                        url: smtp_url.unwrap_or_else(|| SecretString::from("smtp://127.0.0.1:25")),
                        from: smtp_from,
                        timeout: Duration::from_secs(smtp_timeout),
                        pool_size: smtp_pool_size,
                    },
                    worker: WorkerSettings {
                        concurrency,
                        shutdown_timeout: Duration::from_secs(worker_shutdown),
                        retry_base_delay: Duration::from_secs(retry_base),
                        fetch_batch,
                        heartbeat: Duration::from_secs(heartbeat),
                        orphan_after: Duration::from_secs(orphan_after),
                    },
                    log: LogSettings {
                        format: log_format,
                        filter: log_filter,
                    },
                    secret_key,
                })
            }
            _ => Err(ConfigError {
                problems: r.problems,
            }),
        }
    }

    /// Problems that make this configuration unfit for production (see `tenantkit check`).
    pub fn deploy_problems(&self) -> Vec<crate::DeployProblem> {
        crate::deploy_check::deploy_problems(self)
    }
}

/// Checks a secret URL without ever echoing it: it may carry a password.
fn check_url(problems: &mut Vec<String>, key: &str, url: &SecretString, schemes: &[&str]) {
    match Url::parse(url.expose_secret()) {
        Ok(parsed) if schemes.contains(&parsed.scheme()) => {}
        Ok(parsed) => problems.push(format!(
            "{key}: scheme {:?} is not one of {}",
            parsed.scheme(),
            schemes.join(", ")
        )),
        Err(error) => problems.push(format!("{key}: not a valid URL ({error})")),
    }
}

/// A URL with its password replaced, safe to log.
pub fn redacted_url(url: &SecretString) -> String {
    match Url::parse(url.expose_secret()) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        })
    }
}
