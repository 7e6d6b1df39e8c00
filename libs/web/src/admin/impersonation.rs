//! Impersonation: a platform admin sees the product as one user does. It needs a reason, is
//! recorded when it starts and stops, lasts `admin.impersonation_minutes` at most, is
//! read-only unless the admin widened it, shows a banner on every page, and one click ends it.
//!
//! The admin's own session is kept aside in a cookie of its own and handed back on stop; the
//! impersonation is a separate session of the user, so ending it leaves the user's own
//! sessions alone.

use poem::{
    Response, handler,
    web::{Form, Path},
};
use serde_json::json;
use tenantkit_accounts::audit::{self, AccountEvent};
use tenantkit_kernel::UserId;

use super::{ActionForm, AdminSession, users::detail_page};
use crate::{
    browser::{ADMIN_RETURN_COOKIE, Browser, SESSION_COOKIE, SignedIn, set_cookie},
    pages::{PageError, auth::CsrfOnly, redirect, redirect_with_notice},
    session::{self, Impersonation, SessionData, Stage},
};

#[handler]
pub(super) async fn start(
    browser: Browser,
    admin_session: AdminSession,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let (me, admin): (&SignedIn, _) = (&admin_session.me, admin_session.admin);
    let user: UserId = id.parse().map_err(|_| PageError::NotFound)?;
    let reason = match form.confirmed(&browser)? {
        Ok(reason) => reason,
        Err(message) => {
            return detail_page(&browser, &admin_session, user, None, Some(message)).await;
        }
    };
    let state = &browser.state;
    let mut tx = state.db.global().await?;
    let target = tenantkit_accounts::repo::credentials(tx.conn(), user)
        .await?
        .ok_or(PageError::NotFound)?;
    let refusal = if target.is_platform_admin {
        Some("Platform admins cannot be impersonated.")
    } else if target.locked_at.is_some() {
        Some("This user is locked; unlock them first.")
    } else {
        None
    };
    if let Some(refusal) = refusal {
        return detail_page(
            &browser,
            &admin_session,
            user,
            None,
            Some(refusal.to_owned()),
        )
        .await;
    }
    let allow_writes = form.allow_writes.as_deref() == Some("on");
    let ttl = state.settings.admin.impersonation_ttl.as_secs() as i64;
    let now = session::now();
    audit::record(
        tx.conn(),
        AccountEvent {
            user: Some(user),
            actor: Some(admin.id()),
            action: "admin.user.impersonate",
            reason: Some(reason.as_str()),
            detail: json!({ "allow_writes": allow_writes, "minutes": ttl / 60 }),
            ip: Some(&browser.ip),
        },
    )
    .await?;
    tx.commit().await?;
    let data = SessionData {
        user_id: user,
        tenant_id: None,
        stage: Stage::Active,
        remember: false,
        created_at: now,
        last_seen: now,
        ip: browser.ip.clone(),
        device: format!("impersonated by {}", me.user.email),
        failed_codes: 0,
        impersonation: Some(Impersonation {
            admin_id: admin.id(),
            admin_name: me.user.display_name.clone(),
            expires_at: now + ttl,
            allow_writes,
        }),
    };
    let (cookie, _) = session::create(&state.kv, &data).await?;
    let own = browser.session_cookie.clone().unwrap_or_default();
    Ok(redirect(
        "/dashboard",
        &[
            set_cookie(state, SESSION_COOKIE, &cookie, None),
            set_cookie(state, ADMIN_RETURN_COOKIE, &own, None),
        ],
    ))
}

/// Ends the impersonation and gives the admin their own session back.
#[handler]
pub(crate) async fn stop(
    browser: Browser,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    browser.check_csrf_allowing_impersonation(&form.csrf_token)?;
    let state = &browser.state;
    let Some(session) = browser
        .session
        .clone()
        .filter(|s| s.data.impersonation.is_some())
    else {
        return Ok(redirect("/", &[]));
    };
    let impersonation = session.data.impersonation.clone().expect("checked above");
    session::destroy(&state.kv, &session).await?;
    let mut tx = state.db.global().await?;
    audit::record(
        tx.conn(),
        AccountEvent {
            user: Some(session.data.user_id),
            actor: Some(impersonation.admin_id),
            action: "admin.user.impersonate_stop",
            reason: None,
            detail: json!({}),
            ip: Some(&browser.ip),
        },
    )
    .await?;
    tx.commit().await?;
    let clear_return = set_cookie(state, ADMIN_RETURN_COOKIE, "", Some(0));
    // The admin's own session, if it is still live and still theirs.
    let own = match &browser.return_cookie {
        Some(cookie) => session::load(&state.kv, cookie)
            .await?
            .filter(|s| s.data.user_id == impersonation.admin_id)
            .map(|_| cookie.clone()),
        None => None,
    };
    match own {
        Some(cookie) => {
            let mut response = redirect_with_notice(
                &format!("/admin/users/{}", session.data.user_id),
                "impersonation-stopped",
            );
            for value in [
                set_cookie(state, SESSION_COOKIE, &cookie, None),
                clear_return,
            ] {
                if let Ok(value) = value.parse() {
                    response.headers_mut().append("set-cookie", value);
                }
            }
            Ok(response)
        }
        None => Ok(redirect(
            "/login",
            &[set_cookie(state, SESSION_COOKIE, "", Some(0)), clear_return],
        )),
    }
}
