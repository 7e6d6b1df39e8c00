use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use secrecy::SecretString;
use tenantkit_tenancy::{SignUp, sign_up};
use uuid::Uuid;

use super::ApiTags;
use crate::{ApiError, AppState};

pub(crate) struct SignupApi;

#[derive(Object)]
struct SignUpRequest {
    /// The organisation's display name.
    #[oai(validator(max_length = 200))]
    organisation: String,
    /// The organisation's address (lowercase letters, digits, hyphens); derived from the name
    /// when omitted.
    #[oai(validator(max_length = 63))]
    slug: Option<String>,
    /// The owner's name.
    #[oai(validator(max_length = 200))]
    name: String,
    #[oai(validator(max_length = 254))]
    email: String,
    #[oai(validator(max_length = 1024))]
    password: String,
}

#[derive(Object)]
struct SignedUpBody {
    tenant_id: Uuid,
    user_id: Uuid,
    slug: String,
}

#[derive(ApiResponse)]
enum SignUpResponse {
    /// The organisation and its owner exist; a welcome email is on its way.
    #[oai(status = 201)]
    Created(Json<SignedUpBody>),
}

#[OpenApi(tag = "ApiTags::Signup")]
impl SignupApi {
    /// Create an organisation and its owner account.
    #[oai(path = "/signups", method = "post")]
    async fn sign_up(
        &self,
        state: Data<&AppState>,
        body: Json<SignUpRequest>,
    ) -> Result<SignUpResponse, ApiError> {
        let body = body.0;
        let done = sign_up(
            &state.db,
            &state.hasher,
            SignUp {
                organisation: body.organisation,
                slug: body.slug,
                name: body.name,
                email: body.email,
                password: SecretString::from(body.password),
            },
        )
        .await?;
        Ok(SignUpResponse::Created(Json(SignedUpBody {
            tenant_id: done.tenant_id.as_uuid(),
            user_id: done.user_id.as_uuid(),
            slug: done.slug,
        })))
    }
}
