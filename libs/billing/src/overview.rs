//! Reading a tenant's billing: its entitlements (for every service) and the billing page.

use chrono::{DateTime, Utc};
use tenantkit_db::TenantTx;

use crate::{
    Account, Billing, BillingError, Entitlements, Overrides, Plan, StoredInvoice,
    StoredSubscription, SubscriptionStatus, effective_subscription, entitlements::resolve, repo,
};

/// An invoice as the billing page lists it.
pub type InvoiceSummary = StoredInvoice;

/// Invoices the billing page shows.
const INVOICES_SHOWN: i64 = 24;

/// Everything the billing page shows.
#[derive(Clone, Debug)]
pub struct Overview {
    /// Stripe is configured; otherwise the page says billing is not set up.
    pub configured: bool,
    /// The tenant's plan (or the free plan's terms for a plan no longer configured).
    pub plan: Plan,
    pub entitlements: Entitlements,
    pub status: SubscriptionStatus,
    /// The subscription that decides the plan, if any.
    pub subscription: Option<StoredSubscription>,
    pub seats_used: u64,
    /// `None` for a per-seat plan (no limit; each member is billed).
    pub seats_included: Option<u32>,
    /// When the next invoice comes: the end of the current period, unless the subscription
    /// ends then.
    pub next_invoice_at: Option<DateTime<Utc>>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub payment_failed_at: Option<DateTime<Utc>>,
    /// When a tenant in dunning becomes read-only.
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub restricted_since: Option<DateTime<Utc>>,
    /// A Stripe customer exists: the portal ("manage billing") can open.
    pub has_customer: bool,
    /// Newest first.
    pub invoices: Vec<InvoiceSummary>,
}

impl Billing {
    /// What the tenant of `tx` may use now. The one interface for other services.
    pub async fn entitlements(&self, tx: &mut TenantTx) -> Result<Entitlements, BillingError> {
        let (entitlements, _, _, _) = self.read_state(tx).await?;
        Ok(entitlements)
    }

    /// The billing page of the tenant of `tx`.
    pub async fn overview(&self, tx: &mut TenantTx) -> Result<Overview, BillingError> {
        let (entitlements, plan, account, subscription) = self.read_state(tx).await?;
        let seats_used = repo::tenant::member_count(tx).await?;
        let invoices = repo::subscriptions::recent_invoices(tx, INVOICES_SHOWN).await?;
        let live = subscription.as_ref().filter(|s| s.status.grants_plan());
        Ok(Overview {
            configured: self.is_configured(),
            plan,
            status: entitlements.status,
            seats_used,
            seats_included: entitlements.seats,
            next_invoice_at: live
                .filter(|s| !s.cancel_at_period_end)
                .and_then(|s| s.current_period_end),
            trial_ends_at: live
                .filter(|s| s.status == SubscriptionStatus::Trialing)
                .and_then(|s| s.trial_end),
            cancel_at_period_end: live.is_some_and(|s| s.cancel_at_period_end),
            payment_failed_at: account.payment_failed_at,
            grace_ends_at: account.grace_ends_at,
            restricted_since: account.restricted_at.filter(|_| entitlements.restricted),
            has_customer: account.stripe_customer_id.is_some(),
            subscription,
            invoices,
            entitlements,
        })
    }

    async fn read_state(
        &self,
        tx: &mut TenantTx,
    ) -> Result<(Entitlements, Plan, Account, Option<StoredSubscription>), BillingError> {
        let tenant = repo::tenant::find(tx)
            .await?
            .ok_or(BillingError::NotFound)?;
        let account = repo::accounts::find(tx).await?.unwrap_or_default();
        let subscriptions = repo::subscriptions::all(tx).await?;
        let subscription = effective_subscription(&subscriptions).cloned();
        let status = subscription
            .as_ref()
            .map_or(SubscriptionStatus::None, |s| s.status);
        let plan = self.plan_or_free(&tenant.plan).clone();
        let entitlements = resolve(
            &tenant.plan,
            &plan,
            status,
            account.restricted_at.is_some(),
            &Overrides::from_json(&tenant.entitlement_overrides),
        );
        Ok((entitlements, plan, account, subscription))
    }
}
