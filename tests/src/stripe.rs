//! A Stripe-compatible test server: answers the endpoints the kit calls with objects built from
//! Stripe's own fixtures (tests/stripe/fixtures3.json), so the real async-stripe client parses
//! real shapes. In memory and stateful (customers, prices, checkout sessions, subscriptions,
//! invoices); records every request and honours `Idempotency-Key` as Stripe does; serves a
//! checkout page whose Pay button completes the session and delivers signed webhook events.
//!
//! ```ignore
//! let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
//! // settings: billing.stripe_api_base = stripe.url(), secret key SECRET_KEY,
//! //           webhook secret stripe.webhook_secret()
//! stripe.set_webhook_url(app.url("/billing/webhook"));
//! let change = stripe.fail_payment(&subscription_id);
//! for event in &change.events { assert_eq!(stripe.deliver(event).await, 200); }
//! ```
//!
//! Modules: `state` (objects and how they change), `objects` (built from the fixtures),
//! `routes` (HTTP and pages), `events` (events, signatures, delivery), `params` (form
//! parameters and Stripe errors).

mod checkout;
mod events;
mod objects;
mod params;
mod routes;
mod state;
mod subscriptions;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use poem::{Server, listener::TcpAcceptor};
use serde_json::Value;
use tokio::sync::oneshot;

pub use checkout::Completion;
pub use events::{API_VERSION, Delivery, DeliveryOptions, event, sign, sign_many, signature_v1};
pub use params::Params;
pub use state::Change;

/// A secret key the fake accepts (any `sk_test_...` does).
pub const SECRET_KEY: &str = "sk_test_tenantkit_fake";

/// A recurring price the fake knows from the start (its product is made alongside).
#[derive(Clone, Debug)]
pub struct SeedPrice {
    pub id: String,
    /// The product's name; also the price's nickname.
    pub product_name: String,
    /// In cents (USD).
    pub unit_amount: i64,
    /// "month" or "year".
    pub interval: String,
}

impl SeedPrice {
    pub fn monthly(id: &str, product_name: &str, unit_amount: i64) -> Self {
        Self {
            id: id.to_owned(),
            product_name: product_name.to_owned(),
            unit_amount,
            interval: "month".to_owned(),
        }
    }

    pub fn yearly(id: &str, product_name: &str, unit_amount: i64) -> Self {
        Self {
            interval: "year".to_owned(),
            ..Self::monthly(id, product_name, unit_amount)
        }
    }

    /// `prod_` and the product name's letters and digits, lower case.
    pub fn product_id(&self) -> String {
        let name: String = self
            .product_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("prod_{}", name.to_lowercase())
    }
}

/// The prices every fake starts with: Starter, Team, Business and an extra seat, each monthly
/// (`price_team_monthly`) and yearly (`price_team_yearly`).
pub fn default_prices() -> Vec<SeedPrice> {
    let mut prices = Vec::new();
    for (name, key, monthly) in [
        ("Starter", "starter", 900),
        ("Team", "team", 2900),
        ("Business", "business", 9900),
        ("Extra seat", "seat", 500),
    ] {
        prices.push(SeedPrice::monthly(
            &format!("price_{key}_monthly"),
            name,
            monthly,
        ));
        prices.push(SeedPrice::yearly(
            &format!("price_{key}_yearly"),
            name,
            monthly * 10,
        ));
    }
    prices
}

#[derive(Clone, Debug)]
pub struct FakeStripeConfig {
    /// The webhook endpoint's signing secret.
    pub webhook_secret: String,
    /// Where events go; settable later with [`FakeStripe::set_webhook_url`].
    pub webhook_url: Option<String>,
    pub prices: Vec<SeedPrice>,
    /// Also deliver the events that API calls cause (a quantity change's
    /// `customer.subscription.updated`...) as they happen, in a background task. Off: they are
    /// only recorded ([`FakeStripe::events`]) for the test to deliver when it chooses.
    pub deliver_api_events: bool,
}

impl Default for FakeStripeConfig {
    fn default() -> Self {
        Self {
            webhook_secret: "whsec_tenantkit_fake_stripe".to_owned(),
            webhook_url: None,
            prices: default_prices(),
            deliver_api_events: false,
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Without the query string: `/v1/customers`.
    pub path: String,
    /// The query string's and the form body's parameters, decoded (`metadata[tenant_id]`).
    pub params: Params,
    pub idempotency_key: Option<String>,
    pub stripe_version: Option<String>,
    /// Whether it carried `Authorization: Bearer sk_test_...`.
    pub authorized: bool,
    pub status: u16,
    /// Answered from an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
    pub at: chrono::DateTime<chrono::Utc>,
}

struct WebhookTarget {
    url: Option<String>,
    secret: String,
}

struct Shared {
    state: Mutex<state::State>,
    webhook: Mutex<WebhookTarget>,
    http: reqwest::Client,
    deliver_api_events: bool,
}

impl Shared {
    /// Signs and sends one event to the webhook target; records the delivery.
    async fn deliver(&self, event: &Value, options: &DeliveryOptions) -> Delivery {
        let (url, secret) = {
            let target = self.webhook.lock().expect("webhook target");
            (
                options.url.clone().or(target.url.clone()),
                target.secret.clone(),
            )
        };
        let delivery = match url {
            Some(url) => events::send(&self.http, &url, event, &secret, options).await,
            None => Delivery {
                event_id: event["id"].as_str().unwrap_or_default().to_owned(),
                event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                status: None,
                response_body: "no webhook URL set on the fake Stripe".to_owned(),
                payload: String::new(),
                signature: String::new(),
                at: chrono::Utc::now(),
            },
        };
        self.state
            .lock()
            .expect("fake Stripe state")
            .deliveries
            .push(delivery.clone());
        delivery
    }
}

/// The Stripe-compatible server, on 127.0.0.1 and a free port, until dropped.
pub struct FakeStripe {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl FakeStripe {
    pub async fn start(config: FakeStripeConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Stripe");
        let address = listener.local_addr().expect("its address");
        let acceptor = TcpAcceptor::from_tokio(listener).expect("an acceptor");
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::new(
                format!("http://{address}/"),
                &config.prices,
            )),
            webhook: Mutex::new(WebhookTarget {
                url: config.webhook_url,
                secret: config.webhook_secret,
            }),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            deliver_api_events: config.deliver_api_events,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let endpoint = routes::StripeEndpoint(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _ = stopped.await;
                    },
                    Some(Duration::from_secs(5)),
                )
                .await
        });
        Self {
            address,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The API base, `http://127.0.0.1:PORT/` (with its trailing slash, as async-stripe's
    /// `ClientBuilder::url` wants it: it appends `v1/...`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.shared.webhook.lock().expect("webhook target").url = Some(url.into());
    }

    pub fn webhook_secret(&self) -> String {
        self.shared
            .webhook
            .lock()
            .expect("webhook target")
            .secret
            .clone()
    }

    pub fn set_webhook_secret(&self, secret: impl Into<String>) {
        self.shared.webhook.lock().expect("webhook target").secret = secret.into();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, state::State> {
        self.shared.state.lock().expect("fake Stripe state")
    }

    // ---- what it received -------------------------------------------------------------------

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Requests (replays included) with this method whose path starts with `path_prefix`:
    /// `count("POST", "/v1/customers")`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.state()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .count()
    }

    /// The `Idempotency-Key` of every request that had one, in order (a retried key twice).
    pub fn idempotency_keys(&self) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter_map(|r| r.idempotency_key.clone())
            .collect()
    }

    /// Every event Stripe would have sent so far (from API calls, checkouts and the test
    /// controls), in order, delivered or not.
    pub fn events(&self) -> Vec<Value> {
        self.state().events.clone()
    }

    /// Every delivery attempted (by the checkout page, the portal, `deliver*`), in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state().deliveries.clone()
    }

    // ---- its objects, as the API would answer them -----------------------------------------

    pub fn customer(&self, id: &str) -> Option<Value> {
        state::find(&self.state().customers, id).cloned()
    }

    pub fn customers(&self) -> Vec<Value> {
        self.state().customers.clone()
    }

    pub fn checkout_session(&self, id: &str) -> Option<Value> {
        state::find(&self.state().sessions, id).cloned()
    }

    pub fn checkout_sessions(&self) -> Vec<Value> {
        self.state().sessions.clone()
    }

    pub fn subscription(&self, id: &str) -> Option<Value> {
        state::find(&self.state().subscriptions, id).cloned()
    }

    pub fn subscriptions(&self) -> Vec<Value> {
        self.state().subscriptions.clone()
    }

    pub fn invoice(&self, id: &str) -> Option<Value> {
        state::find(&self.state().invoices, id).cloned()
    }

    pub fn invoices(&self) -> Vec<Value> {
        self.state().invoices.clone()
    }

    pub fn price(&self, id: &str) -> Option<Value> {
        state::find(&self.state().prices, id).cloned()
    }

    /// Adds (or replaces) a price and its product.
    pub fn add_price(&self, price: SeedPrice) {
        self.state().add_price(&price);
    }

    // ---- test controls: change state as Stripe would, and return the events ----------------
    // Each control records its events (see `events`) and returns them undelivered; deliver them
    // with `deliver` in the order (or disorder) the test wants. They panic on what Stripe would
    // refuse (an unknown id, paying a paid invoice).

    /// Stripe's clock (Unix seconds): now plus what `advance_clock` added.
    pub fn now(&self) -> i64 {
        self.state().now()
    }

    /// Moves Stripe's clock forward: objects and events made afterwards are that much later.
    pub fn advance_clock(&self, seconds: i64) {
        self.state().advance_clock(seconds);
    }

    /// What the checkout page's Pay button does, without delivering: customer (if the session
    /// had none), subscription (trialing if a trial was asked for, else active), a paid first
    /// invoice, the session complete. Events: `checkout.session.completed`,
    /// `customer.subscription.created`, `invoice.paid`.
    pub fn complete_checkout(&self, session_id: &str) -> Completion {
        self.state()
            .complete_checkout(session_id, None)
            .unwrap_or_else(|e| panic!("fake Stripe: {}", e.message))
    }

    /// [`Self::complete_checkout`] and each event delivered in order, as the Pay button does.
    pub async fn pay_checkout(&self, session_id: &str) -> Completion {
        let completion = self.complete_checkout(session_id);
        for event in &completion.events {
            self.deliver_with(event, DeliveryOptions::default()).await;
        }
        completion
    }

    /// The next charge fails now: an open invoice (returned id, for the current period) and the
    /// subscription past_due. Events: `invoice.payment_failed`, `customer.subscription.updated`.
    /// A trialing subscription's trial ends now instead, with the new period's invoice failed
    /// (events the other way round).
    pub fn fail_payment(&self, subscription_id: &str) -> Change {
        self.control(|state| state.fail_payment(subscription_id))
    }

    /// An open invoice is paid; its past_due subscription becomes active. Events:
    /// `invoice.paid` (and `customer.subscription.updated` when the status changed).
    pub fn pay_invoice(&self, invoice_id: &str) -> Change {
        self.control(|state| state.pay_invoice(invoice_id))
    }

    /// A trialing subscription's trial ends now: active, a new period, its invoice (returned
    /// id) paid. Events: `customer.subscription.updated`, `invoice.paid`.
    pub fn advance_to_trial_end(&self, subscription_id: &str) -> Change {
        self.control(|state| state.end_trial(subscription_id))
    }

    /// The clock moves to the period's end and the subscription renews: a new period, its
    /// invoice (returned id) paid. Events: `customer.subscription.updated`, `invoice.paid`.
    /// One set to cancel at period end is canceled instead (`customer.subscription.deleted`;
    /// the returned id is the subscription's).
    pub fn renew(&self, subscription_id: &str) -> Change {
        self.control(|state| state.renew(subscription_id))
    }

    /// Canceled now. Event: `customer.subscription.deleted`.
    pub fn cancel_subscription(&self, subscription_id: &str) -> Change {
        self.control(|state| {
            state
                .cancel_subscription(subscription_id)
                .map(|(_, events)| Change {
                    id: subscription_id.to_owned(),
                    events,
                })
        })
    }

    /// The customer is deleted (retrieving it answers `deleted: true`); its live subscriptions
    /// are canceled. Events: `customer.subscription.deleted` for each, `customer.deleted`.
    pub fn delete_customer(&self, customer_id: &str) -> Change {
        self.control(|state| state.delete_customer(customer_id))
    }

    /// Nothing changes; the `customer.subscription.trial_will_end` event Stripe sends 3 days
    /// before a trial ends.
    pub fn trial_will_end(&self, subscription_id: &str) -> Change {
        self.control(|state| {
            let subscription = state::find(&state.subscriptions, subscription_id)
                .cloned()
                .ok_or_else(|| params::ApiError::no_such("subscription", subscription_id, "id"))?;
            let event = state.emit("customer.subscription.trial_will_end", &subscription, None);
            Ok(Change {
                id: subscription_id.to_owned(),
                events: vec![event],
            })
        })
    }

    /// Any change to a subscription object (status, items, periods...); event
    /// `customer.subscription.updated` with the changed fields' old values (none if unchanged).
    pub fn update_subscription(
        &self,
        subscription_id: &str,
        change: impl FnOnce(&mut Value),
    ) -> Change {
        self.control(|state| state.update_subscription(subscription_id, change))
    }

    fn control(
        &self,
        action: impl FnOnce(&mut state::State) -> Result<Change, params::ApiError>,
    ) -> Change {
        action(&mut self.state()).unwrap_or_else(|e| panic!("fake Stripe: {}", e.message))
    }

    // ---- events -----------------------------------------------------------------------------

    /// An event about `object` created now on Stripe's clock (not recorded in `events`).
    pub fn event(&self, type_: &str, object: &Value) -> Value {
        event(type_, object, self.now())
    }

    /// Signs `event` with the webhook secret, POSTs it to the webhook URL and returns the
    /// status. Panics when the endpoint cannot be reached.
    pub async fn deliver(&self, event: &Value) -> u16 {
        let delivery = self.deliver_with(event, DeliveryOptions::default()).await;
        delivery.status.unwrap_or_else(|| {
            panic!(
                "delivering {} failed: {}",
                delivery.event_type, delivery.response_body
            )
        })
    }

    /// Delivers with other signing (wrong or several secrets, an old timestamp, a raw header)
    /// or to another URL; returns what was sent and answered.
    pub async fn deliver_with(&self, event: &Value, options: DeliveryOptions) -> Delivery {
        self.shared.deliver(event, &options).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("fake Stripe task")
                .expect("fake Stripe server");
        }
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
