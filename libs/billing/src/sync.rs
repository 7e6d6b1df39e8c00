//! Storing what Stripe says now about a tenant's subscriptions and invoices, under the
//! tenant's billing lock, and following through when it changed: the audit trail, the
//! tenant's plan, the trial reminder, the seat count, dunning.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tenantkit_db::TenantTx;

use crate::{
    Account, Billing, BillingError, Processed, StoredSubscription, SubscriptionStatus,
    effective_subscription,
    emails::{BillingEmail, BillingEmailKind},
    jobs::{SyncSeats, enqueue_once},
    plan_of_subscription, repo,
    stripe_api::{self, StripeApi},
};

/// The trial reminder goes out this long before the trial ends.
const TRIAL_REMINDER_LEAD: Duration = Duration::days(3);

/// One tenant's billing, locked (`billing_accounts` row) for the rest of the transaction.
pub(crate) struct LockedTenant<'a> {
    pub(crate) billing: &'a Billing,
    stripe: Option<&'a StripeApi>,
    pub(crate) tx: TenantTx,
    pub(crate) account: Account,
    pub(crate) now: DateTime<Utc>,
}

impl<'a> LockedTenant<'a> {
    /// `account` must come from [`repo::accounts::lock`] on `tx`.
    pub(crate) fn new(
        billing: &'a Billing,
        tx: TenantTx,
        account: Account,
        now: DateTime<Utc>,
    ) -> Result<Self, BillingError> {
        Ok(Self {
            stripe: billing.stripe().ok(),
            billing,
            tx,
            account,
            now,
        })
    }

    pub(crate) fn finish(self) -> TenantTx {
        self.tx
    }

    pub(crate) fn account(&self) -> &Account {
        &self.account
    }

    pub(crate) fn stripe(&self) -> Result<&'a StripeApi, BillingError> {
        self.stripe.ok_or(BillingError::NotConfigured)
    }

    pub(crate) async fn audit(&mut self, action: &str, detail: Value) -> Result<(), BillingError> {
        repo::tenant::audit(&mut self.tx, action, detail).await?;
        Ok(())
    }

    pub(crate) async fn queue_email(&mut self, kind: BillingEmailKind) -> Result<(), BillingError> {
        let email = BillingEmail {
            tenant_id: self.tx.tenant_id(),
            kind,
        };
        enqueue_once(&mut self.tx, &email, None).await?;
        Ok(())
    }

    /// Whether `customer` is this tenant's (its account's, or mapped to it).
    pub(crate) async fn owns_customer(&mut self, customer: &str) -> Result<bool, BillingError> {
        if self.account.stripe_customer_id.as_deref() == Some(customer) {
            return Ok(true);
        }
        let owner = repo::accounts::tenant_of_customer(self.tx.conn(), customer).await?;
        Ok(owner == Some(self.tx.tenant_id()))
    }

    pub(crate) async fn set_customer_details(
        &mut self,
        email: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), BillingError> {
        repo::accounts::set_customer_details(&mut self.tx, email, name).await?;
        self.account.customer_email = email.map(str::to_owned);
        self.audit("billing.customer.updated", json!({ "email": email }))
            .await
    }

    /// Refetches subscription `id` and stores it if it changed.
    pub(crate) async fn sync_subscription(&mut self, id: &str) -> Result<Processed, BillingError> {
        let remote = self.stripe()?.subscription(id).await?;
        if !self
            .owns_customer(stripe_api::subscription_customer(&remote))
            .await?
        {
            return Ok(Processed::Ignored(
                "a subscription of another customer".to_owned(),
            ));
        }
        let new = stripe_api::stored_subscription(&remote, self.billing.plans());
        let before = repo::subscriptions::all(&mut self.tx).await?;
        let old = before.iter().find(|s| s.id == new.id).cloned();
        if old.as_ref() == Some(&new) {
            return Ok(Processed::Unchanged);
        }
        repo::subscriptions::upsert(&mut self.tx, &new).await?;
        let mut after: Vec<StoredSubscription> =
            before.iter().filter(|s| s.id != new.id).cloned().collect();
        after.push(new.clone());
        self.audit_subscription(old.as_ref(), &new).await?;
        self.follow_effective(
            effective_subscription(&before).cloned(),
            effective_subscription(&after).cloned(),
        )
        .await?;
        self.schedule_trial_reminder(old.as_ref(), &new).await?;
        if old.is_none() {
            self.reconcile_seats(&new).await?;
        }
        Ok(Processed::Applied)
    }

    async fn audit_subscription(
        &mut self,
        old: Option<&StoredSubscription>,
        new: &StoredSubscription,
    ) -> Result<(), BillingError> {
        let action = match (old, new.status) {
            (None, _) => "billing.subscription.created",
            (Some(old), SubscriptionStatus::Canceled)
                if old.status != SubscriptionStatus::Canceled =>
            {
                "billing.subscription.canceled"
            }
            _ => "billing.subscription.updated",
        };
        let state = |s: &StoredSubscription| {
            json!({
                "status": s.status.as_str(),
                "plan": s.plan,
                "quantity": s.quantity,
                "cancel_at_period_end": s.cancel_at_period_end,
            })
        };
        self.audit(
            action,
            json!({
                "subscription": new.id,
                "from": old.map(state),
                "to": state(new),
            }),
        )
        .await
    }

    /// When the subscription that decides the tenant's plan changed (another one, another
    /// status or plan), the tenant's plan follows, and a dunning it settles ends.
    async fn follow_effective(
        &mut self,
        before: Option<StoredSubscription>,
        after: Option<StoredSubscription>,
    ) -> Result<(), BillingError> {
        let key = |s: &Option<StoredSubscription>| {
            s.as_ref().map(|s| (s.id.clone(), s.status, s.plan.clone()))
        };
        if key(&before) == key(&after) {
            return Ok(());
        }
        let Some(current) = after else {
            return Ok(());
        };
        if let Some(target) = plan_of_subscription(&current) {
            let previous = repo::tenant::find(&mut self.tx).await?.map(|t| t.plan);
            if previous.as_deref() != Some(target) {
                repo::tenant::set_plan(&mut self.tx, target).await?;
                self.audit(
                    "billing.plan.changed",
                    json!({ "from": previous, "to": target, "subscription": current.id }),
                )
                .await?;
            }
        }
        if let Some(invoice) = self.account.dunning_invoice_id.clone() {
            match current.status {
                // Active again: most likely paid; the invoice says for sure.
                SubscriptionStatus::Active | SubscriptionStatus::Trialing => {
                    self.sync_invoice(&invoice, false).await?;
                }
                status if status.has_ended() => {
                    self.end_dunning(&invoice, "the subscription ended").await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A trialing subscription gets one reminder, 3 days before its trial ends (at once for
    /// shorter trials); a new trial end gets a new one.
    async fn schedule_trial_reminder(
        &mut self,
        old: Option<&StoredSubscription>,
        new: &StoredSubscription,
    ) -> Result<(), BillingError> {
        let Some(trial_end) = new.trial_end else {
            return Ok(());
        };
        let already = old.is_some_and(|o| o.status == new.status && o.trial_end == new.trial_end);
        if new.status != SubscriptionStatus::Trialing || already || trial_end <= self.now {
            return Ok(());
        }
        let at = (trial_end - TRIAL_REMINDER_LEAD).max(self.now);
        let email = BillingEmail {
            tenant_id: self.tx.tenant_id(),
            kind: BillingEmailKind::TrialEnding {
                subscription_id: new.id.clone(),
                trial_end,
            },
        };
        enqueue_once(&mut self.tx, &email, Some(at.into())).await?;
        Ok(())
    }

    /// A new per-seat subscription was sold for the members counted at checkout; members
    /// who came or went since then are billed by one seat sync.
    async fn reconcile_seats(&mut self, new: &StoredSubscription) -> Result<(), BillingError> {
        let per_seat = new
            .plan
            .as_deref()
            .and_then(|p| self.billing.plan(p))
            .is_some_and(|p| p.is_per_seat());
        if !per_seat || !new.status.grants_plan() {
            return Ok(());
        }
        let members = repo::tenant::member_count(&mut self.tx).await?;
        if new.quantity == Some(members.max(1)) {
            return Ok(());
        }
        let job = SyncSeats {
            tenant_id: self.tx.tenant_id(),
            change_key: format!("subscription:{}", new.id),
            members,
        };
        enqueue_once(&mut self.tx, &job, None).await?;
        Ok(())
    }

    /// Refetches invoice `id`, stores it if it changed, and moves dunning on. Also returns
    /// the subscription the invoice (as Stripe has it now) belongs to.
    pub(crate) async fn sync_invoice(
        &mut self,
        id: &str,
        payment_failed: bool,
    ) -> Result<(Processed, Option<String>), BillingError> {
        let remote = self.stripe()?.invoice(id).await?;
        let Some(customer) = stripe_api::invoice_customer(&remote) else {
            return Ok((
                Processed::Ignored("an invoice without customer".to_owned()),
                None,
            ));
        };
        if !self.owns_customer(customer).await? {
            return Ok((
                Processed::Ignored("an invoice of another customer".to_owned()),
                None,
            ));
        }
        let Some(new) = stripe_api::stored_invoice(&remote) else {
            return Ok((
                Processed::Ignored("an invoice in an unknown state".to_owned()),
                None,
            ));
        };
        let old = repo::subscriptions::find_invoice(&mut self.tx, id).await?;
        let mut changed = false;
        if old.as_ref() != Some(&new) {
            repo::subscriptions::upsert_invoice(&mut self.tx, &new).await?;
            changed = true;
        }
        changed |= self.apply_dunning(&new, payment_failed).await?;
        let processed = if changed {
            Processed::Applied
        } else {
            Processed::Unchanged
        };
        Ok((processed, new.subscription_id))
    }
}
