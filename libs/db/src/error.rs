use thiserror::Error;

/// Database failures, split so callers can map the ones a client can cause.
#[derive(Debug, Error)]
pub enum DbError {
    /// A unique constraint refused the write; carries the constraint's name.
    #[error("unique constraint {0} violated")]
    UniqueViolation(String),
    /// Row level security refused a write (a row for another tenant).
    #[error("row level security refused the write")]
    TenantViolation,
    /// Text PostgreSQL cannot store (a NUL character, 22021): the client's input, not a fault.
    #[error("text PostgreSQL cannot store (a NUL character)")]
    UnstorableText,
    /// The database cannot be reached or the pool is exhausted; worth a retry later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                DbError::UniqueViolation(db.constraint().unwrap_or_default().to_owned())
            }
            // 42501 insufficient_privilege is what a failed `with check` policy raises.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
                DbError::TenantViolation
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => {
                DbError::UnstorableText
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                DbError::Unavailable(error)
            }
            // 57P01..57P03: the server is shutting down or starting up; 57014: a statement
            // ran past statement_timeout (overload, not a client mistake).
            sqlx::Error::Database(db)
                if db
                    .code()
                    .as_deref()
                    .is_some_and(|code| code.starts_with("57P") || code == "57014") =>
            {
                DbError::Unavailable(error)
            }
            _ => DbError::Other(error),
        }
    }
}

impl DbError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }

    /// Whether PostgreSQL refused text it cannot store anywhere in `error`'s chain of causes,
    /// as [`DbError::UnstorableText`] or as the raw sqlx error (22021) some crates carry.
    pub fn is_unstorable_text_in(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut cause = Some(error);
        while let Some(error) = cause {
            let unstorable = matches!(error.downcast_ref(), Some(DbError::UnstorableText))
                || error
                    .downcast_ref::<sqlx::Error>()
                    .and_then(sqlx::Error::as_database_error)
                    .and_then(|e| e.code())
                    .is_some_and(|code| code == "22021");
            if unstorable {
                return true;
            }
            cause = error.source();
        }
        false
    }
}
