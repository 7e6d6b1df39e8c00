//! The admin area (/admin): platform admins with two-factor only. Everyone else — visitors,
//! tenant owners, admins without two-factor, an admin while impersonating — gets the same 404
//! as a page that does not exist, from one guard in front of every /admin route (so even a
//! malformed form to an admin route reveals nothing).

mod audit;
mod impersonation;
mod jobs;
mod tenants;
mod users;

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Route, get,
    http::StatusCode, post,
};
use serde::Deserialize;
use tenantkit_platform::{Admin, PlatformError, Reason};

use crate::{
    browser::{Browser, SignedIn},
    pages::{Layout, PageError},
};

pub(crate) use audit::tenant_audit;
pub(crate) use impersonation::stop as stop_impersonation;

pub(crate) fn routes() -> impl Endpoint {
    Route::new()
        .at("/", get(tenants::dashboard))
        .at("/tenants", get(tenants::list))
        .at("/tenants/:id", get(tenants::detail))
        .at("/tenants/:id/export", get(tenants::export))
        .at("/tenants/:id/:action", post(tenants::act))
        .at("/users", get(users::list))
        .at("/users/:id", get(users::detail))
        .at("/users/:id/impersonate", post(impersonation::start))
        .at("/users/:id/:action", post(users::act))
        .at("/jobs", get(jobs::list))
        .at("/jobs/:id/:action", post(jobs::act))
        .at("/audit", get(audit::all))
        .around(|endpoint, mut req| async move {
            // Checked once here; handlers get the result as an `AdminSession` argument.
            match admin_of_request(&req).await {
                Ok(Some(session)) => {
                    req.extensions_mut().insert(session);
                    Ok(endpoint.call(req).await?.into_response())
                }
                Ok(None) => Ok(PageError::NotFound.into_response()),
                Err(error) => Ok(error.into_response()),
            }
        })
}

async fn admin_of_request(req: &Request) -> Result<Option<AdminSession>, PageError> {
    let browser = Browser::from_request(req, &mut RequestBody::default())
        .await
        .map_err(|_| PageError::Unavailable)?;
    Ok(browser.signed_in().await?.and_then(|me| {
        me.platform_admin().map(|admin| AdminSession {
            me: Arc::new(me),
            admin,
        })
    }))
}

/// The signed-in platform admin, as the guard found them.
#[derive(Clone)]
pub(crate) struct AdminSession {
    me: Arc<SignedIn>,
    admin: Admin,
}

impl<'a> FromRequest<'a> for AdminSession {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        req.extensions()
            .get::<Self>()
            .cloned()
            .ok_or_else(|| PageError::NotFound.into())
    }
}

/// A page's layout after an action: the notice of a success, or the error that stopped it
/// (then 422).
fn layout_after(
    browser: &Browser,
    session: &AdminSession,
    title: &str,
    notice: Option<&str>,
    error: Option<String>,
) -> (Layout, StatusCode) {
    let mut layout = Layout::new(browser, Some(&session.me), title);
    if let Some(notice) = notice {
        layout = layout.notice(notice);
    }
    match error {
        Some(error) => (layout.error(error), StatusCode::UNPROCESSABLE_ENTITY),
        None => (layout, StatusCode::OK),
    }
}

/// Why the admin reads across tenants on this page (lands in the platform audit trail).
fn reading(page: &str) -> Reason {
    Reason::new(format!("admin area: {page}")).expect("a fixed, non-empty reason")
}

/// What every admin action form sends: the CSRF token, a reason, and the confirmation box.
#[derive(Deserialize, Default)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: Option<String>,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    overrides: String,
    #[serde(default)]
    allow_writes: Option<String>,
}

impl ActionForm {
    /// The reason, once the CSRF token, the confirmation and the reason itself are good;
    /// otherwise the message for the page.
    fn confirmed(&self, browser: &Browser) -> Result<Result<Reason, String>, PageError> {
        browser.check_csrf(&self.csrf_token)?;
        if self.confirm.as_deref() != Some("on") {
            return Ok(Err("Tick the confirmation box to go ahead.".to_owned()));
        }
        Ok(Reason::new(self.reason.clone()).ok_or_else(|| {
            "Give a reason (up to 500 characters): it goes into the audit log.".to_owned()
        }))
    }
}

/// How an admin action's failure shows: a message on the page, or an error page.
fn action_message(error: PlatformError) -> Result<String, PageError> {
    match error {
        PlatformError::Invalid { message, .. } => Ok(message),
        PlatformError::Conflict(message) => Ok(message),
        other => Err(other.into()),
    }
}

impl From<PlatformError> for PageError {
    fn from(error: PlatformError) -> Self {
        match error {
            PlatformError::NotAdmin | PlatformError::NotFound => Self::NotFound,
            PlatformError::Db(db) => db.into(),
            PlatformError::Billing(billing) => billing.into(),
            PlatformError::Invalid { message, .. } | PlatformError::Conflict(message) => {
                Self::Forbidden(message)
            }
            other => Self::unexpected(&other),
        }
    }
}
