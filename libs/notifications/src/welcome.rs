//! The welcome email, sent to a new tenant's owner.

use apalis::prelude::{BoxDynError, Data};
use lettre::{Message, message::header::ContentType};
use serde::{Deserialize, Serialize};
use tenantkit_db::Database;
use tenantkit_jobs::TenantJob;
use tenantkit_kernel::{TenantId, UserId};

use crate::{Mailer, ledger};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeEmail {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub organisation: String,
}

impl TenantJob for WelcomeEmail {
    const QUEUE: &'static str = "email.welcome";

    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    fn idempotency_key(&self) -> String {
        format!("welcome:{}:{}", self.tenant_id, self.user_id)
    }
}

/// Sends the welcome email unless the ledger says it already went out.
#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id, user_id = %job.user_id))]
pub async fn deliver_welcome(
    job: WelcomeEmail,
    db: Data<Database>,
    mailer: Data<Mailer>,
) -> Result<(), BoxDynError> {
    let key = job.idempotency_key();
    let mut tx = db.tenant(job.tenant_id).await?;
    if ledger::already_sent(&mut tx, &key).await? {
        tracing::info!("welcome email already sent; skipping");
        return Ok(());
    }
    let Some(user) = tenantkit_accounts::repo::find(tx.conn(), job.user_id).await? else {
        tracing::warn!("user no longer exists; nothing to send");
        return Ok(());
    };
    // Fixed before sending, so a retried send carries the same Message-ID and a receiving
    // system can drop the duplicate.
    let message_id = format!("<{}@{}>", key.replace(':', "."), mailer.domain());
    let body = format!(
        "Hello {name},\n\nWelcome to Tenantkit! Your organisation \"{org}\" is ready.\n",
        name = user.display_name,
        org = job.organisation
    );
    let message = Message::builder()
        .from(mailer.from().clone())
        .to(user.email.parse()?)
        .subject(format!("Welcome to {}", job.organisation))
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(body)?;
    mailer.send(message).await?;
    ledger::record_sent(&mut tx, &key, &message_id, &user.email, "welcome").await?;
    tx.commit().await?;
    tracing::info!("welcome email sent");
    Ok(())
}
