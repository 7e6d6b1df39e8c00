//! Notifications: email templates, the SMTP mailer, and at-most-once delivery over an
//! at-least-once job queue. The domain crates own their email jobs (what to send and to whom);
//! this crate renders and sends them.
//!
//! Every email is sent by a job, at least once; a ledger row (keyed by the job's idempotency
//! key) and a Message-ID fixed before sending make a repeated run a no-op.

mod delivery;
mod ledger;
mod mailer;
mod smtp_pool;
mod templates;

pub use delivery::{Delivery, DeliveryError, Ledger, OutgoingEmail, message_id, send_once};
pub use mailer::{Mailer, MailerError};
pub use templates::*;
