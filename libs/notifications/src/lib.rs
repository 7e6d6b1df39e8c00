//! Notifications: email messages, their jobs, and the SMTP mailer.
//!
//! Every email is sent by a job, at least once; the `sent_emails` ledger row (keyed by the job's
//! idempotency key) and a Message-ID fixed before sending make a repeated run a no-op.

mod ledger;
mod mailer;
mod welcome;

pub use mailer::{Mailer, MailerError};
pub use welcome::{WelcomeEmail, deliver_welcome};
