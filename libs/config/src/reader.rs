//! Reads one key at a time from the layered figment and records a clear problem for each
//! missing or unparsable value instead of stopping at the first.

use std::{fmt::Display, str::FromStr};

use figment::{Figment, value::Value};
use secrecy::SecretString;

pub(crate) struct Reader {
    figment: Figment,
    pub(crate) problems: Vec<String>,
}

/// The environment variable that sets `key`, e.g. `server.bind` → `TENANTKIT_SERVER__BIND`.
pub(crate) fn env_name(key: &str) -> String {
    format!("TENANTKIT_{}", key.replace('.', "__").to_uppercase())
}

impl Reader {
    pub(crate) fn new(figment: Figment) -> Self {
        Self {
            figment,
            problems: Vec::new(),
        }
    }

    fn raw(&self, key: &str) -> Option<String> {
        match self.figment.find_value(key).ok()? {
            Value::String(_, s) => Some(s),
            Value::Bool(_, b) => Some(b.to_string()),
            // Env and TOML numbers arrive typed (`USize(1)`, `I64(-3)`, `F64(0.5)`).
            Value::Num(_, n) => n
                .to_u128()
                .map(|n| n.to_string())
                .or_else(|| n.to_i128().map(|n| n.to_string()))
                .or_else(|| n.to_f64().map(|f| f.to_string())),
            Value::Char(_, c) => Some(c.to_string()),
            _ => None,
        }
    }

    /// The value at `key` as figment holds it (tables and arrays too), for structured settings.
    pub(crate) fn value(&self, key: &str) -> Option<Value> {
        self.figment.find_value(key).ok()
    }

    /// Whether any source sets `key` (a default in code does not count).
    pub(crate) fn is_set(&self, key: &str) -> bool {
        self.figment.find_value(key).is_ok()
    }

    pub(crate) fn source(&self, key: &str) -> String {
        self.figment
            .find_metadata(key)
            .map(|m| m.name.to_string())
            .unwrap_or_else(|| "defaults".to_owned())
    }

    /// A value with a default: a present but invalid value is still an error.
    pub(crate) fn or<T>(&mut self, key: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(key).unwrap_or(default)
    }

    pub(crate) fn optional<T>(&mut self, key: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let text = self.raw(key)?;
        match text.trim().parse::<T>() {
            Ok(value) => Some(value),
            Err(error) => {
                self.problems.push(format!(
                    "{key} (set by {}, env {}): invalid value {:?}: {error}",
                    self.source(key),
                    env_name(key),
                    text
                ));
                None
            }
        }
    }

    /// A secret is taken from `key`, or read from the file named by `key_file`
    /// (the usual way Kubernetes mounts secrets). Its text never enters a problem message.
    pub(crate) fn secret(&mut self, key: &str) -> Option<SecretString> {
        if let Some(value) = self.raw(key) {
            return Some(SecretString::from(value));
        }
        let file_key = format!("{key}_file");
        let path = self.raw(&file_key)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(SecretString::from(
                text.trim_end_matches(['\n', '\r']).to_owned(),
            )),
            Err(error) => {
                self.problems.push(format!(
                    "{file_key} (env {}): cannot read {path:?}: {error}",
                    env_name(&file_key)
                ));
                None
            }
        }
    }

    pub(crate) fn required_secret(&mut self, key: &str) -> Option<SecretString> {
        let secret = self.secret(key);
        if secret.is_none()
            && !self
                .problems
                .iter()
                .any(|p| p.starts_with(&format!("{key}_file")))
        {
            self.problems.push(format!(
                "{key} is missing: set {} (or {}_FILE)",
                env_name(key),
                env_name(key)
            ));
        }
        secret
    }
}
