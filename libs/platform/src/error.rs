use tenantkit_db::DbError;
use tenantkit_jobs::JobError;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The acting user is not (or no longer) a platform admin.
    #[error("platform admins only")]
    NotAdmin,
    #[error("not found")]
    NotFound,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The action does not apply in the current state (suspending a suspended tenant).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Billing(#[from] tenantkit_billing::BillingError),
}

impl PlatformError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for PlatformError {
    fn from(error: sqlx::Error) -> Self {
        Self::Db(error.into())
    }
}
