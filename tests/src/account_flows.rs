//! Account flows end to end: the app and its worker on one database, the app listening where
//! its public URL (and so every emailed link) points; the emails as a mail client reads them
//! (MIME parts, transfer encodings); and what the database and the queue say meanwhile.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::Value;
use tenantkit_accounts::tokens::{TokenPurpose, TokenSigner};
use uuid::Uuid;

use crate::{
    TestApp, TestDb, mail,
    process::free_port,
    settings_for,
    web_client::{BrowserClient, Page},
    worker::RunningWorker,
};

/// The password every account of these flows starts with.
pub const PASSWORD: &str = "correct horse battery staple";
/// How long an email may take to arrive, or the queue to drain. Usually well under a second;
/// but the worker sometimes misses the notification of a new job and takes it only at its next
/// heartbeat, 30 s later, so waiting less would make the tests flaky.
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(40);
/// The domain of `smtp.from` in the test settings: Message-IDs end with it.
pub const MAIL_DOMAIN: &str = "tenantkit.test";
pub const SESSION_COOKIE: &str = "tk_session";

/// The subjects of the account emails, as sent.
pub mod subject {
    pub const VERIFY: &str = "Confirm your email address";
    pub const WELCOME: &str = "Welcome to Tenantkit";
    pub const RESET: &str = "Reset your Tenantkit password";
    pub const PASSWORD_CHANGED: &str = "Your Tenantkit password was changed";
    pub const EMAIL_CHANGE: &str = "Confirm your new email address";
    pub const INVITATION: &str = "invited you to join";
}

/// An address no other test uses (they share one Maildir).
pub fn unique_email(label: &str) -> String {
    format!("{label}-{}@account-emails.test", Uuid::now_v7().simple())
}

/// The app and its worker on one database.
pub struct AccountStack {
    pub app: TestApp,
    worker: Option<RunningWorker>,
    bind: String,
    public_url: String,
    /// Signs and checks link tokens as this deployment does.
    pub signer: TokenSigner,
}

impl AccountStack {
    pub async fn start() -> Self {
        let mut stack = Self::without_worker().await;
        stack.start_worker(&[]);
        stack
    }

    pub async fn without_worker() -> Self {
        let db = TestDb::new().await;
        let bind = format!("127.0.0.1:{}", free_port());
        let public_url = format!("http://{bind}");
        let settings = settings_for(
            &db,
            &[
                ("server.bind", bind.as_str()),
                ("server.public_url", public_url.as_str()),
            ],
        );
        let signer = TokenSigner::new(&settings.secret_key);
        let app = TestApp::spawn_with(db, settings).await;
        Self {
            app,
            worker: None,
            bind,
            public_url,
            signer,
        }
    }

    /// Starts a worker configured like the app, plus `extra` settings.
    pub fn start_worker(&mut self, extra: &[(&str, &str)]) {
        assert!(self.worker.is_none(), "a worker is already running");
        let mut overrides = vec![
            ("server.bind", self.bind.as_str()),
            ("server.public_url", self.public_url.as_str()),
        ];
        overrides.extend_from_slice(extra);
        let settings = settings_for(&self.app.db, &overrides);
        self.worker = Some(RunningWorker::start(settings));
    }

    /// Stops the worker; it finishes the jobs it is running first.
    pub async fn stop_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop_within(Duration::from_secs(30)).await;
        }
    }

    pub async fn stop(mut self) {
        self.stop_worker().await;
        self.app.stop().await;
    }

    /// A new browser, without cookies.
    pub fn browser(&self) -> BrowserClient {
        BrowserClient::new(&self.app.url(""))
    }

    /// The one link to `path` in `email`, as a path and query for [`BrowserClient`]. The link
    /// starts at the public URL, and the HTML part links to the same place as the text part.
    pub fn link_in(&self, email: &Email, path: &str) -> String {
        let prefix = format!("{}{path}", self.public_url);
        let links: Vec<&str> = email
            .text
            .split_whitespace()
            .filter(|word| word.starts_with(&prefix))
            .collect();
        assert_eq!(
            links.len(),
            1,
            "expected one link to {prefix} in \"{}\":\n{}",
            email.subject,
            email.text
        );
        let link = links[0];
        assert!(
            email.html.contains(&format!("href=\"{link}\"")),
            "the HTML part of \"{}\" does not link to {link}:\n{}",
            email.subject,
            email.html
        );
        link[self.public_url.len()..].to_owned()
    }

    /// Signs up an organisation in the browser and opens the emailed verification link: a
    /// verified owner, signed in. Returns their browser, email and tenant.
    pub async fn verified_owner(&self, organisation: &str) -> (BrowserClient, String, Uuid) {
        let email = unique_email("owner");
        let browser = self.browser();
        let page = browser
            .submit(
                "/signup",
                "/signup",
                &[
                    ("organisation", organisation),
                    ("name", "Owner"),
                    ("email", &email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert!(
            page.redirects_to("/signup/check-inbox"),
            "sign-up refused: {page:?}"
        );
        let verification = self.wait_for_email(&email, subject::VERIFY).await;
        let page = browser.get(&self.link_in(&verification, "/verify")).await;
        assert_signed_in(&page);
        let tenant = self.owned_tenant(&email).await;
        (browser, email, tenant)
    }

    /// Waits for `count` emails to `recipient` whose subject contains `subject`; returns all
    /// there are by then, failing the test (with the queue's state) when fewer arrive within
    /// [`MAIL_TIMEOUT`].
    pub async fn wait_for_emails(
        &self,
        recipient: &str,
        subject: &str,
        count: usize,
    ) -> Vec<Email> {
        let deadline = tokio::time::Instant::now() + MAIL_TIMEOUT;
        loop {
            let found: Vec<Email> = emails_to(recipient)
                .into_iter()
                .filter(|email| email.subject.contains(subject))
                .collect();
            if found.len() >= count {
                return found;
            }
            if tokio::time::Instant::now() >= deadline {
                let subjects: Vec<String> = emails_to(recipient)
                    .into_iter()
                    .map(|email| email.subject)
                    .collect();
                panic!(
                    "expected {count} email(s) \"{subject}\" to {recipient} within \
                     {MAIL_TIMEOUT:?}, found {}; all emails to them: {subjects:?}; jobs: {:?}",
                    found.len(),
                    self.jobs().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the one email to `recipient` whose subject contains `subject`.
    pub async fn wait_for_email(&self, recipient: &str, subject: &str) -> Email {
        let mut found = self.wait_for_emails(recipient, subject, 1).await;
        assert_eq!(
            found.len(),
            1,
            "more than one \"{subject}\" email to {recipient}"
        );
        found.remove(0)
    }

    /// Logs in from a new browser.
    pub async fn log_in(&self, email: &str, password: &str) -> (BrowserClient, Page) {
        let browser = self.browser();
        let page = browser.log_in(email, password).await;
        (browser, page)
    }

    pub async fn owned_tenant(&self, email: &str) -> Uuid {
        sqlx::query_scalar(
            "select m.tenant_id from memberships m join users u on u.id = m.user_id
             where lower(u.email) = lower($1) and m.role = 'owner'",
        )
        .bind(email)
        .fetch_one(&self.app.db.owner)
        .await
        .expect("the owner's tenant")
    }

    /// When the user with `email` was verified; `None` when not (or there is no such user).
    pub async fn verified_at(&self, email: &str) -> Option<DateTime<Utc>> {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "select email_verified_at from users where lower(email) = lower($1)",
        )
        .bind(email)
        .fetch_optional(&self.app.db.owner)
        .await
        .expect("users")
        .flatten()
    }

    pub async fn users_with_email(&self, email: &str) -> i64 {
        sqlx::query_scalar("select count(*) from users where lower(email) = lower($1)")
            .bind(email)
            .fetch_one(&self.app.db.owner)
            .await
            .expect("users")
    }

    pub async fn password_hash(&self, email: &str) -> String {
        sqlx::query_scalar("select password_hash from users where lower(email) = lower($1)")
            .bind(email)
            .fetch_one(&self.app.db.owner)
            .await
            .expect("the user's password hash")
    }

    /// The user's role in each of their tenants.
    pub async fn roles_of(&self, email: &str) -> BTreeMap<Uuid, String> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "select m.tenant_id, m.role from memberships m join users u on u.id = m.user_id
             where lower(u.email) = lower($1)",
        )
        .bind(email)
        .fetch_all(&self.app.db.owner)
        .await
        .expect("memberships");
        rows.into_iter().collect()
    }

    /// Account email jobs of `kind` (`welcome`, `verify_email`…) in the queue.
    pub async fn account_jobs(&self, kind: &str) -> i64 {
        sqlx::query_scalar(
            "select count(*) from apalis.jobs where job_type = 'email.account'
             and convert_from(job, 'UTF8')::jsonb ->> 'kind' = $1",
        )
        .bind(kind)
        .fetch_one(&self.app.db.owner)
        .await
        .expect("jobs")
    }

    /// Every job.
    pub async fn jobs(&self) -> Vec<QueuedJob> {
        let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
            "select job_type, coalesce(idempotency_key, ''), status, done_at is not null
             from apalis.jobs",
        )
        .fetch_all(&self.app.db.owner)
        .await
        .expect("jobs");
        rows.into_iter()
            .map(|(queue, key, status, finished)| QueuedJob {
                queue,
                key,
                status,
                finished,
            })
            .collect()
    }

    /// Every job is done. Workers acknowledge jobs in batches, so this holds once the worker
    /// has stopped (stopping flushes them), not as soon as the emails are out.
    pub async fn assert_all_jobs_done(&self) {
        let jobs = self.jobs().await;
        assert!(
            jobs.iter().all(|job| job.status == "Done" && job.finished),
            "not every job is done: {jobs:?}"
        );
    }

    /// Runs workers until every job is done: each takes what is pending, then stops, finishing
    /// and acknowledging what it started and giving back what it had fetched but not started.
    /// Fails the test after [`MAIL_TIMEOUT`].
    pub async fn drain_queue(&mut self) {
        let deadline = tokio::time::Instant::now() + MAIL_TIMEOUT;
        loop {
            self.start_worker(&[]);
            while self.jobs().await.iter().any(|job| job.status == "Pending")
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.stop_worker().await;
            let jobs = self.jobs().await;
            if jobs.iter().all(|job| job.status == "Done" && job.finished) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "jobs not done after {MAIL_TIMEOUT:?}: {jobs:?}"
            );
        }
    }

    /// Jobs carry ids only: no job payload holds the token of `link` or a piece of it, nor
    /// anything else that passes as a link token of this deployment.
    pub async fn assert_no_token_in_queue(&self, link: &str) {
        let token = token_of(link);
        let payloads: Vec<String> =
            sqlx::query_scalar("select convert_from(job, 'UTF8') from apalis.jobs")
                .fetch_all(&self.app.db.owner)
                .await
                .expect("job payloads");
        assert!(!payloads.is_empty(), "an email was sent without a job");
        let (claims, signature) = token.split_once('.').expect("a signed token");
        for payload in &payloads {
            for piece in [token.as_str(), claims, signature] {
                assert!(
                    !payload.contains(piece),
                    "a job payload holds the link token: {payload}"
                );
            }
            let json: Value = serde_json::from_str(payload).expect("a JSON payload");
            for text in strings_in(&json) {
                for purpose in [
                    TokenPurpose::VerifyEmail,
                    TokenPurpose::ResetPassword,
                    TokenPurpose::ChangeEmail,
                    TokenPurpose::Invitation,
                ] {
                    assert!(
                        self.signer.verify(text, purpose, Utc::now()).is_err(),
                        "a job payload holds a usable {purpose:?} token: {payload}"
                    );
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct QueuedJob {
    pub queue: String,
    pub key: String,
    pub status: String,
    /// `done_at` is set.
    pub finished: bool,
}

fn strings_in(value: &Value) -> Vec<&str> {
    match value {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items.iter().flat_map(strings_in).collect(),
        Value::Object(fields) => fields.values().flat_map(strings_in).collect(),
        _ => Vec::new(),
    }
}

/// The `token` query parameter of a link.
pub fn token_of(link: &str) -> String {
    reqwest::Url::parse("http://link.invalid")
        .and_then(|base| base.join(link))
        .expect("a link")
        .query_pairs()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no token in {link}"))
}

/// Signed in: sent to the dashboard with a new session cookie.
#[track_caller]
pub fn assert_signed_in(page: &Page) {
    assert!(page.redirects_to("/dashboard"), "not signed in: {page:?}");
    assert!(
        page.set_cookie(SESSION_COOKIE).is_some(),
        "no session cookie was set: {page:?}"
    );
}

/// A login refused for a wrong email or password.
#[track_caller]
pub fn assert_login_refused(page: &Page) {
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "a session was started"
    );
    assert!(
        page.body.contains("The email or password is not correct."),
        "{}",
        page.body
    );
}

/// A link that no longer works: a page saying so, and no session.
#[track_caller]
pub fn assert_link_refused(page: &Page) {
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "a session was started"
    );
    assert!(
        page.body.contains("cannot be used"),
        "the link was not refused: {}",
        page.body
    );
}

/// A received email, read as a mail client reads it.
#[derive(Debug)]
pub struct Email {
    /// Without the angle brackets.
    pub message_id: String,
    /// Lower-case addresses.
    pub recipients: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Email {
    pub fn parse(raw: &str) -> Option<Self> {
        let message = MessageParser::default().parse(raw)?;
        Some(Self {
            message_id: message.message_id()?.to_owned(),
            recipients: message
                .to()
                .map(|to| {
                    to.iter()
                        .filter_map(|a| a.address())
                        .map(str::to_lowercase)
                        .collect()
                })
                .unwrap_or_default(),
            subject: message.subject().unwrap_or_default().to_owned(),
            text: message.body_text(0).unwrap_or_default().into_owned(),
            html: message.body_html(0).unwrap_or_default().into_owned(),
        })
    }
}

/// Every email the SMTP server has received for `recipient`.
pub fn emails_to(recipient: &str) -> Vec<Email> {
    let recipient = recipient.to_lowercase();
    mail::received()
        .iter()
        .filter_map(|raw| Email::parse(raw))
        .filter(|email| email.recipients.contains(&recipient))
        .collect()
}

/// How many times each Message-ID reached the `recipients`.
pub fn received_message_ids(recipients: &[&str]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for recipient in recipients {
        for email in emails_to(recipient) {
            *counts.entry(email.message_id).or_default() += 1;
        }
    }
    counts
}

/// The Message-ID (without brackets) the job with idempotency key `key` sends its email with.
pub fn message_id_of(key: &str) -> String {
    tenantkit_notifications::message_id(key, MAIL_DOMAIN)
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned()
}
