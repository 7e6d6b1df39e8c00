//! Database access: the application pool, migrations, and the only roads to tenant data.
//!
//! Domain code never holds a raw pool. It asks [`Database`] for
//! * a [`TenantTx`] — a transaction bound to one tenant (row level security does the filtering),
//! * a [`UserTx`] — one signed-in user's own memberships and tenants, across tenants,
//! * a [`GlobalTx`] — a transaction with no tenant, for global tables such as `users`
//!   (tenant tables read as empty there: the policies fail closed),
//! * a [`PlatformTx`] — the explicit, audited cross-tenant read path for platform admins.

mod database;
mod error;
pub mod migrate;
mod platform;
mod scoped_begin;
mod tenant_tx;
mod user_tx;

pub use database::{Database, GlobalTx};
pub use error::DbError;
pub use platform::{PlatformAccessReason, PlatformTx};
pub use sqlx::{PgConnection, PgPool, Postgres};
pub use tenant_tx::TenantTx;
pub use user_tx::UserTx;
