use tenantkit_db::DbError;
use tenantkit_jobs::JobError;

/// What billing operations can answer; the web layer maps each variant once.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Stripe keys are not configured: only the free plan and admin-assigned plans exist.
    #[error("billing is not configured")]
    NotConfigured,
    #[error("no plan named {0:?}")]
    UnknownPlan(String),
    /// The tenant has no Stripe customer yet (nothing to manage in the portal).
    #[error("this organisation has no billing account yet")]
    NoCustomer,
    /// No such tenant (or not this tenant's): answered as 404.
    #[error("not found")]
    NotFound,
    /// The tenant's plan does not include `feature`; `plans` names those that do.
    #[error("the plan does not include {feature}")]
    FeatureNotInPlan {
        feature: &'static str,
        plans: Vec<String>,
    },
    /// The request does not fit the tenant's state (checkout while already subscribed).
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Stripe(#[from] StripeFailure),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl BillingError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for BillingError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(error.into())
    }
}

/// A call to Stripe that did not succeed. Requests answer 502/503; jobs retry.
#[derive(Debug, thiserror::Error)]
pub enum StripeFailure {
    #[error("Stripe did not answer in time")]
    Timeout,
    /// Network trouble, 5xx, 429 or an unreadable answer: worth trying again later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// Stripe refused the request (4xx); the message is Stripe's.
    #[error("Stripe refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl From<stripe::StripeError> for StripeFailure {
    fn from(error: stripe::StripeError) -> Self {
        match error {
            stripe::StripeError::Timeout => Self::Timeout,
            stripe::StripeError::Stripe(errors, status)
                if status == 429 || status >= 500 || status == 409 =>
            {
                // 409: the same idempotency key is still in flight; a retry gets its answer.
                Self::Unavailable(format!("{status}: {}", errors.message.unwrap_or_default()))
            }
            stripe::StripeError::Stripe(errors, status) => Self::Rejected {
                status,
                message: errors.message.unwrap_or_else(|| "no message".to_owned()),
            },
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<stripe::StripeError> for BillingError {
    fn from(error: stripe::StripeError) -> Self {
        Self::Stripe(error.into())
    }
}

/// Why a webhook delivery is refused. Every variant is the sender's problem (400), except
/// `Db`, which asks Stripe to deliver again later (5xx).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No webhook secret is configured, so nothing can be verified.
    #[error("webhooks are not configured")]
    NotConfigured,
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("no signature matches")]
    BadSignature,
    #[error("the signature's timestamp is outside the tolerance")]
    TooOld,
    /// Signed, but not an event we can read (no id, type or created).
    #[error("the payload is not a Stripe event: {0}")]
    BadPayload(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl From<sqlx::Error> for WebhookError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<crate::signature::SignatureError> for WebhookError {
    fn from(error: crate::signature::SignatureError) -> Self {
        use crate::signature::SignatureError as E;
        match error {
            E::Missing => Self::MissingSignature,
            E::Malformed => Self::Malformed,
            E::NoMatch => Self::BadSignature,
            E::OutsideTolerance => Self::TooOld,
        }
    }
}
