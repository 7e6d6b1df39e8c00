//! Checkout and billing-portal sessions: creating them, and the payment that completes a
//! checkout (customer, subscription, first invoice, events).

use serde_json::{Map, Value, json};

use super::{
    objects::{self, Payment, SessionSpec, SubscriptionSpec, random_id},
    params::{ApiError, Params},
    state::{State, find, find_mut, metadata_object, subscription_amount},
};

/// What a checkout session was asked for beyond what its object shows.
#[derive(Clone)]
pub(super) struct SessionOrder {
    pub items: Vec<(String, u64)>,
    pub trial_end: Option<i64>,
    pub subscription_metadata: Map<String, Value>,
}

/// What a completed checkout made.
#[derive(Clone, Debug)]
pub struct Completion {
    pub session_id: String,
    pub customer_id: String,
    pub subscription_id: String,
    pub invoice_id: String,
    pub success_url: String,
    /// `checkout.session.completed`, `customer.subscription.created`, `invoice.paid`.
    pub events: Vec<Value>,
}

impl State {
    pub fn api_create_checkout_session(&mut self, params: &Params) -> Result<Value, ApiError> {
        match params.get("mode") {
            None => return Err(ApiError::missing_param("mode")),
            Some("subscription") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    "mode",
                    format!("The fake Stripe supports mode=subscription only, not {other}."),
                ));
            }
        }
        let success_url = params
            .get("success_url")
            .ok_or_else(|| ApiError::missing_param("success_url"))?;
        let customer = params.get("customer");
        if let Some(customer) = customer
            && find(&self.customers, customer).is_none_or(|c| c["deleted"] == true)
        {
            return Err(ApiError::no_such("customer", customer, "customer"));
        }
        let mut items = Vec::new();
        let mut amount = 0;
        let lines = params.list("line_items");
        if lines.is_empty() {
            return Err(ApiError::missing_param("line_items"));
        }
        for (index, line) in lines.iter().enumerate() {
            let param = format!("line_items[{index}][price]");
            let price_id = line
                .get("price")
                .ok_or_else(|| ApiError::missing_param(&param))?;
            let price = find(&self.prices, price_id)
                .ok_or_else(|| ApiError::no_such("price", price_id, &param))?;
            let quantity = line.int("quantity")?.unwrap_or(1).max(0) as u64;
            amount += price["unit_amount"].as_i64().unwrap_or(0) * quantity as i64;
            items.push((price_id.to_owned(), quantity));
        }
        let now = self.now();
        let trial_end = match (
            params.int("subscription_data[trial_period_days]")?,
            params.int("subscription_data[trial_end]")?,
        ) {
            (_, Some(end)) => Some(end),
            (Some(days), None) if days > 0 => Some(now + days * 86_400),
            _ => None,
        };
        let id = random_id("cs_test_a1", 58);
        let url = format!("{}checkout/{id}", self.base_url);
        let session = objects::checkout_session(SessionSpec {
            id: &id,
            url: &url,
            customer,
            customer_email: params.get("customer_email"),
            client_reference_id: params.get("client_reference_id"),
            success_url,
            cancel_url: params.get("cancel_url"),
            metadata: metadata_object(params.map("metadata")),
            amount: if trial_end.is_some() { 0 } else { amount },
            created: now,
        });
        self.orders.insert(
            id,
            SessionOrder {
                items,
                trial_end,
                subscription_metadata: metadata_object(params.map("subscription_data[metadata]")),
            },
        );
        self.sessions.push(session.clone());
        Ok(session)
    }

    pub fn api_create_portal_session(&mut self, params: &Params) -> Result<Value, ApiError> {
        let customer = params
            .get("customer")
            .ok_or_else(|| ApiError::missing_param("customer"))?;
        if find(&self.customers, customer).is_none_or(|c| c["deleted"] == true) {
            return Err(ApiError::no_such("customer", customer, "customer"));
        }
        let id = random_id("bps_1", 23);
        let url = format!("{}portal/{id}", self.base_url);
        let session =
            objects::portal_session(&id, customer, params.get("return_url"), &url, self.now());
        self.portal_sessions.push(session.clone());
        Ok(session)
    }

    /// The payment on the checkout page: the customer (made now if the session had none), the
    /// subscription (trialing when a trial was asked for), its first invoice, paid, and the
    /// session complete.
    pub fn complete_checkout(
        &mut self,
        session_id: &str,
        email: Option<&str>,
    ) -> Result<Completion, ApiError> {
        let session = find(&self.sessions, session_id)
            .ok_or_else(|| ApiError::no_such("checkout.session", session_id, "id"))?
            .clone();
        if session["status"] != "open" {
            return Err(ApiError::invalid(
                "",
                format!("The Checkout Session {session_id} is not open any more."),
            ));
        }
        let order = self.orders[session_id].clone();
        let now = self.now();
        let customer_id = match session["customer"].as_str() {
            Some(id) => id.to_owned(),
            None => {
                let email = email
                    .filter(|e| !e.is_empty())
                    .or(session["customer_email"].as_str())
                    .unwrap_or("customer@example.com");
                let customer = self.new_customer(&Params(vec![("email".into(), email.into())]));
                self.emit("customer.created", &customer, None);
                customer["id"].as_str().unwrap_or_default().to_owned()
            }
        };
        let subscription_id = random_id("sub_1", 23);
        let first_price = find(&self.prices, &order.items[0].0)
            .cloned()
            .unwrap_or_default();
        let interval = first_price["recurring"]["interval"]
            .as_str()
            .unwrap_or("month");
        let (status, period) = match order.trial_end {
            Some(end) => ("trialing", (now, end)),
            None => ("active", (now, objects::add_interval(now, interval, 1))),
        };
        let items: Vec<Value> = order
            .items
            .iter()
            .filter_map(|(price, quantity)| {
                let price = find(&self.prices, price)?;
                Some(objects::subscription_item(
                    &subscription_id,
                    price,
                    *quantity,
                    now,
                    period,
                ))
            })
            .collect();
        let mut subscription = objects::subscription(SubscriptionSpec {
            id: &subscription_id,
            customer: &customer_id,
            item: items[0].clone(),
            status,
            trial: order.trial_end.map(|end| (now, end)),
            metadata: order.subscription_metadata.clone(),
            created: now,
        });
        subscription["items"]["data"] = Value::Array(items);
        let amount = if order.trial_end.is_some() {
            0
        } else {
            subscription_amount(&subscription)
        };
        let invoice = self.new_invoice(
            &subscription,
            amount,
            "subscription_create",
            (now, now),
            Payment::Paid,
        );
        let invoice_id = invoice["id"].as_str().unwrap_or_default().to_owned();
        subscription["latest_invoice"] = json!(invoice_id);
        self.subscriptions.push(subscription.clone());

        let customer = find(&self.customers, &customer_id)
            .cloned()
            .unwrap_or_default();
        let session = find_mut(&mut self.sessions, session_id).expect("found above");
        objects::overlay(
            session,
            json!({
                "status": "complete",
                "payment_status": if order.trial_end.is_some() { "no_payment_required" } else { "paid" },
                "customer": customer_id,
                "subscription": subscription_id,
                "invoice": invoice_id,
                "customer_details": {
                    "address": null,
                    "email": customer["email"],
                    "name": customer["name"],
                    "phone": null,
                    "tax_exempt": "none",
                    "tax_ids": [],
                    "business_name": null,
                    "individual_name": null,
                },
            }),
        );
        let session = session.clone();
        let success_url = session["success_url"]
            .as_str()
            .unwrap_or_default()
            .replace("{CHECKOUT_SESSION_ID}", session_id);
        let events = vec![
            self.emit("checkout.session.completed", &session, None),
            self.emit("customer.subscription.created", &subscription, None),
            self.emit("invoice.paid", &invoice, None),
        ];
        Ok(Completion {
            session_id: session_id.to_owned(),
            customer_id,
            subscription_id,
            invoice_id,
            success_url,
            events,
        })
    }
}
