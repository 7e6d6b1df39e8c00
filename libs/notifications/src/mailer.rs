//! A pooled SMTP transport with a timeout on every send.

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox};
use secrecy::ExposeSecret;
use tenantkit_config::SmtpSettings;

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("invalid SMTP settings: {0}")]
    Settings(String),
    #[error("cannot build the message: {0}")]
    Message(String),
    #[error("SMTP delivery failed: {0}")]
    Send(#[from] lettre::transport::smtp::Error),
}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailerError> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.url.expose_secret())
                .map_err(|e| MailerError::Settings(e.to_string()))?
                .timeout(Some(settings.timeout))
                .build();
        let from = settings
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MailerError::Settings(format!("smtp.from: {e}"))
            })?;
        Ok(Self { transport, from })
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
        self.transport.send(message).await?;
        Ok(())
    }
}
