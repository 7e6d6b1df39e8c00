//! Processing a stored webhook event (the `billing.event` job).
//!
//! An event is a hint that an object changed, not the truth about it: the job finds the tenant,
//! takes the tenant's billing lock, refetches the object from Stripe and stores what it says
//! now. Events arriving late, twice or out of order therefore all converge on Stripe's current
//! state, and a change is applied (audited, plan updated, email queued) only when the stored
//! state actually differs.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantkit_db::Database;
use tenantkit_kernel::TenantId;

use crate::{Billing, BillingError, repo, stripe_api::CustomerState};

/// What processing an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Processed {
    /// The stored state changed.
    Applied,
    /// Stripe's state was what we already had (a duplicate, or a later event came first).
    Unchanged,
    /// Not for us: an event type billing does not handle, or an object of no tenant of ours.
    Ignored(String),
    /// Another run of the job processed it already.
    AlreadyProcessed,
    /// No such event is stored.
    NotFound,
}

impl Processed {
    fn outcome(&self) -> String {
        match self {
            Self::Applied => "applied".to_owned(),
            Self::Unchanged => "unchanged".to_owned(),
            Self::Ignored(why) => format!("ignored: {why}"),
            Self::AlreadyProcessed => "already processed".to_owned(),
            Self::NotFound => "not found".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    CheckoutCompleted,
    SubscriptionChanged,
    InvoicePaid,
    InvoicePaymentFailed,
    CustomerUpdated,
    Other,
}

/// What billing needs from an event's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventSummary {
    pub kind: EventKind,
    /// `data.object.id`.
    pub object_id: Option<String>,
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// The tenant our metadata names (we set it on Checkout Sessions and subscriptions);
    /// used when the customer is not known yet.
    pub tenant_hint: Option<TenantId>,
}

/// An id, whether Stripe sent it as a string or as an expanded object.
fn id_of(value: Option<&Value>) -> Option<String> {
    let value = value?;
    value
        .as_str()
        .or_else(|| value.get("id").and_then(Value::as_str))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

pub(crate) fn summarize(payload: &Value) -> EventSummary {
    let kind = match payload
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "checkout.session.completed" => EventKind::CheckoutCompleted,
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => EventKind::SubscriptionChanged,
        "invoice.paid" => EventKind::InvoicePaid,
        "invoice.payment_failed" => EventKind::InvoicePaymentFailed,
        "customer.updated" => EventKind::CustomerUpdated,
        _ => EventKind::Other,
    };
    let object = payload.pointer("/data/object").unwrap_or(&Value::Null);
    let object_id = id_of(object.get("id"));
    let subscription_parent = object.pointer("/parent/subscription_details");
    let customer = match kind {
        EventKind::CustomerUpdated => object_id.clone(),
        _ => id_of(object.get("customer")),
    };
    let subscription = match kind {
        EventKind::SubscriptionChanged => object_id.clone(),
        EventKind::InvoicePaid | EventKind::InvoicePaymentFailed => {
            id_of(subscription_parent.and_then(|p| p.get("subscription")))
                .or_else(|| id_of(object.get("subscription")))
        }
        _ => id_of(object.get("subscription")),
    };
    let tenant_hint = [
        object.pointer("/metadata/tenant_id"),
        object.get("client_reference_id"),
        subscription_parent.and_then(|p| p.pointer("/metadata/tenant_id")),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str()?.parse::<TenantId>().ok());
    EventSummary {
        kind,
        object_id,
        customer,
        subscription,
        tenant_hint,
    }
}

impl Billing {
    /// Processes the stored event `event_id` (the `billing.event` job). `now` dates what the
    /// processing starts (a dunning's grace period).
    pub async fn process_event(
        &self,
        db: &Database,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Processed, BillingError> {
        let mut global = db.global().await?;
        let Some(event) = repo::events::find(global.conn(), event_id).await? else {
            return Ok(Processed::NotFound);
        };
        if event.processed {
            return Ok(Processed::AlreadyProcessed);
        }
        let summary = summarize(&event.payload);
        let known_tenant = match &summary.customer {
            Some(customer) => repo::accounts::tenant_of_customer(global.conn(), customer).await?,
            None => None,
        };
        let tenant = match (summary.kind, known_tenant.or(summary.tenant_hint)) {
            (EventKind::Other, _) => Err("not a billing event"),
            (_, None) => Err("no tenant of ours"),
            (_, Some(tenant)) => Ok(tenant),
        };
        let tenant = match tenant {
            Ok(tenant) => tenant,
            Err(why) => {
                let ignored = Processed::Ignored(why.to_owned());
                repo::events::mark_processed(global.conn(), event_id, &ignored.outcome(), None)
                    .await?;
                global.commit().await?;
                return Ok(ignored);
            }
        };
        drop(global);

        let mut tx = db.tenant(tenant).await?;
        let gone = match repo::tenant::find(&mut tx).await? {
            None => Some("the tenant does not exist"),
            // Its data is gone; only the row stays for the audit trail.
            Some(row) if row.status == "purged" => Some("the tenant was purged"),
            Some(_) => None,
        };
        if let Some(why) = gone {
            let ignored = Processed::Ignored(why.to_owned());
            repo::events::mark_processed(tx.conn(), event_id, &ignored.outcome(), None).await?;
            tx.commit().await?;
            return Ok(ignored);
        }
        // The tenant's billing lock first, then the event's row: a second run of this job
        // waits here and then finds the event processed.
        let mut account = repo::accounts::lock(&mut tx).await?;
        if repo::events::lock_processed(tx.conn(), event_id).await? {
            return Ok(Processed::AlreadyProcessed);
        }
        if let Some(customer) = summary
            .customer
            .as_deref()
            .filter(|_| known_tenant.is_none())
        {
            // Known by our metadata only (the request that created the customer did not get
            // to commit): remember it now.
            account.stripe_customer_id =
                Some(repo::accounts::attach_customer(&mut tx, customer).await?);
        }
        let mut work = crate::sync::LockedTenant::new(self, tx, account, now)?;
        let processed = match summary.kind {
            EventKind::CheckoutCompleted | EventKind::SubscriptionChanged => {
                match &summary.subscription {
                    Some(subscription) => work.sync_subscription(subscription).await?,
                    None => Processed::Ignored("no subscription".to_owned()),
                }
            }
            EventKind::InvoicePaid | EventKind::InvoicePaymentFailed => match &summary.object_id {
                Some(invoice) => {
                    let failed = summary.kind == EventKind::InvoicePaymentFailed;
                    let (invoice_change, subscription) = work.sync_invoice(invoice, failed).await?;
                    // The subscription's status moves with its invoices (past_due, active).
                    let subscription_change = match subscription.or(summary.subscription) {
                        Some(subscription) => work.sync_subscription(&subscription).await?,
                        None => Processed::Unchanged,
                    };
                    combine(invoice_change, subscription_change)
                }
                None => Processed::Ignored("no invoice id".to_owned()),
            },
            EventKind::CustomerUpdated => match &summary.customer {
                Some(customer) => self.sync_customer(&mut work, customer).await?,
                None => Processed::Ignored("no customer id".to_owned()),
            },
            EventKind::Other => Processed::Ignored("not a billing event".to_owned()),
        };
        let mut tx = work.finish();
        repo::events::mark_processed(tx.conn(), event_id, &processed.outcome(), Some(tenant))
            .await?;
        tx.commit().await?;
        Ok(processed)
    }

    async fn sync_customer(
        &self,
        work: &mut crate::sync::LockedTenant<'_>,
        customer: &str,
    ) -> Result<Processed, BillingError> {
        if !work.owns_customer(customer).await? {
            return Ok(Processed::Ignored(
                "a customer of another tenant".to_owned(),
            ));
        }
        let (email, name) = match self.stripe()?.customer(customer).await? {
            CustomerState::Present { email, name } => (email, name),
            CustomerState::Deleted => (None, None),
        };
        if work.account().customer_email == email {
            return Ok(Processed::Unchanged);
        }
        work.set_customer_details(email.as_deref(), name.as_deref())
            .await?;
        Ok(Processed::Applied)
    }
}

/// An event that changed anything was applied.
fn combine(a: Processed, b: Processed) -> Processed {
    match (a, b) {
        (Processed::Applied, _) | (_, Processed::Applied) => Processed::Applied,
        (Processed::Unchanged, _) | (_, Processed::Unchanged) => Processed::Unchanged,
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TENANT: &str = "0193a6f2-7c1e-7b6a-9d3e-2f4c5b6a7d8e";

    #[test]
    fn checkout_events_name_customer_subscription_and_tenant() {
        let s = summarize(&json!({
            "type": "checkout.session.completed",
            "data": {"object": {"id": "cs_1", "customer": "cus_1", "subscription": "sub_1",
                                "client_reference_id": TENANT, "metadata": {}}}
        }));
        assert_eq!(s.kind, EventKind::CheckoutCompleted);
        assert_eq!(s.customer.as_deref(), Some("cus_1"));
        assert_eq!(s.subscription.as_deref(), Some("sub_1"));
        assert_eq!(s.tenant_hint, Some(TENANT.parse().unwrap()));
    }

    #[test]
    fn subscription_and_customer_events_name_their_own_object() {
        let s = summarize(&json!({
            "type": "customer.subscription.deleted",
            "data": {"object": {"id": "sub_9", "customer": {"id": "cus_2", "object": "customer"},
                                "metadata": {"tenant_id": TENANT}}}
        }));
        assert_eq!(
            (s.kind, s.subscription.as_deref()),
            (EventKind::SubscriptionChanged, Some("sub_9"))
        );
        assert_eq!(s.customer.as_deref(), Some("cus_2"), "an expanded customer");
        assert!(s.tenant_hint.is_some());
        let c =
            summarize(&json!({"type": "customer.updated", "data": {"object": {"id": "cus_3"}}}));
        assert_eq!(
            (c.kind, c.customer.as_deref()),
            (EventKind::CustomerUpdated, Some("cus_3"))
        );
    }

    #[test]
    fn invoice_events_find_the_subscription_in_either_api_shape() {
        let new_shape = summarize(&json!({
            "type": "invoice.payment_failed",
            "data": {"object": {"id": "in_1", "customer": "cus_1",
                "parent": {"subscription_details": {"subscription": "sub_1",
                                                    "metadata": {"tenant_id": TENANT}}}}}
        }));
        assert_eq!(new_shape.kind, EventKind::InvoicePaymentFailed);
        assert_eq!(new_shape.object_id.as_deref(), Some("in_1"));
        assert_eq!(new_shape.subscription.as_deref(), Some("sub_1"));
        assert!(new_shape.tenant_hint.is_some());
        let old_shape = summarize(&json!({
            "type": "invoice.paid",
            "data": {"object": {"id": "in_2", "customer": "cus_1", "subscription": "sub_2"}}
        }));
        assert_eq!(old_shape.subscription.as_deref(), Some("sub_2"));
    }

    #[test]
    fn anything_else_is_other_and_odd_payloads_do_not_panic() {
        for payload in [
            json!({"type": "plan.created", "data": {"object": {"id": "price_1"}}}),
            json!({}),
            json!({"type": 5, "data": []}),
            json!({"type": "invoice.paid", "data": {"object": {"metadata": {"tenant_id": "nope"}}}}),
        ] {
            let s = summarize(&payload);
            assert!(s.tenant_hint.is_none());
            if payload["type"] != "invoice.paid" {
                assert_eq!(s.kind, EventKind::Other);
            }
        }
    }
}
