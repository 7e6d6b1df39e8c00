//! Stripe objects built from Stripe's own fixtures (tests/stripe/fixtures3.json): every field the
//! fixture has is kept, so the real client parses them; the fields the fake controls (ids,
//! customer, status, amounts, periods, metadata...) are overlaid, and the fixture's filler values
//! that would not exist on such an object (a discount on a new customer, shipping on a
//! subscription checkout...) are set to null.

use std::sync::OnceLock;

use chrono::{DateTime, Months};
use rand::{Rng, distr::Alphanumeric};
use serde_json::{Map, Value, json};

const FIXTURES: &str = include_str!("../../stripe/fixtures3.json");

/// A copy of the fixture object `resources[name]`.
pub(super) fn fixture(name: &str) -> Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        serde_json::from_str(FIXTURES).expect("tests/stripe/fixtures3.json parses")
    });
    all["resources"]
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no fixture object {name:?}"))
}

/// A Stripe-looking id: `prefix` and `len` random letters and digits.
pub(super) fn random_id(prefix: &str, len: usize) -> String {
    let tail: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    format!("{prefix}{tail}")
}

/// Sets the fields of `values` (an object) on `object`.
pub(super) fn overlay(object: &mut Value, values: Value) {
    let Value::Object(values) = values else {
        panic!("overlay takes an object")
    };
    for (key, value) in values {
        object[key] = value;
    }
}

/// `start` plus one billing interval ("day", "week", "month" or "year").
pub(super) fn add_interval(start: i64, interval: &str, count: i64) -> i64 {
    let count = count.max(1);
    let months = match interval {
        "day" => return start + 86_400 * count,
        "week" => return start + 7 * 86_400 * count,
        "year" => 12 * count,
        _ => count,
    };
    DateTime::from_timestamp(start, 0)
        .and_then(|t| t.checked_add_months(Months::new(months as u32)))
        .map(|t| t.timestamp())
        .unwrap_or(start + 30 * 86_400 * count)
}

pub(super) fn product(id: &str, name: &str, default_price: &str, created: i64) -> Value {
    let mut product = fixture("product");
    overlay(
        &mut product,
        json!({
            "id": id,
            "name": name,
            "description": null,
            "default_price": default_price,
            "package_dimensions": null,
            "type": "service",
            "created": created,
            "updated": created,
        }),
    );
    product
}

pub(super) fn price(
    id: &str,
    product: &str,
    nickname: &str,
    unit_amount: i64,
    interval: &str,
    created: i64,
) -> Value {
    let mut price = fixture("price");
    overlay(
        &mut price,
        json!({
            "id": id,
            "product": product,
            "nickname": nickname,
            "unit_amount": unit_amount,
            "unit_amount_decimal": unit_amount.to_string(),
            "custom_unit_amount": null,
            "transform_quantity": null,
            "created": created,
        }),
    );
    price["recurring"]["interval"] = json!(interval);
    price["recurring"]["interval_count"] = json!(1);
    price
}

/// The legacy `plan` that Stripe still embeds in subscription items, mirroring the price.
pub(super) fn plan_for(price: &Value) -> Value {
    let mut plan = fixture("plan");
    overlay(
        &mut plan,
        json!({
            "id": price["id"],
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "created": price["created"],
            "currency": price["currency"],
            "interval": price["recurring"]["interval"],
            "interval_count": price["recurring"]["interval_count"],
            "nickname": price["nickname"],
            "product": price["product"],
            "transform_usage": null,
        }),
    );
    plan
}

pub(super) fn customer(id: &str, created: i64) -> Value {
    let mut customer = fixture("customer");
    overlay(
        &mut customer,
        json!({
            "id": id,
            "created": created,
            "discount": null,
            "shipping": null,
            "invoice_prefix": random_id("", 8).to_uppercase(),
            "metadata": {},
        }),
    );
    customer
}

pub(super) struct SessionSpec<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub customer: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub client_reference_id: Option<&'a str>,
    pub success_url: &'a str,
    pub cancel_url: Option<&'a str>,
    pub metadata: Map<String, Value>,
    pub amount: i64,
    pub created: i64,
}

pub(super) fn checkout_session(spec: SessionSpec<'_>) -> Value {
    let mut session = fixture("checkout.session");
    overlay(
        &mut session,
        json!({
            "id": spec.id,
            "url": spec.url,
            "mode": "subscription",
            "status": "open",
            "payment_status": "unpaid",
            "customer": spec.customer,
            "customer_email": spec.customer_email,
            "customer_creation": if spec.customer.is_some() { Value::Null } else { json!("always") },
            "customer_details": null,
            "client_reference_id": spec.client_reference_id,
            "success_url": spec.success_url,
            "cancel_url": spec.cancel_url,
            "metadata": spec.metadata,
            "currency": "usd",
            "amount_subtotal": spec.amount,
            "amount_total": spec.amount,
            "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
            "created": spec.created,
            "expires_at": spec.created + 86_400,
            "payment_intent": null,
            "subscription": null,
            "invoice": null,
            "invoice_creation": null,
            "after_expiration": null,
            "collected_information": null,
            "consent": null,
            "consent_collection": null,
            "currency_conversion": null,
            "payment_method_collection": "always",
            "payment_method_configuration_details": null,
            "shipping_address_collection": null,
            "shipping_cost": null,
            "ui_mode": "hosted",
            "managed_payments": { "enabled": false },
        }),
    );
    session["custom_text"] = json!({
        "after_submit": null, "shipping_address": null, "submit": null,
        "terms_of_service_acceptance": null,
    });
    session
}

/// A line of a checkout session (`line_items`, when expanded).
pub(super) fn checkout_item(price: &Value, product_name: &str, quantity: u64) -> Value {
    let amount = price["unit_amount"].as_i64().unwrap_or(0) * quantity as i64;
    let mut item = fixture("item");
    overlay(
        &mut item,
        json!({
            "id": random_id("li_1", 23),
            "price": price,
            "quantity": quantity,
            "description": product_name,
            "currency": price["currency"],
            "amount_subtotal": amount,
            "amount_total": amount,
            "amount_discount": 0,
            "amount_tax": 0,
            "adjustable_quantity": null,
        }),
    );
    item
}

pub(super) fn subscription_item(
    subscription: &str,
    price: &Value,
    quantity: u64,
    created: i64,
    period: (i64, i64),
) -> Value {
    let mut item = fixture("subscription_item");
    overlay(
        &mut item,
        json!({
            "id": random_id("si_", 14),
            "subscription": subscription,
            "price": price,
            "plan": plan_for(price),
            "quantity": quantity,
            "created": created,
            "current_period_start": period.0,
            "current_period_end": period.1,
            "billing_thresholds": null,
            "metadata": {},
        }),
    );
    item
}

pub(super) struct SubscriptionSpec<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub item: Value,
    pub status: &'a str,
    pub trial: Option<(i64, i64)>,
    pub metadata: Map<String, Value>,
    pub created: i64,
}

pub(super) fn subscription(spec: SubscriptionSpec<'_>) -> Value {
    let mut subscription = fixture("subscription");
    let period_end = spec.item["current_period_end"].clone();
    overlay(
        &mut subscription,
        json!({
            "id": spec.id,
            "customer": spec.customer,
            "status": spec.status,
            "metadata": spec.metadata,
            "created": spec.created,
            "start_date": spec.created,
            "billing_cycle_anchor": period_end,
            "billing_cycle_anchor_config": null,
            "cancel_at": null,
            "cancel_at_period_end": false,
            "canceled_at": null,
            "ended_at": null,
            "trial_start": spec.trial.map(|t| t.0),
            "trial_end": spec.trial.map(|t| t.1),
            "latest_invoice": null,
            "next_pending_invoice_item_invoice": null,
            "pause_collection": null,
            "pending_invoice_item_interval": null,
            "pending_update": null,
            "transfer_data": null,
            "billing_thresholds": null,
            "billing_schedules": [],
            "managed_payments": { "enabled": false },
            "items": {
                "object": "list",
                "data": [spec.item],
                "has_more": false,
                "url": format!("/v1/subscription_items?subscription={}", spec.id),
            },
        }),
    );
    subscription["billing_mode"] = json!({ "type": "classic", "flexible": null });
    subscription
}

/// Whether an invoice is created paid (`paid_at`) or left open after a failed attempt.
pub(super) enum Payment {
    Paid,
    Failed { retry_at: i64 },
}

pub(super) struct InvoiceSpec<'a> {
    pub id: &'a str,
    pub number: String,
    pub customer: &'a Value,
    pub subscription: &'a Value,
    pub amount: i64,
    pub billing_reason: &'a str,
    pub period: (i64, i64),
    pub created: i64,
    pub payment: Payment,
    pub hosted_url: String,
}

/// An invoice for a subscription's one item, with its one line.
pub(super) fn invoice(spec: InvoiceSpec<'_>) -> Value {
    let item = &spec.subscription["items"]["data"][0];
    let price = &item["price"];
    let quantity = item["quantity"].as_u64().unwrap_or(1);
    let product_name = price["nickname"].as_str().unwrap_or("Subscription");
    let unit = price["unit_amount"].as_i64().unwrap_or(0);
    let mut invoice = fixture("invoice");
    let mut line = invoice["lines"]["data"][0].clone();
    overlay(
        &mut line,
        json!({
            "id": random_id("il_1", 23),
            "invoice": spec.id,
            "amount": spec.amount,
            "subtotal": spec.amount,
            "currency": price["currency"],
            "description": format!(
                "{quantity} × {product_name} (at ${}.{:02} / {})",
                unit / 100, unit % 100, price["recurring"]["interval"].as_str().unwrap_or("month")
            ),
            "period": { "start": spec.period.0, "end": spec.period.1 },
            "quantity": quantity,
            "subscription": spec.subscription["id"],
            "discount_amounts": [],
            "pretax_credit_amounts": [],
            "taxes": [],
            "parent": {
                "type": "subscription_item_details",
                "invoice_item_details": null,
                "subscription_item_details": {
                    "invoice_item": null,
                    "proration": false,
                    "proration_details": { "credited_items": null },
                    "subscription": spec.subscription["id"],
                    "subscription_item": item["id"],
                },
            },
            "pricing": {
                "type": "price_details",
                "price_details": { "price": price["id"], "product": price["product"] },
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
        }),
    );
    let (status, paid, paid_at, next_attempt, attempts) = match spec.payment {
        Payment::Paid => ("paid", spec.amount, Some(spec.created), None, 1),
        Payment::Failed { retry_at } => ("open", 0, None, Some(retry_at), 1),
    };
    overlay(
        &mut invoice,
        json!({
            "id": spec.id,
            "number": spec.number,
            "customer": spec.customer["id"],
            "customer_email": spec.customer["email"],
            "customer_name": spec.customer["name"],
            "customer_shipping": null,
            // Since API version 2025-03-31 an invoice names its subscription under `parent`; the
            // top-level field stays null as on real Stripe.
            "subscription": null,
            "parent": {
                "type": "subscription_details",
                "quote_details": null,
                "subscription_details": {
                    "metadata": spec.subscription["metadata"],
                    "subscription": spec.subscription["id"],
                },
            },
        }),
    );
    overlay(
        &mut invoice,
        json!({
            "status": status,
            "billing_reason": spec.billing_reason,
            "amount_due": spec.amount,
            "amount_paid": paid,
            "amount_remaining": spec.amount - paid,
            "amount_overpaid": 0,
            "subtotal": spec.amount,
            "subtotal_excluding_tax": spec.amount,
            "total": spec.amount,
            "total_excluding_tax": spec.amount,
            "total_discount_amounts": [],
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "attempt_count": attempts,
            "attempted": true,
            "auto_advance": paid_at.is_none(),
            "next_payment_attempt": next_attempt,
            "created": spec.created,
            "effective_at": spec.created,
            "webhooks_delivered_at": spec.created,
        }),
    );
    overlay(
        &mut invoice,
        json!({
            "due_date": null,
            "ending_balance": 0,
            "from_invoice": null,
            "last_finalization_error": null,
            "shipping_cost": null,
            "shipping_details": null,
            "period_start": spec.period.0,
            "period_end": spec.period.1,
            "hosted_invoice_url": spec.hosted_url,
            "status_transitions": {
                "finalized_at": spec.created,
                "marked_uncollectible_at": null,
                "paid_at": paid_at,
                "voided_at": null,
            },
            "lines": {
                "object": "list",
                "data": [line],
                "has_more": false,
                "url": format!("/v1/invoices/{}/lines", spec.id),
            },
        }),
    );
    invoice
}

/// Marks an open invoice paid at `now`.
pub(super) fn mark_paid(invoice: &mut Value, now: i64) {
    let due = invoice["amount_due"].clone();
    let attempts = invoice["attempt_count"].as_u64().unwrap_or(0) + 1;
    overlay(
        invoice,
        json!({
            "status": "paid",
            "amount_paid": due,
            "amount_remaining": 0,
            "attempt_count": attempts,
            "attempted": true,
            "auto_advance": false,
            "next_payment_attempt": null,
        }),
    );
    invoice["status_transitions"]["paid_at"] = json!(now);
}

pub(super) fn portal_session(
    id: &str,
    customer: &str,
    return_url: Option<&str>,
    url: &str,
    created: i64,
) -> Value {
    let mut session = fixture("billing_portal.session");
    overlay(
        &mut session,
        json!({
            "id": id,
            "customer": customer,
            "return_url": return_url,
            "url": url,
            "created": created,
            "flow": null,
            "livemode": false,
        }),
    );
    session
}

/// `{"object": "list", ...}` as Stripe's list endpoints answer.
pub(super) fn list(data: Vec<Value>, has_more: bool, url: &str) -> Value {
    json!({ "object": "list", "data": data, "has_more": has_more, "url": url })
}
