//! Sends email through a pool of SMTP connections (see `smtp_pool` for why it is ours), with
//! a timeout on connecting and on every send.

use std::sync::Arc;

use lettre::{Message, message::Mailbox};
use secrecy::ExposeSecret;
use tenantkit_config::SmtpSettings;

use crate::smtp_pool::{SmtpEndpoint, SmtpPool};

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("invalid SMTP settings: {0}")]
    Settings(String),
    #[error("cannot build the message: {0}")]
    Message(String),
    #[error("SMTP delivery failed: {0}")]
    Send(#[from] lettre::transport::smtp::Error),
    #[error("cannot reach the SMTP server: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the SMTP server did not answer in time ({0})")]
    Timeout(&'static str),
}

#[derive(Clone)]
pub struct Mailer {
    pool: Arc<SmtpPool>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailerError> {
        let endpoint =
            SmtpEndpoint::from_url(settings.url.expose_secret()).map_err(MailerError::Settings)?;
        let pool = SmtpPool::new(endpoint, settings.pool_size, settings.timeout);
        let from = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MailerError::Settings(format!("smtp.from: {e}"))
            })?;
        Ok(Self { pool, from })
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The domain used in Message-IDs, taken from the sender address.
    pub fn domain(&self) -> &str {
        self.from.email.domain()
    }

    /// Sends a rendered email (text and HTML) with a Message-ID chosen by the caller.
    pub async fn send_rendered(
        &self,
        to: Mailbox,
        message_id: String,
        content: &crate::RenderedEmail,
    ) -> Result<(), MailerError> {
        let message = crate::build_message(&self.from, to, message_id, content)
            .map_err(|e| MailerError::Message(e.to_string()))?;
        self.send(message).await
    }

    pub async fn send(&self, message: Message) -> Result<(), MailerError> {
        self.pool
            .send(message.envelope(), &message.formatted())
            .await
    }
}
