//! All of storage's SQL.
//!
//! Every statement on a tenant-owned table names its tenant (`tenant_id = $1`, bound from
//! `tx.tenant_id()`) on top of row level security: the policies only filter, and the
//! predicate is what lets the planner use the `(tenant_id, ...)` indexes
//! (`tests/tests/tenant_scoped_queries.rs` enforces it).

mod files;
mod sessions;
mod usage;

pub(crate) use files::*;
pub(crate) use sessions::*;
pub(crate) use usage::*;
