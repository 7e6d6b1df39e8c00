//! Dunning: a failed payment → owners told → grace period → read-only (restricted), admins
//! told → payment succeeds → restored, owners told.
//!
//! One dunning at a time per tenant, keyed by the invoice that started it; each step is
//! applied under the tenant's billing lock and only when the state actually moves, and each
//! email's job key names the invoice and the step, so each is sent once.

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantkit_db::Database;

use crate::{
    Billing, BillingError, InvoiceStatus, StoredInvoice,
    emails::BillingEmailKind,
    jobs::{EnforceGracePeriod, enqueue_once},
    repo,
    sync::LockedTenant,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DunningStep {
    /// A payment failed and nothing is pending: start the grace period.
    Start,
    /// The invoice that started the dunning is paid.
    Recover,
    /// The invoice that started it will never be paid nor owed (voided).
    End,
    Nothing,
}

/// What `invoice` (as Stripe says it is now) means for a tenant in dunning over `dunning`
/// (its invoice id), when it arrived with a `payment_failed` event or not.
pub(crate) fn decide(
    dunning: Option<&str>,
    invoice: &StoredInvoice,
    payment_failed: bool,
) -> DunningStep {
    match dunning {
        Some(current) if current == invoice.id => match invoice.status {
            InvoiceStatus::Paid => DunningStep::Recover,
            InvoiceStatus::Void => DunningStep::End,
            _ => DunningStep::Nothing,
        },
        // One at a time: the first unpaid invoice's grace period governs.
        Some(_) => DunningStep::Nothing,
        // The refetched invoice confirms the failure: a payment that succeeded on a retry
        // before we processed the event starts nothing.
        None if payment_failed && invoice.status.is_unpaid() && invoice.amount_remaining > 0 => {
            DunningStep::Start
        }
        None => DunningStep::Nothing,
    }
}

/// What the end of a grace period found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraceOutcome {
    /// Still unpaid: the tenant is read-only now, owners and platform admins told.
    Restricted,
    AlreadyRestricted,
    /// Paid or voided meanwhile: the dunning ended instead.
    Settled,
    /// The dunning this job was for is over (or another one is running).
    NotInDunning,
    /// The grace period ends later (the job ran early).
    NotDue(DateTime<Utc>),
}

impl LockedTenant<'_> {
    /// Moves dunning on for `invoice`; whether anything changed.
    pub(crate) async fn apply_dunning(
        &mut self,
        invoice: &StoredInvoice,
        payment_failed: bool,
    ) -> Result<bool, BillingError> {
        match decide(
            self.account.dunning_invoice_id.as_deref(),
            invoice,
            payment_failed,
        ) {
            DunningStep::Start => self.start_dunning(invoice).await?,
            DunningStep::Recover => self.recover(&invoice.id).await?,
            DunningStep::End => {
                self.end_dunning(&invoice.id, "the invoice was voided")
                    .await?
            }
            DunningStep::Nothing => return Ok(false),
        }
        Ok(true)
    }

    async fn start_dunning(&mut self, invoice: &StoredInvoice) -> Result<(), BillingError> {
        let grace = chrono::Duration::from_std(self.billing.settings().grace_period)
            .unwrap_or_else(|_| chrono::Duration::days(7));
        let grace_ends_at = self.now + grace;
        repo::accounts::start_dunning(&mut self.tx, &invoice.id, self.now, grace_ends_at).await?;
        self.account.dunning_invoice_id = Some(invoice.id.clone());
        self.account.payment_failed_at = Some(self.now);
        self.account.grace_ends_at = Some(grace_ends_at);
        self.account.restricted_at = None;
        self.audit(
            "billing.payment.failed",
            json!({
                "invoice": invoice.id,
                "amount_remaining": invoice.amount_remaining,
                "currency": invoice.currency,
                "grace_ends_at": grace_ends_at,
            }),
        )
        .await?;
        self.queue_email(BillingEmailKind::PaymentFailed {
            invoice_id: invoice.id.clone(),
        })
        .await?;
        let job = EnforceGracePeriod {
            tenant_id: self.tx.tenant_id(),
            invoice_id: invoice.id.clone(),
        };
        enqueue_once(&mut self.tx, &job, Some(grace_ends_at.into())).await?;
        Ok(())
    }

    async fn recover(&mut self, invoice: &str) -> Result<(), BillingError> {
        let was_restricted = self.account.restricted_at.is_some();
        self.clear_dunning().await?;
        self.audit(
            "billing.payment.recovered",
            json!({ "invoice": invoice, "was_restricted": was_restricted }),
        )
        .await?;
        self.queue_email(BillingEmailKind::PaymentRecovered {
            invoice_id: invoice.to_owned(),
        })
        .await
    }

    /// Ends a dunning that no payment will settle (voided invoice, ended subscription): no
    /// "payment received" email, since none was.
    pub(crate) async fn end_dunning(
        &mut self,
        invoice: &str,
        why: &str,
    ) -> Result<(), BillingError> {
        self.clear_dunning().await?;
        self.audit(
            "billing.dunning.ended",
            json!({ "invoice": invoice, "reason": why }),
        )
        .await
    }

    async fn clear_dunning(&mut self) -> Result<(), BillingError> {
        repo::accounts::clear_dunning(&mut self.tx).await?;
        self.account.dunning_invoice_id = None;
        self.account.payment_failed_at = None;
        self.account.grace_ends_at = None;
        self.account.restricted_at = None;
        Ok(())
    }

    async fn restrict(&mut self, invoice: &str) -> Result<(), BillingError> {
        repo::accounts::restrict(&mut self.tx, self.now).await?;
        self.account.restricted_at = Some(self.now);
        self.audit("billing.restricted", json!({ "invoice": invoice }))
            .await?;
        self.queue_email(BillingEmailKind::AccountRestricted {
            invoice_id: invoice.to_owned(),
        })
        .await?;
        self.queue_email(BillingEmailKind::AdminTenantRestricted {
            invoice_id: invoice.to_owned(),
        })
        .await
    }
}

impl Billing {
    /// The end of a grace period (the `billing.dunning` job): restricts the tenant if the
    /// invoice is still unpaid. Asks Stripe first when it can, in case a payment event was
    /// missed; without Stripe keys it goes by what is stored.
    pub async fn enforce_grace_period(
        &self,
        db: &Database,
        job: &EnforceGracePeriod,
        now: DateTime<Utc>,
    ) -> Result<GraceOutcome, BillingError> {
        let mut tx = db.tenant(job.tenant_id).await?;
        let account = repo::accounts::lock(&mut tx).await?;
        if account.dunning_invoice_id.as_deref() != Some(job.invoice_id.as_str()) {
            return Ok(GraceOutcome::NotInDunning);
        }
        if account.restricted_at.is_some() {
            return Ok(GraceOutcome::AlreadyRestricted);
        }
        if let Some(due) = account.grace_ends_at.filter(|due| *due > now) {
            return Ok(GraceOutcome::NotDue(due));
        }
        let mut locked = LockedTenant::new(self, tx, account, now)?;
        if locked.stripe().is_ok() {
            // Stripe's word on the invoice and its subscription: a missed payment event
            // settles the dunning here instead of restricting a tenant that paid.
            let (_, subscription) = locked.sync_invoice(&job.invoice_id, false).await?;
            if let Some(subscription) = subscription {
                locked.sync_subscription(&subscription).await?;
            }
        }
        let outcome =
            if locked.account.dunning_invoice_id.as_deref() == Some(job.invoice_id.as_str()) {
                locked.restrict(&job.invoice_id).await?;
                GraceOutcome::Restricted
            } else {
                GraceOutcome::Settled
            };
        locked.finish().commit().await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(id: &str, status: InvoiceStatus, remaining: i64) -> StoredInvoice {
        StoredInvoice {
            id: id.to_owned(),
            subscription_id: None,
            number: None,
            status,
            currency: "usd".to_owned(),
            amount_due: 1000,
            amount_paid: 1000 - remaining,
            amount_remaining: remaining,
            hosted_invoice_url: None,
            invoice_pdf: None,
            period_start: None,
            period_end: None,
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn a_confirmed_failure_starts_dunning_once() {
        use DunningStep::*;
        let open = invoice("in_1", InvoiceStatus::Open, 1000);
        assert_eq!(decide(None, &open, true), Start);
        assert_eq!(
            decide(Some("in_1"), &open, true),
            Nothing,
            "a retry that failed again"
        );
        assert_eq!(
            decide(Some("in_0"), &open, true),
            Nothing,
            "one dunning at a time"
        );
        assert_eq!(decide(None, &open, false), Nothing, "no failure reported");
    }

    #[test]
    fn a_failure_event_for_an_invoice_paid_since_starts_nothing() {
        let paid = invoice("in_1", InvoiceStatus::Paid, 0);
        assert_eq!(decide(None, &paid, true), DunningStep::Nothing);
        let nothing_left = invoice("in_1", InvoiceStatus::Open, 0);
        assert_eq!(decide(None, &nothing_left, true), DunningStep::Nothing);
    }

    #[test]
    fn paying_or_voiding_the_invoice_ends_its_dunning() {
        let paid = invoice("in_1", InvoiceStatus::Paid, 0);
        assert_eq!(decide(Some("in_1"), &paid, false), DunningStep::Recover);
        assert_eq!(
            decide(Some("in_1"), &paid, true),
            DunningStep::Recover,
            "late failure event"
        );
        assert_eq!(decide(Some("in_2"), &paid, false), DunningStep::Nothing);
        let void = invoice("in_1", InvoiceStatus::Void, 0);
        assert_eq!(decide(Some("in_1"), &void, false), DunningStep::End);
        let uncollectible = invoice("in_1", InvoiceStatus::Uncollectible, 1000);
        assert_eq!(
            decide(Some("in_1"), &uncollectible, false),
            DunningStep::Nothing
        );
    }
}
