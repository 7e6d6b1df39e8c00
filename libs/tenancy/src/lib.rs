//! Tenancy: organisations (tenants), who belongs to them (memberships, invitations, roles),
//! their API keys, sign-up and onboarding, and their audit trail.
//! Every function that touches tenant data takes the tenant-bound transaction first.

pub mod api_keys;
pub mod audit;
pub mod emails;
mod error;
mod model;
pub mod onboarding;
pub mod repo;
mod signup;
pub mod team;

pub use error::TenancyError;
pub use model::{
    ApiKey, Invitation, InvitationStatus, Member, Membership, Tenant, TenantName, TenantSlug,
    TenantStatus, UserTenant,
};
pub use signup::{SignUp, SignUpOutcome, SignedUp, sign_up};
