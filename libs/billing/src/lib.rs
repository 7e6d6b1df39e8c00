//! Billing with Stripe: plans from configuration, Checkout and the billing portal, webhooks,
//! entitlements, seats and dunning.
//!
//! * Requests call Stripe only to create a Checkout or portal session ([`Billing::start_checkout`],
//!   [`Billing::portal`]); everything else happens in jobs.
//! * A webhook is verified, stored and queued in one transaction ([`Billing::receive_webhook`]);
//!   the `billing.event` job ([`Billing::process_event`]) refetches the object from Stripe under
//!   the tenant's billing lock and stores what changed, so duplicates and out-of-order delivery
//!   cannot move a tenant backwards.
//! * Other services read one thing: [`Billing::entitlements`].
//! * Without Stripe keys, tenants stay on the free plan or the plan an admin assigned, and
//!   Stripe-facing operations answer [`BillingError::NotConfigured`].

use std::sync::Arc;

use tenantkit_config::BillingSettings;

mod cancellation;
mod checkout;
mod dunning;
pub mod emails;
mod entitlements;
mod error;
mod events;
pub mod jobs;
mod model;
mod overview;
mod repo;
mod seats;
pub mod signature;
mod stripe_api;
mod sync;
mod webhook;

pub use cancellation::enqueue_cancellations;
pub use dunning::GraceOutcome;
pub use entitlements::{Entitlements, Overrides, features, resolve as resolve_entitlements};
pub use error::{BillingError, StripeFailure, WebhookError};
pub use events::Processed;
pub use model::{
    Account, Interval, InvoiceStatus, Plan, StoredInvoice, StoredSubscription, SubscriptionStatus,
    effective_subscription, plan_for_price, plan_of_subscription, price_for,
};
pub use overview::{InvoiceSummary, Overview};
pub use seats::{SeatSync, enqueue_seat_sync};
pub use webhook::Received;

/// Billing for the whole deployment: its settings and, when configured, a Stripe client.
/// Cheap to clone; build one at start-up and share it.
#[derive(Clone)]
pub struct Billing {
    inner: Arc<Inner>,
}

struct Inner {
    settings: BillingSettings,
    stripe: Option<stripe_api::StripeApi>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("configured", &self.is_configured())
            .field("plans", &self.inner.settings.plans.len())
            .finish_non_exhaustive()
    }
}

impl Billing {
    /// Fails only when the Stripe client cannot be built from the (validated) settings.
    pub fn new(settings: &BillingSettings) -> Result<Self, BillingError> {
        let stripe = if settings.is_configured() {
            stripe_api::StripeApi::new(settings)?
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                settings: settings.clone(),
                stripe,
            }),
        })
    }

    /// Stripe keys and a webhook secret are set: checkout, portal and webhooks work.
    pub fn is_configured(&self) -> bool {
        self.inner.stripe.is_some()
    }

    /// Every plan, `free` first.
    pub fn plans(&self) -> &[Plan] {
        &self.inner.settings.plans
    }

    pub fn plan(&self, name: &str) -> Option<&Plan> {
        self.inner.settings.plan(name)
    }

    /// Refuses with [`BillingError::FeatureNotInPlan`] (naming the plans that include it)
    /// unless `entitlements` has `feature`.
    pub fn require_feature(
        &self,
        entitlements: &Entitlements,
        feature: &'static str,
    ) -> Result<(), BillingError> {
        if entitlements.has_feature(feature) {
            return Ok(());
        }
        let plans = self
            .plans()
            .iter()
            .filter(|p| p.features.iter().any(|f| f == feature))
            .map(|p| p.display_name.clone())
            .collect();
        Err(BillingError::FeatureNotInPlan { feature, plans })
    }

    /// The storage quota of a tenant on `plan` with the admin's `overrides`
    /// (`tenants.entitlement_overrides`): what [`Billing::entitlements`] says, for views that
    /// read the tenant row only.
    pub fn storage_quota(&self, plan: &str, overrides: &serde_json::Value) -> u64 {
        entitlements::storage_quota(self.plan_or_free(plan), &Overrides::from_json(overrides))
    }

    /// The free plan, which always exists.
    pub fn free_plan(&self) -> &Plan {
        &self.inner.settings.plans[0]
    }

    pub fn settings(&self) -> &BillingSettings {
        &self.inner.settings
    }

    /// The plan named `name`, or the free plan's terms for a name configuration no longer has
    /// (a plan removed while tenants were on it keeps them working, at the free plan's limits).
    pub(crate) fn plan_or_free(&self, name: &str) -> &Plan {
        self.plan(name).unwrap_or_else(|| {
            tracing::warn!(
                plan = name,
                "tenant on a plan that is not configured; free plan limits apply"
            );
            self.free_plan()
        })
    }

    pub(crate) fn stripe(&self) -> Result<&stripe_api::StripeApi, BillingError> {
        self.inner
            .stripe
            .as_ref()
            .ok_or(BillingError::NotConfigured)
    }
}
