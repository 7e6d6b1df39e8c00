//! Dead-lettered jobs: their error, retry or discard.

use askama::Template;
use poem::{
    Response, handler,
    web::{Form, Path, Query},
};
use tenantkit_jobs::dead_letters::{self, DeadJob, QueueDepth};
use tenantkit_platform::dead_jobs::{self, Decision};

use super::{ActionForm, AdminSession, action_message, layout_after, reading};
use crate::{
    browser::Browser,
    pages::{DoneQuery, Layout, PageError, page_with_status, redirect_with_notice},
};

#[derive(Template)]
#[template(path = "admin_jobs.html")]
struct JobsPage {
    layout: Layout,
    queues: Vec<QueueDepth>,
    jobs: Vec<DeadJob>,
}

async fn jobs_page(
    browser: &Browser,
    admin_session: &AdminSession,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let mut tx = browser
        .state
        .db
        .platform(admin.id(), reading("jobs"))
        .await?;
    let queues = dead_letters::depth_by_queue(tx.conn())
        .await
        .map_err(|e| PageError::unexpected(&e))?;
    let jobs = dead_letters::list(tx.conn(), None, None, 200)
        .await
        .map_err(|e| PageError::unexpected(&e))?;
    tx.commit().await?;
    let (layout, status) = layout_after(browser, admin_session, "Jobs", notice, error);
    Ok(page_with_status(
        browser,
        status,
        &JobsPage {
            layout,
            queues,
            jobs,
        },
    ))
}

#[handler]
pub(super) async fn list(
    browser: Browser,
    admin_session: AdminSession,
    Query(done): Query<DoneQuery>,
) -> Result<Response, PageError> {
    jobs_page(&browser, &admin_session, done.notice(), None).await
}

#[handler]
pub(super) async fn act(
    browser: Browser,
    admin_session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    let admin = admin_session.admin;
    let reason = match form.confirmed(&browser)? {
        Ok(reason) => reason,
        Err(message) => return jobs_page(&browser, &admin_session, None, Some(message)).await,
    };
    let (decision, notice) = match action.as_str() {
        "retry" => (Decision::Retry, "job-retried"),
        "discard" => (Decision::Discard, "job-discarded"),
        _ => return Err(PageError::NotFound),
    };
    match dead_jobs::decide(&browser.state.db, admin, &id, decision, &reason).await {
        Ok(()) => Ok(redirect_with_notice("/admin/jobs", notice)),
        Err(error) => jobs_page(&browser, &admin_session, None, Some(action_message(error)?)).await,
    }
}
