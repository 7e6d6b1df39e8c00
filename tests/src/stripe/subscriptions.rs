//! How subscriptions and their invoices change: updates through the API (items, quantity,
//! cancellation at period end, metadata), and what the test controls make happen (a trial ending,
//! a renewal, a failed or late payment, a cancellation), each with the events Stripe sends.

use serde_json::{Value, json};

use super::{
    events,
    objects::{self, InvoiceSpec, Payment, random_id},
    params::{ApiError, Params},
    state::{
        Change, State, current_period, find, find_mut, interval, items, merge_metadata, set_period,
        subscription_amount,
    },
};

impl State {
    /// Changes a subscription with `change` (all or nothing, as a Stripe request), and records
    /// the event (`updated` with the changed fields' old values, or `deleted`) when anything
    /// changed.
    fn change_subscription(
        &mut self,
        id: &str,
        event_type: &str,
        change: impl FnOnce(&mut Value, i64) -> Result<(), ApiError>,
    ) -> Result<(Value, Option<Value>), ApiError> {
        let now = self.now();
        let before = find(&self.subscriptions, id)
            .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?
            .clone();
        let mut after = before.clone();
        change(&mut after, now)?;
        if after == before {
            return Ok((after, None));
        }
        *find_mut(&mut self.subscriptions, id).expect("found above") = after.clone();
        let previous = (event_type == "customer.subscription.updated")
            .then(|| events::previous_attributes(&before, &after));
        let event = self.emit(event_type, &after, previous);
        Ok((after, Some(event)))
    }

    /// `items[i][id|price|quantity|deleted]`, `cancel_at_period_end`, `metadata`, `trial_end=now`.
    pub fn api_update_subscription(
        &mut self,
        id: &str,
        params: &Params,
    ) -> Result<Value, ApiError> {
        if params.get("trial_end") == Some("now") {
            self.end_trial(id)?;
        }
        let mut updates = Vec::new();
        for (index, entry) in params.list("items").into_iter().enumerate() {
            let price = match entry.get("price") {
                Some(price_id) => Some(find(&self.prices, price_id).cloned().ok_or_else(|| {
                    ApiError::no_such("price", price_id, &format!("items[{index}][price]"))
                })?),
                None => None,
            };
            updates.push((index, entry, price));
        }
        let cancel_at_period_end = params.bool("cancel_at_period_end");
        let metadata = params.map("metadata");
        let (subscription, _) =
            self.change_subscription(id, "customer.subscription.updated", |sub, now| {
                if sub["status"] == "canceled"
                    && (!updates.is_empty() || cancel_at_period_end.is_some())
                {
                    return Err(canceled_error(sub));
                }
                for (index, entry, price) in updates {
                    apply_item_update(sub, index, &entry, price, now)?;
                }
                if let Some(cancel) = cancel_at_period_end {
                    sub["cancel_at_period_end"] = json!(cancel);
                    sub["cancel_at"] = if cancel {
                        json!(current_period(sub).1)
                    } else {
                        Value::Null
                    };
                }
                merge_metadata(sub, metadata);
                Ok(())
            })?;
        Ok(subscription)
    }

    /// `quantity`, `price`, `metadata` of one subscription item; answers the item.
    pub fn api_update_subscription_item(
        &mut self,
        item_id: &str,
        params: &Params,
    ) -> Result<Value, ApiError> {
        let subscription_id = self
            .subscription_item(item_id)
            .ok_or_else(|| ApiError::no_such("subscription_item", item_id, "id"))?["subscription"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let price = match params.get("price") {
            Some(price_id) => Some(
                find(&self.prices, price_id)
                    .cloned()
                    .ok_or_else(|| ApiError::no_such("price", price_id, "price"))?,
            ),
            None => None,
        };
        let mut entry = params.clone();
        entry.0.push(("id".into(), item_id.into()));
        let (subscription, _) = self.change_subscription(
            &subscription_id,
            "customer.subscription.updated",
            |sub, now| {
                if sub["status"] == "canceled" {
                    return Err(canceled_error(sub));
                }
                apply_item_update(sub, 0, &entry, price, now)
            },
        )?;
        Ok(items(&subscription)
            .iter()
            .find(|item| item["id"] == item_id)
            .cloned()
            .unwrap_or_default())
    }

    /// Cancels now (`DELETE /v1/subscriptions/{id}`, or the test's control).
    pub fn cancel_subscription(&mut self, id: &str) -> Result<(Value, Vec<Value>), ApiError> {
        let (subscription, event) =
            self.change_subscription(id, "customer.subscription.deleted", |sub, now| {
                if sub["status"] == "canceled" {
                    return Err(ApiError::invalid(
                        "",
                        format!(
                            "Subscription {} is already canceled.",
                            sub["id"].as_str().unwrap_or_default()
                        ),
                    ));
                }
                objects::overlay(
                    sub,
                    json!({ "status": "canceled", "canceled_at": now, "ended_at": now }),
                );
                Ok(())
            })?;
        Ok((subscription, event.into_iter().collect()))
    }

    /// The trial ends now: active, a new period from now, its invoice paid.
    pub fn end_trial(&mut self, id: &str) -> Result<Change, ApiError> {
        let subscription = find(&self.subscriptions, id)
            .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?
            .clone();
        if subscription["status"] != "trialing" {
            return Err(ApiError::invalid(
                "trial_end",
                format!("Subscription {id} is not trialing."),
            ));
        }
        self.start_period(id, "subscription_cycle", Payment::Paid, |sub, now| {
            sub["status"] = json!("active");
            sub["trial_end"] = json!(now);
        })
    }

    /// The period rolls over: Stripe's clock moves to the current period's end, a new period
    /// starts and its invoice is paid.
    pub fn renew(&mut self, id: &str) -> Result<Change, ApiError> {
        let subscription = find(&self.subscriptions, id)
            .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?;
        let end = current_period(subscription).1;
        let cancels = subscription["cancel_at_period_end"] == true;
        let now = self.now();
        if end > now {
            self.advance_clock(end - now);
        }
        if cancels {
            let (_, events) = self.cancel_subscription(id)?;
            return Ok(Change {
                id: id.to_owned(),
                events,
            });
        }
        self.start_period(id, "subscription_cycle", Payment::Paid, |_, _| {})
    }

    /// A new period starts now with its invoice, paid or failed (then the subscription is
    /// past_due). Events: `customer.subscription.updated`, then `invoice.paid` or
    /// `invoice.payment_failed`.
    fn start_period(
        &mut self,
        id: &str,
        billing_reason: &str,
        payment: Payment,
        change: impl FnOnce(&mut Value, i64),
    ) -> Result<Change, ApiError> {
        let now = self.now();
        let subscription = find(&self.subscriptions, id)
            .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?
            .clone();
        let period = (now, objects::add_interval(now, &interval(&subscription), 1));
        let mut renewed = subscription.clone();
        set_period(&mut renewed, period);
        let failed = matches!(payment, Payment::Failed { .. });
        let invoice = self.new_invoice(
            &renewed,
            subscription_amount(&renewed),
            billing_reason,
            period,
            payment,
        );
        let invoice_id = invoice["id"].clone();
        let (_, updated) =
            self.change_subscription(id, "customer.subscription.updated", |sub, now| {
                set_period(sub, period);
                sub["billing_cycle_anchor"] = json!(now);
                sub["latest_invoice"] = invoice_id.clone();
                if sub["cancel_at_period_end"] == true {
                    sub["cancel_at"] = json!(period.1);
                }
                change(sub, now);
                if failed {
                    sub["status"] = json!("past_due");
                }
                Ok(())
            })?;
        let outcome = if failed {
            "invoice.payment_failed"
        } else {
            "invoice.paid"
        };
        let invoice_event = self.emit(outcome, &invoice, None);
        Ok(Change {
            id: invoice["id"].as_str().unwrap_or_default().to_owned(),
            events: updated.into_iter().chain([invoice_event]).collect(),
        })
    }

    /// The subscription's next charge fails now: an open invoice (attempted once, retried in 3
    /// days) and the subscription past_due. The invoice is the current period's; for a trialing
    /// subscription the trial ends now and the invoice is the new period's.
    pub fn fail_payment(&mut self, id: &str) -> Result<Change, ApiError> {
        let subscription = find(&self.subscriptions, id)
            .ok_or_else(|| ApiError::no_such("subscription", id, "id"))?
            .clone();
        let now = self.now();
        let retry = Payment::Failed {
            retry_at: now + 3 * 86_400,
        };
        if subscription["status"] == "trialing" {
            return self.start_period(id, "subscription_cycle", retry, |sub, now| {
                sub["trial_end"] = json!(now);
            });
        }
        let invoice = self.new_invoice(
            &subscription,
            subscription_amount(&subscription),
            "subscription_cycle",
            current_period(&subscription),
            retry,
        );
        let invoice_id = invoice["id"].clone();
        let failed = self.emit("invoice.payment_failed", &invoice, None);
        let (_, updated) =
            self.change_subscription(id, "customer.subscription.updated", |sub, _| {
                sub["status"] = json!("past_due");
                sub["latest_invoice"] = invoice_id.clone();
                Ok(())
            })?;
        Ok(Change {
            id: invoice["id"].as_str().unwrap_or_default().to_owned(),
            events: [failed].into_iter().chain(updated).collect(),
        })
    }

    /// An open invoice gets paid; a past_due or unpaid subscription whose latest invoice it is
    /// becomes active again.
    pub fn pay_invoice(&mut self, id: &str) -> Result<Change, ApiError> {
        let now = self.now();
        let invoice = find_mut(&mut self.invoices, id)
            .ok_or_else(|| ApiError::no_such("invoice", id, "id"))?;
        if invoice["status"] != "open" {
            return Err(ApiError::invalid(
                "",
                format!("Invoice {id} is {}, not open.", invoice["status"]),
            ));
        }
        objects::mark_paid(invoice, now);
        let invoice = invoice.clone();
        let mut events = vec![self.emit("invoice.paid", &invoice, None)];
        let subscription_id = invoice["parent"]["subscription_details"]["subscription"]
            .as_str()
            .unwrap_or_default();
        if let Some(subscription) = find(&self.subscriptions, subscription_id)
            && ["past_due", "unpaid"].contains(&subscription["status"].as_str().unwrap_or_default())
            && subscription["latest_invoice"] == id
        {
            let (_, updated) = self.change_subscription(
                subscription_id,
                "customer.subscription.updated",
                |sub, _| {
                    sub["status"] = json!("active");
                    Ok(())
                },
            )?;
            events.extend(updated);
        }
        Ok(Change {
            id: id.to_owned(),
            events,
        })
    }

    /// Changes a subscription as the test likes; records `customer.subscription.updated`.
    pub fn update_subscription(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Change, ApiError> {
        let (_, event) =
            self.change_subscription(id, "customer.subscription.updated", |sub, _| {
                change(sub);
                Ok(())
            })?;
        Ok(Change {
            id: id.to_owned(),
            events: event.into_iter().collect(),
        })
    }

    pub(super) fn new_invoice(
        &mut self,
        subscription: &Value,
        amount: i64,
        billing_reason: &str,
        period: (i64, i64),
        payment: Payment,
    ) -> Value {
        let id = random_id("in_1", 23);
        let customer_id = subscription["customer"].as_str().unwrap_or_default();
        let customer = find_mut(&mut self.customers, customer_id);
        let (customer, number) = match customer {
            Some(customer) => {
                let sequence = customer["next_invoice_sequence"].as_i64().unwrap_or(1);
                customer["next_invoice_sequence"] = json!(sequence + 1);
                let prefix = customer["invoice_prefix"].as_str().unwrap_or("INV");
                let number = format!("{prefix}-{sequence:04}");
                (customer.clone(), number)
            }
            None => (json!({ "id": customer_id }), "INV-0001".to_owned()),
        };
        let invoice = objects::invoice(InvoiceSpec {
            id: &id,
            number,
            customer: &customer,
            subscription,
            amount,
            billing_reason,
            period,
            created: self.now(),
            payment,
            hosted_url: format!("{}invoices/{id}", self.base_url),
        });
        self.invoices.push(invoice.clone());
        invoice
    }
}

/// Stripe's answer to changing the items of a canceled subscription.
fn canceled_error(subscription: &Value) -> ApiError {
    ApiError::invalid(
        "",
        format!(
            "A canceled subscription can only update its cancellation_details and metadata. \
             Subscription {} is canceled.",
            subscription["id"].as_str().unwrap_or_default()
        ),
    )
}

/// One `items[i]` entry of a subscription update: change the item named by `id` (quantity,
/// price, metadata), delete it (`deleted=true`), or add a new one (no `id`, a `price`).
fn apply_item_update(
    subscription: &mut Value,
    index: usize,
    entry: &Params,
    price: Option<Value>,
    now: i64,
) -> Result<(), ApiError> {
    let param = |field: &str| format!("items[{index}][{field}]");
    let quantity = entry.int("quantity")?.map(|q| q.max(0) as u64);
    let subscription_id = subscription["id"].as_str().unwrap_or_default().to_owned();
    let period = current_period(subscription);
    let items = subscription["items"]["data"]
        .as_array_mut()
        .expect("a subscription has items");
    let Some(item_id) = entry.get("id") else {
        let price = price.ok_or_else(|| ApiError::missing_param(&param("price")))?;
        let item = objects::subscription_item(
            &subscription_id,
            &price,
            quantity.unwrap_or(1),
            now,
            period,
        );
        items.push(item);
        return Ok(());
    };
    let position = items
        .iter()
        .position(|item| item["id"] == item_id)
        .ok_or_else(|| ApiError::no_such("subscription item", item_id, &param("id")))?;
    if entry.bool("deleted") == Some(true) {
        items.remove(position);
        return Ok(());
    }
    let item = &mut items[position];
    if let Some(quantity) = quantity {
        item["quantity"] = json!(quantity);
    }
    if let Some(price) = price {
        item["plan"] = objects::plan_for(&price);
        item["price"] = price;
    }
    merge_metadata(item, entry.map("metadata"));
    Ok(())
}
