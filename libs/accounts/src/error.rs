use tenantkit_db::DbError;
use tenantkit_jobs::JobError;

use crate::tokens::{ConsumeError, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("an account with this email already exists")]
    EmailTaken,
    /// An emailed link that is forged, expired, used, or outdated by a password/email change.
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("no such user")]
    UnknownUser,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl AccountError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<ConsumeError> for AccountError {
    fn from(error: ConsumeError) -> Self {
        match error {
            ConsumeError::Token(token) => Self::Token(token),
            ConsumeError::Db(db) => Self::Db(db),
        }
    }
}
