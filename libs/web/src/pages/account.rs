//! The signed-in user's own pages: dashboard, account settings, sessions, two-factor, and
//! switching the active tenant.

use askama::Template;
use poem::{
    Response, handler,
    web::{Form, Path, Query},
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use tenantkit_accounts::{AccountError, email_flows, password_flows, sign_in, two_factor};
use tenantkit_kernel::TenantId;

use super::{FieldErrors, Layout, MessagePage, PageError, auth::CsrfOnly, page, redirect};
use crate::{
    browser::{Browser, SignedIn},
    session,
};

/// Platform admins must turn on two-factor before anything else.
async fn signed_in_with_policy(browser: &Browser) -> Result<SignedIn, PageError> {
    let signed_in = browser.require_signed_in().await?;
    if signed_in.user.is_platform_admin && !signed_in.user.two_factor_enabled() {
        return Err(PageError::TwoFactorRequired);
    }
    Ok(signed_in)
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    tenant_name: Option<String>,
    name: String,
    role: String,
    members: i64,
    two_factor: bool,
}

#[handler]
pub(crate) async fn dashboard(browser: Browser) -> Result<Response, PageError> {
    let me = signed_in_with_policy(&browser).await?;
    if me.tenant.is_some() {
        me.open_tenant()?;
    }
    let members = match &me.tenant {
        Some(tenant) => {
            let mut tx = browser.state.db.tenant(tenant.id).await?;
            tenantkit_tenancy::repo::member_count(&mut tx).await?
        }
        None => 0,
    };
    Ok(page(
        &browser,
        &DashboardPage {
            layout: Layout::new(&browser, Some(&me), "Dashboard"),
            tenant_name: me.tenant.as_ref().map(|t| t.name.clone()),
            name: me.user.display_name.clone(),
            role: me
                .tenant
                .as_ref()
                .map(|t| t.role.to_string())
                .unwrap_or_default(),
            members,
            two_factor: me.user.two_factor_enabled(),
        },
    ))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    name: String,
    email: String,
    verified: bool,
    new_email: String,
    errors: FieldErrors,
}

fn account_page(
    browser: &Browser,
    me: &SignedIn,
    new_email: &str,
    errors: FieldErrors,
) -> AccountPage {
    AccountPage {
        layout: Layout::new(browser, Some(me), "Account"),
        name: me.user.display_name.clone(),
        email: me.user.email.clone(),
        verified: me.user.email_verified_at.is_some(),
        new_email: new_email.to_owned(),
        errors,
    }
}

#[handler]
pub(crate) async fn account(browser: Browser) -> Result<Response, PageError> {
    let me = signed_in_with_policy(&browser).await?;
    Ok(page(
        &browser,
        &account_page(&browser, &me, "", FieldErrors::default()),
    ))
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

#[handler]
pub(crate) async fn change_password(
    browser: Browser,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = signed_in_with_policy(&browser).await?;
    let state = &browser.state;
    let result = password_flows::change_password(
        &state.db,
        &state.hasher,
        me.user.id,
        SecretString::from(form.current_password),
        SecretString::from(form.new_password),
    )
    .await;
    match result {
        Ok(()) => {
            browser
                .audit(Some(me.user.id), "password.changed", json!({}))
                .await;
            // Every other session ends; this one goes on.
            session::end_all_others(&state.kv, me.user.id, Some(&me.session.key)).await?;
            let mut view = account_page(&browser, &me, "", FieldErrors::default());
            view.layout = view
                .layout
                .notice("Your password was changed. Your other sessions were signed out.");
            Ok(page(&browser, &view))
        }
        Err(AccountError::Invalid { field, message }) => Ok(page(
            &browser,
            &account_page(&browser, &me, "", FieldErrors::one(field, message)),
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct EmailChangeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    new_email: String,
    #[serde(default)]
    password: String,
}

#[handler]
pub(crate) async fn change_email(
    browser: Browser,
    Form(form): Form<EmailChangeForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = signed_in_with_policy(&browser).await?;
    let state = &browser.state;
    let result = email_flows::request_email_change(
        &state.db,
        &state.hasher,
        me.user.id,
        &form.new_email,
        SecretString::from(form.password),
    )
    .await;
    match result {
        Ok(()) => {
            let mut view = account_page(&browser, &me, "", FieldErrors::default());
            view.layout = view.layout.notice("Check the new address: the change takes effect when you open the link we sent there.");
            Ok(page(&browser, &view))
        }
        Err(AccountError::Invalid { field, message }) => Ok(page(
            &browser,
            &account_page(
                &browser,
                &me,
                &form.new_email,
                FieldErrors::one(field, message),
            ),
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[handler]
pub(crate) async fn confirm_email(
    browser: Browser,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let state = &browser.state;
    let (heading, text) = match email_flows::confirm_email_change(
        &state.db,
        state.links.signer(),
        &query.token,
    )
    .await
    {
        Ok(user) => {
            browser.audit(Some(user), "email.changed", json!({})).await;
            (
                "Email address changed",
                "Your new address is confirmed and in use.".to_owned(),
            )
        }
        Err(AccountError::Token(error)) => ("This link cannot be used", format!("{error}.")),
        Err(AccountError::EmailTaken) => (
            "This link cannot be used",
            "That address now belongs to another account.".to_owned(),
        ),
        Err(other) => return Err(other.into()),
    };
    let signed_in = browser.signed_in().await?;
    Ok(page(
        &browser,
        &MessagePage {
            layout: Layout::new(&browser, signed_in.as_ref(), heading),
            heading: heading.into(),
            paragraphs: vec![text],
            links: vec![("/account".into(), "Your account".into())],
        },
    ))
}

#[handler]
pub(crate) async fn resend_verification(
    browser: Browser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = browser.require_signed_in().await?;
    email_flows::resend_verification(&browser.state.db, me.user.id).await?;
    let mut view = account_page(&browser, &me, "", FieldErrors::default());
    view.layout = view.layout.notice("A new verification link is on its way.");
    Ok(page(&browser, &view))
}

struct SessionRow {
    key: String,
    device: String,
    ip: String,
    last_seen: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    layout: Layout,
    sessions: Vec<SessionRow>,
}

#[handler]
pub(crate) async fn sessions(browser: Browser) -> Result<Response, PageError> {
    let me = signed_in_with_policy(&browser).await?;
    let rows = session::list(&browser.state.kv, me.user.id)
        .await?
        .into_iter()
        .filter(|s| s.data.stage == session::Stage::Active)
        .map(|s| SessionRow {
            current: s.key == me.session.key,
            last_seen: chrono::DateTime::from_timestamp(s.data.last_seen, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            device: s.data.device,
            ip: s.data.ip,
            key: s.key,
        })
        .collect();
    Ok(page(
        &browser,
        &SessionsPage {
            layout: Layout::new(&browser, Some(&me), "Sessions"),
            sessions: rows,
        },
    ))
}

#[handler]
pub(crate) async fn revoke_session(
    browser: Browser,
    Path(key): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = signed_in_with_policy(&browser).await?;
    if !session::revoke(&browser.state.kv, me.user.id, &key).await? {
        return Err(PageError::NotFound);
    }
    Ok(redirect("/sessions", &[]))
}

#[derive(Deserialize)]
pub(crate) struct SwitchForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    tenant_id: String,
}

#[handler]
pub(crate) async fn switch_tenant(
    browser: Browser,
    Form(form): Form<SwitchForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = browser.require_signed_in().await?;
    let tenant: TenantId = form.tenant_id.parse().map_err(|_| PageError::NotFound)?;
    if !me.tenants.iter().any(|t| t.id == tenant) {
        return Err(PageError::NotFound);
    }
    let mut data = me.session.data.clone();
    data.tenant_id = Some(tenant);
    session::save(&browser.state.kv, &me.session.key, &data).await?;
    Ok(redirect("/dashboard", &[]))
}

#[derive(Template)]
#[template(path = "two_factor.html")]
struct TwoFactorPage {
    layout: Layout,
    enabled: bool,
    required: bool,
    recovery_codes: Option<Vec<String>>,
    recovery_left: i64,
    qr: String,
    secret: String,
    errors: FieldErrors,
}

async fn two_factor_page(
    browser: &Browser,
    me: &SignedIn,
    errors: FieldErrors,
) -> Result<TwoFactorPage, PageError> {
    let state = &browser.state;
    let (qr, secret) = match sign_in::enrolment_secret(&state.db, me.user.id).await? {
        Some(secret) => {
            let uri = two_factor::otpauth_uri(&secret, "Tenantkit", &me.user.email);
            (two_factor::qr_svg_data_uri(&uri), secret.to_base32())
        }
        None => (String::new(), String::new()),
    };
    let recovery_left = if me.user.two_factor_enabled() {
        let mut tx = state.db.global().await?;
        tenantkit_accounts::repo::unused_recovery_codes(tx.conn(), me.user.id).await?
    } else {
        0
    };
    Ok(TwoFactorPage {
        layout: Layout::new(browser, Some(me), "Two-factor authentication"),
        enabled: me.user.two_factor_enabled(),
        required: me.user.is_platform_admin,
        recovery_codes: None,
        recovery_left,
        qr,
        secret,
        errors,
    })
}

#[handler]
pub(crate) async fn two_factor_settings(browser: Browser) -> Result<Response, PageError> {
    let me = browser.require_signed_in().await?;
    Ok(page(
        &browser,
        &two_factor_page(&browser, &me, FieldErrors::default()).await?,
    ))
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

#[handler]
pub(crate) async fn enable_two_factor(
    browser: Browser,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = browser.require_signed_in().await?;
    match sign_in::confirm_enrolment(&browser.state.db, me.user.id, &form.code).await {
        Ok(codes) => {
            browser
                .audit(Some(me.user.id), "two_factor.enabled", json!({}))
                .await;
            let mut view = two_factor_page(&browser, &me, FieldErrors::default()).await?;
            view.recovery_codes = Some(codes);
            Ok(page(&browser, &view))
        }
        Err(AccountError::Invalid { field, message }) => Ok(page(
            &browser,
            &two_factor_page(&browser, &me, FieldErrors::one(field, message)).await?,
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordOnly {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    password: String,
}

#[handler]
pub(crate) async fn disable_two_factor(
    browser: Browser,
    Form(form): Form<PasswordOnly>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let me = browser.require_signed_in().await?;
    let state = &browser.state;
    if me.user.is_platform_admin {
        return Err(PageError::Forbidden(
            "Platform administrators must keep two-factor authentication on.".into(),
        ));
    }
    match sign_in::disable_two_factor(
        &state.db,
        &state.hasher,
        me.user.id,
        SecretString::from(form.password),
    )
    .await
    {
        Ok(()) => {
            browser
                .audit(Some(me.user.id), "two_factor.disabled", json!({}))
                .await;
            Ok(redirect("/account/two-factor", &[]))
        }
        Err(AccountError::Invalid { field, message }) => Ok(page(
            &browser,
            &two_factor_page(&browser, &me, FieldErrors::one(field, message)).await?,
        )),
        Err(other) => Err(other.into()),
    }
}
