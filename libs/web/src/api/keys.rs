//! An organisation's API keys: created with a name and role, the secret shown once, listed
//! with their last use, revoked.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use tenantkit_kernel::{ApiKeyId, TenantId};
use tenantkit_tenancy::{ApiKey, api_keys};
use uuid::Uuid;

use super::{ApiRole, ApiTags, Items, caller::Caller, text::Text};
use crate::{ApiError, AppState};

pub(crate) struct ApiKeysApi;

#[derive(Object)]
struct ApiKeyView {
    id: Uuid,
    name: String,
    role: ApiRole,
    #[oai(skip_serializing_if_is_none)]
    created_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    /// Updated at most once a minute.
    #[oai(skip_serializing_if_is_none)]
    last_used_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            name: k.name,
            role: k.role.into(),
            created_by: k.created_by.map(|u| u.as_uuid()),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Object)]
struct NewApiKey {
    /// What the key is for, e.g. "CI deploys".
    #[oai(validator(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    name: Text,
    role: ApiRole,
}

#[derive(Object)]
struct CreatedApiKey {
    key: ApiKeyView,
    /// The secret key for `Authorization: Bearer`. Shown this once: only its hash is kept.
    token: String,
}

#[derive(ApiResponse)]
enum KeysResponse {
    #[oai(status = 200)]
    Ok(Json<Items<ApiKeyView>>),
}

#[derive(ApiResponse)]
enum CreatedResponse {
    /// The new key; the response must not be cached.
    #[oai(status = 201)]
    Created(Json<CreatedApiKey>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
enum Revoked {
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// The organisation's keys, revoked ones included (owners and admins).
    #[oai(path = "/tenants/:tenant_id/api-keys", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
    ) -> Result<KeysResponse, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let keys = api_keys::list(&mut tx, actor).await?;
        tx.commit().await?;
        Ok(KeysResponse::Ok(Json(Items {
            items: keys.into_iter().map(Into::into).collect(),
        })))
    }

    /// Create a key (owners and admins; only owners create owner keys).
    #[oai(path = "/tenants/:tenant_id/api-keys", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<NewApiKey>,
    ) -> Result<CreatedResponse, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant_to_change(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let created = api_keys::create(&mut tx, actor, &body.0.name.0, body.0.role.into()).await?;
        tx.commit().await?;
        Ok(CreatedResponse::Created(
            Json(CreatedApiKey {
                key: created.key.into(),
                token: created.token,
            }),
            "no-store".to_owned(),
        ))
    }

    /// Revoke a key: it stops working at once.
    #[oai(path = "/tenants/:tenant_id/api-keys/:key_id", method = "delete")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        key_id: Path<Uuid>,
    ) -> Result<Revoked, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        api_keys::revoke(&mut tx, actor, ApiKeyId::from_uuid(key_id.0)).await?;
        tx.commit().await?;
        Ok(Revoked::NoContent)
    }
}
