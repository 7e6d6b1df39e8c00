//! Platform administration: what the operators of a Tenantkit deployment do every day. Find
//! tenants and users, look at one closely, suspend, reactivate, change plans, delete (and
//! later purge), look after dead jobs, and read the audit trails.
//!
//! Reads across tenants go through [`tenantkit_db::PlatformTx`] (audited, read-only). Every
//! change goes through the one tenant's own transaction (or the global one for users), checks
//! the acting admin again inside it, and writes exactly one audit row with the admin and the
//! reason in the same transaction. Web and CLI decide who may get here (two-factor, 404s).

mod admin;
pub mod audit_log;
pub mod dashboard;
pub mod dead_jobs;
pub mod directory;
mod error;
pub mod purge;
pub mod tenant_actions;
pub mod tenant_view;
pub mod users;

pub use admin::{Admin, Reason};
pub use error::PlatformError;
