//! Middleware applied to every request, outermost first:
//! request id → observation (span, one log line, metrics) → security headers → error rendering
//! → text that is not UTF-8 refused; and the API's body limit.

use std::time::Instant;

use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result,
    http::{HeaderValue, header},
};
use tracing::Instrument;
use uuid::Uuid;

pub(crate) const REQUEST_ID: &str = "x-request-id";

const PROBE_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The request id a client sent, when it is safe to echo (short, plain characters).
fn accepted_request_id(req: &Request) -> Option<String> {
    let value = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
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
        let (mut response, route) = async {
            match self.0.call(req).await {
                Ok(output) => {
                    let response = output.into_response();
                    let route = response.data::<PathPattern>().cloned();
                    (response, route)
                }
                Err(error) => {
                    let route = error.data::<PathPattern>().cloned();
                    (crate::problem::render_poem_error(&path, error), route)
                }
            }
        }
        .instrument(span.clone())
        .await;
        let route = route.map_or_else(|| "unmatched".to_owned(), |p| p.0.to_string());
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        span.record("http.route", route.as_str());
        span.record("http.status", status);
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        span.in_scope(|| {
            // Probes and scrapes arrive every few seconds: logging them at info would bury
            // the requests people look for.
            if PROBE_ROUTES.contains(&route.as_str()) && status < 500 {
                tracing::debug!(latency_ms, "{method} {route} {status}")
            } else {
                tracing::info!(latency_ms, "{method} {route} {status}")
            }
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
        SecurityHeadersEndpoint {
            inner: ep,
            hsts: self.hsts,
        }
    }
}

pub(crate) struct SecurityHeadersEndpoint<E> {
    inner: E,
    hsts: bool,
}

/// Pages are self-contained: no third-party origin may load anything. The API docs page
/// ships inline scripts, so it alone gets `'unsafe-inline'` for scripts and styles.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
/// [`CSP`] for a page whose forms are answered by a redirect to these origins (the billing
/// page's: Stripe Checkout and the billing portal). Browsers hold a form's submission, and
/// every redirect it leads to, to the page's `form-action`.
pub(crate) fn csp_with_form_targets(origins: &[String]) -> String {
    CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origins.join(" ")),
    )
}

const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let docs = req.uri().path() == "/api/docs";
        let mut response = self.inner.call(req).await?.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
        // A page may have set a policy of its own (see `csp_with_form_targets`).
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(if docs { DOCS_CSP } else { CSP }),
            );
        }
        headers.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
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

/// Refuses bodies over the limit with 413: by `Content-Length` before reading, and chunked
/// bodies (no length declared) as soon as they pass it while read.
/// Unlike poem's `SizeLimit`, a request without a body (a GET) needs no `Content-Length`.
pub(crate) struct BodyLimit(pub(crate) usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

/// `POST …/tenants/{id}/files` and `PATCH …/tenants/{id}/uploads/{upload}`: file bytes, the
/// bodies the JSON limit does not bound (the storage limits do).
fn is_file_upload(req: &Request) -> bool {
    let segments: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    match *req.method() {
        poem::http::Method::POST => matches!(segments.as_slice(), [.., "tenants", _, "files"]),
        poem::http::Method::PATCH => {
            matches!(segments.as_slice(), [.., "tenants", _, "uploads", _])
        }
        _ => false,
    }
}

pub(crate) struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if is_file_upload(&req) {
            // Files stream to the store, which enforces `storage.max_file_bytes` and the quota.
            return self.inner.call(req).await;
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(length) if length > self.limit as u64 => {
                return Err(poem::Error::from_status(
                    poem::http::StatusCode::PAYLOAD_TOO_LARGE,
                ));
            }
            Some(_) => {}
            None => {
                // No declared length (chunked): read here, up to the limit, so a longer body is
                // a 413 like a declared one, never cut short into something that still parses.
                // JSON bodies are read whole by the operations anyway.
                let body =
                    req.take_body().into_bytes_limit(self.limit).await.map_err(
                        |error| match error {
                            poem::error::ReadBodyError::PayloadTooLarge => {
                                poem::Error::from_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE)
                            }
                            other => poem::Error::from_string(
                                other.to_string(),
                                poem::http::StatusCode::BAD_REQUEST,
                            ),
                        },
                    )?;
                req.set_body(body);
            }
        }
        self.inner.call(req).await
    }
}

/// Refuses with 400 a request whose text is not UTF-8 once percent-decoded: its path, its
/// query string, a cookie or a form body. The extractors would replace the bad bytes with
/// U+FFFD (a sign-in as "ad\u{FFFD}@…", a folder named after it) or fail deep in a handler;
/// one refusal up front says plainly what is wrong. Form bodies are read here, at most
/// `max_form_bytes` of them (413 beyond), and handed on as read.
pub(crate) struct RefuseUndecodable {
    pub(crate) max_form_bytes: usize,
}

impl<E: Endpoint> Middleware<E> for RefuseUndecodable {
    type Output = RefuseUndecodableEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RefuseUndecodableEndpoint {
            inner: ep,
            max_form_bytes: self.max_form_bytes,
        }
    }
}

pub(crate) struct RefuseUndecodableEndpoint<E> {
    inner: E,
    max_form_bytes: usize,
}

/// Whether `text`, percent-decoded (and `+` read as a space, as forms write it), is UTF-8.
/// A `%` not followed by two hex digits stays as it is, as decoders do.
fn decodes_to_utf8(text: &[u8]) -> bool {
    let hex = |b: &u8| (*b as char).to_digit(16);
    let mut decoded = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        let escaped = match tail {
            [high, low, ..] => hex(high).zip(hex(low)),
            _ => None,
        };
        match (byte, escaped) {
            (b'%', Some((high, low))) => {
                decoded.push((high * 16 + low) as u8);
                rest = &tail[2..];
            }
            (b'+', _) => decoded.push(b' '),
            (byte, _) => decoded.push(byte),
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn refused(status: poem::http::StatusCode, message: &str) -> poem::Error {
    poem::Error::from_string(message, status)
}

impl<E: Endpoint> Endpoint for RefuseUndecodableEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        use poem::http::StatusCode;
        if !decodes_to_utf8(req.uri().path().as_bytes()) {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "The address is not valid UTF-8 once decoded.",
            ));
        }
        if !decodes_to_utf8(req.uri().query().unwrap_or_default().as_bytes()) {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "The query string is not valid UTF-8 once decoded.",
            ));
        }
        let cookies = req.headers().get_all(header::COOKIE);
        if cookies
            .iter()
            .any(|v| std::str::from_utf8(v.as_bytes()).is_err())
        {
            return Err(refused(
                StatusCode::BAD_REQUEST,
                "A cookie is not valid UTF-8.",
            ));
        }
        // Forms are the pages' (the API takes JSON, and file bytes of any declared type).
        if is_form(&req)
            && *req.method() != poem::http::Method::GET
            && !req.uri().path().starts_with("/api/")
        {
            let too_large = || {
                refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form is larger than this site accepts.",
                )
            };
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|length| length > self.max_form_bytes as u64) {
                return Err(too_large());
            }
            // A chunked body declares no length: it is cut off at the limit while read.
            let body = req
                .take_body()
                .into_bytes_limit(self.max_form_bytes)
                .await
                .map_err(|error| match error {
                    poem::error::ReadBodyError::PayloadTooLarge => too_large(),
                    other => refused(StatusCode::BAD_REQUEST, &other.to_string()),
                })?;
            if !decodes_to_utf8(&body) {
                return Err(refused(
                    StatusCode::BAD_REQUEST,
                    "The form is not valid UTF-8 once decoded.",
                ));
            }
            req.set_body(body);
        }
        self.inner.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::decodes_to_utf8;

    #[test]
    fn text_must_be_utf8_once_percent_decoded() {
        for good in [
            "",
            "a=b&c=d",
            "name=%C3%A9t%C3%A9",
            "x=%",
            "x=%zz",
            "a+b",
            "/files/é",
        ] {
            assert!(decodes_to_utf8(good.as_bytes()), "{good}");
        }
        for bad in ["x=%FF", "x=%C3", "%ED%A0%80", "/files/%80"] {
            assert!(!decodes_to_utf8(bad.as_bytes()), "{bad}");
        }
        assert!(!decodes_to_utf8(b"x=\xff"));
    }
}
