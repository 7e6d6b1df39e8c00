//! Domain outcomes → HTTP, in one place. API errors are RFC 9457 problem+json; a 500 is logged
//! once with its cause chain and the client sees only a request id to quote.

use std::error::Error as StdError;

use poem_openapi::{ApiResponse, Object, payload::Json, types::ToJSON};
use tenantkit_accounts::AccountError;
use tenantkit_billing::BillingError;
use tenantkit_db::DbError;
use tenantkit_storage::{ScanError, StorageError};
use tenantkit_tenancy::TenancyError;

use crate::pages::PageError;

/// How long a client should wait before retrying while a dependency is down.
pub const RETRY_AFTER_SECS: u32 = 5;

/// RFC 9457 problem details.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// Field-level errors, for invalid input.
    #[oai(skip_serializing_if_is_empty, default)]
    pub errors: Vec<FieldProblem>,
}

#[derive(Debug, Clone, Object)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: u16, slug: &str, title: &str) -> Self {
        Self {
            kind: format!("https://tenantkit.dev/problems/{slug}"),
            title: title.to_owned(),
            status,
            detail: None,
            errors: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// The request could not be read (malformed JSON, wrong types).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No credentials, or credentials that are not valid: send an API key or sign in.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// The caller is known but may not do this (their role, a missing CSRF token).
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// Not found — also the answer for another tenant's ids.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The body is larger than the API accepts.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// The request conflicts with existing data (a taken address or email).
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request was read but a value is invalid; `errors` names the fields.
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    /// Too many requests: from this client, or beyond the plan's API requests per minute. Retry
    /// after the given seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// A dependency is down; retry after the given seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u32),
    /// An unexpected failure; details are in the server log under the request id.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

/// A request that could not be read, answered with the matching documented status. Used by
/// poem-openapi for the operations' own errors and by `render_poem_error` for the rest.
fn bad_request(error: poem::Error) -> ApiError {
    let detail = error.to_string();
    match error.status() {
        poem::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(Json(
            Problem::new(413, "payload-too-large", "Payload too large").detail(detail),
        )),
        poem::http::StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(Json(
            Problem::new(415, "unsupported-media-type", "Unsupported media type").detail(detail),
        )),
        _ => match failed_field_rule(&detail) {
            Some((field, message)) => ApiError::invalid(field, message),
            None => ApiError::BadRequest(Json(
                Problem::new(400, "bad-request", "Bad request").detail(detail),
            )),
        },
    }
}

/// A field that broke a schema rule, from poem-openapi's message
/// ("... field `email` verification failed. minLength(3)"), as (field, plain-words message),
/// so a well-formed body with an invalid value gets the same 422 as a domain refusal.
fn failed_field_rule(detail: &str) -> Option<(&str, String)> {
    let (_, rest) = detail.split_once("field `")?;
    let (field, rest) = rest.split_once('`')?;
    let rule = rest.strip_prefix(" verification failed. ")?;
    let number = |prefix: &str| {
        rule.strip_prefix(prefix)?
            .strip_suffix(')')
            .map(str::to_owned)
    };
    let message = if let Some(n) = number("minLength(") {
        format!("must be at least {n} characters")
    } else if let Some(n) = number("maxLength(") {
        format!("must be at most {n} characters")
    } else if rule.starts_with("pattern(") {
        "has an invalid format".to_owned()
    } else {
        format!("is invalid ({rule})")
    };
    Some((field, message))
}

impl ApiError {
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(
            Json(Problem::new(401, "unauthorized", "Unauthorized").detail(detail)),
            "Bearer".to_owned(),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(Json(
            Problem::new(403, "forbidden", "Forbidden").detail(detail),
        ))
    }

    /// The organisation is suspended or deleted: its API is closed, with the reason.
    pub fn tenant_closed(status: &str) -> Self {
        Self::Forbidden(Json(
            Problem::new(403, "tenant-suspended", "Organisation suspended").detail(format!(
                "This organisation is {status}; its API is unavailable. Contact support."
            )),
        ))
    }

    /// The plan's seats are all taken (members and open invitations).
    pub fn seat_limit(seats: u32) -> Self {
        Self::Conflict(Json(
            Problem::new(409, "seat-limit", "Seat limit reached").detail(format!(
                "The plan includes {seats} seats and all are taken by members or open \
                 invitations. Choose a larger plan, or revoke an invitation."
            )),
        ))
    }

    /// A payment is overdue past the grace period: the organisation is read-only.
    pub fn billing_restricted() -> Self {
        Self::Forbidden(Json(
            Problem::new(403, "billing-restricted", "Organisation read-only").detail(
                "A payment is overdue, so this organisation is read-only until it is paid. \
                 Owners can update the payment method on the billing page.",
            ),
        ))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut problem = Problem::new(422, "invalid", "Invalid input");
        problem.errors.push(FieldProblem {
            field: field.to_owned(),
            message: message.into(),
        });
        Self::Invalid(Json(problem))
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::UnsupportedMediaType(Json(
            Problem::new(415, "unsupported-media-type", "Unsupported media type").detail(detail),
        ))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(Json(
            Problem::new(409, "conflict", "Conflict").detail(detail),
        ))
    }

    pub fn not_found() -> Self {
        Self::NotFound(Json(Problem::new(404, "not-found", "Not found")))
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::TooManyRequests(
            Json(
                Problem::new(429, "too-many-requests", "Too many requests")
                    .detail(format!("Try again in {retry_after_secs} seconds.")),
            ),
            retry_after_secs,
        )
    }

    /// The organisation's plan does not include `feature`.
    pub fn feature_not_in_plan(feature: &str, plans: &[String]) -> Self {
        Self::Forbidden(Json(
            Problem::new(403, "feature-not-in-plan", "Not included in the plan")
                .detail(feature_not_in_plan_detail(feature, plans)),
        ))
    }

    /// The organisation's plan allows `per_minute` API requests a minute, and they are spent.
    pub fn plan_rate_limited(per_minute: u32, retry_after_secs: u64) -> Self {
        Self::TooManyRequests(
            Json(
                Problem::new(429, "api-rate-limit", "API rate limit reached").detail(format!(
                    "This organisation's plan allows {per_minute} API requests a minute. \
                     Try again in {retry_after_secs} seconds, or move to a larger plan."
                )),
            ),
            retry_after_secs,
        )
    }

    pub fn unavailable() -> Self {
        Self::Unavailable(
            Json(
                Problem::new(503, "unavailable", "Service unavailable")
                    .detail("A dependency is unavailable; retry shortly."),
            ),
            RETRY_AFTER_SECS,
        )
    }

    /// Logs the whole cause chain once; the client gets nothing internal.
    pub fn internal(error: &(dyn StdError + 'static)) -> Self {
        tracing::error!(error = %cause_chain(error), "internal error");
        Self::Internal(Json(Problem::new(500, "internal", "Internal server error")))
    }
}

/// "outer: inner: root" — the whole story on one log line.
/// What a page or the API says when the plan lacks `feature`.
pub(crate) fn feature_not_in_plan_detail(feature: &str, plans: &[String]) -> String {
    match plans {
        [] => format!("This organisation's plan does not include {feature}."),
        plans => format!(
            "This organisation's plan does not include {feature}; these plans do: {}.",
            plans.join(", ")
        ),
    }
}

pub fn cause_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => {
                tracing::warn!(error = %cause_chain(&error), "database unavailable");
                Self::unavailable()
            }
            // A write refused by row level security means the client named another tenant's row.
            DbError::TenantViolation => Self::not_found(),
            // Reached only by text no check refused earlier (a query filter, say).
            DbError::UnstorableText => {
                Self::invalid("request", "Text must not contain NUL (U+0000) characters.")
            }
            other => Self::internal(&other),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Invalid { field, message } => Self::invalid(field, message),
            AccountError::EmailTaken => {
                Self::conflict("An account with this email already exists.")
            }
            AccountError::Db(db) => db.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::Invalid { field, message } => Self::invalid(field, message),
            TenancyError::SlugTaken(slug) => {
                Self::conflict(format!("The address {slug:?} is taken."))
            }
            TenancyError::NotFound => Self::not_found(),
            TenancyError::Forbidden(reason) => Self::forbidden(reason),
            TenancyError::LastOwner => Self::conflict(
                "The organisation must keep at least one owner: make someone else owner first.",
            ),
            TenancyError::Conflict(reason) => Self::conflict(reason),
            TenancyError::InvitationRevoked => Self::not_found(),
            TenancyError::SeatLimit(seats) => Self::seat_limit(seats),
            TenancyError::Billing(billing) => billing.into(),
            TenancyError::Account(account) => account.into(),
            TenancyError::Db(db) => db.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(error: BillingError) -> Self {
        match error {
            BillingError::NotConfigured => {
                Self::conflict("Billing is not configured on this installation.")
            }
            BillingError::UnknownPlan(_) => Self::invalid("plan", "Choose one of the plans."),
            BillingError::NoCustomer => {
                Self::conflict("There is nothing to manage yet: choose a plan first.")
            }
            BillingError::NotFound => Self::not_found(),
            BillingError::Conflict(message) => Self::conflict(message),
            BillingError::FeatureNotInPlan { feature, plans } => {
                Self::feature_not_in_plan(feature, &plans)
            }
            BillingError::Invalid { field, message } => Self::invalid(field, message),
            BillingError::Stripe(failure) => {
                tracing::warn!(error = %failure, "Stripe call failed");
                Self::unavailable()
            }
            BillingError::Db(db) => db.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::not_found(),
            StorageError::Conflict(message) => Self::conflict(message),
            error @ (StorageError::QuotaExceeded { .. } | StorageError::TooLarge { .. }) => {
                Self::PayloadTooLarge(Json(
                    Problem::new(413, "payload-too-large", "Payload too large")
                        .detail(format!("{error}.")),
                ))
            }
            StorageError::Invalid { field, message } => Self::invalid(field, message),
            StorageError::RangeNotSatisfiable(range) => Self::invalid(
                "Range",
                format!("outside the file ({})", range.content_range()),
            ),
            StorageError::Body(error) => Self::BadRequest(Json(
                Problem::new(400, "bad-request", "Bad request")
                    .detail(format!("The upload was interrupted: {error}")),
            )),
            StorageError::Scan(ScanError::Infected { .. }) => {
                Self::invalid("file", "The file was refused by the malware scanner.")
            }
            StorageError::Db(db) => db.into(),
            other if other.is_unavailable() => {
                tracing::warn!(error = %cause_chain(&other), "file store unavailable");
                Self::unavailable()
            }
            other => Self::internal(&other),
        }
    }
}

impl From<PageError> for ApiError {
    fn from(error: PageError) -> Self {
        match error {
            PageError::SignInRequired => Self::unauthorized("Sign in, or send an API key."),
            PageError::NotFound => Self::not_found(),
            PageError::Unavailable => Self::unavailable(),
            PageError::TooMany => Self::too_many_requests(u64::from(RETRY_AFTER_SECS)),
            PageError::Csrf | PageError::TwoFactorRequired | PageError::Forbidden(_) => {
                Self::forbidden(error.to_string())
            }
            PageError::TenantClosed(_) => Self::tenant_closed("suspended"),
            PageError::UnstorableText => DbError::UnstorableText.into(),
            PageError::Internal(_) => Self::internal(&error),
        }
    }
}

/// Any error poem raises outside an operation (unknown route, wrong method, oversized body),
/// rendered as problem+json for the API and as a plain page for browsers.
pub(crate) fn render_poem_error(request_path: &str, error: poem::Error) -> poem::Response {
    // An operation's own error response (an `ApiError`) is already complete.
    if error.is_from_response() {
        return error.into_response();
    }
    let status = error.status();
    // Unreadable requests raised by poem-openapi before an operation runs get the documented
    // answers (400, 413, 415, or 422 naming the field).
    if request_path.starts_with("/api") && matches!(status.as_u16(), 400 | 413 | 415) {
        return poem::IntoResponse::into_response(bad_request(error));
    }
    if status.is_server_error() {
        tracing::error!(error = %cause_chain(&error as &dyn StdError), "unhandled error");
    }
    let title = status.canonical_reason().unwrap_or("Error");
    let detail = if status.is_server_error() {
        None
    } else {
        Some(error.to_string())
    };
    if request_path.starts_with("/api") {
        let mut problem = Problem::new(
            status.as_u16(),
            &title.to_lowercase().replace(' ', "-"),
            title,
        );
        problem.detail = detail;
        poem::Response::builder()
            .status(status)
            .content_type("application/problem+json")
            .body(problem.to_json_string())
    } else {
        poem::Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(error_page(status.as_u16(), title))
    }
}

/// A minimal error page with the site's stylesheet (no inline style: the CSP forbids it),
/// saying in plain words what went wrong; nothing from the request is echoed.
fn error_page(status: u16, title: &str) -> String {
    let advice = match status {
        400 => "This site could not read the request: part of it is malformed or not valid text.",
        404 => "There is nothing here.",
        405 => "This page does not take that kind of request.",
        413 => "What was sent is larger than this site accepts.",
        415 => "What was sent is not in a form this page takes.",
        500.. => "Something went wrong on our side; it has been logged. Please try again.",
        _ => "The request could not be completed.",
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title>\
         <link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
         <body><main><h1>{status} {title}</h1><p>{advice}</p><p><a href=\"/\">Back to the start page</a></p></main></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::failed_field_rule;

    #[test]
    fn schema_rule_failures_name_their_field_in_plain_words() {
        let detail = "parse request payload error: failed to parse \"SignUpRequest\": field `email` verification failed. minLength(3)";
        assert_eq!(
            failed_field_rule(detail),
            Some(("email", "must be at least 3 characters".to_owned()))
        );
        let pattern =
            "failed to parse \"X\": field `slug` verification failed. pattern(\"^[a-z]$\")";
        assert_eq!(
            failed_field_rule(pattern),
            Some(("slug", "has an invalid format".to_owned()))
        );
        assert_eq!(
            failed_field_rule("expected input type \"string\", found Number"),
            None
        );
    }
}
