//! Emails about a user's account, sent by the worker. Links are minted at send time, so no
//! usable token ever sits in the job queue; the job carries only ids.

use apalis::prelude::{Attempt, BoxDynError, Data, TaskId};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tenantkit_db::{Database, PgConnection};
use tenantkit_jobs::Job;
use tenantkit_kernel::{TenantId, UserId};
use tenantkit_notifications::{
    AccountExists, EmailChange, EmailContent, Ledger, Mailer, OutgoingEmail, PasswordChanged,
    PasswordReset, VerifyEmail, Welcome, send_once,
};
use uuid::Uuid;

use crate::{
    Credentials,
    links::Links,
    repo,
    tokens::{TokenClaims, TokenPurpose},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountEmailKind {
    VerifyEmail,
    /// Sent once the address is verified.
    Welcome {
        organisation: String,
    },
    PasswordReset,
    PasswordChanged,
    /// Confirms a new address; sent to that address.
    EmailChange {
        new_email: String,
    },
    /// Someone signed up with an address that already has an account.
    AccountExists,
}

impl AccountEmailKind {
    fn name(&self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::Welcome { .. } => "welcome",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::EmailChange { .. } => "email_change",
            Self::AccountExists => "account_exists",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEmail {
    pub user_id: UserId,
    /// The business operation that caused the email (a sign-up, one reset request…): a retry
    /// of the job is the same operation, a new request is a new one.
    pub operation: Uuid,
    #[serde(flatten)]
    pub kind: AccountEmailKind,
}

impl AccountEmail {
    pub fn new(user_id: UserId, kind: AccountEmailKind) -> Self {
        Self {
            user_id,
            operation: Uuid::now_v7(),
            kind,
        }
    }

    /// Adds the email to the queue inside the caller's transaction.
    pub async fn enqueue(self, conn: &mut PgConnection) -> Result<(), tenantkit_jobs::JobError> {
        tenantkit_jobs::enqueue_global(conn, &self).await
    }
}

impl Job for AccountEmail {
    const QUEUE: &'static str = "email.account";

    fn tenant_id(&self) -> Option<TenantId> {
        None
    }

    fn idempotency_key(&self) -> String {
        format!("account:{}:{}", self.kind.name(), self.operation)
    }
}

/// What the worker needs besides the database and the mailer.
#[derive(Clone)]
pub struct EmailSettings {
    pub links: Links,
    /// The first retry waits this long, doubling each time.
    pub retry_base: std::time::Duration,
}

/// The worker's handler for [`AccountEmail`].
#[tracing::instrument(skip_all, fields(user_id = %job.user_id, kind = job.kind.name()))]
pub async fn deliver_account_email(
    job: AccountEmail,
    db: Data<Database>,
    mailer: Data<Mailer>,
    settings: Data<EmailSettings>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = deliver(&job, &db, &mailer, &settings.links).await;
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), settings.retry_base, result)
        .await
}

async fn deliver(
    job: &AccountEmail,
    db: &Database,
    mailer: &Mailer,
    links: &Links,
) -> Result<(), BoxDynError> {
    let key = job.idempotency_key();
    let mut tx = db.global().await?;
    let Some(user) = repo::credentials(tx.conn(), job.user_id).await? else {
        tracing::info!("the user no longer exists; nothing to send");
        return Ok(());
    };
    let (to, content, template) = compose(&job.kind, &user, links)?;
    let delivery = send_once(
        Ledger::Account(&mut tx, Some(user.id)),
        mailer,
        OutgoingEmail {
            key: &key,
            to: to.parse()?,
            template,
            content,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(?delivery, "account email handled");
    Ok(())
}

/// The recipient, the rendered email and its template name.
fn compose(
    kind: &AccountEmailKind,
    user: &Credentials,
    links: &Links,
) -> Result<(String, tenantkit_notifications::RenderedEmail, &'static str), BoxDynError> {
    let now = Utc::now();
    let token = |purpose| {
        let claims = TokenClaims::new(purpose, user.id.as_uuid(), user.stamp(), now);
        links.signer().sign(&claims)
    };
    let name = user.display_name.clone();
    let hours = |p: TokenPurpose| u32::try_from(p.lifetime().num_hours()).unwrap_or(0);
    Ok(match kind {
        AccountEmailKind::VerifyEmail => {
            let link = links.to("/verify", Some(&token(TokenPurpose::VerifyEmail)));
            let email = VerifyEmail {
                name,
                link,
                expires_hours: hours(TokenPurpose::VerifyEmail),
            };
            (user.email.clone(), email.render()?, VerifyEmail::TEMPLATE)
        }
        AccountEmailKind::Welcome { organisation } => {
            let email = Welcome {
                name,
                organisation: organisation.clone(),
                dashboard_link: links.to("/dashboard", None),
            };
            (user.email.clone(), email.render()?, Welcome::TEMPLATE)
        }
        AccountEmailKind::PasswordReset => {
            let link = links.to("/password/reset", Some(&token(TokenPurpose::ResetPassword)));
            let minutes = TokenPurpose::ResetPassword.lifetime().num_minutes();
            let email = PasswordReset {
                name,
                link,
                expires_minutes: u32::try_from(minutes).unwrap_or(0),
            };
            (user.email.clone(), email.render()?, PasswordReset::TEMPLATE)
        }
        AccountEmailKind::PasswordChanged => {
            let email = PasswordChanged {
                name,
                reset_link: links.to("/password/forgot", None),
            };
            (
                user.email.clone(),
                email.render()?,
                PasswordChanged::TEMPLATE,
            )
        }
        AccountEmailKind::EmailChange { new_email } => {
            let mut claims = TokenClaims::new(
                TokenPurpose::ChangeEmail,
                user.id.as_uuid(),
                user.stamp(),
                now,
            );
            claims.email = Some(new_email.clone());
            let link = links.to(
                "/account/email/confirm",
                Some(&links.signer().sign(&claims)),
            );
            let email = EmailChange {
                name,
                new_email: new_email.clone(),
                link,
                expires_hours: hours(TokenPurpose::ChangeEmail),
            };
            (new_email.clone(), email.render()?, EmailChange::TEMPLATE)
        }
        AccountEmailKind::AccountExists => {
            let email = AccountExists {
                name,
                login_link: links.to("/login", None),
                reset_link: links.to("/password/forgot", None),
            };
            (user.email.clone(), email.render()?, AccountExists::TEMPLATE)
        }
    })
}
