use std::time::Duration;

use poem::{
    http::HeaderMap,
    web::{Data, RemoteAddr},
};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use secrecy::SecretString;
use tenantkit_tenancy::{SignUp, sign_up};

use super::{
    ApiTags,
    text::{OptionalText, Text},
};
use crate::{ApiError, AppState, client_ip::client_ip, rate_limit::RateLimit};

pub(crate) struct SignupApi;

// The schema states the rules the domain enforces, so a request valid by the spec is never
// refused: names are visible text without control characters, emails look like a@b.c, slugs
// are 2-63 lowercase letters, digits and inner hyphens; passwords are 10+ characters.
#[derive(Object)]
struct SignUpRequest {
    /// The organisation's display name.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    organisation: Text,
    /// The organisation's address (lowercase letters, digits, inner hyphens). When omitted it is
    /// derived from the name, with a short suffix if that address is taken.
    #[oai(validator(
        min_length = 2,
        max_length = 63,
        pattern = r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$"
    ))]
    slug: OptionalText,
    /// The owner's name.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    name: Text,
    #[oai(validator(
        min_length = 3,
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.]+(\.[^@\s\x00-\x1f\x7f-\x9f.]+)+$"
    ))]
    email: Text,
    #[oai(validator(min_length = 10, max_length = 1024))]
    password: Text,
}

#[derive(Object)]
struct SignUpAccepted {
    /// Always `verification_sent`.
    status: String,
    detail: String,
}

#[derive(ApiResponse)]
enum SignUpResponse {
    /// Accepted: a verification link is on its way to the email address. The answer is the
    /// same when the address already has an account (its owner is told by email instead), so
    /// the API never reveals who has an account.
    #[oai(status = 202)]
    Accepted(Json<SignUpAccepted>),
}

#[OpenApi(tag = "ApiTags::Signup")]
impl SignupApi {
    /// Create an organisation and its owner account.
    #[oai(path = "/signups", method = "post")]
    async fn sign_up(
        &self,
        state: Data<&AppState>,
        remote: &RemoteAddr,
        headers: &HeaderMap,
        body: Json<SignUpRequest>,
    ) -> Result<SignUpResponse, ApiError> {
        // Each sign-up costs a password hash: limit them per client address.
        let client = client_ip(remote, headers, state.settings.server.trusted_proxy_hops)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let limit = RateLimit {
            name: "signup",
            limit: state.settings.rate_limit.signups_per_hour,
            window: Duration::from_secs(3600),
        };
        limit.check(&state.kv, &client).await?;
        let body = body.0;
        sign_up(
            &state.db,
            &state.hasher,
            SignUp {
                organisation: body.organisation.0,
                slug: body.slug.into_string(),
                name: body.name.0,
                email: body.email.0,
                password: SecretString::from(body.password.0),
            },
        )
        .await?;
        Ok(SignUpResponse::Accepted(Json(SignUpAccepted {
            status: "verification_sent".to_owned(),
            detail: "Open the link in the email we sent to finish signing up.".to_owned(),
        })))
    }
}
