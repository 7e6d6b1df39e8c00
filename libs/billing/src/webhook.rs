//! Receiving a webhook: verify, store, queue, answer. Nothing else happens on the request:
//! Stripe waits for the answer and retries slow endpoints, and the processing needs Stripe
//! calls of its own.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantkit_db::Database;

use crate::{Billing, WebhookError, jobs::ProcessStripeEvent, repo, signature};

/// What became of a verified delivery; both answer 2xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// New: stored, and its processing job queued in the same transaction.
    Stored { event_id: String },
    /// Seen before (Stripe redelivers): nothing done.
    Duplicate { event_id: String },
}

/// The fields every event has; the rest is stored as it came.
struct Envelope {
    id: String,
    event_type: String,
    created: DateTime<Utc>,
}

fn envelope(payload: &Value) -> Result<Envelope, WebhookError> {
    let text = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .map(str::to_owned)
            .ok_or_else(|| WebhookError::BadPayload(format!("no {key}")))
    };
    let created = payload
        .get("created")
        .and_then(Value::as_i64)
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| WebhookError::BadPayload("no created".to_owned()))?;
    Ok(Envelope {
        id: text("id")?,
        event_type: text("type")?,
        created,
    })
}

impl Billing {
    /// Verifies `signature_header` (`Stripe-Signature`) over `raw_body` exactly as received,
    /// then stores the event and queues its processing in one transaction.
    pub async fn receive_webhook(
        &self,
        db: &Database,
        raw_body: &[u8],
        signature_header: &str,
        now: DateTime<Utc>,
    ) -> Result<Received, WebhookError> {
        let settings = self.settings();
        if settings.webhook_secrets.is_empty() {
            return Err(WebhookError::NotConfigured);
        }
        signature::verify(
            signature_header,
            raw_body,
            &settings.webhook_secrets,
            now.timestamp(),
            settings.webhook_tolerance.as_secs(),
        )?;
        let payload: Value = serde_json::from_slice(raw_body)
            .map_err(|e| WebhookError::BadPayload(e.to_string()))?;
        let event = envelope(&payload)?;
        let mut tx = db.global().await?;
        let stored = repo::events::insert(
            tx.conn(),
            &event.id,
            &event.event_type,
            event.created,
            &payload,
        )
        .await?;
        if !stored {
            tracing::info!(event_id = %event.id, "stripe event delivered again; nothing to do");
            return Ok(Received::Duplicate { event_id: event.id });
        }
        let job = ProcessStripeEvent {
            event_id: event.id.clone(),
        };
        tenantkit_jobs::enqueue_global(tx.conn(), &job).await?;
        tx.commit().await?;
        tracing::info!(event_id = %event.id, event_type = %event.event_type, "stripe event stored");
        Ok(Received::Stored { event_id: event.id })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_event_needs_an_id_a_type_and_a_creation_time() {
        let ok = envelope(&json!({"id": "evt_1", "type": "invoice.paid", "created": 1700000000}))
            .unwrap();
        assert_eq!(
            (ok.id.as_str(), ok.event_type.as_str()),
            ("evt_1", "invoice.paid")
        );
        assert_eq!(ok.created.timestamp(), 1_700_000_000);
        for bad in [
            json!({"type": "invoice.paid", "created": 1}),
            json!({"id": "", "type": "invoice.paid", "created": 1}),
            json!({"id": "evt_1", "created": 1}),
            json!({"id": "evt_1", "type": "x", "created": "yesterday"}),
            json!({"id": "evt_1", "type": "x", "created": i64::MAX}),
            json!([1, 2]),
        ] {
            assert!(
                matches!(envelope(&bad), Err(WebhookError::BadPayload(_))),
                "{bad}"
            );
        }
    }
}
