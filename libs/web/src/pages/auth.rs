//! Signing up, verifying, signing in and out, and recovering a password.

use std::time::Duration;

use poem::{
    Response, handler,
    web::{Form, Query},
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use tenantkit_accounts::{
    AccountError, password_flows,
    sign_in::{self, SignInOutcome},
};
use tenantkit_tenancy::{SignUp, TenancyError, onboarding};

use super::{
    DoneQuery, Field, FieldErrors, FormPage, Layout, MessagePage, PageError, page, redirect,
    redirect_with_notice, safe_next,
};
use crate::{
    browser::{Browser, SESSION_COOKIE, set_cookie},
    rate_limit::RateLimit,
    session::{self, SessionData, Stage},
};

#[derive(Deserialize, Default)]
pub(crate) struct SignupForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

fn signup_page(browser: &Browser, form: &SignupForm, errors: FieldErrors) -> FormPage {
    FormPage {
        layout: Layout::new(browser, None, "Sign up"),
        heading: "Create your organisation".into(),
        intro: Some("You will be its owner, and can invite your team once you are in.".into()),
        action: "/signup".into(),
        fields: vec![
            Field::new(
                "organisation",
                "Organisation name",
                "text",
                &form.organisation,
            )
            .autocomplete("organization"),
            Field::new("name", "Your name", "text", &form.name).autocomplete("name"),
            Field::new("email", "Email", "email", &form.email),
            Field::new("password", "Password", "password", ""),
        ],
        submit: "Create account",
        links: vec![("/login".into(), "Already have an account? Log in".into())],
    }
    .with_errors(errors)
}

#[handler]
pub(crate) async fn signup_form(browser: Browser) -> Response {
    page(
        &browser,
        &signup_page(&browser, &SignupForm::default(), FieldErrors::default()),
    )
}

#[handler]
pub(crate) async fn signup(
    browser: Browser,
    Form(form): Form<SignupForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let state = &browser.state;
    let limit = RateLimit {
        name: "signup",
        limit: state.settings.rate_limit.signups_per_hour,
        window: Duration::from_secs(3600),
    };
    if limit.check(&state.kv, &browser.ip).await.is_err() {
        return Err(PageError::TooMany);
    }
    let result = tenantkit_tenancy::sign_up(
        &state.db,
        &state.hasher,
        SignUp {
            organisation: form.organisation.clone(),
            slug: None,
            name: form.name.clone(),
            email: form.email.clone(),
            password: SecretString::from(form.password.clone()),
        },
    )
    .await;
    match result {
        // A new account and an existing one are answered alike.
        Ok(outcome) => {
            if let tenantkit_tenancy::SignUpOutcome::Created(created) = outcome {
                browser
                    .audit(
                        Some(created.user_id),
                        "signup",
                        json!({ "tenant_id": created.tenant_id }),
                    )
                    .await;
            }
            Ok(redirect("/signup/check-inbox", &[]))
        }
        Err(error) => {
            let errors = field_error(error)?;
            Ok(page(&browser, &signup_page(&browser, &form, errors)))
        }
    }
}

/// A refusal the form shows next to a field; anything else is the page's error.
pub(crate) fn field_error(error: TenancyError) -> Result<FieldErrors, PageError> {
    match error {
        TenancyError::Invalid { field, message } => Ok(FieldErrors::one(field, message)),
        TenancyError::Account(AccountError::Invalid { field, message }) => {
            Ok(FieldErrors::one(field, message))
        }
        TenancyError::SlugTaken(_) => Ok(FieldErrors::one(
            "organisation",
            "that address is taken; try another name",
        )),
        TenancyError::Account(AccountError::Token(error)) => {
            Ok(FieldErrors::one("", format!("{error}. Ask for a new one.")))
        }
        TenancyError::InvitationRevoked => Ok(FieldErrors::one(
            "",
            "This invitation was withdrawn by the organisation.",
        )),
        other => Err(other.into()),
    }
}

#[handler]
pub(crate) async fn check_inbox(browser: Browser) -> Response {
    page(&browser, &MessagePage {
        layout: Layout::new(&browser, None, "Check your inbox"),
        heading: "Check your inbox".into(),
        paragraphs: vec![
            "We have sent you an email. Open the link in it to verify your address and sign in.".into(),
            "Nothing there after a few minutes? Look in your spam folder, or sign up again.".into(),
        ],
        links: vec![("/login".into(), "Log in".into())],
    })
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// Opening the link verifies the address and signs the user in.
#[handler]
pub(crate) async fn verify(
    browser: Browser,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let state = &browser.state;
    match onboarding::verify_email(&state.db, state.links.signer(), &query.token).await {
        Ok(user) => start_session(&browser, user.id, false, Stage::Active).await,
        Err(TenancyError::Account(AccountError::Token(error))) => {
            Ok(link_problem(&browser, &error.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

fn link_problem(browser: &Browser, what: &str) -> Response {
    page(
        browser,
        &MessagePage {
            layout: Layout::new(browser, None, "Link not valid").error(format!("{what}.")),
            heading: "This link cannot be used".into(),
            paragraphs: vec![
                "Links work once and expire. Sign in to ask for a new one, or reset your password."
                    .into(),
            ],
            links: vec![
                ("/login".into(), "Log in".into()),
                ("/password/forgot".into(), "Forgot your password?".into()),
            ],
        },
    )
}

/// A new session (a new id: the old one, if any, is ended), then on to the next page.
async fn start_session(
    browser: &Browser,
    user: tenantkit_kernel::UserId,
    remember: bool,
    stage: Stage,
) -> Result<Response, PageError> {
    let state = &browser.state;
    if let Some(old) = &browser.session {
        session::destroy(&state.kv, old).await?;
    }
    let now = session::now();
    let data = SessionData {
        user_id: user,
        tenant_id: None,
        stage,
        remember,
        created_at: now,
        last_seen: now,
        ip: browser.ip.clone(),
        device: browser.device.clone(),
        failed_codes: 0,
        impersonation: None,
    };
    let (cookie, _) = session::create(&state.kv, &data).await?;
    let cookie = set_cookie(state, SESSION_COOKIE, &cookie, data.cookie_max_age());
    let next = if stage == Stage::SecondFactor {
        "/login/two-factor"
    } else {
        "/dashboard"
    };
    Ok(redirect(next, &[cookie]))
}

#[derive(Deserialize, Default)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    remember: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
    #[serde(default)]
    done: String,
}

fn login_page(browser: &Browser, form: &LoginForm, errors: FieldErrors) -> FormPage {
    let action = match safe_next(form.next.as_deref()) {
        Some(next) => format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => "/login".into(),
    };
    FormPage {
        layout: Layout::new(browser, None, "Log in"),
        heading: "Log in".into(),
        intro: None,
        action,
        fields: vec![
            Field::new("email", "Email", "email", &form.email),
            Field::new("password", "Password", "password", "").autocomplete("current-password"),
            Field::new(
                "remember",
                "Remember me",
                "checkbox",
                form.remember.as_deref().unwrap_or(""),
            ),
        ],
        submit: "Log in",
        links: vec![
            ("/password/forgot".into(), "Forgot your password?".into()),
            ("/signup".into(), "New here? Sign up".into()),
        ],
    }
    .with_errors(errors)
}

#[handler]
pub(crate) async fn login_form(browser: Browser, Query(query): Query<NextQuery>) -> Response {
    let notice = DoneQuery { done: query.done }.notice();
    let form = LoginForm {
        next: query.next,
        ..LoginForm::default()
    };
    let mut view = login_page(&browser, &form, FieldErrors::default());
    if let Some(notice) = notice {
        view = view.notice(notice);
    }
    page(&browser, &view)
}

#[handler]
pub(crate) async fn login(
    browser: Browser,
    Query(query): Query<NextQuery>,
    Form(mut form): Form<LoginForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    form.next = form.next.or(query.next);
    let state = &browser.state;
    let window = Duration::from_secs(15 * 60);
    let email_key = form.email.trim().to_lowercase();
    let per_account = RateLimit {
        name: "login-account",
        limit: state.settings.rate_limit.logins_per_account,
        window,
    };
    let per_address = RateLimit {
        name: "login-address",
        limit: state.settings.rate_limit.logins_per_address,
        window,
    };
    if per_address.check(&state.kv, &browser.ip).await.is_err()
        || per_account
            .check(&state.kv, &crate::rate_limit::subject_digest(&email_key))
            .await
            .is_err()
    {
        let errors = FieldErrors::one("", "Too many attempts. Wait a few minutes and try again.");
        // A 429 like every other "too many": clients, monitoring and tests can tell it apart.
        return Ok(super::page_with_status(
            &browser,
            poem::http::StatusCode::TOO_MANY_REQUESTS,
            &login_page(&browser, &form, errors),
        ));
    }
    let remember = form.remember.as_deref() == Some("on");
    let outcome = sign_in::sign_in(
        &state.db,
        &state.hasher,
        &form.email,
        SecretString::from(form.password.clone()),
    )
    .await?;
    let response = match outcome {
        SignInOutcome::SignedIn(user) => {
            browser
                .audit(
                    Some(user.id),
                    "login.success",
                    json!({ "two_factor": false }),
                )
                .await;
            start_session(&browser, user.id, remember, Stage::Active).await?
        }
        SignInOutcome::NeedsSecondFactor(user) => {
            browser
                .audit(Some(user.id), "login.password_accepted", json!({}))
                .await;
            start_session(&browser, user.id, remember, Stage::SecondFactor).await?
        }
        SignInOutcome::Locked(user) => {
            browser
                .audit(Some(user.id), "login.locked", json!({}))
                .await;
            let errors = FieldErrors::one(
                "",
                "This account is locked. Please contact support to have it unlocked.",
            );
            return Ok(page(&browser, &login_page(&browser, &form, errors)));
        }
        SignInOutcome::NotVerified(user) => {
            tenantkit_accounts::email_flows::resend_verification(&state.db, user.id).await?;
            let errors = FieldErrors::one(
                "",
                "Your email address is not verified yet. We have sent you a new link.",
            );
            return Ok(page(&browser, &login_page(&browser, &form, errors)));
        }
        SignInOutcome::Refused => {
            let typed: String = form.email.trim().chars().take(254).collect();
            browser
                .audit(None, "login.failure", json!({ "email": typed }))
                .await;
            let errors = FieldErrors::one("", "The email or password is not correct.");
            return Ok(page(&browser, &login_page(&browser, &form, errors)));
        }
    };
    match safe_next(form.next.as_deref()) {
        Some(next)
            if response
                .headers()
                .get("location")
                .is_some_and(|l| l == "/dashboard") =>
        {
            let cookies: Vec<String> = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect();
            Ok(redirect(&next, &cookies))
        }
        _ => Ok(response),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

/// Wrong codes allowed per pending sign-in before it must start again.
const MAX_FAILED_CODES: u32 = 5;

fn code_page(browser: &Browser, errors: FieldErrors) -> FormPage {
    FormPage {
        layout: Layout::new(browser, None, "Two-factor authentication"),
        heading: "Two-factor authentication".into(),
        intro: Some(
            "Enter the code from your authenticator app, or one of your recovery codes.".into(),
        ),
        action: "/login/two-factor".into(),
        fields: vec![
            Field::new("code", "Authentication code", "text", "").autocomplete("one-time-code"),
        ],
        submit: "Verify",
        links: vec![],
    }
    .with_errors(errors)
}

#[handler]
pub(crate) async fn second_factor_form(browser: Browser) -> Response {
    match &browser.session {
        Some(s) if s.data.stage == Stage::SecondFactor => {
            page(&browser, &code_page(&browser, FieldErrors::default()))
        }
        _ => redirect("/login", &[]),
    }
}

#[handler]
pub(crate) async fn second_factor(
    browser: Browser,
    Form(form): Form<CodeForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let state = &browser.state;
    let Some(pending) = browser
        .session
        .clone()
        .filter(|s| s.data.stage == Stage::SecondFactor)
    else {
        return Ok(redirect("/login", &[]));
    };
    if sign_in::check_second_factor(&state.db, pending.data.user_id, &form.code).await? {
        browser
            .audit(
                Some(pending.data.user_id),
                "login.success",
                json!({ "two_factor": true }),
            )
            .await;
        // A new session id for the fully signed-in session.
        return start_session(
            &browser,
            pending.data.user_id,
            pending.data.remember,
            Stage::Active,
        )
        .await;
    }
    browser
        .audit(
            Some(pending.data.user_id),
            "login.second_factor_failure",
            json!({}),
        )
        .await;
    let mut data = pending.data.clone();
    data.failed_codes += 1;
    if data.failed_codes >= MAX_FAILED_CODES {
        session::destroy(&state.kv, &pending).await?;
        return Ok(redirect("/login", &[]));
    }
    session::save(&state.kv, &pending.key, &data).await?;
    Ok(page(
        &browser,
        &code_page(
            &browser,
            FieldErrors::one("code", "That code is not valid."),
        ),
    ))
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub(crate) csrf_token: String,
}

#[handler]
pub(crate) async fn logout(
    browser: Browser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    browser.check_csrf_allowing_impersonation(&form.csrf_token)?;
    if let Some(session) = &browser.session {
        session::destroy(&browser.state.kv, session).await?;
    }
    Ok(redirect(
        "/",
        &[set_cookie(&browser.state, SESSION_COOKIE, "", Some(0))],
    ))
}

#[derive(Deserialize, Default)]
pub(crate) struct EmailForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

#[handler]
pub(crate) async fn forgot_form(browser: Browser) -> Response {
    page(
        &browser,
        &FormPage {
            layout: Layout::new(&browser, None, "Forgot your password"),
            heading: "Forgot your password?".into(),
            intro: Some("We will email you a link to choose a new one.".into()),
            action: "/password/forgot".into(),
            fields: vec![Field::new("email", "Email", "email", "")],
            submit: "Send reset link",
            links: vec![],
        },
    )
}

#[handler]
pub(crate) async fn forgot(
    browser: Browser,
    Form(form): Form<EmailForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let state = &browser.state;
    let limit = RateLimit {
        name: "reset",
        limit: state.settings.rate_limit.logins_per_account,
        window: Duration::from_secs(3600),
    };
    if limit.check(&state.kv, &browser.ip).await.is_err() {
        return Err(PageError::TooMany);
    }
    // The same page whether or not the address has an account.
    password_flows::request_password_reset(&state.db, &form.email).await?;
    Ok(page(&browser, &MessagePage {
        layout: Layout::new(&browser, None, "Check your inbox"),
        heading: "Check your inbox".into(),
        paragraphs: vec!["If an account uses that address, a link to reset its password is on its way. It works for an hour.".into()],
        links: vec![("/login".into(), "Log in".into())],
    }))
}

#[derive(Deserialize, Default)]
pub(crate) struct ResetForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
}

fn reset_page(browser: &Browser, token: &str, errors: FieldErrors) -> FormPage {
    FormPage {
        layout: Layout::new(browser, None, "Choose a new password"),
        heading: "Choose a new password".into(),
        intro: None,
        action: format!(
            "/password/reset?token={}",
            url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
        ),
        fields: vec![Field::new("new_password", "New password", "password", "")],
        submit: "Set password",
        links: vec![],
    }
    .with_errors(errors)
}

#[handler]
pub(crate) async fn reset_form(
    browser: Browser,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let state = &browser.state;
    match password_flows::check_reset_token(&state.db, state.links.signer(), &query.token).await {
        Ok(_) => Ok(page(
            &browser,
            &reset_page(&browser, &query.token, FieldErrors::default()),
        )),
        Err(AccountError::Token(error)) => Ok(link_problem(&browser, &error.to_string())),
        Err(other) => Err(other.into()),
    }
}

#[handler]
pub(crate) async fn reset(
    browser: Browser,
    Query(query): Query<TokenQuery>,
    Form(form): Form<ResetForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let state = &browser.state;
    let token = if form.token.is_empty() {
        query.token
    } else {
        form.token
    };
    let result = password_flows::reset_password(
        &state.db,
        &state.hasher,
        state.links.signer(),
        &token,
        SecretString::from(form.new_password),
    )
    .await;
    match result {
        Ok(user) => {
            // A new password ends every session.
            session::end_all_others(&state.kv, user, None).await?;
            Ok(redirect_with_notice("/login", "password-reset"))
        }
        Err(AccountError::Invalid { field, message }) => Ok(page(
            &browser,
            &reset_page(
                &browser,
                &token,
                FieldErrors::one(
                    if field == "password" {
                        "new_password"
                    } else {
                        field
                    },
                    message,
                ),
            ),
        )),
        Err(AccountError::Token(error)) => Ok(link_problem(&browser, &error.to_string())),
        Err(other) => Err(other.into()),
    }
}

impl FormPage {
    pub(crate) fn notice(mut self, notice: &str) -> Self {
        self.layout.notice = Some(notice.to_owned());
        self
    }
}
