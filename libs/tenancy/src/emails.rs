//! The invitation email: a tenant's email, recorded in that tenant's ledger. The link (a
//! signed invitation token) is minted when the email is sent.

use apalis::prelude::{Attempt, BoxDynError, Data, TaskId};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tenantkit_accounts::{
    emails::EmailSettings,
    tokens::{TokenClaims, TokenPurpose},
};
use tenantkit_db::{Database, TenantTx};
use tenantkit_jobs::Job;
use tenantkit_kernel::{InvitationId, TenantId};
use tenantkit_notifications::{
    EmailContent, Invitation as InvitationEmailContent, Ledger, Mailer, OutgoingEmail, send_once,
};
use uuid::Uuid;

use crate::{TenantStatus, repo};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationEmail {
    pub tenant_id: TenantId,
    pub invitation_id: InvitationId,
    /// Each send (the first and every "resend") is its own operation.
    pub operation: Uuid,
}

impl InvitationEmail {
    pub(crate) async fn enqueue(
        tx: &mut TenantTx,
        invitation_id: InvitationId,
    ) -> Result<(), tenantkit_jobs::JobError> {
        let job = Self {
            tenant_id: tx.tenant_id(),
            invitation_id,
            operation: Uuid::now_v7(),
        };
        tenantkit_jobs::enqueue(tx, &job).await
    }
}

impl Job for InvitationEmail {
    const QUEUE: &'static str = "email.invitation";

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    fn idempotency_key(&self) -> String {
        format!("invitation:{}:{}", self.invitation_id, self.operation)
    }
}

/// A signed link to accept `invitation` of `tenant`.
pub fn invitation_token(
    signer: &tenantkit_accounts::tokens::TokenSigner,
    tenant: TenantId,
    invitation: InvitationId,
    expires_at: chrono::DateTime<Utc>,
) -> String {
    let mut claims = TokenClaims::new(
        TokenPurpose::Invitation,
        invitation.as_uuid(),
        String::new(),
        Utc::now(),
    );
    claims.tenant = Some(tenant.as_uuid());
    claims.expires = claims.expires.min(expires_at.timestamp());
    signer.sign(&claims)
}

#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id, invitation_id = %job.invitation_id))]
pub async fn deliver_invitation_email(
    job: InvitationEmail,
    db: Data<Database>,
    mailer: Data<Mailer>,
    settings: Data<EmailSettings>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = match deliver(&job, &db, &mailer, &settings).await {
        Ok(Delivery::WaitForTenant) => match &task {
            // A suspended tenant's jobs wait (without using up attempts) until it is reactivated.
            Some(task) => {
                tracing::info!("the tenant is suspended; the email waits");
                tenantkit_jobs::defer(&db, &task.to_string(), SUSPENDED_TENANT_RECHECK)
                    .await
                    .map_err(BoxDynError::from)
            }
            None => Err("a suspended tenant's job has no task id to defer".into()),
        },
        Ok(Delivery::Done) => Ok(()),
        Err(error) => Err(error),
    };
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), settings.retry_base, result)
        .await
}

/// How often a suspended tenant's waiting job looks again.
const SUSPENDED_TENANT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

enum Delivery {
    Done,
    WaitForTenant,
}

async fn deliver(
    job: &InvitationEmail,
    db: &Database,
    mailer: &Mailer,
    settings: &EmailSettings,
) -> Result<Delivery, BoxDynError> {
    let mut tx = db.tenant(job.tenant_id).await?;
    let found = repo::invitations::find_to_send(&mut tx, job.invitation_id).await?;
    // No row also when the tenant's row is gone (purged): nothing to send either way.
    let Some(found) = found.filter(|f| f.invitation.is_open(Utc::now())) else {
        tracing::info!("the invitation is no longer open; nothing to send");
        return Ok(Delivery::Done);
    };
    match found.tenant_status {
        TenantStatus::Active => {}
        TenantStatus::Suspended => return Ok(Delivery::WaitForTenant),
        TenantStatus::Deleted | TenantStatus::Purged => {
            tracing::info!("the tenant was deleted; nothing to send");
            return Ok(Delivery::Done);
        }
    }
    let invitation = found.invitation;
    let token = invitation_token(
        settings.links.signer(),
        job.tenant_id,
        invitation.id,
        invitation.expires_at,
    );
    let content = InvitationEmailContent {
        inviter_name: found
            .inviter_name
            .unwrap_or_else(|| "A teammate".to_owned()),
        organisation: found.organisation,
        role: invitation.role.to_string(),
        link: settings.links.to("/invitations/accept", Some(&token)),
        expires_days: 7,
    }
    .render()?;
    let key = job.idempotency_key();
    send_once(
        Ledger::Tenant(&mut tx),
        mailer,
        OutgoingEmail {
            key: &key,
            to: invitation.email.parse()?,
            template: InvitationEmailContent::TEMPLATE,
            content,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Delivery::Done)
}
