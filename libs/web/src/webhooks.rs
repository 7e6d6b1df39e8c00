//! `POST /webhooks/stripe`: Stripe's deliveries. Verified against every configured secret,
//! stored and queued in one transaction, answered at once; the worker processes them. Not a
//! page (no session, no CSRF: the signature is the authentication) and not part of the
//! client API, so it lives beside both.

use chrono::Utc;
use poem::{Body, Request, Response, handler, http::StatusCode, web::Data};
use poem_openapi::types::ToJSON;
use tenantkit_billing::{Received, WebhookError};

use crate::{AppState, problem::Problem};

/// Stripe's events are a few kilobytes; this leaves room and bounds what is read.
const MAX_EVENT_BYTES: usize = 512 * 1024;

fn answer(status: StatusCode, problem: Option<Problem>) -> Response {
    match problem {
        Some(problem) => Response::builder()
            .status(status)
            .content_type("application/problem+json")
            .body(problem.to_json_string()),
        None => Response::builder()
            .status(status)
            .content_type("application/json")
            .body(r#"{"received":true}"#),
    }
}

#[handler]
pub(crate) async fn stripe(state: Data<&AppState>, request: &Request, body: Body) -> Response {
    let Ok(raw) = body.into_bytes_limit(MAX_EVENT_BYTES).await else {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(Problem::new(413, "payload-too-large", "Payload too large")),
        );
    };
    let signature = request
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state
        .billing
        .receive_webhook(&state.db, &raw, signature, Utc::now())
        .await
    {
        Ok(Received::Stored { event_id }) => {
            tracing::info!(event_id, "Stripe event queued");
            answer(StatusCode::OK, None)
        }
        Ok(Received::Duplicate { event_id }) => {
            tracing::info!(event_id, "Stripe event seen before");
            answer(StatusCode::OK, None)
        }
        Err(error @ (WebhookError::Db(_) | WebhookError::Job(_))) => {
            // Stripe delivers again later; nothing was stored.
            tracing::warn!(error = %crate::problem::cause_chain(&error), "Stripe event not stored");
            let mut response = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(Problem::new(503, "unavailable", "Temporarily unavailable")),
            );
            response
                .headers_mut()
                .insert("retry-after", poem::http::HeaderValue::from_static("5"));
            response
        }
        Err(WebhookError::NotConfigured) => answer(
            StatusCode::NOT_FOUND,
            Some(
                Problem::new(404, "not-found", "Not found")
                    .detail("Stripe webhooks are not configured here."),
            ),
        ),
        Err(error) => {
            tracing::warn!(%error, "Stripe webhook refused");
            answer(
                StatusCode::BAD_REQUEST,
                Some(Problem::new(400, "bad-webhook", "Bad webhook").detail(error.to_string())),
            )
        }
    }
}
