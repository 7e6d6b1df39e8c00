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
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
}
