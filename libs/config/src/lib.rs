//! Configuration: typed settings read from defaults, then an optional TOML file, then the
//! environment. Every value is validated at start-up and every problem is reported at once,
//! one line each, naming the key and the environment variable that sets it.
//! Secrets are `SecretString`s: their `Debug` prints `[REDACTED]`, so they cannot reach logs.

mod billing;
mod deploy_check;
mod reader;
mod settings;
mod storage;

pub use billing::{BillingSettings, FREE_PLAN, PlanSettings};
pub use deploy_check::DeployProblem;
pub use secrecy::{ExposeSecret, SecretString};
pub use settings::{
    AdminSettings, DatabaseSettings, Environment, LogFormat, LogSettings, RateLimitSettings,
    RedisSettings, ServerSettings, Settings, SmtpSettings, WorkerSettings, redacted_url,
};
pub use storage::{S3Settings, StorageBackend, StorageSettings};

/// Every problem found while loading, in the order of the keys.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests;
