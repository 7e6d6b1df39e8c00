//! The calls billing makes to Stripe, through async-stripe's own client, and how Stripe's
//! objects become our stored copies.
//!
//! Every call that creates or changes something carries an idempotency key derived from the
//! business operation (never random), so a retry after a crash or a double submit gets
//! Stripe's first answer instead of a second object. Reads carry none.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_billing::{
    Invoice, Subscription,
    billing_portal_session::CreateBillingPortalSession,
    invoice::RetrieveInvoice,
    subscription::{CancelSubscription, RetrieveSubscription},
    subscription_item::UpdateSubscriptionItem,
};
use stripe_checkout::{
    CheckoutSessionMode,
    checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionLineItems,
        CreateCheckoutSessionSubscriptionData,
    },
};
use stripe_core::customer::{CreateCustomer, RetrieveCustomer, RetrieveCustomerReturned};
use tenantkit_config::BillingSettings;

use crate::{
    BillingError, Interval, InvoiceStatus, Plan, StoredInvoice, StoredSubscription,
    SubscriptionStatus, error::StripeFailure, model::plan_for_price,
};

/// Stripe, as billing uses it. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub(crate) struct StripeApi {
    client: Client,
}

fn idempotent(key: &str) -> Result<RequestStrategy, BillingError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| BillingError::invalid("idempotency_key", e.to_string()))
}

fn timestamp(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

/// What a new Checkout Session asks for.
pub(crate) struct CheckoutRequest<'a> {
    pub customer: &'a str,
    pub price: &'a str,
    pub quantity: u64,
    pub trial_days: Option<u32>,
    pub metadata: HashMap<String, String>,
    pub client_reference_id: String,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub idempotency_key: String,
}

/// A customer as Stripe reports it now.
pub(crate) enum CustomerState {
    Present {
        email: Option<String>,
        name: Option<String>,
    },
    Deleted,
}

impl StripeApi {
    /// `None` when no secret key is configured.
    pub(crate) fn new(settings: &BillingSettings) -> Result<Option<Self>, BillingError> {
        let Some(key) = &settings.stripe_secret_key else {
            return Ok(None);
        };
        let client = ClientBuilder::new(key.expose_secret())
            .url(settings.stripe_api_base.as_str())
            .timeout(settings.stripe_timeout)
            .app_info(
                "tenantkit",
                Some(env!("CARGO_PKG_VERSION").to_owned()),
                None,
            )
            .build()
            .map_err(StripeFailure::from)?;
        Ok(Some(Self { client }))
    }

    pub(crate) async fn create_customer(
        &self,
        metadata: HashMap<String, String>,
        email: Option<&str>,
        idempotency_key: &str,
    ) -> Result<String, BillingError> {
        let mut request = CreateCustomer::new().metadata(metadata);
        if let Some(email) = email {
            request = request.email(email);
        }
        let customer = request
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await?;
        Ok(customer.id.as_str().to_owned())
    }

    pub(crate) async fn create_checkout(
        &self,
        r: CheckoutRequest<'_>,
    ) -> Result<String, BillingError> {
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(r.price.to_owned());
        item.quantity = Some(r.quantity);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(r.metadata.clone());
        subscription.trial_period_days = r.trial_days;
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Subscription)
            .customer(r.customer)
            .line_items(vec![item])
            .client_reference_id(r.client_reference_id)
            .metadata(r.metadata)
            .subscription_data(subscription)
            .success_url(r.success_url)
            .cancel_url(r.cancel_url)
            .customize()
            .request_strategy(idempotent(&r.idempotency_key)?)
            .send(&self.client)
            .await?;
        session.url.ok_or_else(|| {
            StripeFailure::Unavailable("the Checkout Session has no URL".to_owned()).into()
        })
    }

    /// Portal sessions are short-lived views: creating one twice is harmless, so no key.
    pub(crate) async fn create_portal(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, BillingError> {
        let session = CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .send(&self.client)
            .await?;
        Ok(session.url)
    }

    pub(crate) async fn subscription(&self, id: &str) -> Result<Subscription, BillingError> {
        Ok(RetrieveSubscription::new(id).send(&self.client).await?)
    }

    pub(crate) async fn invoice(&self, id: &str) -> Result<Invoice, BillingError> {
        Ok(RetrieveInvoice::new(id).send(&self.client).await?)
    }

    pub(crate) async fn customer(&self, id: &str) -> Result<CustomerState, BillingError> {
        Ok(match RetrieveCustomer::new(id).send(&self.client).await? {
            RetrieveCustomerReturned::Customer(c) => CustomerState::Present {
                email: c.email,
                name: c.name,
            },
            RetrieveCustomerReturned::DeletedCustomer(_) => CustomerState::Deleted,
        })
    }

    /// Cancels a subscription now (no proration credit: Stripe's default).
    pub(crate) async fn cancel(&self, id: &str, idempotency_key: &str) -> Result<(), BillingError> {
        CancelSubscription::new(id)
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await?;
        Ok(())
    }

    /// Sets a subscription item's quantity; returns the quantity Stripe confirms.
    pub(crate) async fn set_item_quantity(
        &self,
        item: &str,
        quantity: u64,
        idempotency_key: &str,
    ) -> Result<Option<u64>, BillingError> {
        let updated = UpdateSubscriptionItem::new(item)
            .quantity(quantity)
            .customize()
            .request_strategy(idempotent(idempotency_key)?)
            .send(&self.client)
            .await?;
        Ok(updated.quantity)
    }
}

/// Whether Stripe says the subscription is over (nothing left to cancel).
pub(crate) fn has_ended(subscription: &Subscription) -> bool {
    SubscriptionStatus::from_stripe(subscription.status.as_str())
        .is_some_and(SubscriptionStatus::has_ended)
}

/// The customer a subscription belongs to.
pub(crate) fn subscription_customer(subscription: &Subscription) -> &str {
    subscription.customer.id().as_str()
}

/// Our copy of a subscription: its first item decides price, plan and quantity (billing
/// creates single-item subscriptions).
pub(crate) fn stored_subscription(s: &Subscription, plans: &[Plan]) -> StoredSubscription {
    let item = s.items.data.first();
    let price_id = item.map(|i| i.price.id.as_str().to_owned());
    let mapped = price_id.as_deref().and_then(|p| plan_for_price(plans, p));
    let stripe_interval = item
        .and_then(|i| i.price.recurring.as_ref())
        .and_then(|r| Interval::from_stripe_name(r.interval.as_str()));
    let status = SubscriptionStatus::from_stripe(s.status.as_str()).unwrap_or_else(|| {
        // Granting nothing new is the safe reading of a state we do not know.
        tracing::warn!(status = s.status.as_str(), "unknown subscription status");
        SubscriptionStatus::Incomplete
    });
    StoredSubscription {
        id: s.id.as_str().to_owned(),
        status,
        plan: mapped.map(|(plan, _)| plan.name.clone()),
        interval: mapped.map(|(_, interval)| interval).or(stripe_interval),
        price_id,
        quantity: item.and_then(|i| i.quantity),
        item_id: item.map(|i| i.id.as_str().to_owned()),
        current_period_end: item.and_then(|i| timestamp(i.current_period_end)),
        trial_end: s.trial_end.and_then(timestamp),
        cancel_at_period_end: s.cancel_at_period_end,
        canceled_at: s.canceled_at.and_then(timestamp),
        created_at: timestamp(s.created).unwrap_or_default(),
    }
}

/// The customer of an invoice, if it has one.
pub(crate) fn invoice_customer(invoice: &Invoice) -> Option<&str> {
    invoice.customer.as_ref().map(|c| c.id().as_str())
}

/// Our copy of an invoice; `None` for one without an id (a preview) or in a state this
/// version does not know.
pub(crate) fn stored_invoice(i: &Invoice) -> Option<StoredInvoice> {
    let id = i.id.as_ref()?.as_str().to_owned();
    let status = InvoiceStatus::from_stripe(i.status.as_ref()?.as_str())?;
    // API versions since 2025 name the subscription under `parent`; older ones at the top.
    let subscription_id = i
        .parent
        .as_ref()
        .and_then(|p| p.subscription_details.as_ref())
        .map(|d| d.subscription.id().as_str().to_owned())
        .or_else(|| i.subscription.as_ref().map(|s| s.id().as_str().to_owned()));
    Some(StoredInvoice {
        id,
        subscription_id,
        number: i.number.clone(),
        status,
        currency: i.currency.to_string(),
        amount_due: i.amount_due,
        amount_paid: i.amount_paid,
        amount_remaining: i.amount_remaining,
        hosted_invoice_url: i.hosted_invoice_url.clone(),
        invoice_pdf: i.invoice_pdf.clone(),
        period_start: timestamp(i.period_start),
        period_end: timestamp(i.period_end),
        created_at: timestamp(i.created).unwrap_or_default(),
    })
}
