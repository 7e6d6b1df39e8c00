//! Form-encoded parameters as Stripe reads them: `metadata[tenant_id]=...`,
//! `line_items[0][price]=...`, `expand[]=...`; and Stripe's error bodies.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Decoded `key=value` pairs, in order, keys with their brackets (`metadata[tenant_id]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(encoded: &str) -> Self {
        Self(
            url::form_urlencoded::parse(encoded.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The same parameters, whatever their order (a `HashMap` of metadata serialises in any
    /// order): how Stripe compares a retried request with the first under one idempotency key.
    pub fn same_as(&self, other: &Params) -> bool {
        let mut mine = self.0.clone();
        let mut theirs = other.0.clone();
        mine.sort();
        theirs.sort();
        mine == theirs
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).map(|v| v == "true")
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::invalid(key, format!("Invalid integer: {v}"))
                        .code("parameter_invalid_integer")
                })
            })
            .transpose()
    }

    /// `prefix[key]=value` pairs as `key → value` (e.g. `metadata`).
    pub fn map(&self, prefix: &str) -> BTreeMap<String, String> {
        let start = format!("{prefix}[");
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix(&start)?.strip_suffix(']')?;
                (!key.contains('[')).then(|| (key.to_owned(), v.clone()))
            })
            .collect()
    }

    /// The entries of an array parameter: `prefix[0][price]=a&prefix[0][quantity]=2` gives one
    /// `Params` with `price` and `quantity`, in index order.
    pub fn list(&self, prefix: &str) -> Vec<Params> {
        let start = format!("{prefix}[");
        let mut entries: BTreeMap<usize, Params> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&start) else {
                continue;
            };
            let Some((index, rest)) = rest.split_once(']') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            // `[price]` → `price`; `[price_data][currency]` → `price_data[currency]`.
            let key = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((name, tail)) => format!("{name}{tail}"),
                None => continue,
            };
            entries.entry(index).or_default().0.push((key, v.clone()));
        }
        entries.into_values().collect()
    }

    /// The values of `prefix[]=a` or `prefix[0]=a` (e.g. `expand`).
    pub fn values(&self, prefix: &str) -> Vec<String> {
        let start = format!("{prefix}[");
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(&start)
                    .and_then(|r| r.strip_suffix(']'))
                    .is_some_and(|i| i.is_empty() || i.parse::<usize>().is_ok())
            })
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A Stripe error: `{"error": {"type": ..., "code": ..., "message": ..., "param": ...}}`.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
            param: (!param.is_empty()).then(|| param.to_owned()),
        }
    }

    pub fn missing_param(param: &str) -> Self {
        Self::invalid(param, format!("Missing required param: {param}.")).code("parameter_missing")
    }

    /// `No such customer: 'cus_x'`: 404 when the object is the path's, 400 when a parameter
    /// names it (as Stripe answers).
    pub fn no_such(what: &str, id: &str, param: &str) -> Self {
        let mut error =
            Self::invalid(param, format!("No such {what}: '{id}'")).code("resource_missing");
        if param == "id" {
            error.status = 404;
        }
        error
    }

    pub fn not_found(method: &str, path: &str) -> Self {
        Self {
            status: 404,
            kind: "invalid_request_error",
            code: None,
            message: format!(
                "Unrecognized request URL ({method}: {path}). The fake Stripe does not answer \
                 this endpoint: add it to tests/src/stripe."
            ),
            param: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self {
            status: 401,
            kind: "invalid_request_error",
            code: None,
            message: "You did not provide an API key. You need to provide your API key in the \
                      Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                      YOUR_SECRET_KEY')."
                .into(),
            param: None,
        }
    }

    pub fn idempotency_mismatch(key: &str) -> Self {
        Self {
            status: 400,
            kind: "idempotency_error",
            code: None,
            message: format!(
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with. Try using a key other than '{key}' if you meant to \
                 execute a different request."
            ),
            param: None,
        }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn body(&self) -> Value {
        let mut error = json!({ "type": self.kind, "message": self.message });
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}
