//! The one explicit path across tenants, for platform admins. Opening it writes a
//! platform audit row with the admin and the reason in the same transaction: there is no way
//! to read across tenants without leaving that trace. It grants reads only; changes to a tenant
//! go through that tenant's own [`crate::TenantTx`].

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tenantkit_kernel::{AuditEventId, TenantId, UserId};

use crate::DbError;

/// Why an admin reads across tenants, and which tenant the read is about when it is about
/// one; both stored in the audit trail (the tenant's read shows under its name there).
#[derive(Clone, Debug)]
pub struct PlatformAccessReason {
    text: String,
    subject: Option<TenantId>,
}

impl PlatformAccessReason {
    /// A reason must say something: 1 to 500 characters after trimming.
    pub fn new(reason: impl Into<String>) -> Option<Self> {
        let text = reason.into().trim().to_owned();
        (!text.is_empty() && text.chars().count() <= 500).then_some(Self {
            text,
            subject: None,
        })
    }

    /// The read concerns this one tenant.
    pub fn concerning(mut self, tenant: TenantId) -> Self {
        self.subject = Some(tenant);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.text
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
        let mut tx = crate::scoped_begin::begin(pool, None).await?;
        // A locked admin is no admin: locking ends their sessions, and this refuses what a
        // request already under way would still read.
        let is_admin = sqlx::query_scalar!(
            r#"select is_platform_admin and locked_at is null as "admin!"
               from users where id = $1"#,
            admin.as_uuid()
        )
        .fetch_optional(&mut *tx)
        .await?;
        if is_admin != Some(true) {
            return Err(DbError::TenantViolation);
        }
        sqlx::query!(
            "insert into platform_audit_events (id, actor_user_id, action, reason, subject_tenant_id)
             values ($1, $2, 'platform.read', $3, $4)",
            AuditEventId::new().as_uuid(),
            admin.as_uuid(),
            reason.as_str(),
            reason.subject.map(|t| t.as_uuid())
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
