use tenantkit_accounts::AccountError;
use tenantkit_db::DbError;
use tenantkit_jobs::JobError;

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the address {0:?} is taken")]
    SlugTaken(String),
    /// Not there, or not this tenant's: the two are never told apart.
    #[error("not found")]
    NotFound,
    /// The actor's role does not allow the change.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The change would leave the tenant without an owner.
    #[error("a tenant must keep at least one owner")]
    LastOwner,
    #[error("{0}")]
    Conflict(&'static str),
    /// The invitation was withdrawn by the organisation.
    #[error("this invitation was withdrawn")]
    InvitationRevoked,
    /// The plan's seats are all taken by members and open invitations.
    #[error("the plan's {0} seats are all taken")]
    SeatLimit(u32),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Billing(#[from] tenantkit_billing::BillingError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl TenancyError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<tenantkit_accounts::tokens::TokenError> for TenancyError {
    fn from(error: tenantkit_accounts::tokens::TokenError) -> Self {
        Self::Account(AccountError::Token(error))
    }
}
