//! Opening transactions so that a cancelled request can never leave one open on a pooled
//! connection, and with a row level security setting in the same round trip.

use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Begins a transaction on a pooled connection, with `setting` set to `value` for that
/// transaction only when one is given.
///
/// `BEGIN` and `set_config(.., true)` go as one simple query: every request's transaction
/// costs one round trip fewer than `BEGIN` followed by the setting. The value is a UUID printed
/// by `uuid`, hex digits and hyphens only, so writing it into the text cannot inject SQL (the
/// simple query protocol has no bind parameters).
///
/// The begin runs to completion on a task of its own, even when the caller's future is
/// dropped half-way (a client that disconnects, a timeout). sqlx counts a transaction only
/// once `BEGIN`'s answer has arrived, so dropping it earlier queues no rollback, and the
/// connection would go back to the pool inside an open transaction, still carrying this
/// tenant for its next borrower. Finished on its own task, the transaction is dropped there
/// like any other and rolled back.
pub(crate) async fn begin(
    pool: &PgPool,
    setting: Option<(&'static str, Uuid)>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    let begun = tokio::spawn(async move {
        match setting {
            Some((setting, value)) => {
                pool.begin_with(AssertSqlSafe(format!(
                    "BEGIN; SELECT set_config('{setting}', '{}', true)",
                    value.hyphenated()
                )))
                .await
            }
            None => pool.begin().await,
        }
    });
    begun
        .await
        .map_err(|error| sqlx::Error::Io(std::io::Error::other(error)))?
}
