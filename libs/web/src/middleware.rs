//! Middleware applied to every request, outermost first:
//! request id → observation (span, one log line, metrics) → security headers → error rendering.

use std::time::Instant;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, header},
    PathPattern,
};
use tracing::Instrument;
use uuid::Uuid;

pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The request id a client sent, when it is safe to echo (short, plain characters).
fn accepted_request_id(req: &Request) -> Option<String> {
    let value = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    ok.then(|| value.to_owned())
}

/// Tags each request with an id, runs it in a span that carries the route template (not the
/// raw path, which would explode metric cardinality), and logs one line when it completes.
pub(crate) struct Observe;

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint(ep)
    }
}

pub(crate) struct ObserveEndpoint<E>(E);

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let request_id = accepted_request_id(&req).unwrap_or_else(|| Uuid::now_v7().to_string());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            http.method = %method,
            http.route = tracing::field::Empty,
            http.status = tracing::field::Empty,
        );
        let started = Instant::now();
        let mut response = async {
            match self.0.call(req).await {
                Ok(output) => output.into_response(),
                Err(error) => crate::problem::render_poem_error(&path, &error),
            }
        }
        .instrument(span.clone())
        .await;
        let route = response
            .data::<PathPattern>()
            .map(|p| p.0.to_string())
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        span.record("http.route", route.as_str());
        span.record("http.status", status);
        span.in_scope(|| {
            tracing::info!(latency_ms = elapsed.as_secs_f64() * 1000.0, "{method} {route} {status}")
        });
        let labels = [
            ("method", method.to_string()),
            ("route", route),
            ("status", status.to_string()),
        ];
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Ok(response)
    }
}

/// Conservative browser security headers on every response.
pub(crate) struct SecurityHeaders {
    pub(crate) hsts: bool,
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        SecurityHeadersEndpoint { inner: ep, hsts: self.hsts }
    }
}

pub(crate) struct SecurityHeadersEndpoint<E> {
    inner: E,
    hsts: bool,
}

/// Pages are self-contained: no third-party origin may load anything. The API docs page
/// ships inline scripts, so it alone gets `'unsafe-inline'` for scripts and styles.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let docs = req.uri().path() == "/api/docs";
        let mut response = self.inner.call(req).await?.into_response();
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if docs { DOCS_CSP } else { CSP }),
        );
        headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
        headers.insert(
            "permissions-policy",
            HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
        );
        if self.hsts {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            );
        }
        Ok(response)
    }
}
