//! The tenant-bound transaction: the only road from domain code to tenant tables.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tenantkit_kernel::TenantId;

use crate::{DbError, scoped_begin};

/// A transaction in which `app.tenant_id` is set for this transaction only.
///
/// `set_config(.., true)` is transaction-local: it ends with the transaction (commit, rollback,
/// or the rollback sqlx issues when a cancelled future drops it), so a pooled connection never
/// carries one tenant's setting to the next borrower. `SET LOCAL` would do the same but cannot
/// take a bind parameter; a session-level `SET` would leak.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant: TenantId,
}

impl TenantTx {
    pub(crate) async fn begin(pool: &PgPool, tenant: TenantId) -> Result<Self, DbError> {
        let tx = scoped_begin::begin(pool, Some(("app.tenant_id", tenant.as_uuid()))).await?;
        Ok(Self { tx, tenant })
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// The connection for queries; row level security scopes every tenant table to `tenant_id`.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        Ok(self.tx.rollback().await?)
    }
}
