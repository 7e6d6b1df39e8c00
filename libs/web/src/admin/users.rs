//! Admin pages about users: search across tenants, one user, and actions on them.

use askama::Template;
use poem::{
    Response, handler,
    web::{Form, Path, Query},
};
use serde::Deserialize;
use tenantkit_kernel::UserId;
use tenantkit_platform::users::{self, UserMembership, UserRow};

use super::{ActionForm, AdminSession, action_message, layout_after, reading};
use crate::{
    browser::{Browser, SignedIn},
    pages::{DoneQuery, Layout, PageError, page, page_with_status, redirect_with_notice},
    session,
};

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct ListPage {
    layout: Layout,
    q: String,
    rows: Vec<UserRow>,
    next: Option<String>,
}

const PAGE: i64 = 50;

#[handler]
pub(super) async fn list(
    browser: Browser,
    admin_session: AdminSession,
    Query(query): Query<ListQuery>,
) -> Result<Response, PageError> {
    let (me, admin): (&SignedIn, _) = (&admin_session.me, admin_session.admin);
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("user search"))
        .await?;
    let rows = users::search(
        &mut tx,
        Some(query.q.as_str()),
        query.after.as_deref().filter(|a| !a.is_empty()),
        PAGE,
    )
    .await?;
    tx.commit().await?;
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| r.email.clone()))
        .flatten();
    let view = ListPage {
        layout: Layout::new(&browser, Some(me), "Users"),
        q: query.q,
        rows,
        next,
    };
    Ok(page(&browser, &view))
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct DetailPage {
    layout: Layout,
    user: UserRow,
    memberships: Vec<UserMembership>,
    sessions: usize,
    is_self: bool,
}

fn user_id(raw: &str) -> Result<UserId, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

pub(super) async fn detail_page(
    browser: &Browser,
    admin_session: &AdminSession,
    user: UserId,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("user detail"))
        .await?;
    let (row, memberships) = users::find(&mut tx, user).await?;
    tx.commit().await?;
    let sessions = session::list(&browser.state.kv, user).await?.len();
    let (layout, status) = layout_after(browser, admin_session, &row.email, notice, error);
    let view = DetailPage {
        layout,
        is_self: row.id == admin.id(),
        user: row,
        memberships,
        sessions,
    };
    Ok(page_with_status(browser, status, &view))
}

#[handler]
pub(super) async fn detail(
    browser: Browser,
    admin_session: AdminSession,
    Path(id): Path<String>,
    Query(done): Query<DoneQuery>,
) -> Result<Response, PageError> {
    detail_page(&browser, &admin_session, user_id(&id)?, done.notice(), None).await
}

#[handler]
pub(super) async fn act(
    browser: Browser,
    admin_session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let user = user_id(&id)?;
    let reason = match form.confirmed(&browser)? {
        Ok(reason) => reason,
        Err(message) => {
            return detail_page(&browser, &admin_session, user, None, Some(message)).await;
        }
    };
    let state = &browser.state;
    let db = &state.db;
    let (result, notice, end_sessions) = match action.as_str() {
        "lock" => (
            users::lock(db, admin, user, &reason).await,
            "user-locked",
            true,
        ),
        "unlock" => (
            users::unlock(db, admin, user, &reason).await,
            "user-unlocked",
            false,
        ),
        "reset-password" => (
            users::force_password_reset(db, admin, user, &reason).await,
            "password-reset-forced",
            true,
        ),
        "end-sessions" => {
            let ended = session::list(&state.kv, user).await?.len();
            (
                users::record_sessions_ended(db, admin, user, &reason, ended).await,
                "sessions-ended",
                true,
            )
        }
        _ => return Err(PageError::NotFound),
    };
    match result {
        Ok(()) => {
            if end_sessions {
                session::end_all_others(&state.kv, user, None).await?;
            }
            Ok(redirect_with_notice(
                &format!("/admin/users/{user}"),
                notice,
            ))
        }
        Err(error) => {
            detail_page(
                &browser,
                &admin_session,
                user,
                None,
                Some(action_message(error)?),
            )
            .await
        }
    }
}
