//! HTTP: the `/v1` API (bearer key, idempotency keys, recording, Stripe errors) and the pages a
//! customer sees: checkout (`/checkout/{id}`, its Pay button), the billing portal
//! (`/portal/{id}`) and hosted invoices (`/invoices/{id}`).

use std::sync::Arc;

use poem::{Endpoint, Request, Response, http::Method, http::StatusCode};
use serde_json::Value;

use super::{
    RecordedRequest, Shared,
    events::{self, API_VERSION, DeliveryOptions},
    params::{ApiError, Params},
    state::{Replay, State, find},
};

pub(super) struct StripeEndpoint(pub Arc<Shared>);

impl Endpoint for StripeEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let body = req.take_body().into_string().await.unwrap_or_default();
        // Tolerates a doubled slash (a base URL given with and without its trailing slash).
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let shared = &self.0;
        Ok(match (&method, segments.as_slice()) {
            (_, ["v1", route @ ..]) => api(shared, &req, &path, route, &body),
            (&Method::GET, ["checkout", id]) => checkout_page(shared, id),
            (&Method::POST, ["checkout", id, "pay"]) => pay(shared, id, &body).await,
            (&Method::GET, ["portal", id]) => portal_page(shared, id),
            (&Method::POST, ["portal", id, "cancel"]) => portal_cancel(shared, id).await,
            (&Method::GET, ["invoices", id]) => invoice_page(shared, id),
            _ => json(&ApiError::not_found(method.as_str(), &path).body(), 404),
        })
    }
}

fn json(body: &Value, status: u16) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .header("stripe-version", API_VERSION)
        .body(serde_json::to_string_pretty(body).expect("JSON serialises"))
}

fn html(status: StatusCode, title: &str, main: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} · Fake Stripe</title>\
         <style>body{{font-family:sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}}\
         label{{display:block;margin-top:1rem}}input,button{{display:block}}button{{margin-top:1rem}}</style></head>\
         <body><main>\n<p><small>Test mode: the Stripe-compatible test server of \
         Tenantkit's tests.</small></p>\n{main}\n</main></body></html>\n",
        escape(title)
    );
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", location)
        .finish()
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn money(cents: i64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

// ---- the API ----------------------------------------------------------------------------------

fn api(shared: &Arc<Shared>, req: &Request, path: &str, route: &[&str], body: &str) -> Response {
    let method = req.method().clone();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let idempotency_key = header("idempotency-key");
    let authorized = header("authorization").is_some_and(|value| {
        value
            .strip_prefix("Bearer sk_test_")
            .is_some_and(|rest| !rest.is_empty())
    });
    // Stripe reads parameters from the query string and from a form body alike.
    let mut params = Params::parse(req.uri().query().unwrap_or_default());
    params.0.extend(Params::parse(body).0);
    let request_id = events::request_id();
    let is_post = method == Method::POST;

    let mut state = shared.state.lock().expect("fake Stripe state");
    let events_before = state.events.len();
    let replay = match (&idempotency_key, is_post) {
        (Some(key), true) => state.replays.get(key),
        _ => None,
    };
    let (status, mut body, replayed) = if !authorized {
        let error = ApiError::unauthorized();
        (error.status, error.body(), false)
    } else if let Some(replay) = replay {
        if replay.path == path && replay.params.same_as(&params) {
            (replay.status, replay.body.clone(), true)
        } else {
            let error = ApiError::idempotency_mismatch(idempotency_key.as_deref().unwrap_or(""));
            (error.status, error.body(), false)
        }
    } else {
        state.current_request = Some((request_id.clone(), idempotency_key.clone()));
        let result = handle(&mut state, &method, route, &params);
        state.current_request = None;
        match result {
            Ok(mut value) => {
                state.expand(&mut value, &params.values("expand"));
                (200, value, false)
            }
            Err(error) if error.code == Some("no_route") => {
                let error = ApiError::not_found(method.as_str(), path);
                (error.status, error.body(), false)
            }
            Err(error) => (error.status, error.body(), false),
        }
    };
    if let (Some(key), true, false, 200) = (&idempotency_key, is_post, replayed, status) {
        state.replays.insert(
            key.clone(),
            Replay {
                path: path.to_owned(),
                params: params.clone(),
                status,
                body: body.clone(),
            },
        );
    }
    if status != 200 && body["error"].is_object() {
        body["error"]["request_log_url"] = Value::String(format!(
            "https://dashboard.stripe.com/test/logs/{request_id}"
        ));
    }
    state.requests.push(RecordedRequest {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        params,
        idempotency_key: idempotency_key.clone(),
        stripe_version: header("stripe-version"),
        authorized,
        status,
        replayed,
        at: chrono::Utc::now(),
    });
    let caused: Vec<Value> = state.events[events_before..].to_vec();
    drop(state);

    if shared.deliver_api_events && !caused.is_empty() {
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            for event in caused {
                shared.deliver(&event, &DeliveryOptions::default()).await;
            }
        });
    }
    let mut response = json(&body, status);
    response
        .headers_mut()
        .insert("request-id", request_id.parse().expect("a header value"));
    if let Some(key) = idempotency_key.and_then(|k| k.parse().ok()) {
        response.headers_mut().insert("idempotency-key", key);
    }
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            "true".parse().expect("a header value"),
        );
    }
    response
}

fn get(objects: &[Value], what: &str, id: &str) -> Result<Value, ApiError> {
    find(objects, id)
        .cloned()
        .ok_or_else(|| ApiError::no_such(what, id, "id"))
}

/// One API call against the state; `Err` with code `no_route` for an endpoint the fake lacks.
fn handle(
    state: &mut State,
    method: &Method,
    route: &[&str],
    params: &Params,
) -> Result<Value, ApiError> {
    let get_ = *method == Method::GET;
    let post = *method == Method::POST;
    let delete = *method == Method::DELETE;
    match route {
        ["customers"] if post => state.api_create_customer(params),
        ["customers", id] if get_ => get(&state.customers, "customer", id),
        ["customers", id] if post => state.api_update_customer(id, params),
        ["customers", id] if delete => state
            .delete_customer(id)
            .map(|_| find(&state.customers, id).cloned().unwrap_or_default()),
        ["checkout", "sessions"] if post => state.api_create_checkout_session(params),
        ["checkout", "sessions", id] if get_ => get(&state.sessions, "checkout.session", id),
        ["checkout", "sessions", id, "line_items"] if get_ => {
            get(&state.sessions, "checkout.session", id)?;
            Ok(state.session_line_items(id))
        }
        ["billing_portal", "sessions"] if post => state.api_create_portal_session(params),
        ["subscriptions"] if get_ => state.api_list_subscriptions(params),
        ["subscriptions", id] if get_ => get(&state.subscriptions, "subscription", id),
        ["subscriptions", id] if post => state.api_update_subscription(id, params),
        ["subscriptions", id] if delete => state.cancel_subscription(id).map(|(s, _)| s),
        ["subscription_items", id] if get_ => state
            .subscription_item(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such("subscription_item", id, "id")),
        ["subscription_items", id] if post => state.api_update_subscription_item(id, params),
        ["invoices"] if get_ => state.api_list_invoices(params),
        ["invoices", id] if get_ => get(&state.invoices, "invoice", id),
        ["prices", id] if get_ => get(&state.prices, "price", id),
        ["products", id] if get_ => get(&state.products, "product", id),
        _ => Err(ApiError::invalid("", "").code("no_route")),
    }
}

// ---- checkout ---------------------------------------------------------------------------------

fn checkout_page(shared: &Shared, id: &str) -> Response {
    let state = shared.state.lock().expect("fake Stripe state");
    let (Some(session), Some(order)) = (find(&state.sessions, id), state.orders.get(id)) else {
        return html(
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>This checkout session does not exist</h1>",
        );
    };
    if session["status"] != "open" {
        let success = session["success_url"]
            .as_str()
            .unwrap_or_default()
            .replace("{CHECKOUT_SESSION_ID}", id);
        return html(
            StatusCode::OK,
            "Checkout",
            &format!(
                "<h1>This checkout is complete</h1><p><a href=\"{}\">Continue</a></p>",
                escape(&success)
            ),
        );
    }
    let mut lines = String::new();
    let mut total = 0;
    let mut names = Vec::new();
    let mut interval = "month".to_owned();
    for (price_id, quantity) in &order.items {
        let Some(price) = find(&state.prices, price_id) else {
            continue;
        };
        let name = state.product_name(price);
        let unit = price["unit_amount"].as_i64().unwrap_or(0);
        interval = price["recurring"]["interval"]
            .as_str()
            .unwrap_or("month")
            .to_owned();
        total += unit * *quantity as i64;
        lines.push_str(&format!(
            "<li>{} — {quantity} × {} / {}</li>",
            escape(&name),
            money(unit),
            escape(&interval)
        ));
        names.push(name);
    }
    let plan = names.first().cloned().unwrap_or_default();
    let terms = match order.trial_end {
        Some(end) => format!(
            "Free trial for {} days, then {} per {}.",
            ((end - state.now()) as f64 / 86_400.0).round(),
            money(total),
            escape(&interval)
        ),
        None => format!(
            "Total due today: {} per {}.",
            money(total),
            escape(&interval)
        ),
    };
    let email = session["customer_email"]
        .as_str()
        .or_else(|| {
            session["customer"]
                .as_str()
                .and_then(|c| find(&state.customers, c))
                .and_then(|c| c["email"].as_str())
        })
        .unwrap_or_default();
    let cancel = session["cancel_url"]
        .as_str()
        .map(|url| format!("<p><a href=\"{}\">Cancel and go back</a></p>", escape(url)))
        .unwrap_or_default();
    html(
        StatusCode::OK,
        &format!("Subscribe to {plan}"),
        &format!(
            "<h1>Subscribe to {}</h1>\n<ul>{lines}</ul>\n<p id=\"terms\">{terms}</p>\n\
             <form method=\"post\" action=\"/checkout/{id}/pay\" aria-label=\"Payment\">\n\
             <label for=\"email\">Email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" value=\"{}\">\n\
             <label for=\"card\">Card number</label>\
             <input id=\"card\" name=\"card\" value=\"4242 4242 4242 4242\">\n\
             <button type=\"submit\">Pay</button>\n</form>\n{cancel}",
            escape(&plan),
            escape(email)
        ),
    )
}

/// The Pay button: completes the session, delivers its events in order (each awaited), then
/// sends the customer to the success URL. A second submit only redirects.
async fn pay(shared: &Arc<Shared>, id: &str, body: &str) -> Response {
    let form = Params::parse(body);
    let result = shared
        .state
        .lock()
        .expect("fake Stripe state")
        .complete_checkout(id, form.get("email"));
    match result {
        Ok(completion) => {
            for event in &completion.events {
                shared.deliver(event, &DeliveryOptions::default()).await;
            }
            see_other(&completion.success_url)
        }
        Err(error) => {
            let state = shared.state.lock().expect("fake Stripe state");
            match find(&state.sessions, id) {
                Some(session) if session["status"] == "complete" => see_other(
                    &session["success_url"]
                        .as_str()
                        .unwrap_or_default()
                        .replace("{CHECKOUT_SESSION_ID}", id),
                ),
                _ => html(
                    StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST),
                    "Checkout",
                    &format!(
                        "<h1>Payment not possible</h1><p>{}</p>",
                        escape(&error.message)
                    ),
                ),
            }
        }
    }
}

// ---- billing portal and invoices ----------------------------------------------------------------

fn portal_page(shared: &Shared, id: &str) -> Response {
    let state = shared.state.lock().expect("fake Stripe state");
    let Some(session) = find(&state.portal_sessions, id) else {
        return html(
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>This portal session does not exist</h1>",
        );
    };
    let customer = session["customer"].as_str().unwrap_or_default();
    let email = find(&state.customers, customer)
        .and_then(|c| c["email"].as_str())
        .unwrap_or(customer);
    let mut rows = String::new();
    for subscription in state
        .subscriptions
        .iter()
        .filter(|s| s["customer"] == customer)
    {
        let item = &subscription["items"]["data"][0];
        rows.push_str(&format!(
            "<li>{} × {} — {}{}</li>",
            item["quantity"],
            escape(&state.product_name(&item["price"])),
            escape(subscription["status"].as_str().unwrap_or_default()),
            if subscription["cancel_at_period_end"] == true {
                " (cancels at period end)"
            } else {
                ""
            },
        ));
    }
    if rows.is_empty() {
        rows.push_str("<li>No subscriptions</li>");
    }
    let return_url = session["return_url"].as_str().unwrap_or("/");
    html(
        StatusCode::OK,
        "Billing portal",
        &format!(
            "<h1>Billing for {}</h1>\n<ul>{rows}</ul>\n\
             <form method=\"post\" action=\"/portal/{id}/cancel\">\
             <button type=\"submit\">Cancel plan</button></form>\n\
             <p><a href=\"{}\">Return</a></p>",
            escape(email),
            escape(return_url)
        ),
    )
}

/// "Cancel plan": the customer's live subscriptions cancel at period end; the
/// `customer.subscription.updated` events are delivered, then back to the return URL.
async fn portal_cancel(shared: &Arc<Shared>, id: &str) -> Response {
    let (events, return_url) = {
        let mut state = shared.state.lock().expect("fake Stripe state");
        let Some(session) = find(&state.portal_sessions, id).cloned() else {
            return html(
                StatusCode::NOT_FOUND,
                "Not found",
                "<h1>No such session</h1>",
            );
        };
        let customer = session["customer"].clone();
        let live: Vec<String> = state
            .subscriptions
            .iter()
            .filter(|s| s["customer"] == customer && s["status"] != "canceled")
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        let before = state.events.len();
        for subscription in live {
            let params = Params(vec![("cancel_at_period_end".into(), "true".into())]);
            let _ = state.api_update_subscription(&subscription, &params);
        }
        (
            state.events[before..].to_vec(),
            session["return_url"].as_str().unwrap_or("/").to_owned(),
        )
    };
    for event in &events {
        shared.deliver(event, &DeliveryOptions::default()).await;
    }
    see_other(&return_url)
}

fn invoice_page(shared: &Shared, id: &str) -> Response {
    let state = shared.state.lock().expect("fake Stripe state");
    let Some(invoice) = find(&state.invoices, id) else {
        return html(
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>This invoice does not exist</h1>",
        );
    };
    html(
        StatusCode::OK,
        "Invoice",
        &format!(
            "<h1>Invoice {}</h1><p>Amount due: {}</p><p>Status: {}</p>",
            escape(invoice["number"].as_str().unwrap_or(id)),
            money(invoice["amount_due"].as_i64().unwrap_or(0)),
            escape(invoice["status"].as_str().unwrap_or_default()),
        ),
    )
}
