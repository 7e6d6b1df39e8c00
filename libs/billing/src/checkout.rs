//! Starting a subscription (Stripe Checkout) and managing one (the billing portal): the only
//! Stripe calls made during a request.
//!
//! A crash after Stripe answered and before our commit is retried with the same idempotency
//! keys, so Stripe hands back the customer and session it already made instead of new ones:
//! `customer:{tenant}` for the customer, `checkout:{tenant}:{plan}:{interval}:{attempt}` for
//! the session, where `attempt` comes from the billing page's form (a double submit or a
//! resubmission reuses it; choosing again makes a new one).

use std::collections::HashMap;

use tenantkit_db::Database;
use tenantkit_kernel::TenantId;
use url::Url;

use crate::{
    Billing, BillingError, Interval, effective_subscription, price_for, repo,
    stripe_api::CheckoutRequest,
};

/// An attempt id is a form's token: 1 to 64 letters, digits, `-` or `_`.
fn valid_attempt(attempt: &str) -> bool {
    (1..=64).contains(&attempt.len())
        && attempt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_url(text: &str) -> Result<Url, BillingError> {
    Url::parse(text).map_err(|e| {
        crate::StripeFailure::Unavailable(format!("Stripe answered an invalid URL: {e}")).into()
    })
}

impl Billing {
    /// Creates (or finds again) a Checkout Session for `plan` billed every `interval`, and
    /// returns its URL to redirect the owner to. The tenant's Stripe customer is created
    /// first when it has none, and stored before the session is made.
    #[allow(clippy::too_many_arguments)] // each is a distinct input of the page's form
    #[tracing::instrument(skip(self, db, success_url, cancel_url, customer_email), fields(%tenant))]
    pub async fn start_checkout(
        &self,
        db: &Database,
        tenant: TenantId,
        plan: &str,
        interval: Interval,
        attempt: &str,
        success_url: &str,
        cancel_url: &str,
        customer_email: Option<&str>,
    ) -> Result<Url, BillingError> {
        let stripe = self.stripe()?;
        let plan = self
            .plan(plan)
            .ok_or_else(|| BillingError::UnknownPlan(plan.to_owned()))?;
        let price = price_for(plan, interval).ok_or_else(|| {
            BillingError::invalid(
                "interval",
                format!(
                    "The {} plan cannot be bought {}.",
                    plan.display_name,
                    interval.as_str()
                ),
            )
        })?;
        if !valid_attempt(attempt) {
            return Err(BillingError::invalid(
                "attempt",
                "an attempt id is 1 to 64 letters, digits, '-' or '_'",
            ));
        }

        // Read what the session depends on, without holding a transaction over Stripe calls.
        let mut tx = db.tenant(tenant).await?;
        repo::tenant::find(&mut tx)
            .await?
            .ok_or(BillingError::NotFound)?;
        let account = repo::accounts::find(&mut tx).await?.unwrap_or_default();
        let subscriptions = repo::subscriptions::all(&mut tx).await?;
        let members = repo::tenant::member_count(&mut tx).await?;
        tx.rollback().await?;
        if effective_subscription(&subscriptions).is_some_and(|s| s.status.grants_plan()) {
            return Err(BillingError::Conflict(
                "This organisation already has a subscription: change it under “Manage billing”."
                    .to_owned(),
            ));
        }

        let tenant_metadata = HashMap::from([("tenant_id".to_owned(), tenant.to_string())]);
        let customer = match account.stripe_customer_id {
            Some(customer) => customer,
            None => {
                let created = stripe
                    .create_customer(
                        tenant_metadata.clone(),
                        customer_email,
                        &format!("customer:{tenant}"),
                    )
                    .await?;
                let mut tx = db.tenant(tenant).await?;
                let stored = repo::accounts::attach_customer(&mut tx, &created).await?;
                tx.commit().await?;
                stored
            }
        };

        let mut metadata = tenant_metadata;
        metadata.insert("plan".to_owned(), plan.name.clone());
        metadata.insert("interval".to_owned(), interval.as_str().to_owned());
        // A trial is for a first subscription only.
        let trial_days =
            (plan.trial_days > 0 && subscriptions.is_empty()).then_some(plan.trial_days);
        let url = stripe
            .create_checkout(CheckoutRequest {
                customer: &customer,
                price,
                quantity: if plan.is_per_seat() {
                    members.max(1)
                } else {
                    1
                },
                trial_days,
                metadata,
                client_reference_id: tenant.to_string(),
                success_url,
                cancel_url,
                idempotency_key: format!(
                    "checkout:{tenant}:{}:{}:{attempt}",
                    plan.name,
                    interval.as_str()
                ),
            })
            .await?;
        parse_url(&url)
    }

    /// A billing portal session for the tenant's customer, returning to `return_url`.
    pub async fn portal(
        &self,
        db: &Database,
        tenant: TenantId,
        return_url: &str,
    ) -> Result<Url, BillingError> {
        let stripe = self.stripe()?;
        let mut tx = db.tenant(tenant).await?;
        let account = repo::accounts::find(&mut tx).await?;
        tx.rollback().await?;
        let customer = account
            .and_then(|a| a.stripe_customer_id)
            .ok_or(BillingError::NoCustomer)?;
        parse_url(&stripe.create_portal(&customer, return_url).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_attempt;

    #[test]
    fn attempt_ids_are_short_tokens() {
        assert!(valid_attempt("0193a6f2-7c1e-7b6a-9d3e-2f4c5b6a7d8e"));
        assert!(valid_attempt("a_B-9"));
        for bad in ["", "has space", "colon:inside", &"x".repeat(65), "é"] {
            assert!(!valid_attempt(bad), "{bad:?}");
        }
    }
}
