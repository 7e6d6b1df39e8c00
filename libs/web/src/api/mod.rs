//! The JSON API under /api/v1: one struct per area, combined in one `OpenApiService`.

mod account;
mod admin;
mod audit;
mod billing;
mod caller;
pub(crate) mod files;
mod keys;
mod signup;
mod team;
mod text;
mod uploads;

use poem_openapi::{
    Enum, Object, OpenApiService, Tags,
    types::{ParseFromJSON, ToJSON},
};
use tenantkit_kernel::Role;

use crate::AppState;

#[derive(Tags)]
pub(crate) enum ApiTags {
    /// Creating organisations and their owners
    Signup,
    /// The caller, their organisations, and roles
    Account,
    /// Members, roles and invitations of an organisation
    Team,
    /// An organisation's API keys
    ApiKeys,
    /// Plan, entitlements, invoices, Stripe Checkout and billing portal
    Billing,
    /// Files: streaming upload and download (with Range), folders, signed links, quota
    Files,
    /// Platform administration (platform admins with two-factor only; 404 for anyone else)
    Admin,
}

/// A member's or API key's role in an organisation.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub(crate) enum ApiRole {
    Owner,
    Admin,
    Member,
}

impl From<Role> for ApiRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
        }
    }
}

impl From<ApiRole> for Role {
    fn from(role: ApiRole) -> Self {
        match role {
            ApiRole::Owner => Self::Owner,
            ApiRole::Admin => Self::Admin,
            ApiRole::Member => Self::Member,
        }
    }
}

/// A list; an object so that paging can be added without breaking clients.
#[derive(Object)]
pub(crate) struct Items<T: ParseFromJSON + ToJSON> {
    items: Vec<T>,
}

type Apis = (
    signup::SignupApi,
    account::AccountApi,
    team::TeamApi,
    keys::ApiKeysApi,
    billing::BillingApi,
    files::FilesApi,
    uploads::UploadsApi,
    audit::AuditApi,
    admin::AdminTenantsApi,
    admin::AdminUsersApi,
    admin::AdminJobsApi,
);

pub(crate) fn service(state: &AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            signup::SignupApi,
            account::AccountApi,
            team::TeamApi,
            keys::ApiKeysApi,
            billing::BillingApi,
            files::FilesApi,
            uploads::UploadsApi,
            audit::AuditApi,
            admin::AdminTenantsApi,
            admin::AdminUsersApi,
            admin::AdminJobsApi,
        ),
        "Tenantkit API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Multi-tenant SaaS platform API. Authenticate with an API key \
         (`Authorization: Bearer …`) or a browser session cookie plus `X-CSRF-Token`. Another \
         organisation's ids answer 404. Errors are RFC 9457 problem+json documents.",
    )
    .server(format!("{}api/v1", state.settings.server.public_url))
}
