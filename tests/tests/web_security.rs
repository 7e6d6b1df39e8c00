//! Attacks on the browser side of accounts, made over HTTP against the real application: forged
//! forms (CSRF), fixed and replayed sessions, tampered, expired and reused emailed links,
//! account enumeration, password guessing, open redirects, cookie attributes, security headers
//! and escaping, outdated password hashes, and two-factor authentication. One module per area;
//! this one holds the application with the means to mint its emailed links ([`Kit`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use tenantkit_accounts::{
    repo,
    tokens::{TokenClaims, TokenPurpose, TokenSigner, account_stamp},
    two_factor::{TotpSecret, code_at},
};
use tenantkit_kernel::{InvitationId, TenantId, UserId};
use tenantkit_tests::{
    TestApp, TestDb,
    digest::{TableDigest, changed_tables},
    settings_for,
    web_client::{BrowserClient, Page},
};
use uuid::Uuid;

#[path = "web_security/admin_access.rs"]
mod admin_access;
#[path = "web_security/csrf.rs"]
mod csrf;
#[path = "web_security/links.rs"]
mod links;
#[path = "web_security/pages.rs"]
mod pages;
#[path = "web_security/sessions.rs"]
mod sessions;
#[path = "web_security/sign_in.rs"]
mod sign_in;
#[path = "web_security/two_factor.rs"]
mod two_factor;

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase 42";
const CSRF_REFUSAL: &str = "did not come from this site";
const SESSION: &str = "tk_session";

/// The application with the keys to mint the links its emails would carry.
struct Kit {
    app: TestApp,
    signer: TokenSigner,
}

struct Account {
    id: Uuid,
    tenant: Uuid,
    email: String,
}

impl Kit {
    async fn spawn(overrides: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let mut all = vec![("rate_limit.signups_per_hour", "1000")];
        all.extend_from_slice(overrides);
        let settings = settings_for(&db, &all);
        let signer = TokenSigner::new(&settings.secret_key);
        Self {
            app: TestApp::spawn_with(db, settings).await,
            signer,
        }
    }

    fn browser(&self) -> BrowserClient {
        BrowserClient::new(&self.app.url(""))
    }

    /// Signs up through the page; the address is not verified yet.
    async fn sign_up(&self, organisation: &str, name: &str, email: &str) -> Account {
        let fields = [
            ("organisation", organisation),
            ("name", name),
            ("email", email),
            ("password", PASSWORD),
        ];
        let page = self.browser().submit("/signup", "/signup", &fields).await;
        assert!(
            page.redirects_to("/signup/check-inbox"),
            "sign-up of {email}: {page:?}"
        );
        let (id, tenant): (Uuid, Uuid) = sqlx::query_as(
            "select u.id, m.tenant_id from users u join memberships m on m.user_id = u.id
             where lower(u.email) = lower($1)",
        )
        .bind(email)
        .fetch_one(&self.app.db.owner)
        .await
        .expect("the new owner");
        Account {
            id,
            tenant,
            email: email.to_owned(),
        }
    }

    /// A verified owner of a new organisation, signed in by the verification link.
    async fn owner(&self, organisation: &str, email: &str) -> (Account, BrowserClient) {
        let account = self.sign_up(organisation, "Owner", email).await;
        let browser = self.verified_by_link(&account).await;
        (account, browser)
    }

    /// Opens a freshly minted verification link, which verifies and signs in.
    async fn verified_by_link(&self, account: &Account) -> BrowserClient {
        let browser = self.browser();
        let token = self
            .token(TokenPurpose::VerifyEmail, account, Utc::now())
            .await;
        let page = browser.get(&format!("/verify?token={token}")).await;
        assert!(page.redirects_to("/dashboard"), "{page:?}");
        browser
    }

    /// A browser signed in with the password (no second factor).
    async fn logged_in(&self, email: &str, password: &str) -> BrowserClient {
        let browser = self.browser();
        let page = browser.log_in(email, password).await;
        assert!(page.redirects_to("/dashboard"), "log in {email}: {page:?}");
        browser
    }

    /// A link token as the worker would mint it when sending the email at `issued`.
    async fn token(
        &self,
        purpose: TokenPurpose,
        account: &Account,
        issued: DateTime<Utc>,
    ) -> String {
        let claims = TokenClaims::new(purpose, account.id, self.stamp(account.id).await, issued);
        self.signer.sign(&claims)
    }

    async fn stamp(&self, user: Uuid) -> String {
        let (hash, email): (Option<String>, String) =
            sqlx::query_as("select password_hash, email from users where id = $1")
                .bind(user)
                .fetch_one(&self.app.db.owner)
                .await
                .expect("user");
        account_stamp(hash.as_deref(), &email)
    }

    async fn password_hash(&self, user: Uuid) -> String {
        sqlx::query_scalar("select password_hash from users where id = $1")
            .bind(user)
            .fetch_one(&self.app.db.owner)
            .await
            .expect("password hash")
    }

    async fn verified(&self, user: Uuid) -> bool {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "select email_verified_at from users where id = $1",
        )
        .bind(user)
        .fetch_one(&self.app.db.owner)
        .await
        .expect("user")
        .is_some()
    }

    async fn set_password_hash(&self, user: Uuid, hash: &str) {
        sqlx::query("update users set password_hash = $2 where id = $1")
            .bind(user)
            .bind(hash)
            .execute(&self.app.db.owner)
            .await
            .expect("write the hash");
    }

    /// Invites `email` to the browser's active tenant through the team page; returns the link
    /// token the invitation email would carry.
    async fn invite(&self, inviter: &BrowserClient, tenant: Uuid, email: &str) -> (Uuid, String) {
        let page = inviter
            .submit(
                "/team",
                "/team/invitations",
                &[("email", email), ("role", "member")],
            )
            .await;
        assert!(
            page.status == StatusCode::OK || page.status == StatusCode::SEE_OTHER,
            "invite {email}: {page:?}"
        );
        let (id, expires_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
            "select id, expires_at from invitations where lower(email) = lower($1)
             and status = 'pending'",
        )
        .bind(email)
        .fetch_one(&self.app.db.owner)
        .await
        .expect("the invitation");
        let token = tenantkit_tenancy::emails::invitation_token(
            &self.signer,
            TenantId::from_uuid(tenant),
            InvitationId::from_uuid(id),
            expires_at,
        );
        (id, token)
    }

    /// Turns two-factor on in the database (as an enrolment long ago would have left it).
    async fn enable_two_factor(&self, user: Uuid) -> TotpSecret {
        let secret = TotpSecret::generate();
        let mut conn = self.app.db.owner.acquire().await.expect("connection");
        let id = UserId::from_uuid(user);
        repo::set_pending_totp_secret(&mut conn, id, &secret.to_base32())
            .await
            .expect("pending secret");
        repo::enable_totp(&mut conn, id, current_step() - 100)
            .await
            .expect("enable");
        secret
    }

    /// A code from the authenticator that the server has not seen used yet, waiting for the
    /// next time step when the usable ones are spent.
    async fn next_code(&self, user: Uuid, secret: &TotpSecret) -> String {
        loop {
            let last: Option<i64> =
                sqlx::query_scalar("select totp_last_step from users where id = $1")
                    .bind(user)
                    .fetch_one(&self.app.db.owner)
                    .await
                    .expect("last step");
            let now = current_step();
            let step = last.map_or(now, |last| now.max(last + 1));
            if step <= now + 1 {
                return code_at(secret, u64::try_from(step).expect("positive") * 30);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Whether a browser holding only this session cookie is signed in.
    async fn cookie_signs_in(&self, session: &str) -> bool {
        let browser = self.browser();
        browser.set_cookie(SESSION, session);
        signed_in(&browser).await
    }

    /// Every table's row count and a digest of its rows: equal snapshots mean nothing changed.
    async fn snapshot(&self) -> Vec<TableDigest> {
        let tables: Vec<String> = sqlx::query_scalar(
            "select quote_ident(table_schema) || '.' || quote_ident(table_name)
             from information_schema.tables where table_type = 'BASE TABLE'
             and table_schema not in ('pg_catalog', 'information_schema') order by 1",
        )
        .fetch_all(&self.app.db.owner)
        .await
        .expect("tables");
        let mut snapshot = Vec::new();
        for table in tables {
            let (count, digest): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
                 from {table} t"
            )))
            .fetch_one(&self.app.db.owner)
            .await
            .expect("table digest");
            snapshot.push((table, count, digest));
        }
        snapshot
    }
}

fn current_step() -> i64 {
    i64::try_from(unix_now() / 30).expect("time fits")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Signed in: the dashboard shows. Not signed in: sent to log in. Anything else fails.
async fn signed_in(browser: &BrowserClient) -> bool {
    let page = browser.get("/dashboard").await;
    match page.status {
        StatusCode::OK => true,
        _ if page.redirects_to("/login") => false,
        _ => panic!("GET /dashboard answered neither the page nor /login: {page:?}"),
    }
}

/// A form that went through: a redirect (post/redirect/get) or the page with its `notice`.
fn assert_done(page: &Page, notice: &str) {
    let redirected = page.status == StatusCode::SEE_OTHER && page.location().is_some();
    assert!(
        redirected || (page.status == StatusCode::OK && page.body.contains(notice)),
        "the form did not go through: {page:?}"
    );
}

/// The text between `start` and the next `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.split_once(start)?.1.split(end).next()
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
