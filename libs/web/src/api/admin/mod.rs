//! The platform admin API: the admin area's ground as JSON. Only a signed-in platform admin's
//! session (two-factor on, not impersonating) gets here; API keys act for one organisation and
//! never reach it. Everyone else gets 404, as in the admin area.

mod jobs;
mod tenants;
mod users;

pub(crate) use jobs::AdminJobsApi;
pub(crate) use tenants::AdminTenantsApi;
pub(crate) use users::AdminUsersApi;

use poem_openapi::{ApiResponse, Object};
use tenantkit_platform::{Admin, PlatformError, Reason};

use super::{caller::Caller, text::Text};
use crate::ApiError;

impl Caller {
    /// The platform admin behind this call, or 404 for anyone else.
    // `ApiError` is the operations' own response type; boxing it would only move the size.
    #[allow(clippy::result_large_err)]
    fn platform_admin(&self) -> Result<Admin, ApiError> {
        match self {
            Self::Session { me, .. } => me.platform_admin().ok_or_else(ApiError::not_found),
            Self::Key(_) => Err(ApiError::not_found()),
        }
    }
}

impl From<PlatformError> for ApiError {
    fn from(error: PlatformError) -> Self {
        match error {
            PlatformError::NotAdmin | PlatformError::NotFound => Self::not_found(),
            PlatformError::Invalid { field, message } => Self::invalid(field, message),
            PlatformError::Conflict(message) => Self::conflict(message),
            PlatformError::Db(db) => db.into(),
            PlatformError::Billing(billing) => billing.into(),
            other => Self::internal(&other),
        }
    }
}

/// Why: 1 to 500 characters, kept in the audit log.
#[derive(Object)]
struct ReasonBody {
    #[oai(validator(min_length = 1, max_length = 500))]
    reason: Text,
}

#[derive(ApiResponse)]
enum Done {
    #[oai(status = 204)]
    NoContent,
}

#[allow(clippy::result_large_err)] // as `platform_admin`
fn reason(text: &Text) -> Result<Reason, ApiError> {
    Reason::new(text.0.clone())
        .ok_or_else(|| ApiError::invalid("reason", "Give a reason of 1 to 500 characters."))
}

fn reading(what: &str) -> Reason {
    Reason::new(format!("admin API: {what}")).expect("non-empty")
}
