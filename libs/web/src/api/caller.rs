//! Who calls the API. Either an API key (`Authorization: Bearer tk_…`), acting for its one
//! tenant with its role, or a signed-in browser session (its cookie), acting as the user in any
//! tenant they belong to. A cookie travels with every request the browser makes, whoever
//! caused it, so cookie-authenticated unsafe requests must also carry the session's CSRF token
//! in `X-CSRF-Token` (from `GET /me`), which only code on this site can read.

use std::sync::{Mutex, PoisonError};

use poem::{FromRequest, Request, RequestBody, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};
use tenantkit_db::TenantTx;
use tenantkit_kernel::TenantId;
use tenantkit_tenancy::{
    TenantStatus,
    api_keys::{self, ApiKeyPrincipal},
    repo,
    team::Actor,
};

use crate::{
    ApiError, AppState,
    browser::{Browser, SignedIn},
};

/// The header cookie-authenticated clients put the CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

const BEARER_SCHEME: &str = "ApiKey";
const COOKIE_SCHEME: &str = "SessionCookie";

pub(crate) enum Caller {
    Key(KeyCaller),
    /// A signed-in browser; `csrf_token` is what its unsafe requests must carry.
    Session {
        me: Box<SignedIn>,
        csrf_token: String,
    },
}

/// A checked API key, with the transaction of its tenant it was checked in: the request's work
/// there goes on in it, so an API call is one transaction rather than one for the key and one
/// for the work.
pub(crate) struct KeyCaller {
    pub(crate) principal: ApiKeyPrincipal,
    checked_in: Mutex<Option<TenantTx>>,
}

impl KeyCaller {
    /// The key's tenant's transaction: the one it was checked in, or a new one after that.
    pub(crate) async fn tenant_tx(&self, state: &AppState) -> Result<TenantTx, ApiError> {
        let checked_in = self
            .checked_in
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match checked_in {
            Some(tx) => Ok(tx),
            None => Ok(state.db.tenant(self.principal.tenant_id).await?),
        }
    }
}

impl Caller {
    /// Opens `tenant` for the caller and says with which role they act there. Another
    /// tenant's id answers 404, exactly like an id that does not exist.
    pub(crate) async fn open_tenant(
        &self,
        state: &AppState,
        tenant: TenantId,
    ) -> Result<(TenantTx, Actor), ApiError> {
        let (mut tx, actor, status) = match self {
            // The key's check read the organisation's status in this same transaction.
            Self::Key(key) if key.principal.tenant_id == tenant => (
                key.tenant_tx(state).await?,
                Actor::api_key(key.principal.key_id, key.principal.role),
                key.principal.tenant_status,
            ),
            Self::Key(_) => return Err(ApiError::not_found()),
            Self::Session { me, .. } => {
                let mut tx = state.db.tenant(tenant).await?;
                let role = repo::role_of(&mut tx, me.user.id)
                    .await?
                    .ok_or_else(ApiError::not_found)?;
                let status = repo::current_tenant(&mut tx).await?.map(|t| t.status);
                (tx, Actor::member(me.user.id, role), status)
            }
        };
        // A suspended (or deleted) organisation's API is closed; the caller learns why.
        match status {
            Some(TenantStatus::Active) => {}
            Some(status) => return Err(ApiError::tenant_closed(status.as_str())),
            None => return Err(ApiError::not_found()),
        }
        let per_minute = state
            .api_allowances
            .per_minute(&state.billing, &mut tx)
            .await?;
        crate::usage::count_api_call(&state.kv, tenant, per_minute).await?;
        Ok((tx, actor))
    }

    /// [`Self::open_tenant`] for a change that adds or alters data: refused while the
    /// organisation is read-only for an overdue payment (billing's restricted mode). Removing
    /// members, revoking invitations and keys stay possible: they only shrink or secure.
    pub(crate) async fn open_tenant_to_change(
        &self,
        state: &AppState,
        tenant: TenantId,
    ) -> Result<(TenantTx, Actor), ApiError> {
        let (mut tx, actor) = self.open_tenant(state, tenant).await?;
        if state.billing.entitlements(&mut tx).await?.restricted {
            return Err(ApiError::billing_restricted());
        }
        Ok((tx, actor))
    }

    async fn from_bearer(state: &AppState, authorization: &str) -> Result<Self, ApiError> {
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("Use `Authorization: Bearer <API key>`."))?
            .trim();
        let invalid = || ApiError::unauthorized("The API key is not valid or has been revoked.");
        let tenant = api_keys::presented_tenant(token).ok_or_else(invalid)?;
        let mut tx = state.db.tenant(tenant).await?;
        let principal = api_keys::authenticate(&mut tx, token)
            .await?
            .ok_or_else(invalid)?;
        Ok(Self::Key(KeyCaller {
            principal,
            checked_in: Mutex::new(Some(tx)),
        }))
    }

    async fn from_session(req: &Request, body: &mut RequestBody) -> Result<Self, ApiError> {
        let browser = <Browser as FromRequest>::from_request(req, body)
            .await
            .map_err(|_| ApiError::unavailable())?;
        let me = browser
            .signed_in()
            .await?
            .ok_or_else(|| ApiError::unauthorized("Sign in, or send an API key."))?;
        if me.user.is_platform_admin && !me.user.two_factor_enabled() {
            return Err(ApiError::forbidden(
                "Platform admins must enable two-factor authentication first.",
            ));
        }
        if !req.method().is_safe() {
            if browser.is_read_only_impersonation() {
                return Err(ApiError::forbidden(
                    "This is a read-only impersonation: changes are not allowed.",
                ));
            }
            let presented = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if browser.check_csrf(presented).is_err() {
                return Err(ApiError::forbidden(
                    "Requests authenticated by the session cookie must send the csrf_token \
                     from GET /api/v1/me in the X-CSRF-Token header.",
                ));
            }
        }
        Ok(Self::Session {
            csrf_token: browser.csrf_token(),
            me: Box::new(me),
        })
    }
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BEARER_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An API key, created by an owner or admin and shown once: \
                     `Authorization: Bearer tk_<tenant>_<id>_<secret>`. It acts for its \
                     organisation with its role.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("tk_<tenant>_<id>_<secret>"),
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            COOKIE_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some(
                    "The browser session of a signed-in user (`__Host-tk_session` when served \
                     over https). Requests other than GET and HEAD must also send the \
                     `csrf_token` from `GET /me` in the `X-CSRF-Token` header.",
                ),
                name: Some("tk_session"),
                key_in: Some("cookie"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER_SCHEME, COOKIE_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let Some(state) = req.data::<AppState>() else {
            return Err(poem::Error::from_status(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            ));
        };
        // A bad key is refused even when a session cookie is present: the client said who
        // it is, and it is not that.
        let caller = match req.headers().get(header::AUTHORIZATION) {
            Some(value) => match value.to_str() {
                Ok(authorization) => Self::from_bearer(state, authorization).await,
                Err(_) => Err(ApiError::unauthorized(
                    "The Authorization header is not text.",
                )),
            },
            None => Self::from_session(req, body).await,
        };
        // A complete problem+json answer, passed through as it is (see render_poem_error).
        caller.map_err(poem::Error::from)
    }
}
