//! All of billing's SQL.
//!
//! Every statement on a tenant-owned table names its tenant (`tenant_id = $1` bound from
//! `tx.tenant_id()`, or `id = $1` on `tenants`) on top of row level security: the policies
//! are OR-ed, which PostgreSQL applies only as a filter, so without it a statement would scan
//! every tenant's rows (see `libs/tenancy/src/repo/mod.rs`). `stripe_events` and
//! `stripe_customers` are global tables; reading them crosses no tenant's data.

pub(crate) mod accounts;
pub(crate) mod events;
pub(crate) mod subscriptions;
pub(crate) mod tenant;
