//! The JSON API under /api/v1: one struct per area, combined in one `OpenApiService`.

mod signup;
mod text;

use poem_openapi::{OpenApiService, Tags};

use crate::AppState;

#[derive(Tags)]
pub(crate) enum ApiTags {
    /// Creating organisations and their owners
    Signup,
}

pub(crate) fn service(state: &AppState) -> OpenApiService<signup::SignupApi, ()> {
    OpenApiService::new(
        signup::SignupApi,
        "Tenantkit API",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Multi-tenant SaaS platform API. Errors are RFC 9457 problem+json documents.")
    .server(format!("{}api/v1", state.settings.server.public_url))
}
