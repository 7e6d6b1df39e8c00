//! The admin area (/admin): platform admins with two-factor only. Everyone else — visitors,
//! tenant owners, admins without two-factor, an admin while impersonating — gets the same 404
//! as a page that does not exist, from one guard in front of every /admin route (so even a
//! malformed form to an admin route reveals nothing).

mod audit;
mod impersonation;
mod jobs;
mod tenants;
mod users;

use poem::{
    Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Route, get, post,
};
use serde::Deserialize;
use tenantkit_platform::{Admin, PlatformError, Reason};

use crate::{
    browser::{Browser, SignedIn},
    pages::PageError,
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
        .around(|endpoint, req| async move {
            match admin_of_request(&req).await {
                Ok(Some(_)) => Ok(endpoint.call(req).await?.into_response()),
                Ok(None) => Ok(PageError::NotFound.into_response()),
                Err(error) => Ok(error.into_response()),
            }
        })
}

async fn admin_of_request(req: &Request) -> Result<Option<Admin>, PageError> {
    let browser = Browser::from_request(req, &mut RequestBody::default())
        .await
        .map_err(|_| PageError::Unavailable)?;
    Ok(signed_in_admin(&browser).await?.map(|(_, admin)| admin))
}

/// The signed-in platform admin (two-factor on, not impersonating), if that is who this is.
pub(crate) async fn signed_in_admin(
    browser: &Browser,
) -> Result<Option<(SignedIn, Admin)>, PageError> {
    let Some(me) = browser.signed_in().await? else {
        return Ok(None);
    };
    let admin = me.user.is_platform_admin
        && me.user.two_factor_enabled()
        && me.session.data.impersonation.is_none();
    Ok(admin.then(|| {
        let admin = Admin(me.user.id);
        (me, admin)
    }))
}

/// For handlers behind the guard: the admin again (the guard already checked).
async fn require_admin(browser: &Browser) -> Result<(SignedIn, Admin), PageError> {
    signed_in_admin(browser).await?.ok_or(PageError::NotFound)
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
            PlatformError::Invalid { message, .. } | PlatformError::Conflict(message) => {
                Self::Forbidden(message)
            }
            other => Self::Internal(crate::problem::cause_chain(&other)),
        }
    }
}
