//! A small pool of SMTP connections on sockets we open ourselves, with TCP_NODELAY.
//!
//! Why not lettre's pooled `AsyncSmtpTransport`: lettre 0.11.23 never sets TCP_NODELAY, and it
//! writes a message and then its final "\r\n.\r\n" as a second small write, which Nagle's
//! algorithm holds until the server's delayed ACK (40 ms). Every email cost ~43 ms even on
//! loopback: 19 emails/s in the benchmark, where smtp-source manages 12,206/s. Upstream fixed it
//! (lettre PR #1159, not released yet); a lettre release with it makes this module unnecessary.
//!
//! The connections are lettre's own `AsyncSmtpConnection`s; only the sockets and the pooling
//! are ours.

mod connect;
#[cfg(test)]
mod tests;

use std::{
    sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak},
    time::{Duration, Instant},
};

use lettre::{
    Address,
    address::Envelope,
    transport::smtp::{
        Error as SmtpError,
        client::AsyncSmtpConnection,
        commands::{Data, Mail, Rcpt},
        extension::{Extension, MailBodyParameter, MailParameter},
    },
};
use tokio::sync::Semaphore;

pub(crate) use connect::SmtpEndpoint;

use crate::MailerError;

/// An idle connection older than this is closed (servers drop idle sessions after a few minutes).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is checked with NOOP before use: the server may have
/// closed it. Younger ones are used at once; a send that finds one closed is retried.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

pub(crate) struct SmtpPool {
    endpoint: SmtpEndpoint,
    /// Bounds connecting, the NOOP check and each message's exchange.
    timeout: Duration,
    /// One permit per connection that may exist; a send holds one while it uses a connection,
    /// and opens a new one only when none is idle, so there are never more than the permits.
    slots: Semaphore,
    /// Oldest first.
    idle: Mutex<Vec<IdleConnection>>,
    reaper: Once,
}

struct IdleConnection {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// A failed exchange, and whether it is safe to send the message again on another connection.
struct Failure {
    error: MailerError,
    nothing_delivered: bool,
}

impl SmtpPool {
    pub(crate) fn new(endpoint: SmtpEndpoint, size: usize, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            endpoint,
            timeout,
            slots: Semaphore::new(size.min(Semaphore::MAX_PERMITS)),
            idle: Mutex::new(Vec::new()),
            reaper: Once::new(),
        })
    }

    pub(crate) async fn send(
        self: &Arc<Self>,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<(), MailerError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the pool never closes its semaphore");
        self.start_reaper();
        let (mut connection, reused) = self.checkout().await?;
        match self.exchange(&mut connection, envelope, email).await {
            Ok(()) => self.check_in(connection),
            // A server that closed an idle connection is seen only now; the message cannot have
            // been delivered, so it goes on a new connection (once: a new one failing is real).
            Err(failure) if reused && failure.nothing_delivered => {
                tracing::debug!(error = %failure.error, "pooled SMTP connection lost; reconnecting");
                drop(connection);
                let mut connection = self.endpoint.connect(self.timeout).await?;
                self.exchange(&mut connection, envelope, email)
                    .await
                    .map_err(|failure| failure.error)?;
                self.check_in(connection);
            }
            Err(failure) => return Err(failure.error),
        }
        Ok(())
    }

    /// The newest idle connection that still answers, or a new one; and whether it was reused.
    async fn checkout(&self) -> Result<(AsyncSmtpConnection, bool), MailerError> {
        self.close_stale();
        loop {
            let Some(idle) = self.idle().pop() else {
                return Ok((self.endpoint.connect(self.timeout).await?, false));
            };
            let mut connection = idle.connection;
            if idle.since.elapsed() < CHECK_AFTER_IDLE
                || tokio::time::timeout(self.timeout, connection.test_connected())
                    .await
                    .unwrap_or(false)
            {
                return Ok((connection, true));
            }
            tracing::debug!("pooled SMTP connection closed by the server; dropped");
        }
    }

    fn check_in(&self, connection: AsyncSmtpConnection) {
        self.idle().push(IdleConnection {
            connection,
            since: Instant::now(),
        });
    }

    /// One MAIL/RCPT/DATA exchange as lettre's `AsyncSmtpConnection::send` does it, step by
    /// step so a failure tells whether the server could have accepted the message.
    async fn exchange(
        &self,
        connection: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<(), Failure> {
        let mut message_started = false;
        let exchange = async {
            let parameters = mail_parameters(connection, envelope, email)?;
            connection
                .command(Mail::new(envelope.from().cloned(), parameters))
                .await?;
            for recipient in envelope.to() {
                connection
                    .command(Rcpt::new(recipient.clone(), Vec::new()))
                    .await?;
            }
            connection.command(Data).await?;
            // From the first byte of the message on, a failure may follow the server's
            // acceptance (a lost reply): such a message is never sent again from here.
            message_started = true;
            connection.message(email).await?;
            Ok::<_, MailerError>(())
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Failure {
                nothing_delivered: !message_started && connection_lost(&error),
                error,
            }),
            Err(_) => Err(Failure {
                error: MailerError::Timeout("sending"),
                nothing_delivered: false,
            }),
        }
    }

    /// Closes idle connections past `MAX_IDLE` even when no email is being sent.
    fn start_reaper(self: &Arc<Self>) {
        self.reaper.call_once(|| {
            let pool: Weak<Self> = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(MAX_IDLE / 4).await;
                    match pool.upgrade() {
                        Some(pool) => pool.close_stale(),
                        None => return,
                    }
                }
            });
        });
    }

    fn close_stale(&self) {
        let stale: Vec<IdleConnection> = {
            let mut idle = self.idle();
            let fresh = idle
                .iter()
                .position(|c| c.since.elapsed() <= MAX_IDLE)
                .unwrap_or(idle.len());
            idle.drain(..fresh).collect()
        };
        for IdleConnection { mut connection, .. } in stale {
            let timeout = self.timeout;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(timeout, connection.quit()).await;
            });
        }
    }

    fn idle(&self) -> MutexGuard<'_, Vec<IdleConnection>> {
        // Nothing panics while holding it; a poisoned list is still a valid list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// SMTPUTF8 and 8BITMIME when the message needs them, as lettre asks for them.
fn mail_parameters(
    connection: &AsyncSmtpConnection,
    envelope: &Envelope,
    email: &[u8],
) -> Result<Vec<MailParameter>, MailerError> {
    let server = connection.server_info();
    let mut parameters = Vec::new();
    let mut addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii()) {
        if !server.supports_feature(Extension::SmtpUtfEight) {
            return Err(MailerError::Message(
                "non-ASCII addresses, and the SMTP server does not support SMTPUTF8".to_owned(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !email.is_ascii() {
        if !server.supports_feature(Extension::EightBitMime) {
            return Err(MailerError::Message(
                "non-ASCII content, and the SMTP server does not support 8BITMIME".to_owned(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}

/// The connection died (a network error, a cut-off reply, or 421 "closing channel"), as opposed
/// to the server refusing this message.
fn connection_lost(error: &MailerError) -> bool {
    match error {
        MailerError::Send(error) => lost(error),
        _ => false,
    }
}

fn lost(error: &SmtpError) -> bool {
    match error.status() {
        Some(code) => u16::from(code) == 421,
        None => !error.is_client(),
    }
}
