//! What a page handler knows about the browser: its session (from the Redis store), its
//! anonymous CSRF cookie, its address and device, and — once loaded — the signed-in user with
//! their tenants. Cookies are `HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` prefixed when
//! `server.secure_cookies` is on (production).

use poem::{FromRequest, Request, RequestBody, http::header};
use tenantkit_accounts::Credentials;
use tenantkit_tenancy::{UserTenant, repo};

use crate::{
    AppState,
    client_ip::client_ip,
    pages::PageError,
    session::{self, Session, Stage},
};

pub(crate) struct Browser {
    pub(crate) state: AppState,
    pub(crate) session: Option<Session>,
    /// The session cookie as presented (kept only to hand back after an impersonation).
    pub(crate) session_cookie: Option<String>,
    /// The admin's own session cookie, kept aside while they impersonate someone.
    pub(crate) return_cookie: Option<String>,
    anonymous_id: String,
    new_anonymous_id: bool,
    pub(crate) ip: String,
    pub(crate) device: String,
}

/// A signed-in user, their tenants, and the active one.
#[derive(Clone)]
pub(crate) struct SignedIn {
    pub(crate) session: Session,
    pub(crate) user: Credentials,
    pub(crate) tenants: Vec<UserTenant>,
    pub(crate) tenant: Option<UserTenant>,
}

impl SignedIn {
    /// The platform admin this user acts as here: admin, two-factor on, not impersonating.
    /// The one rule for the admin area, the admin API and the header's link.
    pub(crate) fn platform_admin(&self) -> Option<tenantkit_platform::Admin> {
        (self.user.is_platform_admin
            && self.user.two_factor_enabled()
            && self.session.data.impersonation.is_none())
        .then_some(tenantkit_platform::Admin(self.user.id))
    }

    /// The active tenant, when its area is open: a suspended or deleted tenant's pages show
    /// the "suspended" page instead; without a tenant there is nothing here (404).
    pub(crate) fn open_tenant(&self) -> Result<&UserTenant, PageError> {
        let tenant = self.tenant.as_ref().ok_or(PageError::NotFound)?;
        match tenant.status {
            tenantkit_tenancy::TenantStatus::Active => Ok(tenant),
            _ => Err(PageError::TenantClosed(tenant.name.clone())),
        }
    }
}

pub(crate) fn cookie_name(state: &AppState, base: &str) -> String {
    if state.settings.server.secure_cookies {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

/// A `Set-Cookie` value with the safe attributes; `max_age` `None` ends with the browser,
/// `Some(0)` deletes.
pub(crate) fn set_cookie(
    state: &AppState,
    base: &str,
    value: &str,
    max_age: Option<u64>,
) -> String {
    let mut cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        cookie_name(state, base)
    );
    if state.settings.server.secure_cookies {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie
}

/// The value of cookie `name`. The header is split as bytes: another site's cookie on the same
/// host may hold any byte (`HeaderValue::to_str` refuses all but visible ASCII), and must not
/// hide ours.
fn read_cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let at = pair.iter().position(|b| *b == b'=')?;
            Some((&pair[..at], &pair[at + 1..]))
        })
        .find(|(k, _)| *k == name.as_bytes())
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

pub(crate) const SESSION_COOKIE: &str = "tk_session";
pub(crate) const ANONYMOUS_COOKIE: &str = "tk_anon";
/// Holds a platform admin's own session while they impersonate a user.
pub(crate) const ADMIN_RETURN_COOKIE: &str = "tk_admin_return";

impl<'a> FromRequest<'a> for Browser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = req.data::<AppState>().cloned().ok_or_else(|| {
            poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
        })?;
        let session_cookie = read_cookie(req, &cookie_name(&state, SESSION_COOKIE));
        let return_cookie = read_cookie(req, &cookie_name(&state, ADMIN_RETURN_COOKIE));
        let session = match &session_cookie {
            Some(cookie) => match session::load(&state.kv, cookie).await {
                Ok(session) => session,
                Err(error) => {
                    tracing::warn!(%error, "session store unavailable");
                    return Err(PageError::Unavailable.into());
                }
            },
            None => None,
        };
        let existing = read_cookie(req, &cookie_name(&state, ANONYMOUS_COOKIE)).filter(|v| {
            v.len() >= 20
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        let (anonymous_id, new_anonymous_id) = match existing {
            Some(id) => (id, false),
            None => (
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    rand::random::<[u8; 24]>(),
                ),
                true,
            ),
        };
        let remote = req.remote_addr();
        let ip = client_ip(
            remote,
            req.headers(),
            state.settings.server.trusted_proxy_hops,
        )
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let device = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().filter(|c| !c.is_control()).take(200).collect())
            .unwrap_or_else(|| "unknown device".to_owned());
        Ok(Self {
            state,
            session,
            session_cookie,
            return_cookie,
            anonymous_id,
            new_anonymous_id,
            ip,
            device,
        })
    }
}

impl Browser {
    fn csrf_binding(&self) -> String {
        match &self.session {
            Some(session) => format!("session:{}", session.key),
            None => format!("anon:{}", self.anonymous_id),
        }
    }

    pub(crate) fn csrf_token(&self) -> String {
        self.state.csrf.token(&self.csrf_binding())
    }

    /// Refuses an unsafe request whose form token does not match this browser, and every
    /// change made through a read-only impersonation.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        self.check_csrf_allowing_impersonation(presented)?;
        if self.is_read_only_impersonation() {
            return Err(PageError::Forbidden(
                "You are impersonating this user read-only: changes are not allowed.".into(),
            ));
        }
        Ok(())
    }

    /// A read-only impersonation is under way: the user's data may be seen, not changed.
    pub(crate) fn is_read_only_impersonation(&self) -> bool {
        self.session
            .as_ref()
            .and_then(|s| s.data.impersonation.as_ref())
            .is_some_and(|i| !i.allow_writes)
    }

    /// [`Self::check_csrf`] for the few posts an impersonating admin may always make
    /// (stopping, logging out).
    pub(crate) fn check_csrf_allowing_impersonation(
        &self,
        presented: &str,
    ) -> Result<(), PageError> {
        if self.state.csrf.verify(&self.csrf_binding(), presented) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    /// The anonymous cookie, to set when this browser did not have one yet.
    pub(crate) fn anonymous_cookie(&self) -> Option<String> {
        self.new_anonymous_id
            .then(|| set_cookie(&self.state, ANONYMOUS_COOKIE, &self.anonymous_id, None))
    }

    /// The signed-in user (a session past its second factor), with their tenants.
    pub(crate) async fn signed_in(&self) -> Result<Option<SignedIn>, PageError> {
        let Some(session) = self
            .session
            .clone()
            .filter(|s| s.data.stage == Stage::Active)
        else {
            return Ok(None);
        };
        let state = &self.state;
        if session
            .data
            .impersonation
            .as_ref()
            .is_some_and(|i| i.expired())
        {
            session::destroy(&state.kv, &session).await?;
            return Ok(None);
        }
        let mut tx = state.db.global().await?;
        let Some(user) =
            tenantkit_accounts::repo::credentials(tx.conn(), session.data.user_id).await?
        else {
            return Ok(None);
        };
        if user.locked_at.is_some() {
            return Ok(None);
        }
        tx.commit().await?;
        let mut tx = state.db.user(user.id).await?;
        let tenants = repo::tenants_of_user(&mut tx).await?;
        tx.commit().await?;
        let tenant = session
            .data
            .tenant_id
            .and_then(|id| tenants.iter().find(|t| t.id == id))
            .or_else(|| tenants.first())
            .cloned();
        // Seen at most once a minute: a write per page would cost more than the page.
        if session::now() - session.data.last_seen > 60 {
            let mut data = session.data.clone();
            data.last_seen = session::now();
            data.ip = self.ip.clone();
            if let Err(error) = session::save(&state.kv, &session.key, &data).await {
                tracing::warn!(%error, "could not record session activity");
            }
        }
        Ok(Some(SignedIn {
            session,
            user,
            tenants,
            tenant,
        }))
    }

    /// Records a security event about `user` (or an unknown one) done from this browser.
    pub(crate) async fn audit(
        &self,
        user: Option<tenantkit_kernel::UserId>,
        action: &str,
        detail: serde_json::Value,
    ) {
        let event = tenantkit_accounts::audit::AccountEvent {
            user,
            actor: user,
            action,
            reason: None,
            detail,
            ip: Some(&self.ip),
        };
        tenantkit_accounts::audit::record_alone(&self.state.db, event).await;
    }

    /// Like [`Self::signed_in`], but a visitor who is not signed in is sent to log in.
    pub(crate) async fn require_signed_in(&self) -> Result<SignedIn, PageError> {
        self.signed_in().await?.ok_or(PageError::SignInRequired)
    }
}
