//! The application's pool, wrapped so that domain code can only open typed transactions.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::{
    PgConnection, PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tenantkit_config::DatabaseSettings;
use tenantkit_kernel::{TenantId, UserId};

use crate::{DbError, PlatformAccessReason, PlatformTx, TenantTx, UserTx};

#[derive(Clone, Debug)]
pub struct Database {
    pool: PgPool,
}

impl Database {
    /// Connects lazily: the server starts (and reports not-ready) while PostgreSQL is down.
    pub fn connect_lazy(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let options: PgConnectOptions = settings.url.expose_secret().parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options.application_name("tenantkit").options([(
                "statement_timeout",
                format!("{}ms", settings.statement_timeout.as_millis()),
            )]));
        Ok(Self { pool })
    }

    /// Wraps an existing pool (tests, benchmarks).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Opens a transaction in which every tenant table shows only `tenant`'s rows.
    pub async fn tenant(&self, tenant: TenantId) -> Result<TenantTx, DbError> {
        TenantTx::begin(&self.pool, tenant).await
    }

    /// Opens a transaction that sees `user`'s own memberships and tenants; see [`UserTx`].
    pub async fn user(&self, user: UserId) -> Result<UserTx, DbError> {
        UserTx::begin(&self.pool, user).await
    }

    /// Opens a transaction with no tenant: for global tables (users). Tenant tables read empty.
    pub async fn global(&self) -> Result<GlobalTx, DbError> {
        Ok(GlobalTx {
            tx: crate::scoped_begin::begin(&self.pool, None).await?,
        })
    }

    /// The audited cross-tenant read path; see [`PlatformTx`].
    pub async fn platform(
        &self,
        admin: UserId,
        reason: PlatformAccessReason,
    ) -> Result<PlatformTx, DbError> {
        PlatformTx::begin(&self.pool, admin, reason).await
    }

    /// Readiness: one round trip.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool itself, for infrastructure that manages its own SQL (the job queue's
    /// worker). Not for domain code: it bypasses the tenant-bound transaction types.
    pub fn infrastructure_pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A transaction without tenant context, for global tables.
pub struct GlobalTx {
    tx: Transaction<'static, Postgres>,
}

impl GlobalTx {
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }
}
