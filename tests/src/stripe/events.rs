//! Events as Stripe sends them to a webhook endpoint: the fixture `event` envelope around an
//! object, signed with the endpoint's secret in a `Stripe-Signature` header.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::objects::{fixture, overlay, random_id};

/// The API version async-stripe 1.0.0-rc.10 is generated for (`stripe_shared::version::VERSION`)
/// and sends as `Stripe-Version`; events carry it as `api_version`.
pub const API_VERSION: &str = "2026-09-30.endive";

/// An event of `type_` (e.g. "checkout.session.completed") around `object`, created at `created`
/// (Unix seconds), with a fresh `evt_` id.
pub fn event(type_: &str, object: &Value, created: i64) -> Value {
    let mut event = fixture("event");
    overlay(
        &mut event,
        json!({
            "id": random_id("evt_1", 23),
            "type": type_,
            "created": created,
            "api_version": API_VERSION,
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "data": { "object": object },
        }),
    );
    event
}

/// The hex HMAC-SHA256 of `"{timestamp}.{payload}"` under `secret`: one `v1` value.
pub fn signature_v1(payload: &str, timestamp: i64, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `Stripe-Signature` header value `t={timestamp},v1={hex}` for `payload`.
pub fn sign(payload: &str, timestamp: i64, secret: &str) -> String {
    sign_many(payload, timestamp, &[secret])
}

/// A header with one `v1` per secret, in order (as Stripe sends while a secret is rolled).
pub fn sign_many(payload: &str, timestamp: i64, secrets: &[&str]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&signature_v1(payload, timestamp, secret));
    }
    header
}

/// How [`super::FakeStripe::deliver_with`] signs and sends one event.
#[derive(Clone, Debug, Default)]
pub struct DeliveryOptions {
    /// Signature time (Unix seconds); now when `None`. `Some(now - 301)` is too old for Stripe's
    /// 300 s tolerance.
    pub timestamp: Option<i64>,
    /// One `v1` value per secret, in order; the configured webhook secret when `None`.
    pub secrets: Option<Vec<String>>,
    /// The whole `Stripe-Signature` header, bypassing signing (malformed headers).
    pub header: Option<String>,
    /// Another target than the configured webhook URL.
    pub url: Option<String>,
}

impl DeliveryOptions {
    /// Signed `seconds` before now.
    pub fn aged(seconds: i64) -> Self {
        Self {
            timestamp: Some(chrono::Utc::now().timestamp() - seconds),
            ..Self::default()
        }
    }

    /// Signed with these secrets only (e.g. a wrong one, or a wrong one and the right one).
    pub fn secrets(secrets: &[&str]) -> Self {
        Self {
            secrets: Some(secrets.iter().map(|s| s.to_string()).collect()),
            ..Self::default()
        }
    }

    /// With this `Stripe-Signature` header as is.
    pub fn header(header: impl Into<String>) -> Self {
        Self {
            header: Some(header.into()),
            ..Self::default()
        }
    }
}

/// What a webhook endpoint answered to one delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    /// The HTTP status; `None` when the endpoint could not be reached.
    pub status: Option<u16>,
    pub response_body: String,
    /// The exact body sent (pretty-printed JSON, as Stripe sends it) and its signature header.
    pub payload: String,
    pub signature: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Signs `event` and POSTs it to `url` as Stripe does.
pub(super) async fn send(
    http: &reqwest::Client,
    url: &str,
    event: &Value,
    secret: &str,
    options: &DeliveryOptions,
) -> Delivery {
    let payload = serde_json::to_string_pretty(event).expect("an event serialises");
    let timestamp = options
        .timestamp
        .unwrap_or_else(|| chrono::Utc::now().timestamp());
    let signature = match (&options.header, &options.secrets) {
        (Some(header), _) => header.clone(),
        (None, Some(secrets)) => {
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            sign_many(&payload, timestamp, &secrets)
        }
        (None, None) => sign(&payload, timestamp, secret),
    };
    let result = http
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", &signature)
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .body(payload.clone())
        .send()
        .await;
    let (status, response_body) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            (Some(status), response.text().await.unwrap_or_default())
        }
        Err(error) => (None, error.to_string()),
    };
    Delivery {
        event_id: event["id"].as_str().unwrap_or_default().to_owned(),
        event_type: event["type"].as_str().unwrap_or_default().to_owned(),
        status,
        response_body,
        payload,
        signature,
        at: chrono::Utc::now(),
    }
}

/// The top-level fields of `before` that differ in `after`, with their old values: an
/// `*.updated` event's `data.previous_attributes`.
pub(super) fn previous_attributes(before: &Value, after: &Value) -> Value {
    let mut changed = serde_json::Map::new();
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for (key, old) in before {
            if after.get(key) != Some(old) {
                changed.insert(key.clone(), old.clone());
            }
        }
    }
    Value::Object(changed)
}

pub(super) fn request_id() -> String {
    random_id("req_", 14)
}
