//! The fake's memory: Stripe objects as JSON values, found by id and expanded; customers and
//! lists. How checkout sessions and subscriptions change lives in `checkout` and
//! `subscriptions` (more `impl State`). API calls (`api_*`, called by the routes) and test
//! controls change the state alike, and every change appends the events Stripe would send to
//! `events`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::{
    RecordedRequest, SeedPrice,
    checkout::SessionOrder,
    events::{self, Delivery},
    objects::{self, random_id},
    params::{ApiError, Params},
};

/// A POST answered under an `Idempotency-Key`: replayed for the same key.
pub(super) struct Replay {
    pub path: String,
    pub params: Params,
    pub status: u16,
    pub body: Value,
}

/// What a test control changed: the object it is about and the events Stripe would send.
#[derive(Clone, Debug)]
pub struct Change {
    pub id: String,
    pub events: Vec<Value>,
}

pub(super) struct State {
    pub base_url: String,
    clock_offset: i64,
    last_event_created: i64,
    pub customers: Vec<Value>,
    pub products: Vec<Value>,
    pub prices: Vec<Value>,
    pub sessions: Vec<Value>,
    pub orders: HashMap<String, SessionOrder>,
    pub portal_sessions: Vec<Value>,
    pub subscriptions: Vec<Value>,
    pub invoices: Vec<Value>,
    pub replays: HashMap<String, Replay>,
    pub requests: Vec<RecordedRequest>,
    pub events: Vec<Value>,
    pub deliveries: Vec<Delivery>,
    /// The API request being handled (id, idempotency key): the events it causes name it.
    pub current_request: Option<(String, Option<String>)>,
}

pub(super) fn find<'a>(objects: &'a [Value], id: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["id"] == id)
}

pub(super) fn find_mut<'a>(objects: &'a mut [Value], id: &str) -> Option<&'a mut Value> {
    objects.iter_mut().find(|o| o["id"] == id)
}

/// Applies Stripe's metadata update rules: keys are set, an empty value deletes the key.
pub(super) fn merge_metadata(object: &mut Value, updates: BTreeMap<String, String>) {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let metadata = object["metadata"].as_object_mut().expect("an object");
    for (key, value) in updates {
        if value.is_empty() {
            metadata.remove(&key);
        } else {
            metadata.insert(key, Value::String(value));
        }
    }
}

pub(super) fn metadata_object(updates: BTreeMap<String, String>) -> Map<String, Value> {
    updates
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// The subscription's amount per period: each item's unit amount times its quantity.
pub(super) fn subscription_amount(subscription: &Value) -> i64 {
    items(subscription)
        .iter()
        .map(|item| {
            item["price"]["unit_amount"].as_i64().unwrap_or(0)
                * item["quantity"].as_i64().unwrap_or(1)
        })
        .sum()
}

pub(super) fn items(subscription: &Value) -> &[Value] {
    subscription["items"]["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The subscription's current period (from its first item, where recent API versions keep it).
pub(super) fn current_period(subscription: &Value) -> (i64, i64) {
    let item = &subscription["items"]["data"][0];
    (
        item["current_period_start"].as_i64().unwrap_or(0),
        item["current_period_end"].as_i64().unwrap_or(0),
    )
}

pub(super) fn set_period(subscription: &mut Value, period: (i64, i64)) {
    if let Some(items) = subscription["items"]["data"].as_array_mut() {
        for item in items {
            item["current_period_start"] = json!(period.0);
            item["current_period_end"] = json!(period.1);
        }
    }
}

pub(super) fn interval(subscription: &Value) -> String {
    subscription["items"]["data"][0]["price"]["recurring"]["interval"]
        .as_str()
        .unwrap_or("month")
        .to_owned()
}

impl State {
    pub fn new(base_url: String, prices: &[SeedPrice]) -> Self {
        let mut state = Self {
            base_url,
            clock_offset: 0,
            last_event_created: 0,
            customers: Vec::new(),
            products: Vec::new(),
            prices: Vec::new(),
            sessions: Vec::new(),
            orders: HashMap::new(),
            portal_sessions: Vec::new(),
            subscriptions: Vec::new(),
            invoices: Vec::new(),
            replays: HashMap::new(),
            requests: Vec::new(),
            events: Vec::new(),
            deliveries: Vec::new(),
            current_request: None,
        };
        for price in prices {
            state.add_price(price);
        }
        state
    }

    /// Stripe's clock: now, plus however far the test has advanced it.
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_offset
    }

    pub fn advance_clock(&mut self, seconds: i64) {
        self.clock_offset += seconds;
    }

    pub fn add_price(&mut self, seed: &SeedPrice) {
        let now = self.now();
        let product_id = seed.product_id();
        if find(&self.products, &product_id).is_none() {
            self.products.push(objects::product(
                &product_id,
                &seed.product_name,
                &seed.id,
                now,
            ));
        }
        self.prices.retain(|p| p["id"] != seed.id.as_str());
        self.prices.push(objects::price(
            &seed.id,
            &product_id,
            &seed.product_name,
            seed.unit_amount,
            &seed.interval,
            now,
        ));
    }

    /// Any object by its id, as Stripe's expansion finds them.
    pub fn lookup(&self, id: &str) -> Option<&Value> {
        let objects = match id.split('_').next().unwrap_or_default() {
            "cus" => &self.customers,
            "prod" => &self.products,
            "price" => &self.prices,
            "cs" => &self.sessions,
            "bps" => &self.portal_sessions,
            "sub" => &self.subscriptions,
            "in" => &self.invoices,
            _ => return None,
        };
        find(objects, id)
    }

    pub fn subscription_item(&self, id: &str) -> Option<&Value> {
        self.subscriptions
            .iter()
            .flat_map(|s| items(s).iter())
            .find(|item| item["id"] == id)
    }

    /// Replaces ids by their objects along each `expand` path (`customer`, `subscription`,
    /// `latest_invoice`, `data.customer`, `line_items` on a checkout session...).
    pub fn expand(&self, value: &mut Value, paths: &[String]) {
        for path in paths {
            let fields: Vec<&str> = path.split('.').collect();
            self.expand_path(value, &fields);
        }
    }

    fn expand_path(&self, value: &mut Value, path: &[&str]) {
        let Some((field, rest)) = path.split_first() else {
            return;
        };
        if *field == "data"
            && value["object"] == "list"
            && let Some(data) = value["data"].as_array_mut()
        {
            for item in data {
                self.expand_path(item, rest);
            }
            return;
        }
        if *field == "line_items" && value["object"] == "checkout.session" {
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            value["line_items"] = self.session_line_items(&id);
        } else if let Some(id) = value[*field].as_str()
            && let Some(found) = self.lookup(id)
        {
            value[*field] = found.clone();
        }
        if value.get(*field).is_some() {
            self.expand_path(&mut value[*field], rest);
        }
    }

    pub fn session_line_items(&self, session_id: &str) -> Value {
        let items = self
            .orders
            .get(session_id)
            .map(|order| {
                order
                    .items
                    .iter()
                    .filter_map(|(price, quantity)| {
                        let price = find(&self.prices, price)?;
                        Some(objects::checkout_item(
                            price,
                            &self.product_name(price),
                            *quantity,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        objects::list(
            items,
            false,
            &format!("/v1/checkout/sessions/{session_id}/line_items"),
        )
    }

    pub fn product_name(&self, price: &Value) -> String {
        let product = price["product"].as_str().unwrap_or_default();
        find(&self.products, product)
            .and_then(|p| p["name"].as_str())
            .unwrap_or(product)
            .to_owned()
    }

    /// Records `type_` about `object` (a snapshot) as the next event, and returns it. Events are
    /// created a second apart at least, so their order shows in `created`.
    pub fn emit(&mut self, type_: &str, object: &Value, previous: Option<Value>) -> Value {
        let created = self.now().max(self.last_event_created + 1);
        self.last_event_created = created;
        let mut event = events::event(type_, object, created);
        if let Some(previous) = previous {
            event["data"]["previous_attributes"] = previous;
        }
        if let Some((id, key)) = &self.current_request {
            event["request"] = json!({ "id": id, "idempotency_key": key });
        }
        self.events.push(event.clone());
        event
    }

    // ---- customers --------------------------------------------------------------------------

    pub(super) fn new_customer(&mut self, params: &Params) -> Value {
        let mut customer = objects::customer(&random_id("cus_", 14), self.now());
        for field in ["email", "name", "description", "phone"] {
            if let Some(value) = params.get(field) {
                customer[field] = json!(value);
            }
        }
        merge_metadata(&mut customer, params.map("metadata"));
        self.customers.push(customer.clone());
        customer
    }

    pub fn api_create_customer(&mut self, params: &Params) -> Result<Value, ApiError> {
        let customer = self.new_customer(params);
        self.emit("customer.created", &customer, None);
        Ok(customer)
    }

    pub fn api_update_customer(&mut self, id: &str, params: &Params) -> Result<Value, ApiError> {
        let customer = find_mut(&mut self.customers, id)
            .filter(|c| c["deleted"] != true)
            .ok_or_else(|| ApiError::no_such("customer", id, "id"))?;
        let before = customer.clone();
        for field in ["email", "name", "description", "phone"] {
            if let Some(value) = params.get(field) {
                customer[field] = if value.is_empty() {
                    Value::Null
                } else {
                    json!(value)
                };
            }
        }
        merge_metadata(customer, params.map("metadata"));
        let after = customer.clone();
        if after != before {
            let previous = events::previous_attributes(&before, &after);
            self.emit("customer.updated", &after, Some(previous));
        }
        Ok(after)
    }

    /// Deletes a customer (`DELETE /v1/customers/{id}`, or the test's control): retrieving it
    /// answers `{"id", "object": "customer", "deleted": true}` from then on, as Stripe does; its
    /// subscriptions are canceled. Events: `customer.subscription.deleted` for each,
    /// `customer.deleted`.
    pub fn delete_customer(&mut self, id: &str) -> Result<Change, ApiError> {
        let customer = find(&self.customers, id)
            .filter(|c| c["deleted"] != true)
            .ok_or_else(|| ApiError::no_such("customer", id, "id"))?
            .clone();
        let live: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|s| s["customer"] == id && s["status"] != "canceled")
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        let mut events = Vec::new();
        for subscription in live {
            events.extend(self.cancel_subscription(&subscription)?.1);
        }
        let mut deleted = objects::fixture("deleted_customer");
        deleted["id"] = json!(id);
        *find_mut(&mut self.customers, id).expect("found above") = deleted;
        events.push(self.emit("customer.deleted", &customer, None));
        Ok(Change {
            id: id.to_owned(),
            events,
        })
    }

    // ---- lists ------------------------------------------------------------------------------

    /// `GET /v1/invoices`: `customer`, `subscription`, `status`, `limit`, `starting_after`;
    /// newest first.
    pub fn api_list_invoices(&self, params: &Params) -> Result<Value, ApiError> {
        let customer = params.get("customer");
        let subscription = params.get("subscription");
        let status = params.get("status");
        let matching: Vec<&Value> = self
            .invoices
            .iter()
            .rev()
            .filter(|i| customer.is_none_or(|c| i["customer"] == c))
            .filter(|i| {
                subscription
                    .is_none_or(|s| i["parent"]["subscription_details"]["subscription"] == s)
            })
            .filter(|i| status.is_none_or(|s| i["status"] == s))
            .collect();
        page(matching, params, "/v1/invoices")
    }

    /// `GET /v1/subscriptions`: `customer`, `price`, `status` (all but canceled unless asked).
    pub fn api_list_subscriptions(&self, params: &Params) -> Result<Value, ApiError> {
        let customer = params.get("customer");
        let price = params.get("price");
        let status = params.get("status");
        let matching: Vec<&Value> = self
            .subscriptions
            .iter()
            .rev()
            .filter(|s| customer.is_none_or(|c| s["customer"] == c))
            .filter(|s| price.is_none_or(|p| items(s).iter().any(|i| i["price"]["id"] == p)))
            .filter(|s| match status {
                None => s["status"] != "canceled",
                Some("all") => true,
                Some(status) => s["status"] == status,
            })
            .collect();
        page(matching, params, "/v1/subscriptions")
    }
}

/// One page of a list, newest first already: `limit` (default 10, at most 100) after
/// `starting_after`.
fn page(objects: Vec<&Value>, params: &Params, url: &str) -> Result<Value, ApiError> {
    let limit = params.int("limit")?.unwrap_or(10).clamp(1, 100) as usize;
    let start = match params.get("starting_after") {
        Some(after) => {
            objects
                .iter()
                .position(|o| o["id"] == after)
                .ok_or_else(|| ApiError::no_such("object", after, "starting_after"))?
                + 1
        }
        None => 0,
    };
    let rest = &objects[start.min(objects.len())..];
    let data = rest.iter().take(limit).map(|o| (*o).clone()).collect();
    Ok(objects::list(data, rest.len() > limit, url))
}
