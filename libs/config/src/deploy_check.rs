//! Production readiness checks, in the spirit of Django's `check --deploy`.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::settings::{DEVELOPMENT_SECRET_KEY, Environment, Settings};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployProblem {
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for DeployProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Keys shorter than this are guessable; 32 bytes matches a HMAC-SHA256 key.
const MIN_SECRET_KEY_LEN: usize = 32;

pub(crate) fn weak_secret_key(key: &SecretString) -> Option<String> {
    let text = key.expose_secret();
    if text == DEVELOPMENT_SECRET_KEY {
        return Some(
            "secret_key is the development key: generate one with `openssl rand -hex 32`"
                .to_owned(),
        );
    }
    if text.len() < MIN_SECRET_KEY_LEN {
        return Some(format!(
            "secret_key is too short: use at least {MIN_SECRET_KEY_LEN} random bytes"
        ));
    }
    let distinct = text
        .chars()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct < 8 {
        return Some("secret_key is not random enough: use `openssl rand -hex 32`".to_owned());
    }
    None
}

pub(crate) fn deploy_problems(settings: &Settings) -> Vec<DeployProblem> {
    let mut problems = Vec::new();
    let mut add = |key, message: String| problems.push(DeployProblem { key, message });
    if settings.environment != Environment::Production {
        add(
            "environment",
            format!("is {}, not production", settings.environment),
        );
    }
    if let Some(message) = weak_secret_key(&settings.secret_key) {
        add("secret_key", message);
    }
    if !settings.server.secure_cookies {
        add(
            "server.secure_cookies",
            "is off: session cookies would travel over plain HTTP".to_owned(),
        );
    }
    if settings.server.public_url.scheme() != "https" {
        add("server.public_url", "does not use https".to_owned());
    }
    if !requires_tls(
        &settings.database.url,
        &["require", "verify-ca", "verify-full"],
        "sslmode",
    ) {
        add(
            "database.url",
            "does not set sslmode=require (or verify-full)".to_owned(),
        );
    }
    if !Url::parse(settings.redis.url.expose_secret()).is_ok_and(|u| u.scheme() == "rediss") {
        add("redis.url", "does not use TLS (rediss://)".to_owned());
    }
    let smtp = Url::parse(settings.smtp.url.expose_secret());
    let smtp_tls = smtp.as_ref().is_ok_and(|u| {
        u.scheme() == "smtps" || u.query_pairs().any(|(k, v)| k == "tls" && v == "required")
    });
    if !smtp_tls {
        add(
            "smtp.url",
            "does not use TLS (smtps:// or ?tls=required)".to_owned(),
        );
    }
    problems
}

fn requires_tls(url: &SecretString, accepted: &[&str], param: &str) -> bool {
    Url::parse(url.expose_secret()).is_ok_and(|u| {
        u.query_pairs()
            .any(|(k, v)| k == param && accepted.contains(&v.as_ref()))
    })
}
