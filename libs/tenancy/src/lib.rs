//! Tenancy: organisations (tenants), who belongs to them (memberships) and their audit trail.
//! Every function that touches tenant data takes the tenant-bound transaction first.

pub mod audit;
mod error;
mod model;
pub mod repo;
mod signup;

pub use error::TenancyError;
pub use model::{Membership, Tenant, TenantName, TenantSlug, TenantStatus};
pub use signup::{SignUp, SignedUp, sign_up};
