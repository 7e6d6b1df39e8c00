//! The Stripe-compatible test server (tenantkit_tests::stripe) driven by the real async-stripe
//! client: every object it answers parses, idempotency keys replay, errors are Stripe's, and its
//! events are signed so that a plain HMAC check and async-stripe's own webhook verification
//! accept them; the checkout page's Pay button delivers signed events to a webhook endpoint.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use hmac::{Hmac, Mac};
use poem::{EndpointExt, Route, handler, post, web::Data};
use serde_json::{Value, json};
use sha2::Sha256;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::{
    billing_portal_session::CreateBillingPortalSession,
    invoice::{ListInvoice, RetrieveInvoice},
    subscription::{
        CancelSubscription, ListSubscription, RetrieveSubscription, UpdateSubscription,
        UpdateSubscriptionItems,
    },
    subscription_item::UpdateSubscriptionItem,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
    RetrieveCheckoutSession,
};
use stripe_core::customer::{
    CreateCustomer, RetrieveCustomer, RetrieveCustomerReturned, UpdateCustomer,
};
use stripe_product::price::RetrievePrice;
use stripe_webhook::{EventObject, Webhook, WebhookError};
use tenantkit_tests::stripe::{
    API_VERSION, DeliveryOptions, FakeStripe, FakeStripeConfig, SECRET_KEY, sign, sign_many,
};

fn client(stripe: &FakeStripe) -> Client {
    ClientBuilder::new(SECRET_KEY)
        .url(stripe.url())
        .build()
        .expect("a client")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A checkout session for `quantity` Team seats, with a trial when `trial_days` is given.
async fn checkout(
    client: &Client,
    customer: Option<&str>,
    quantity: u64,
    trial_days: Option<u32>,
) -> stripe_checkout::CheckoutSession {
    let mut line = CreateCheckoutSessionLineItems::new();
    line.price = Some("price_team_monthly".into());
    line.quantity = Some(quantity);
    let mut subscription_data = CreateCheckoutSessionSubscriptionData::new();
    subscription_data.metadata = Some(metadata(&[("tenant_id", "t-1")]));
    subscription_data.trial_period_days = trial_days;
    let mut create = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .line_items(vec![line])
        .subscription_data(subscription_data)
        .success_url("https://kit.test/billing/success?session_id={CHECKOUT_SESSION_ID}")
        .cancel_url("https://kit.test/billing/cancel")
        .client_reference_id("t-1")
        .metadata(metadata(&[("tenant_id", "t-1"), ("plan", "team")]));
    create = match customer {
        Some(customer) => create.customer(customer),
        None => create.customer_email("owner@example.com"),
    };
    create.send(client).await.expect("a checkout session")
}

#[tokio::test]
async fn the_real_client_parses_what_the_server_answers() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let client = client(&stripe);
    let http = http();

    let customer = CreateCustomer::new()
        .email("owner@example.com")
        .name("Acme")
        .metadata(metadata(&[("tenant_id", "t-1")]))
        .send(&client)
        .await
        .expect("a customer");
    let customer_id = customer.id.as_str().to_owned();
    assert!(customer_id.starts_with("cus_"));
    assert_eq!(customer.email.as_deref(), Some("owner@example.com"));
    assert_eq!(customer.metadata.unwrap()["tenant_id"], "t-1");
    let retrieved = RetrieveCustomer::new(customer_id.as_str())
        .send(&client)
        .await
        .expect("retrieved");
    let RetrieveCustomerReturned::Customer(customer) = retrieved else {
        panic!("a live customer, not a deleted one")
    };
    assert_eq!(customer.name.as_deref(), Some("Acme"));
    let updated = UpdateCustomer::new(customer_id.as_str())
        .email("billing@example.com")
        .send(&client)
        .await
        .expect("updated");
    assert_eq!(updated.email.as_deref(), Some("billing@example.com"));

    let price = RetrievePrice::new("price_team_monthly")
        .send(&client)
        .await
        .expect("a price");
    assert_eq!(price.unit_amount, Some(2900));
    assert_eq!(price.recurring.as_ref().unwrap().interval.as_str(), "month");

    // Checkout with a 14-day trial, paid on the server's own page.
    let session = checkout(&client, Some(&customer_id), 3, Some(14)).await;
    let session_id = session.id.as_str().to_owned();
    let url = session.url.clone().expect("a checkout URL");
    assert_eq!(url, format!("{}checkout/{session_id}", stripe.url()));
    let session = RetrieveCheckoutSession::new(session_id.as_str())
        .expand(vec!["line_items".to_string()])
        .send(&client)
        .await
        .expect("retrieved with its line items");
    let lines = session.line_items.expect("expanded line items");
    assert_eq!(lines.data.len(), 1);
    assert_eq!(lines.data[0].quantity, Some(3));

    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Subscribe to Team"), "{page}");
    assert!(page.contains(">Pay</button>"), "{page}");
    let paid = http
        .post(format!("{url}/pay"))
        .form(&[("email", "owner@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(
        paid.headers()["location"],
        format!("https://kit.test/billing/success?session_id={session_id}").as_str()
    );

    let session = RetrieveCheckoutSession::new(session_id.as_str())
        .send(&client)
        .await
        .expect("the completed session");
    assert_eq!(session.status.as_ref().unwrap().as_str(), "complete");
    assert_eq!(session.payment_status.as_str(), "no_payment_required");
    let subscription_id = session
        .subscription
        .expect("a subscription")
        .id()
        .as_str()
        .to_owned();

    let subscription = RetrieveSubscription::new(subscription_id.as_str())
        .send(&client)
        .await
        .expect("a subscription");
    assert_eq!(subscription.status.as_str(), "trialing");
    assert_eq!(subscription.customer.id().as_str(), customer_id);
    assert_eq!(subscription.metadata["tenant_id"], "t-1");
    let item = &subscription.items.data[0];
    assert_eq!(item.quantity, Some(3));
    assert_eq!(item.price.id.as_str(), "price_team_monthly");
    assert!(item.current_period_end > stripe.now() + 13 * 86_400);
    assert_eq!(subscription.trial_end, Some(item.current_period_end));
    let item_id = item.id.as_str().to_owned();

    // Seats through the item, then through the subscription; cancellation at period end.
    let item = UpdateSubscriptionItem::new(item_id.as_str())
        .quantity(5u64)
        .customize()
        .request_strategy(RequestStrategy::Idempotent(
            IdempotencyKey::new("seats-t-1-change-7").unwrap(),
        ))
        .send(&client)
        .await
        .expect("an updated item");
    assert_eq!(item.quantity, Some(5));
    let mut seats = UpdateSubscriptionItems::new();
    seats.id = Some(item_id.clone());
    seats.quantity = Some(4);
    let subscription = UpdateSubscription::new(subscription_id.as_str())
        .items(vec![seats])
        .cancel_at_period_end(true)
        .metadata(metadata(&[("plan", "team")]))
        .send(&client)
        .await
        .expect("an updated subscription");
    assert_eq!(subscription.items.data[0].quantity, Some(4));
    assert!(subscription.cancel_at_period_end);
    assert_eq!(
        subscription.cancel_at,
        Some(subscription.items.data[0].current_period_end)
    );
    assert_eq!(subscription.metadata["plan"], "team");
    assert_eq!(
        stripe.subscription(&subscription_id).unwrap()["items"]["data"][0]["quantity"],
        4
    );

    // Invoices: the trial's paid one, then a failed charge, then its payment.
    let trial_ended = stripe.advance_to_trial_end(&subscription_id);
    assert_eq!(trial_ended.events.len(), 2);
    let failed = stripe.fail_payment(&subscription_id);
    let invoices = ListInvoice::new()
        .customer(customer_id.as_str())
        .limit(10)
        .send(&client)
        .await
        .expect("invoices");
    assert_eq!(invoices.data.len(), 3);
    let newest = &invoices.data[0];
    assert_eq!(newest.id.as_ref().unwrap().as_str(), failed.id);
    assert_eq!(newest.status.as_ref().unwrap().as_str(), "open");
    assert_eq!(newest.amount_due, 4 * 2900);
    assert_eq!(
        newest
            .parent
            .as_ref()
            .unwrap()
            .subscription_details
            .as_ref()
            .unwrap()
            .subscription
            .id()
            .as_str(),
        subscription_id
    );
    assert_eq!(invoices.data[2].status.as_ref().unwrap().as_str(), "paid");
    assert_eq!(
        invoices.data[2].amount_paid, 0,
        "the trial's invoice is free"
    );
    let page = ListInvoice::new()
        .customer(customer_id.as_str())
        .limit(2)
        .send(&client)
        .await
        .unwrap();
    assert!(page.has_more);
    let subscription = RetrieveSubscription::new(subscription_id.as_str())
        .send(&client)
        .await
        .unwrap();
    assert_eq!(subscription.status.as_str(), "past_due");
    stripe.pay_invoice(&failed.id);
    let invoice = RetrieveInvoice::new(failed.id.as_str())
        .send(&client)
        .await
        .expect("an invoice");
    assert_eq!(invoice.status.as_ref().unwrap().as_str(), "paid");
    assert_eq!(invoice.amount_remaining, 0);
    let subscriptions = ListSubscription::new()
        .customer(customer_id.as_str())
        .send(&client)
        .await
        .expect("subscriptions");
    assert_eq!(subscriptions.data.len(), 1);
    assert_eq!(subscriptions.data[0].status.as_str(), "active");

    let portal = CreateBillingPortalSession::new()
        .customer(customer_id.as_str())
        .return_url("https://kit.test/billing")
        .send(&client)
        .await
        .expect("a portal session");
    assert!(portal.url.starts_with(&format!("{}portal/", stripe.url())));
    let page = http.get(&portal.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("billing@example.com"));

    let canceled = CancelSubscription::new(subscription_id.as_str())
        .send(&client)
        .await
        .expect("canceled");
    assert_eq!(canceled.status.as_str(), "canceled");
    assert!(canceled.ended_at.is_some());

    // The client announced the API version the server's events carry.
    let requests = stripe.requests();
    assert!(requests.len() >= 17);
    for request in &requests {
        assert_eq!(
            request.stripe_version.as_deref(),
            Some(API_VERSION),
            "{request:?}"
        );
        assert!(request.authorized);
    }
    assert_eq!(stripe.count("POST", "/v1/subscription"), 2);
    assert_eq!(
        stripe
            .idempotency_keys()
            .iter()
            .filter(|k| *k == "seats-t-1-change-7")
            .count(),
        1
    );
    let update = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == format!("/v1/subscriptions/{subscription_id}"))
        .unwrap();
    assert_eq!(update.params.get("items[0][quantity]"), Some("4"));
    assert_eq!(update.params.get("metadata[plan]"), Some("team"));
    let create = requests
        .iter()
        .find(|r| r.path == "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(
        create.params.get("subscription_data[metadata][tenant_id]"),
        Some("t-1")
    );
    assert_eq!(
        create.params.list("line_items")[0].get("price"),
        Some("price_team_monthly")
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_errors_are_stripes() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let client = client(&stripe);
    // Metadata is a HashMap: each request serialises its keys in another order.
    let create = |email: &'static str| {
        CreateCustomer::new()
            .email(email)
            .metadata(metadata(&[
                ("tenant_id", "t-1"),
                ("slug", "acme"),
                ("plan", "team"),
                ("region", "eu"),
            ]))
            .customize()
            .request_strategy(RequestStrategy::Idempotent(
                IdempotencyKey::new("customer-for-tenant-t-1").unwrap(),
            ))
    };
    let first = create("owner@example.com").send(&client).await.unwrap();
    let second = create("owner@example.com").send(&client).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(stripe.customers().len(), 1, "one customer for one key");
    assert_eq!(stripe.count("POST", "/v1/customers"), 2);
    assert_eq!(
        stripe.idempotency_keys(),
        ["customer-for-tenant-t-1", "customer-for-tenant-t-1"]
    );
    let requests = stripe.requests();
    assert!(!requests[0].replayed && requests[1].replayed);

    // The same key with other parameters is refused, as Stripe does.
    match create("other@example.com").send(&client).await {
        Err(StripeError::Stripe(error, 400)) => {
            assert_eq!(error.type_.as_str(), "idempotency_error")
        }
        other => panic!("expected an idempotency error, got {other:?}"),
    }
    assert_eq!(stripe.customers().len(), 1);

    match RetrieveCustomer::new("cus_missing").send(&client).await {
        Err(StripeError::Stripe(error, 404)) => {
            assert_eq!(error.type_.as_str(), "invalid_request_error");
            assert_eq!(error.code.as_ref().unwrap().as_str(), "resource_missing");
            assert!(error.message.unwrap().contains("cus_missing"));
        }
        other => panic!("expected resource_missing, got {other:?}"),
    }
    let missing_price = CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .line_items(vec![{
            let mut line = CreateCheckoutSessionLineItems::new();
            line.price = Some("price_nope".into());
            line
        }])
        .success_url("https://kit.test/ok")
        .send(&client)
        .await;
    assert!(
        matches!(&missing_price, Err(StripeError::Stripe(e, 400)) if e.param.as_deref() == Some("line_items[0][price]")),
        "{missing_price:?}"
    );

    let http = http();
    let unauthenticated = http
        .get(format!(
            "{}v1/customers/{}",
            stripe.url(),
            first.id.as_str()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let body: Value = unauthenticated.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let unknown = http
        .get(format!("{}v1/payouts", stripe.url()))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/payouts")
    );
}

/// The HMAC check a webhook endpoint does by hand: some `v1` equals HMAC-SHA256("{t}.{body}").
fn plainly_verified(payload: &str, header: &str, secret: &str) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for pair in header.split(',') {
        match pair.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v1)) => signatures.push(v1.to_owned()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signatures.contains(&expected)
}

#[tokio::test]
async fn events_are_signed_so_that_stripes_own_verification_accepts_them() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let client = client(&stripe);
    let secret = stripe.webhook_secret();
    let customer = CreateCustomer::new()
        .email("owner@example.com")
        .send(&client)
        .await
        .unwrap();
    UpdateCustomer::new(customer.id.as_str())
        .name("Acme")
        .send(&client)
        .await
        .unwrap();
    let session = checkout(&client, Some(customer.id.as_str()), 2, Some(7)).await;
    let completion = stripe.complete_checkout(session.id.as_str());
    let subscription = completion.subscription_id.clone();
    stripe.trial_will_end(&subscription);
    stripe.advance_to_trial_end(&subscription);
    let failed = stripe.fail_payment(&subscription);
    stripe.pay_invoice(&failed.id);
    stripe.renew(&subscription);
    stripe.update_subscription(&subscription, |s| s["metadata"]["note"] = json!("x"));
    stripe.cancel_subscription(&subscription);

    let events = stripe.events();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "customer.created",
            "customer.updated",
            "checkout.session.completed",
            "customer.subscription.created",
            "invoice.paid",
            "customer.subscription.trial_will_end",
            "customer.subscription.updated",
            "invoice.paid",
            "invoice.payment_failed",
            "customer.subscription.updated",
            "invoice.paid",
            "customer.subscription.updated",
            "customer.subscription.updated",
            "invoice.paid",
            "customer.subscription.updated",
            "customer.subscription.deleted",
        ]
    );
    let created: Vec<i64> = events
        .iter()
        .map(|e| e["created"].as_i64().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] < w[1]),
        "strictly ordered: {created:?}"
    );
    let previous = events[1]["data"]["previous_attributes"]
        .as_object()
        .unwrap();
    assert_eq!(previous.keys().collect::<Vec<_>>(), ["name"]);
    assert_eq!(events[9]["data"]["previous_attributes"]["status"], "active");
    assert_eq!(
        events[1]["request"]["id"].as_str().unwrap().get(..4),
        Some("req_")
    );

    let now = chrono::Utc::now().timestamp();
    for event in &events {
        let payload = serde_json::to_string_pretty(event).unwrap();
        let header = sign(&payload, now, &secret);
        assert!(plainly_verified(&payload, &header, &secret));
        let parsed = Webhook::construct_event(&payload, &header, &secret)
            .unwrap_or_else(|e| panic!("{} does not verify or parse: {e:?}", event["type"]));
        assert_eq!(parsed.id.as_str(), event["id"].as_str().unwrap());
        assert_eq!(parsed.type_.as_str(), event["type"].as_str().unwrap());
        assert_eq!(
            parsed.api_version.as_ref().map(|v| v.as_str()),
            Some(API_VERSION)
        );
        let typed = match &parsed.data.object {
            EventObject::CustomerCreated(c) | EventObject::CustomerUpdated(c) => {
                c.id.as_str() == customer.id.as_str()
            }
            EventObject::CheckoutSessionCompleted(s) => {
                s.subscription.as_ref().map(|s| s.id().as_str()) == Some(subscription.as_str())
            }
            EventObject::CustomerSubscriptionCreated(s)
            | EventObject::CustomerSubscriptionUpdated(s)
            | EventObject::CustomerSubscriptionDeleted(s)
            | EventObject::CustomerSubscriptionTrialWillEnd(s) => s.id.as_str() == subscription,
            EventObject::InvoicePaid(i) | EventObject::InvoicePaymentFailed(i) => {
                i.customer.as_ref().map(|c| c.id().as_str()) == Some(customer.id.as_str())
            }
            other => panic!("{} parsed as {other:?}", event["type"]),
        };
        assert!(typed, "{} names the wrong object", event["type"]);
    }

    let payload = serde_json::to_string_pretty(&events[2]).unwrap();
    let stale = sign(&payload, now - 301, &secret);
    assert!(matches!(
        Webhook::construct_event(&payload, &stale, &secret),
        Err(WebhookError::BadTimestamp(_))
    ));
    let forged = sign(&payload, now, "whsec_wrong");
    assert!(!plainly_verified(&payload, &forged, &secret));
    assert!(matches!(
        Webhook::construct_event(&payload, &forged, &secret),
        Err(WebhookError::BadSignature)
    ));
    let rotated = sign_many(&payload, now, &["whsec_old", secret.as_str()]);
    assert_eq!(rotated.matches(",v1=").count(), 2);
    assert!(plainly_verified(&payload, &rotated, &secret));
    Webhook::construct_event(&payload, &rotated, &secret).expect("one valid v1 of two");
    let tampered = payload.replace("complete", "expired");
    assert!(Webhook::construct_event(&tampered, &sign(&payload, now, &secret), &secret).is_err());
}

type Received = Arc<Mutex<Vec<(Option<String>, String)>>>;

#[handler]
fn receive(req: &poem::Request, body: String, received: Data<&Received>) -> &'static str {
    let signature = req.header("stripe-signature").map(str::to_owned);
    received.lock().unwrap().push((signature, body));
    "ok"
}

/// A webhook endpoint of the test's own that records what it gets.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    let app = Route::new()
        .at("/webhooks/stripe", post(receive))
        .data(received.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{address}/webhooks/stripe"), received)
}

#[tokio::test]
async fn paying_on_the_checkout_page_delivers_signed_events_in_order() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let client = client(&stripe);
    let (webhook, received) = receiver().await;
    stripe.set_webhook_url(&webhook);
    let secret = stripe.webhook_secret();

    // No customer yet: checkout makes one from the email typed on the page.
    let session = checkout(&client, None, 1, None).await;
    let url = session.url.unwrap();
    let http = http();
    let paid = http
        .post(format!("{url}/pay"))
        .form(&[("email", "new-owner@example.com"), ("card", "4242")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);

    let received = received.lock().unwrap().clone();
    let mut types = Vec::new();
    for (signature, body) in &received {
        let signature = signature.as_deref().expect("a Stripe-Signature header");
        assert!(plainly_verified(body, signature, &secret));
        let event = Webhook::construct_event(body, signature, &secret).expect("verifies");
        types.push(event.type_.as_str().to_owned());
    }
    assert_eq!(
        types,
        [
            "checkout.session.completed",
            "customer.subscription.created",
            "invoice.paid"
        ]
    );
    let completed: Value = serde_json::from_str(&received[0].1).unwrap();
    let session = &completed["data"]["object"];
    assert_eq!(session["status"], "complete");
    assert_eq!(session["payment_status"], "paid");
    assert_eq!(session["client_reference_id"], "t-1");
    assert_eq!(session["metadata"]["tenant_id"], "t-1");
    let customer = stripe
        .customer(session["customer"].as_str().unwrap())
        .unwrap();
    assert_eq!(customer["email"], "new-owner@example.com");
    let subscription = stripe
        .subscription(session["subscription"].as_str().unwrap())
        .unwrap();
    assert_eq!(subscription["status"], "active");
    let invoice = stripe
        .invoice(session["invoice"].as_str().unwrap())
        .unwrap();
    assert_eq!(invoice["amount_paid"], 2900);
    assert!(stripe.deliveries().iter().all(|d| d.status == Some(200)));

    // A second submit only redirects.
    let again = http.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert_eq!(stripe.deliveries().len(), 3);
    assert_eq!(stripe.subscriptions().len(), 1);

    // Deliveries signed otherwise, for the endpoint's refusals.
    let event = stripe.event("customer.subscription.updated", &subscription);
    let aged = stripe
        .deliver_with(&event, DeliveryOptions::aged(301))
        .await;
    let parsed_t: i64 = aged.signature[2..aged.signature.find(',').unwrap()]
        .parse()
        .unwrap();
    assert!(chrono::Utc::now().timestamp() - parsed_t >= 301);
    let wrong = stripe
        .deliver_with(&event, DeliveryOptions::secrets(&["whsec_wrong"]))
        .await;
    assert!(!plainly_verified(&wrong.payload, &wrong.signature, &secret));
    let two = stripe
        .deliver_with(
            &event,
            DeliveryOptions::secrets(&["whsec_old", secret.as_str()]),
        )
        .await;
    assert!(plainly_verified(&two.payload, &two.signature, &secret));
    assert_eq!(stripe.deliver(&event).await, 200);
}

#[tokio::test]
async fn the_controls_move_subscriptions_as_stripe_would() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let client = client(&stripe);
    let customer = CreateCustomer::new().send(&client).await.unwrap();
    let session = checkout(&client, Some(customer.id.as_str()), 2, Some(14)).await;
    let subscription_id = stripe
        .complete_checkout(session.id.as_str())
        .subscription_id;

    // The trial ends with a declined card: past_due, the new period's invoice open.
    let failed = stripe.fail_payment(&subscription_id);
    let types: Vec<&str> = failed
        .events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["customer.subscription.updated", "invoice.payment_failed"]
    );
    assert_eq!(
        failed.events[0]["data"]["previous_attributes"]["status"],
        "trialing"
    );
    let subscription = RetrieveSubscription::new(subscription_id.as_str())
        .expand(vec!["latest_invoice".to_string()])
        .send(&client)
        .await
        .unwrap();
    assert_eq!(subscription.status.as_str(), "past_due");
    assert!(subscription.trial_end.unwrap() <= stripe.now());
    let latest = subscription
        .latest_invoice
        .expect("a latest invoice")
        .into_object()
        .expect("expanded");
    assert_eq!(latest.id.as_ref().unwrap().as_str(), failed.id);
    assert_eq!(latest.status.as_ref().unwrap().as_str(), "open");
    assert_eq!(latest.amount_remaining, 2 * 2900);
    assert_eq!(latest.next_payment_attempt, Some(stripe.now() + 3 * 86_400));

    let paid = stripe.pay_invoice(&failed.id);
    assert_eq!(paid.events.len(), 2);
    assert_eq!(
        stripe.subscription(&subscription_id).unwrap()["status"],
        "active"
    );

    // Cancelling at period end, then the period ends: canceled, not renewed.
    UpdateSubscription::new(subscription_id.as_str())
        .cancel_at_period_end(true)
        .send(&client)
        .await
        .unwrap();
    let period_end =
        stripe.subscription(&subscription_id).unwrap()["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap();
    let ended = stripe.renew(&subscription_id);
    assert_eq!(ended.events[0]["type"], "customer.subscription.deleted");
    assert!(stripe.now() >= period_end);
    let subscription = stripe.subscription(&subscription_id).unwrap();
    assert_eq!(subscription["status"], "canceled");
    let item = subscription["items"]["data"][0]["id"].as_str().unwrap();
    let refused = UpdateSubscriptionItem::new(item)
        .quantity(3u64)
        .send(&client)
        .await;
    assert!(
        matches!(&refused, Err(StripeError::Stripe(e, 400)) if e.message.as_deref().unwrap().contains("canceled")),
        "{refused:?}"
    );
    assert_eq!(
        stripe.subscription(&subscription_id).unwrap(),
        subscription,
        "nothing changed"
    );

    let deleted = stripe.delete_customer(customer.id.as_str());
    assert_eq!(deleted.events.last().unwrap()["type"], "customer.deleted");
    match RetrieveCustomer::new(customer.id.as_str())
        .send(&client)
        .await
    {
        Ok(RetrieveCustomerReturned::DeletedCustomer(gone)) => {
            assert_eq!(gone.id.as_str(), customer.id.as_str())
        }
        other => panic!("expected a deleted customer, got {other:?}"),
    }
}

/// The types of the events received, once there are `count` of them (or 10 s have passed).
async fn received_types(received: &Received, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let types: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| {
                let event: Value = serde_json::from_str(body).unwrap();
                event["type"].as_str().unwrap().to_owned()
            })
            .collect();
        if types.len() >= count || tokio::time::Instant::now() > deadline {
            return types;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn api_changes_are_delivered_as_they_happen_when_asked() {
    let (webhook, received) = receiver().await;
    let stripe = FakeStripe::start(FakeStripeConfig {
        webhook_url: Some(webhook),
        deliver_api_events: true,
        ..FakeStripeConfig::default()
    })
    .await;
    let client = client(&stripe);
    let customer = CreateCustomer::new().send(&client).await.unwrap();
    assert_eq!(received_types(&received, 1).await, ["customer.created"]);
    let session = checkout(&client, Some(customer.id.as_str()), 1, None).await;
    let completion = stripe.pay_checkout(session.id.as_str()).await;
    let subscription = stripe.subscription(&completion.subscription_id).unwrap();
    let item = subscription["items"]["data"][0]["id"].as_str().unwrap();
    UpdateSubscriptionItem::new(item)
        .quantity(6u64)
        .send(&client)
        .await
        .unwrap();
    assert_eq!(
        received_types(&received, 5).await,
        [
            "customer.created",
            "checkout.session.completed",
            "customer.subscription.created",
            "invoice.paid",
            "customer.subscription.updated",
        ]
    );
    let updated: Value = serde_json::from_str(&received.lock().unwrap()[4].1).unwrap();
    assert_eq!(updated["data"]["object"]["items"]["data"][0]["quantity"], 6);
    assert_eq!(
        updated["data"]["previous_attributes"]["items"]["data"][0]["quantity"],
        1
    );
}
