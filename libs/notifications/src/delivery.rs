//! Sending an email at most once per idempotency key, whatever the job queue repeats.
//!
//! Inside the caller's transaction: record the key in the ledger (skipping the email if it is
//! there already), then send with a Message-ID fixed by the key. The record commits with the
//! caller's transaction, after the send; a failed send rolls it back. A crash after the SMTP
//! hand-over and before the commit sends it once more on retry (with the same Message-ID, so
//! receiving systems can drop it); nothing is ever lost, because the job is acknowledged only
//! after the commit.

use lettre::message::Mailbox;
use tenantkit_db::{DbError, GlobalTx, TenantTx};
use tenantkit_kernel::UserId;

use crate::{
    Mailer, MailerError, RenderedEmail,
    ledger::{self, SentEmail},
};

/// Where the delivery is recorded: a tenant's ledger or the account ledger.
pub enum Ledger<'a> {
    Tenant(&'a mut TenantTx),
    Account(&'a mut GlobalTx, Option<UserId>),
}

pub struct OutgoingEmail<'a> {
    /// Deterministic for the business operation (the job's idempotency key).
    pub key: &'a str,
    pub to: Mailbox,
    /// The template folder, for the ledger.
    pub template: &'static str,
    pub content: RenderedEmail,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Mailer(#[from] MailerError),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    AlreadySent,
}

/// The Message-ID a key's email always carries.
pub fn message_id(key: &str, domain: &str) -> String {
    let local: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{local}@{domain}>")
}

pub async fn send_once(
    ledger: Ledger<'_>,
    mailer: &Mailer,
    email: OutgoingEmail<'_>,
) -> Result<Delivery, DeliveryError> {
    let message_id = message_id(email.key, mailer.domain());
    let recipient = email.to.email.to_string();
    let sent = SentEmail {
        key: email.key,
        message_id: &message_id,
        recipient: &recipient,
        template: email.template,
    };
    let first = match ledger {
        Ledger::Tenant(tx) => {
            let tenant = tx.tenant_id();
            ledger::record_tenant_email(tx.conn(), tenant, &sent).await?
        }
        Ledger::Account(tx, user) => ledger::record_account_email(tx.conn(), user, &sent).await?,
    };
    if !first {
        return Ok(Delivery::AlreadySent);
    }
    mailer
        .send_rendered(email.to, message_id.clone(), &email.content)
        .await?;
    Ok(Delivery::Sent)
}

#[cfg(test)]
mod tests {
    use super::message_id;

    #[test]
    fn message_ids_are_fixed_by_the_key_and_safe() {
        assert_eq!(
            message_id("account:verify_email:0193", "example.com"),
            "<account.verify_email.0193@example.com>"
        );
        assert_eq!(message_id("a<b>", "x.test"), "<a.b.@x.test>");
    }
}
