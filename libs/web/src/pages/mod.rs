//! Server-rendered pages (askama). They work without JavaScript; every form carries a CSRF
//! token and shows its errors next to the fields, keeping what was typed (not passwords).

mod account;
pub(crate) mod auth;
mod billing;
pub(crate) mod files;
mod part_head_limit;
mod team;

use askama::Template;
use poem::{IntoResponse, Response, Route, get, handler, http::StatusCode, post};
use serde::Deserialize;
use tenantkit_accounts::AccountError;
use tenantkit_db::DbError;
use tenantkit_tenancy::TenancyError;

use crate::browser::{Browser, SignedIn};

pub(crate) fn routes() -> Route {
    Route::new()
        .at("/", get(landing))
        .at("/static/app.css", get(stylesheet))
        .at("/static/files.js", get(files_script))
        .at("/signup", get(auth::signup_form).post(auth::signup))
        .at("/signup/check-inbox", get(auth::check_inbox))
        .at("/verify", get(auth::verify))
        .at("/login", get(auth::login_form).post(auth::login))
        .at(
            "/login/two-factor",
            get(auth::second_factor_form).post(auth::second_factor),
        )
        .at("/logout", post(auth::logout))
        .at(
            "/password/forgot",
            get(auth::forgot_form).post(auth::forgot),
        )
        .at("/password/reset", get(auth::reset_form).post(auth::reset))
        .at("/dashboard", get(account::dashboard))
        .at("/account", get(account::account))
        .at("/account/password", post(account::change_password))
        .at("/account/email", post(account::change_email))
        .at("/account/email/confirm", get(account::confirm_email))
        .at("/account/verification", post(account::resend_verification))
        .at(
            "/account/two-factor",
            get(account::two_factor_settings).post(account::enable_two_factor),
        )
        .at(
            "/account/two-factor/disable",
            post(account::disable_two_factor),
        )
        .at("/sessions", get(account::sessions))
        .at("/sessions/:key/revoke", post(account::revoke_session))
        .at("/tenants/switch", post(account::switch_tenant))
        .at("/team", get(team::team_members))
        .at("/team/invitations", post(team::invite))
        .at("/team/invitations/:id/resend", post(team::resend))
        .at("/team/invitations/:id/revoke", post(team::revoke))
        .at("/team/members/:id/role", post(team::change_role))
        .at("/team/members/:id/remove", post(team::remove))
        .at("/team/leave", post(team::leave))
        .at("/team/transfer", post(team::transfer))
        .at(
            "/invitations/accept",
            get(team::accept_form).post(team::accept),
        )
        .at("/audit", get(crate::admin::tenant_audit))
        .at("/billing", get(billing::show))
        .at("/billing/checkout", post(billing::checkout))
        .at("/billing/portal", post(billing::portal))
        .at("/billing/success", get(billing::returned))
        .at("/billing/cancel", get(billing::canceled))
        .at("/files", get(files::show))
        .at("/files/upload", post(files::upload))
        .at("/files/:id/content", get(files::content))
        .at("/files/:id/delete", post(files::delete))
        .at(
            "/impersonation/stop",
            post(crate::admin::stop_impersonation),
        )
        .nest("/admin", crate::admin::routes())
}

#[handler]
fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header("cache-control", "public, max-age=3600")
        .body(include_str!("../app.css"))
}

#[handler]
fn files_script() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header("cache-control", "public, max-age=3600")
        .body(include_str!("../files.js"))
}

/// What every page's header needs.
pub(crate) struct Layout {
    pub(crate) title: String,
    pub(crate) csrf: String,
    pub(crate) user: Option<LayoutUser>,
    pub(crate) notice: Option<String>,
    pub(crate) error: Option<String>,
    /// Shown on every page while a platform admin impersonates the user.
    pub(crate) impersonation: Option<ImpersonationBanner>,
}

pub(crate) struct ImpersonationBanner {
    pub(crate) user_email: String,
    pub(crate) admin_name: String,
    pub(crate) read_only: bool,
    pub(crate) minutes_left: i64,
}

pub(crate) struct LayoutUser {
    pub(crate) name: String,
    /// A platform admin (with two-factor, not impersonating): show the way to /admin.
    pub(crate) admin: bool,
    /// Owners and admins of the active tenant may read its audit log.
    pub(crate) audit: bool,
    pub(crate) tenant: Option<String>,
    /// (id, name, active)
    pub(crate) tenants: Vec<(String, String, bool)>,
}

impl Layout {
    pub(crate) fn new(browser: &Browser, signed_in: Option<&SignedIn>, title: &str) -> Self {
        Self {
            title: title.to_owned(),
            csrf: browser.csrf_token(),
            user: signed_in.map(|s| LayoutUser {
                name: s.user.display_name.clone(),
                admin: s.platform_admin().is_some(),
                audit: s.tenant.as_ref().is_some_and(|t| {
                    matches!(
                        t.role,
                        tenantkit_kernel::Role::Owner | tenantkit_kernel::Role::Admin
                    )
                }),
                tenant: s.tenant.as_ref().map(|t| t.name.clone()),
                tenants: s
                    .tenants
                    .iter()
                    .map(|t| {
                        let active = s.tenant.as_ref().is_some_and(|a| a.id == t.id);
                        (t.id.to_string(), t.name.clone(), active)
                    })
                    .collect(),
            }),
            notice: None,
            error: None,
            impersonation: signed_in.and_then(|s| {
                s.session
                    .data
                    .impersonation
                    .as_ref()
                    .map(|i| ImpersonationBanner {
                        user_email: s.user.email.clone(),
                        admin_name: i.admin_name.clone(),
                        read_only: !i.allow_writes,
                        minutes_left: ((i.expires_at - crate::session::now()) / 60).max(0) + 1,
                    })
            }),
        }
    }

    pub(crate) fn notice(mut self, notice: impl Into<String>) -> Self {
        self.notice = Some(notice.into());
        self
    }

    pub(crate) fn error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// Field errors by field name.
#[derive(Default)]
pub(crate) struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub(crate) fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub(crate) fn one(field: &str, message: impl Into<String>) -> Self {
        Self(vec![(field.to_owned(), message.into())])
    }
}

/// One input of a [`FormPage`].
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    pub(crate) autocomplete: &'static str,
    pub(crate) error: Option<String>,
}

impl Field {
    pub(crate) fn new(
        name: &'static str,
        label: &'static str,
        kind: &'static str,
        value: &str,
    ) -> Self {
        let autocomplete = match (name, kind) {
            (_, "password") if name.contains("new") || name == "password" => "new-password",
            (_, "email") => "email",
            _ => "off",
        };
        Self {
            name,
            label,
            kind,
            value: if kind == "password" {
                String::new()
            } else {
                value.to_owned()
            },
            autocomplete,
            error: None,
        }
    }

    pub(crate) fn autocomplete(mut self, value: &'static str) -> Self {
        self.autocomplete = value;
        self
    }
}

#[derive(Template)]
#[template(path = "form.html")]
pub(crate) struct FormPage {
    pub(crate) layout: Layout,
    pub(crate) heading: String,
    pub(crate) intro: Option<String>,
    pub(crate) action: String,
    pub(crate) fields: Vec<Field>,
    pub(crate) submit: &'static str,
    pub(crate) links: Vec<(String, String)>,
}

impl FormPage {
    /// Puts each field error next to its field; errors for no field go to the top.
    pub(crate) fn with_errors(mut self, errors: FieldErrors) -> Self {
        for (field, message) in errors.0 {
            match self.fields.iter_mut().find(|f| f.name == field) {
                Some(f) => f.error = Some(message),
                None => self.layout.error = Some(message),
            }
        }
        self
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub(crate) layout: Layout,
    pub(crate) heading: String,
    pub(crate) paragraphs: Vec<String>,
    pub(crate) links: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "landing.html")]
struct LandingPage {
    layout: Layout,
}

#[handler]
async fn landing(browser: Browser) -> Result<Response, PageError> {
    let signed_in = browser.signed_in().await?;
    let layout = Layout::new(&browser, signed_in.as_ref(), "Welcome");
    Ok(page(&browser, &LandingPage { layout }))
}

/// A rendered page with the anonymous CSRF cookie when the browser lacks one.
pub(crate) fn page(browser: &Browser, template: &impl Template) -> Response {
    page_with_status(browser, StatusCode::OK, template)
}

pub(crate) fn page_with_status(
    browser: &Browser,
    status: StatusCode,
    template: &impl Template,
) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = Response::builder()
                .status(status)
                .content_type("text/html; charset=utf-8")
                .header("cache-control", "no-store")
                .body(html);
            if let Some(cookie) = browser.anonymous_cookie()
                && let Ok(value) = cookie.parse()
            {
                response.headers_mut().append("set-cookie", value);
            }
            response
        }
        Err(error) => PageError::Internal(error.to_string()).into_response(),
    }
}

/// A 303 to `location` (after a form post), with cookies to set.
pub(crate) fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", location)
        .header("cache-control", "no-store")
        .finish();
    for cookie in cookies {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append("set-cookie", value);
        }
    }
    response
}

/// What a page says after a successful change redirected to it (post/redirect/get: a reload
/// does not repeat the change). The query names the text by key, so no text taken from a URL
/// is ever shown.
const NOTICES: &[(&str, &str)] = &[
    ("invited", "Invitation sent."),
    ("resent", "Invitation sent again."),
    ("revoked", "Invitation revoked."),
    ("role-changed", "Role changed."),
    ("removed", "Member removed."),
    ("transferred", "Ownership transferred."),
    (
        "password-reset",
        "Your password was changed. Log in with the new one.",
    ),
    ("tenant-suspended", "The tenant is suspended."),
    ("tenant-reactivated", "The tenant is active again."),
    ("plan-changed", "The plan was changed."),
    (
        "entitlements-changed",
        "The entitlement overrides were saved.",
    ),
    (
        "tenant-deleted",
        "The tenant is deleted; its data will be purged after the retention period.",
    ),
    (
        "user-locked",
        "The user is locked and signed out everywhere.",
    ),
    ("user-unlocked", "The user is unlocked."),
    (
        "password-reset-forced",
        "The password was removed and a reset link emailed; the user is signed out.",
    ),
    ("sessions-ended", "The user's sessions were ended."),
    ("job-retried", "The job will run again."),
    ("job-discarded", "The job was discarded."),
    ("impersonation-stopped", "You stopped impersonating."),
    (
        "checkout-canceled",
        "Checkout was canceled; nothing was charged.",
    ),
    ("file-uploaded", "The file was uploaded."),
    ("file-deleted", "The file was deleted."),
];

/// Redirects to `path` (without a query) showing the notice named `key` from [`NOTICES`].
pub(crate) fn redirect_with_notice(path: &str, key: &'static str) -> Response {
    debug_assert!(
        NOTICES.iter().any(|(k, _)| *k == key),
        "unknown notice {key}"
    );
    redirect(&format!("{path}?done={key}"), &[])
}

#[derive(Deserialize, Default)]
pub(crate) struct DoneQuery {
    #[serde(default)]
    done: String,
}

impl DoneQuery {
    pub(crate) fn notice(&self) -> Option<&'static str> {
        NOTICES
            .iter()
            .find(|(key, _)| *key == self.done)
            .map(|(_, text)| *text)
    }
}

/// A local path to go back to after signing in; anything else (another host, `//evil`,
/// `/\evil`, a scheme, whitespace that a browser might drop) is refused: no open redirects.
pub(crate) fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?;
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && next.len() <= 500;
    local.then(|| next.to_owned())
}

/// Failures a page shows as a page of their own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    #[error("sign-in required")]
    SignInRequired,
    #[error("two-factor required")]
    TwoFactorRequired,
    #[error("not found")]
    NotFound,
    #[error("the form expired")]
    Csrf,
    #[error("{0}")]
    Forbidden(String),
    /// The active tenant is suspended or deleted: its area is closed.
    #[error("tenant unavailable")]
    TenantClosed(String),
    #[error("too many attempts")]
    TooMany,
    #[error("unavailable")]
    Unavailable,
    /// Text PostgreSQL cannot store (a NUL) that no check refused earlier.
    #[error("unstorable text")]
    UnstorableText,
    #[error("internal: {0}")]
    Internal(String),
}

impl PageError {
    /// An error no case above names: internal, unless somewhere in its chain PostgreSQL refused
    /// text it cannot store (a NUL typed into a search, a reason, a sign-in), which is the
    /// visitor's to correct.
    pub(crate) fn unexpected(error: &(dyn std::error::Error + 'static)) -> Self {
        if DbError::is_unstorable_text_in(error) {
            return Self::UnstorableText;
        }
        Self::Internal(crate::problem::cause_chain(error))
    }
}

impl From<DbError> for PageError {
    fn from(error: DbError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable
        } else {
            Self::unexpected(&error)
        }
    }
}

impl From<AccountError> for PageError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Db(db) => db.into(),
            AccountError::UnknownUser => Self::NotFound,
            other => Self::unexpected(&other),
        }
    }
}

impl From<TenancyError> for PageError {
    fn from(error: TenancyError) -> Self {
        match error {
            TenancyError::Db(db) => db.into(),
            TenancyError::Account(account) => account.into(),
            TenancyError::NotFound => Self::NotFound,
            TenancyError::Forbidden(message) => Self::Forbidden(message.to_owned()),
            other => Self::unexpected(&other),
        }
    }
}

impl From<tenantkit_billing::BillingError> for PageError {
    fn from(error: tenantkit_billing::BillingError) -> Self {
        use tenantkit_billing::BillingError;
        match error {
            BillingError::Db(db) => db.into(),
            BillingError::NotFound => Self::NotFound,
            BillingError::FeatureNotInPlan { feature, plans } => {
                Self::Forbidden(crate::problem::feature_not_in_plan_detail(feature, &plans))
            }
            other => Self::unexpected(&other),
        }
    }
}

impl From<redis::RedisError> for PageError {
    fn from(error: redis::RedisError) -> Self {
        tracing::warn!(%error, "session store unavailable");
        Self::Unavailable
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, text) = match &self {
            Self::SignInRequired => return redirect("/login", &[]),
            Self::TwoFactorRequired => return redirect("/account/two-factor", &[]),
            Self::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing here.".to_owned()),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Please try again",
                "The form had expired or did not come from this site. Go back, reload the page and submit it again.".to_owned(),
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", message.clone()),
            Self::TenantClosed(name) => (
                StatusCode::FORBIDDEN,
                "This organisation is suspended",
                format!(
                    "{name} is not available at the moment: its account has been suspended or \
                     closed. Please contact support. From the start page you can \
                     still switch to another organisation or manage your own account."
                ),
            ),
            Self::UnstorableText => (
                StatusCode::BAD_REQUEST,
                "Please check what you entered",
                "Something you entered contains a NUL character, which this site cannot store. Go back, remove it and try again.".to_owned(),
            ),
            Self::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Please wait a few minutes before trying again.".to_owned(),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "Something we depend on is down. Please try again in a moment.".to_owned(),
            ),
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "The error has been logged.".to_owned())
            }
        };
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main><h1>{title}</h1><p>{}</p>\
             <p><a href=\"/\">Back to the start page</a></p></main></body></html>",
            escape(&text)
        );
        let mut response = Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html);
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("retry-after", poem::http::HeaderValue::from_static("5"));
        }
        response
    }
}

impl From<PageError> for poem::Error {
    fn from(error: PageError) -> Self {
        poem::Error::from_response(error.into_response())
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/team")), Some("/team".to_owned()));
        assert_eq!(
            safe_next(Some("/invitations/accept?token=x")),
            Some("/invitations/accept?token=x".to_owned())
        );
        for bad in [
            "https://evil.test/",
            "//evil.test",
            "/\\evil.test",
            "evil",
            "/a\nb",
            "/\u{3000}/evil.test",
            "/ /evil.test",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
    }
}
