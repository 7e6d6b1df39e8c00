//! The one explicit path across tenants, for platform admins. Opening it writes a
//! platform audit row with the admin and the reason in the same transaction: there is no way
//! to read across tenants without leaving that trace. It grants reads only; changes to a tenant
//! go through that tenant's own [`crate::TenantTx`].

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tenantkit_kernel::{AuditEventId, UserId};

use crate::DbError;

/// Why an admin reads across tenants; stored in the audit trail.
#[derive(Clone, Debug)]
pub struct PlatformAccessReason(String);

impl PlatformAccessReason {
    /// A reason must say something: 1 to 500 characters after trimming.
    pub fn new(reason: impl Into<String>) -> Option<Self> {
        let reason = reason.into().trim().to_owned();
        (!reason.is_empty() && reason.chars().count() <= 500).then_some(Self(reason))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub struct PlatformTx {
    tx: Transaction<'static, Postgres>,
    admin: UserId,
}

impl PlatformTx {
    pub(crate) async fn begin(
        pool: &PgPool,
        admin: UserId,
        reason: PlatformAccessReason,
    ) -> Result<Self, DbError> {
        let mut tx = pool.begin().await?;
        let is_admin = sqlx::query_scalar!(
            "select is_platform_admin from users where id = $1",
            admin.as_uuid()
        )
        .fetch_optional(&mut *tx)
        .await?;
        if is_admin != Some(true) {
            return Err(DbError::TenantViolation);
        }
        sqlx::query!(
            "insert into platform_audit_events (id, actor_user_id, action, reason)
             values ($1, $2, 'platform.read', $3)",
            AuditEventId::new().as_uuid(),
            admin.as_uuid(),
            reason.as_str()
        )
        .execute(&mut *tx)
        .await?;
        // Admin searches bind optional filters (`$1 is null or …`); a plan made for the actual
        // values uses the right index, a cached generic plan might scan every tenant.
        sqlx::query(
            "select set_config('app.platform_access', 'on', true),
                    set_config('plan_cache_mode', 'force_custom_plan', true)",
        )
        .execute(&mut *tx)
        .await?;
        Ok(Self { tx, admin })
    }

    pub fn admin(&self) -> UserId {
        self.admin
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }
}
