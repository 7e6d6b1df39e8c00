//! Billing's emails: a job per message (queue `email.billing`), sent through the
//! notifications mailer and recorded in the tenant's email ledger, once per recipient.
//!
//! The job carries ids only; it reads the current state when it runs and skips a message that
//! no longer applies (a "payment failed" email for an invoice paid meanwhile, a trial reminder
//! for a trial that changed).

mod content;

use apalis::prelude::{Attempt, BoxDynError, Data, TaskId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantkit_db::Database;
use tenantkit_jobs::Job;
use tenantkit_kernel::TenantId;
use tenantkit_notifications::{EmailContent, Ledger, Mailer, OutgoingEmail, send_once};

pub use content::{
    AccountRestrictedEmail, AdminTenantRestrictedEmail, PaymentFailedEmail, PaymentRecoveredEmail,
    TrialEndingEmail, format_amount, format_date,
};

use crate::{SubscriptionStatus, jobs::BillingJobContext, repo};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BillingEmailKind {
    PaymentFailed {
        invoice_id: String,
    },
    PaymentRecovered {
        invoice_id: String,
    },
    TrialEnding {
        subscription_id: String,
        trial_end: DateTime<Utc>,
    },
    /// To the owners, when the grace period ends unpaid.
    AccountRestricted {
        invoice_id: String,
    },
    /// To the platform admins, at the same time.
    AdminTenantRestricted {
        invoice_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingEmail {
    pub tenant_id: TenantId,
    #[serde(flatten)]
    pub kind: BillingEmailKind,
}

impl Job for BillingEmail {
    const QUEUE: &'static str = "email.billing";

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    /// One per invoice and step, or per subscription and trial end: the state change that
    /// causes the email, so it is sent once however often the change is seen.
    fn idempotency_key(&self) -> String {
        match &self.kind {
            BillingEmailKind::PaymentFailed { invoice_id } => {
                format!("dunning:{invoice_id}:failed")
            }
            BillingEmailKind::PaymentRecovered { invoice_id } => {
                format!("dunning:{invoice_id}:recovered")
            }
            BillingEmailKind::TrialEnding {
                subscription_id,
                trial_end,
            } => format!("trial:{subscription_id}:{}", trial_end.timestamp()),
            BillingEmailKind::AccountRestricted { invoice_id } => {
                format!("dunning:{invoice_id}:restricted")
            }
            BillingEmailKind::AdminTenantRestricted { invoice_id } => {
                format!("dunning:{invoice_id}:admins")
            }
        }
    }
}

/// What a billing email job did.
#[derive(Debug, PartialEq, Eq)]
pub enum EmailOutcome {
    /// Sent to this many recipients (those already sent to are skipped).
    Sent(usize),
    /// The state that caused it has changed: nothing to say any more.
    NoLongerApplies,
}

/// The worker's handler for [`BillingEmail`].
#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id, key = %job.idempotency_key()))]
pub async fn deliver_billing_email(
    job: BillingEmail,
    db: Data<Database>,
    mailer: Data<Mailer>,
    ctx: Data<BillingJobContext>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = send_billing_email(&db, &mailer, &ctx, &job)
        .await
        .map(|outcome| tracing::info!(?outcome, "billing email handled"));
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), ctx.retry_base, result).await
}

/// Sends `job`'s email to each recipient, each in its own transaction with its own ledger
/// key, so a failure on the third owner does not resend to the first two.
pub async fn send_billing_email(
    db: &Database,
    mailer: &Mailer,
    ctx: &BillingJobContext,
    job: &BillingEmail,
) -> Result<EmailOutcome, BoxDynError> {
    let mut tx = db.tenant(job.tenant_id).await?;
    let Some(tenant) = repo::tenant::find(&mut tx).await? else {
        return Ok(EmailOutcome::NoLongerApplies);
    };
    if matches!(tenant.status.as_str(), "deleted" | "purged") {
        return Ok(EmailOutcome::NoLongerApplies);
    }
    let account = repo::accounts::find(&mut tx).await?.unwrap_or_default();
    let in_dunning_for = |invoice: &str| account.dunning_invoice_id.as_deref() == Some(invoice);
    let billing_link = ctx.link("/billing");
    let organisation = tenant.name.clone();
    // Each message as a function of the recipient's name, once it is known to still apply.
    let compose: Compose = match &job.kind {
        BillingEmailKind::PaymentFailed { invoice_id } => {
            if !in_dunning_for(invoice_id) {
                return Ok(EmailOutcome::NoLongerApplies);
            }
            let invoice = repo::subscriptions::find_invoice(&mut tx, invoice_id).await?;
            let amount = invoice
                .map(|i| format_amount(i.amount_remaining, &i.currency))
                .unwrap_or_else(|| "the amount due".to_owned());
            let restricted_on = account.grace_ends_at.map(format_date).unwrap_or_default();
            Box::new(move |name| {
                render(PaymentFailedEmail {
                    name,
                    organisation: organisation.clone(),
                    amount: amount.clone(),
                    restricted_on: restricted_on.clone(),
                    link: billing_link.clone(),
                })
            })
        }
        BillingEmailKind::PaymentRecovered { .. } => Box::new(move |name| {
            render(PaymentRecoveredEmail {
                name,
                organisation: organisation.clone(),
                link: billing_link.clone(),
            })
        }),
        BillingEmailKind::TrialEnding {
            subscription_id,
            trial_end,
        } => {
            let subscriptions = repo::subscriptions::all(&mut tx).await?;
            let Some(subscription) = subscriptions.iter().find(|s| {
                s.id == *subscription_id
                    && s.status == SubscriptionStatus::Trialing
                    && s.trial_end == Some(*trial_end)
            }) else {
                return Ok(EmailOutcome::NoLongerApplies);
            };
            let plan = subscription
                .plan
                .as_deref()
                .and_then(|p| ctx.billing.plan(p))
                .map_or_else(|| "paid".to_owned(), |p| p.display_name.clone());
            let trial_end = format_date(*trial_end);
            Box::new(move |name| {
                render(TrialEndingEmail {
                    name,
                    organisation: organisation.clone(),
                    plan: plan.clone(),
                    trial_end: trial_end.clone(),
                    link: billing_link.clone(),
                })
            })
        }
        BillingEmailKind::AccountRestricted { invoice_id } => {
            if !in_dunning_for(invoice_id) || account.restricted_at.is_none() {
                return Ok(EmailOutcome::NoLongerApplies);
            }
            Box::new(move |name| {
                render(AccountRestrictedEmail {
                    name,
                    organisation: organisation.clone(),
                    link: billing_link.clone(),
                })
            })
        }
        BillingEmailKind::AdminTenantRestricted { invoice_id } => {
            if !in_dunning_for(invoice_id) || account.restricted_at.is_none() {
                return Ok(EmailOutcome::NoLongerApplies);
            }
            let invoice = invoice_id.clone();
            let failed_on = account
                .payment_failed_at
                .map(format_date)
                .unwrap_or_default();
            let link = ctx.link(&format!("/admin/tenants/{}", job.tenant_id));
            Box::new(move |name| {
                render(AdminTenantRestrictedEmail {
                    name,
                    organisation: organisation.clone(),
                    invoice: invoice.clone(),
                    failed_on: failed_on.clone(),
                    link: link.clone(),
                })
            })
        }
    };
    let recipients = match job.kind {
        BillingEmailKind::AdminTenantRestricted { .. } => {
            repo::tenant::platform_admins(tx.conn()).await?
        }
        _ => repo::tenant::owners(&mut tx).await?,
    };
    tx.rollback().await?;

    let key = job.idempotency_key();
    let mut sent = 0;
    for recipient in recipients {
        let (content, template) = compose(recipient.display_name)?;
        let mut tx = db.tenant(job.tenant_id).await?;
        let delivery = send_once(
            Ledger::Tenant(&mut tx),
            mailer,
            OutgoingEmail {
                key: &format!("{key}:{}", recipient.user_id),
                to: recipient.email.parse()?,
                template,
                content,
            },
        )
        .await?;
        tx.commit().await?;
        if delivery == tenantkit_notifications::Delivery::Sent {
            sent += 1;
        }
    }
    Ok(EmailOutcome::Sent(sent))
}

/// A message for a recipient's name, with its template's name.
type Compose = Box<
    dyn Fn(String) -> Result<(tenantkit_notifications::RenderedEmail, &'static str), askama::Error>
        + Send
        + Sync,
>;

fn render<E: EmailContent>(
    email: E,
) -> Result<(tenantkit_notifications::RenderedEmail, &'static str), askama::Error> {
    Ok((email.render()?, E::TEMPLATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_email_is_keyed_by_the_change_that_causes_it() {
        let tenant = TenantId::new();
        let email = |kind| BillingEmail {
            tenant_id: tenant,
            kind,
        };
        let failed = email(BillingEmailKind::PaymentFailed {
            invoice_id: "in_1".to_owned(),
        });
        assert_eq!(failed.idempotency_key(), "dunning:in_1:failed");
        let trial_end = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let trial = email(BillingEmailKind::TrialEnding {
            subscription_id: "sub_1".to_owned(),
            trial_end,
        });
        assert_eq!(trial.idempotency_key(), "trial:sub_1:1800000000");
        // The payload keeps the tenant id at the top, where the dead-letter list looks for it.
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["tenant_id"], tenant.to_string());
        assert_eq!(json["kind"], "payment_failed");
        let back: BillingEmail = serde_json::from_value(json).unwrap();
        assert_eq!(back, failed);
    }
}
