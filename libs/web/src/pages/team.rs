//! The team page and accepting invitations.

use askama::Template;
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Form, Path, Query},
};
use secrecy::SecretString;
use serde::Deserialize;
use tenantkit_kernel::{InvitationId, Role, UserId};
use tenantkit_tenancy::{
    Invitation, Member, TenancyError,
    team::{self, Acceptor, Actor},
};

use super::{
    DoneQuery, Field, FieldErrors, FormPage, Layout, MessagePage, PageError,
    auth::{CsrfOnly, field_error},
    page, page_with_status, redirect, redirect_with_notice,
};
use crate::{
    browser::{Browser, SignedIn},
    session,
};

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    layout: Layout,
    tenant: String,
    members: Vec<Member>,
    invitations: Vec<Invitation>,
    can_manage: bool,
    is_owner: bool,
    me: UserId,
    roles: [&'static str; 3],
    invite_email: String,
    errors: FieldErrors,
}

/// The signed-in member, the active tenant and their role in it.
async fn member(
    browser: &Browser,
) -> Result<(SignedIn, Actor, tenantkit_kernel::TenantId), PageError> {
    let me = browser.require_signed_in().await?;
    if me.user.is_platform_admin && !me.user.two_factor_enabled() {
        return Err(PageError::TwoFactorRequired);
    }
    let tenant = me.open_tenant()?.clone();
    let actor = Actor::member(me.user.id, tenant.role);
    Ok((me, actor, tenant.id))
}

/// The team page; with `errors`, answered with `status` (403 for a refusal, 409 for a
/// conflict with the team's state, 422 for a form to correct).
async fn team_page(
    browser: &Browser,
    status: StatusCode,
    invite_email: &str,
    errors: FieldErrors,
    notice: Option<&str>,
) -> Result<Response, PageError> {
    let (me, actor, tenant) = member(browser).await?;
    let mut tx = browser.state.db.tenant(tenant).await?;
    let members = tenantkit_tenancy::repo::members_with_users(&mut tx).await?;
    let invitations = if actor.role.can_manage_members() {
        tenantkit_tenancy::repo::invitations::pending(&mut tx).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    let mut layout = Layout::new(browser, Some(&me), "Team");
    if let Some(notice) = notice {
        layout = layout.notice(notice);
    }
    if let Some(general) = errors.get("") {
        layout = layout.error(general.to_owned());
    }
    Ok(page_with_status(
        browser,
        status,
        &TeamPage {
            layout,
            tenant: me
                .tenant
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            members,
            invitations,
            can_manage: actor.role.can_manage_members(),
            is_owner: actor.role == Role::Owner,
            me: me.user.id,
            roles: ["member", "admin", "owner"],
            invite_email: invite_email.to_owned(),
            errors,
        },
    ))
}

fn done(notice: &'static str) -> Response {
    redirect_with_notice("/team", notice)
}

#[handler]
pub(crate) async fn team_members(
    browser: Browser,
    Query(query): Query<DoneQuery>,
) -> Result<Response, PageError> {
    team_page(
        &browser,
        StatusCode::OK,
        "",
        FieldErrors::default(),
        query.notice(),
    )
    .await
}

/// Refuses a change that adds or alters data while the organisation is read-only for an
/// overdue payment (removals stay possible: they only shrink or secure).
async fn refuse_if_restricted(
    browser: &Browser,
    tx: &mut tenantkit_db::TenantTx,
) -> Result<(), PageError> {
    if browser.state.billing.entitlements(tx).await?.restricted {
        return Err(PageError::Forbidden(
            "A payment is overdue, so this organisation is read-only until it is paid. \
             Owners can update the payment method on the billing page."
                .into(),
        ));
    }
    Ok(())
}

/// Whether a team change adds or alters (refused in billing's restricted mode) or removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    AddsOrAlters,
    Removes,
}

/// Runs a team change in the active tenant's transaction; on success, back to the team page
/// with the `notice` (see [`redirect_with_notice`]), else the team page with the error.
async fn change(
    browser: &Browser,
    csrf_token: &str,
    notice: &'static str,
    kind: ChangeKind,
    action: impl AsyncFnOnce(&mut tenantkit_db::TenantTx, Actor) -> Result<(), TenancyError>,
) -> Result<Response, PageError> {
    browser.check_csrf(csrf_token)?;
    let (_, actor, tenant) = member(browser).await?;
    let mut tx = browser.state.db.tenant(tenant).await?;
    if kind == ChangeKind::AddsOrAlters {
        refuse_if_restricted(browser, &mut tx).await?;
    }
    match action(&mut tx, actor).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(done(notice))
        }
        Err(TenancyError::LastOwner) => {
            team_page(
                browser,
                StatusCode::CONFLICT,
                "",
                FieldErrors::one("", "An organisation must keep at least one owner."),
                None,
            )
            .await
        }
        Err(TenancyError::Forbidden(message)) => {
            team_page(
                browser,
                StatusCode::FORBIDDEN,
                "",
                FieldErrors::one("", message),
                None,
            )
            .await
        }
        Err(other) => {
            let errors = field_error(other)?;
            team_page(browser, StatusCode::UNPROCESSABLE_ENTITY, "", errors, None).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

#[handler]
pub(crate) async fn invite(
    browser: Browser,
    Form(form): Form<InviteForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let (_, actor, tenant) = member(&browser).await?;
    let Ok(role) = form.role.parse::<Role>() else {
        return team_page(
            &browser,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.email,
            FieldErrors::one("role", "choose a role"),
            None,
        )
        .await;
    };
    let mut tx = browser.state.db.tenant(tenant).await?;
    refuse_if_restricted(&browser, &mut tx).await?;
    let seats = browser.state.billing.entitlements(&mut tx).await?.seats;
    match team::invite(&mut tx, actor, &form.email, role, seats).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(done("invited"))
        }
        Err(TenancyError::Forbidden(message)) => {
            let errors = FieldErrors::one("", message);
            team_page(&browser, StatusCode::FORBIDDEN, &form.email, errors, None).await
        }
        Err(TenancyError::SeatLimit(seats)) => {
            let message = format!(
                "All {seats} seats of your plan are taken by members or open invitations. \
                 Choose a larger plan on the billing page, or revoke an invitation."
            );
            let errors = FieldErrors::one("", message);
            team_page(&browser, StatusCode::CONFLICT, &form.email, errors, None).await
        }
        Err(other) => {
            let errors = field_error(other)?;
            team_page(
                &browser,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form.email,
                errors,
                None,
            )
            .await
        }
    }
}

fn invitation_id(raw: &str) -> Result<InvitationId, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

fn user_id(raw: &str) -> Result<UserId, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

#[handler]
pub(crate) async fn resend(
    browser: Browser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let id = invitation_id(&id)?;
    change(
        &browser,
        &form.csrf_token,
        "resent",
        ChangeKind::AddsOrAlters,
        async |tx, actor| team::resend_invitation(tx, actor, id).await,
    )
    .await
}

#[handler]
pub(crate) async fn revoke(
    browser: Browser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let id = invitation_id(&id)?;
    change(
        &browser,
        &form.csrf_token,
        "revoked",
        ChangeKind::Removes,
        async |tx, actor| team::revoke_invitation(tx, actor, id).await,
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    role: String,
}

#[handler]
pub(crate) async fn change_role(
    browser: Browser,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, PageError> {
    let user = user_id(&id)?;
    let role: Role = form.role.parse().map_err(|_| PageError::NotFound)?;
    change(
        &browser,
        &form.csrf_token,
        "role-changed",
        ChangeKind::AddsOrAlters,
        async |tx, actor| team::change_role(tx, actor, user, role).await,
    )
    .await
}

#[handler]
pub(crate) async fn remove(
    browser: Browser,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let user = user_id(&id)?;
    change(
        &browser,
        &form.csrf_token,
        "removed",
        ChangeKind::Removes,
        async |tx, actor| team::remove_member(tx, actor, user).await,
    )
    .await
}

#[handler]
pub(crate) async fn leave(
    browser: Browser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let (me, actor, tenant) = member(&browser).await?;
    let mut tx = browser.state.db.tenant(tenant).await?;
    match team::leave(&mut tx, actor).await {
        Ok(()) => {
            tx.commit().await?;
            let mut data = me.session.data.clone();
            data.tenant_id = None;
            session::save(&browser.state.kv, &me.session.key, &data).await?;
            Ok(redirect("/dashboard", &[]))
        }
        Err(TenancyError::LastOwner) => {
            team_page(
                &browser,
                StatusCode::CONFLICT,
                "",
                FieldErrors::one(
                    "",
                    "You are the last owner: transfer ownership before leaving.",
                ),
                None,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct TransferForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    user_id: String,
}

#[handler]
pub(crate) async fn transfer(
    browser: Browser,
    Form(form): Form<TransferForm>,
) -> Result<Response, PageError> {
    let user = user_id(&form.user_id)?;
    change(
        &browser,
        &form.csrf_token,
        "transferred",
        ChangeKind::AddsOrAlters,
        async |tx, actor| team::transfer_ownership(tx, actor, user).await,
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct AcceptForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

fn accept_action(token: &str) -> String {
    format!(
        "/invitations/accept?token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    )
}

async fn accept_page(
    browser: &Browser,
    token: &str,
    name: &str,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let state = &browser.state;
    let invitation = match team::open_invitation(&state.db, state.links.signer(), token).await {
        Ok(invitation) => invitation,
        Err(error) => {
            let reason = field_error(error)?
                .get("")
                .unwrap_or("This invitation cannot be used.")
                .to_owned();
            return Ok(page(
                browser,
                &MessagePage {
                    layout: Layout::new(browser, None, "Invitation").error(reason),
                    heading: "This invitation cannot be used".into(),
                    paragraphs: vec!["Ask the person who invited you to send it again.".into()],
                    links: vec![("/".into(), "Back to the start page".into())],
                },
            ));
        }
    };
    let signed_in = browser.signed_in().await?;
    let existing = {
        let mut tx = state.db.global().await?;
        tenantkit_accounts::repo::find_by_email(tx.conn(), &invitation.email).await?
    };
    let heading = format!("Join as {}", invitation.role);
    let action = accept_action(token);
    let view = match (&signed_in, &existing) {
        (Some(me), Some(user)) if me.user.id == user.id => FormPage {
            layout: Layout::new(browser, Some(me), "Invitation"),
            heading,
            intro: Some(format!("Accept the invitation for {}.", invitation.email)),
            action,
            fields: vec![],
            submit: "Accept invitation",
            links: vec![],
        },
        (_, Some(_)) => {
            let login = format!(
                "/login?next={}",
                url::form_urlencoded::byte_serialize(accept_action(token).as_bytes())
                    .collect::<String>()
            );
            return Ok(page(
                browser,
                &MessagePage {
                    layout: Layout::new(browser, signed_in.as_ref(), "Invitation"),
                    heading,
                    paragraphs: vec![format!(
                        "{} already has an account: log in with it to accept.",
                        invitation.email
                    )],
                    links: vec![(login, "Log in".into())],
                },
            ));
        }
        (_, None) => FormPage {
            layout: Layout::new(browser, None, "Invitation"),
            heading,
            intro: Some(format!(
                "Create your account for {} to join.",
                invitation.email
            )),
            action,
            fields: vec![
                Field::new("name", "Your name", "text", name).autocomplete("name"),
                Field::new("password", "Password", "password", ""),
            ],
            submit: "Accept invitation",
            links: vec![],
        }
        .with_errors(errors),
    };
    Ok(page(browser, &view))
}

#[handler]
pub(crate) async fn accept_form(
    browser: Browser,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    accept_page(&browser, &query.token, "", FieldErrors::default()).await
}

#[handler]
pub(crate) async fn accept(
    browser: Browser,
    Query(query): Query<TokenQuery>,
    Form(form): Form<AcceptForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let state = &browser.state;
    let signed_in = browser.signed_in().await?;
    let acceptor = match &signed_in {
        Some(me) => Acceptor::Existing(me.user.id),
        None => Acceptor::New {
            name: form.name.clone(),
            password: SecretString::from(form.password.clone()),
        },
    };
    match team::accept_invitation(
        &state.db,
        &state.hasher,
        state.links.signer(),
        &query.token,
        acceptor,
    )
    .await
    {
        Ok((user, tenant)) => {
            // Signed in (a new account) or kept signed in, with the joined tenant active.
            let now = session::now();
            let mut data = match &signed_in {
                Some(me) => me.session.data.clone(),
                None => session::SessionData {
                    user_id: user,
                    tenant_id: None,
                    stage: session::Stage::Active,
                    remember: false,
                    created_at: now,
                    last_seen: now,
                    ip: browser.ip.clone(),
                    device: browser.device.clone(),
                    failed_codes: 0,
                    impersonation: None,
                },
            };
            data.tenant_id = Some(tenant);
            let mut cookies = Vec::new();
            match &signed_in {
                Some(me) => session::save(&state.kv, &me.session.key, &data).await?,
                None => {
                    if let Some(old) = &browser.session {
                        session::destroy(&state.kv, old).await?;
                    }
                    let (id, _) = session::create(&state.kv, &data).await?;
                    cookies.push(crate::browser::set_cookie(
                        state,
                        crate::browser::SESSION_COOKIE,
                        &id,
                        None,
                    ));
                }
            }
            Ok(redirect("/dashboard", &cookies))
        }
        Err(TenancyError::Forbidden(message)) => Err(PageError::Forbidden(message.to_owned())),
        Err(other) => {
            let errors = field_error(other)?;
            accept_page(&browser, &query.token, &form.name, errors).await
        }
    }
}
