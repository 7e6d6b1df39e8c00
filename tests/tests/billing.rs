//! Billing end to end: the real server and worker against the Stripe-compatible test server
//! (tests/src/stripe), which answers the real async-stripe client with Stripe's own fixture
//! objects and delivers signed events to the webhook endpoint.

use std::{future::Future, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit_kernel::{Role, TenantId};
use tenantkit_platform::{Reason, tenant_actions};
use tenantkit_tests::{
    TestApp, TestDb,
    api::{self, Org},
    mail, platform_admin, settings_for,
    stripe::{DeliveryOptions, FakeStripe, FakeStripeConfig, SECRET_KEY},
    worker::RunningWorker,
};
use uuid::Uuid;

/// Free (2 seats), Team (5 seats, monthly or yearly) and Business; prices are the test
/// server's seeded ones.
const PLANS: &str = r#"[
  {"name": "free", "display_name": "Free", "included_seats": 2},
  {"name": "team", "display_name": "Team", "stripe_price_monthly": "price_team_monthly",
   "stripe_price_yearly": "price_team_yearly", "included_seats": 5,
   "storage_quota_bytes": 10737418240, "api_requests_per_minute": 600,
   "features": ["priority_support"], "monthly_price_cents": 2900},
  {"name": "business", "display_name": "Business",
   "stripe_price_monthly": "price_business_monthly", "included_seats": 50,
   "features": ["priority_support", "audit_export"]},
  {"name": "starter", "display_name": "Starter (per seat)",
   "stripe_price_monthly": "price_starter_monthly", "included_seats": 1,
   "per_seat_price_cents": 900}
]"#;

/// Team with a 14-day trial, Business with a 2-day one.
const TRIAL_PLANS: &str = r#"[
  {"name": "free", "display_name": "Free", "included_seats": 2},
  {"name": "team", "display_name": "Team", "stripe_price_monthly": "price_team_monthly",
   "included_seats": 5, "trial_days": 14},
  {"name": "business", "display_name": "Business",
   "stripe_price_monthly": "price_business_monthly", "included_seats": 50, "trial_days": 2}
]"#;

/// The app and its worker, billing through the test server.
struct Billed {
    app: TestApp,
    stripe: FakeStripe,
    worker: Option<RunningWorker>,
}

impl Billed {
    async fn start(grace_days: &str) -> Self {
        Self::start_with(grace_days, PLANS).await
    }

    async fn start_with(grace_days: &str, plans: &str) -> Self {
        let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
        let db = TestDb::new().await;
        let secret = stripe.webhook_secret();
        let base = stripe.url();
        let settings = settings_for(
            &db,
            &[
                ("billing.stripe_secret_key", SECRET_KEY),
                ("billing.webhook_secrets", &secret),
                ("billing.stripe_api_base", &base),
                ("billing.plans", plans),
                ("billing.grace_period_days", grace_days),
                ("worker.retry_base_delay_secs", "1"),
            ],
        );
        let worker = RunningWorker::start(settings.clone());
        let app = TestApp::spawn_with(db, settings).await;
        stripe.set_webhook_url(app.url("/webhooks/stripe"));
        Self {
            app,
            stripe,
            worker: Some(worker),
        }
    }

    async fn stop(mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop_within(Duration::from_secs(20)).await;
        }
    }

    async fn billing(&self, key: &str, org: &Org) -> Value {
        let (status, body) = api::call(
            &self.app,
            key,
            Method::GET,
            &format!("/tenants/{}/billing", org.tenant),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Starts a checkout through the API; returns the test server's session id.
    async fn checkout(&self, key: &str, org: &Org, plan: &str, attempt: Uuid) -> String {
        let (status, body) = api::call(
            &self.app,
            key,
            Method::POST,
            &format!("/tenants/{}/billing/checkout", org.tenant),
            Some(json!({ "plan": plan, "interval": "monthly", "attempt": attempt })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let url = body["url"].as_str().expect("a checkout url");
        assert!(url.starts_with(&self.stripe.url()), "{url}");
        url.rsplit('/').next().unwrap().to_owned()
    }

    /// A new organisation that bought `plan` (monthly) and is on it: the organisation, an
    /// owner key, the subscription's id and the billing view.
    async fn subscribed(&self, name: &str, plan: &str) -> (Org, String, String, Value) {
        let org = api::org(&self.app, name).await;
        let key = api::key(&self.app, &org, Role::Owner).await;
        let session = self.checkout(&key, &org, plan, Uuid::now_v7()).await;
        let completion = self.stripe.pay_checkout(&session).await;
        let body = plan_becomes(self, &key, &org, plan, "active").await;
        (org, key, completion.subscription_id, body)
    }

    async fn audit_count(&self, org: &Org, action: &str) -> i64 {
        sqlx::query_scalar(
            "select count(*) from tenant_audit_events where tenant_id = $1 and action = $2",
        )
        .bind(org.tenant)
        .bind(action)
        .fetch_one(&self.app.db.owner)
        .await
        .unwrap()
    }
}

/// Polls `check` until it returns `Some`, failing after `seconds`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    seconds: u64,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {seconds} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn plan_becomes(billed: &Billed, key: &str, org: &Org, plan: &str, status: &str) -> Value {
    eventually(&format!("the tenant on {plan} ({status})"), 20, || async {
        let body = billed.billing(key, org).await;
        (body["entitlements"]["plan"] == plan && body["entitlements"]["status"] == status)
            .then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_its_webhooks_put_the_tenant_on_the_plan_with_its_entitlements() {
    let billed = Billed::start("7").await;
    let org = api::org(&billed.app, "Acme").await;
    let key = api::key(&billed.app, &org, Role::Owner).await;
    let before = billed.billing(&key, &org).await;
    assert_eq!(before["entitlements"]["plan"], "free");
    assert_eq!(before["entitlements"]["seats"], 2);
    assert_eq!(before["configured"], true);

    // A double submit (same attempt) opens the same session, and makes one customer.
    let attempt = Uuid::now_v7();
    let session = billed.checkout(&key, &org, "team", attempt).await;
    assert_eq!(billed.checkout(&key, &org, "team", attempt).await, session);
    assert_eq!(billed.stripe.customers().len(), 1);
    let customer = &billed.stripe.customers()[0];
    assert_eq!(customer["metadata"]["tenant_id"], org.tenant.to_string());
    let keys = billed.stripe.idempotency_keys();
    assert!(
        keys.contains(&format!("customer:{}", org.tenant)),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("checkout:{}:team:monthly:", org.tenant))),
        "{keys:?}"
    );

    // The customer pays on the test server's checkout page: three signed events arrive.
    let paid = billed.stripe.pay_checkout(&session).await;
    let deliveries = billed.stripe.deliveries();
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries.iter().all(|d| d.status == Some(200)),
        "{deliveries:?}"
    );
    let after = plan_becomes(&billed, &key, &org, "team", "active").await;
    assert_eq!(after["entitlements"]["seats"], 5, "{after}");
    assert_eq!(
        after["entitlements"]["storage_quota_bytes"],
        10_737_418_240_u64
    );
    assert_eq!(after["entitlements"]["api_requests_per_minute"], 600);
    assert_eq!(
        after["entitlements"]["features"],
        json!(["priority_support"])
    );
    assert!(after["next_invoice_at"].is_string(), "{after}");
    let plan: String = sqlx::query_scalar("select plan from tenants where id = $1")
        .bind(org.tenant)
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
    assert_eq!(plan, "team");
    let ids: Vec<String> = paid
        .events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    eventually("every delivered event stored and processed", 20, || async {
        let processed: i64 = sqlx::query_scalar(
            "select count(*) from stripe_events where processed_at is not null and id = any($1)",
        )
        .bind(&ids)
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
        (processed == 3).then_some(())
    })
    .await;
    assert_eq!(billed.audit_count(&org, "billing.plan.changed").await, 1);
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_correctly_signed_fresh_events_are_accepted() {
    let billed = Billed::start("7").await;
    let org = api::org(&billed.app, "Signed").await;
    let key = api::key(&billed.app, &org, Role::Owner).await;
    let session = billed.checkout(&key, &org, "team", Uuid::now_v7()).await;
    let completion = billed.stripe.complete_checkout(&session);
    let event = &completion.events[0];
    let secret = billed.stripe.webhook_secret();

    let forged = billed
        .stripe
        .deliver_with(event, DeliveryOptions::secrets(&["whsec_forged"]))
        .await;
    assert_eq!(forged.status, Some(400), "{}", forged.response_body);
    let old = billed
        .stripe
        .deliver_with(event, DeliveryOptions::aged(301))
        .await;
    assert_eq!(old.status, Some(400), "{}", old.response_body);
    let malformed = billed
        .stripe
        .deliver_with(
            event,
            DeliveryOptions {
                header: Some("t=abc,v1=".to_owned()),
                ..DeliveryOptions::default()
            },
        )
        .await;
    assert_eq!(malformed.status, Some(400), "{}", malformed.response_body);
    let unsigned = billed
        .stripe
        .deliver_with(
            event,
            DeliveryOptions {
                header: Some(String::new()),
                ..DeliveryOptions::default()
            },
        )
        .await;
    assert_eq!(unsigned.status, Some(400), "{}", unsigned.response_body);
    let stored: i64 = sqlx::query_scalar("select count(*) from stripe_events")
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
    assert_eq!(stored, 0, "a refused delivery stores nothing");

    // Secret rotation: one of two v1 values is valid; 299 s old is still within tolerance.
    let rotated = billed
        .stripe
        .deliver_with(event, DeliveryOptions::secrets(&["whsec_old_one", &secret]))
        .await;
    assert_eq!(rotated.status, Some(200), "{}", rotated.response_body);
    let recent = billed
        .stripe
        .deliver_with(event, DeliveryOptions::aged(290))
        .await;
    assert_eq!(recent.status, Some(200), "a duplicate is a 2xx no-op");
    let stored: i64 = sqlx::query_scalar("select count(*) from stripe_events")
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    billed.stop().await;
}

/// A realistic life on Stripe's side: checkout, a failed renewal, its payment, an upgrade to
/// Business. Returns the organisation, an owner key and every event it caused, in order.
async fn stripe_life(billed: &Billed, name: &str) -> (Org, String, Vec<Value>) {
    let org = api::org(&billed.app, name).await;
    let key = api::key(&billed.app, &org, Role::Owner).await;
    let session = billed.checkout(&key, &org, "team", Uuid::now_v7()).await;
    let completion = billed.stripe.complete_checkout(&session);
    let subscription = completion.subscription_id.clone();
    billed.stripe.advance_clock(60);
    let failed = billed.stripe.fail_payment(&subscription);
    billed.stripe.advance_clock(60);
    let recovered = billed.stripe.pay_invoice(&failed.id);
    billed.stripe.advance_clock(60);
    let upgraded = billed.stripe.update_subscription(&subscription, |sub| {
        sub["items"]["data"][0]["price"]["id"] = json!("price_business_monthly");
    });
    let events: Vec<Value> = completion
        .events
        .iter()
        .chain(&failed.events)
        .chain(&recovered.events)
        .chain(&upgraded.events)
        .cloned()
        .collect();
    (org, key, events)
}

async fn processed(billed: &Billed, event: &Value) -> bool {
    sqlx::query_scalar("select processed_at is not null from stripe_events where id = $1")
        .bind(event["id"].as_str().unwrap())
        .fetch_optional(&billed.app.db.owner)
        .await
        .unwrap()
        .unwrap_or(false)
}

/// What an organisation's billing ended as, in terms two organisations can be compared by:
/// the entitlements and billing state, how often each billing action was audited, and the
/// subjects of the emails its owner received (its name replaced).
async fn billing_outcome(billed: &Billed, key: &str, org: &Org, name: &str) -> Value {
    let body = billed.billing(key, org).await;
    let actions: Vec<(String, i64)> = sqlx::query_as(
        "select action, count(*) from tenant_audit_events
         where tenant_id = $1 and action like 'billing.%' group by action order by action",
    )
    .bind(org.tenant)
    .fetch_all(&billed.app.db.owner)
    .await
    .unwrap();
    let mut subjects: Vec<String> = mail::wait_for(&org.email, 0, Duration::ZERO)
        .await
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Subject: ")))
        .map(|subject| subject.replace(name, "<org>"))
        .collect();
    subjects.sort();
    let invoices: Vec<Value> = body["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!([i["status"], i["amount_due"]]))
        .collect();
    json!({
        "entitlements": body["entitlements"],
        "payment_failed_at": body["payment_failed_at"],
        "restricted_since": body["restricted_since"],
        "invoices": invoices,
        "audited": actions,
        "emails": subjects,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shuffled_duplicated_concurrent_event_storm_ends_where_the_ordered_sequence_ends() {
    let billed = Billed::start("7").await;
    // Two organisations live the same life; one's events arrive in order, one at a time,
    // each processed before the next is sent; the other's arrive as a storm.
    let (ordered, ordered_key, ordered_events) = stripe_life(&billed, "Ordered").await;
    let (storm, storm_key, storm_events) = stripe_life(&billed, "Stormy").await;
    assert!(storm_events.len() >= 7, "{} events", storm_events.len());
    for event in &ordered_events {
        assert_eq!(billed.stripe.deliver(event).await, 200);
        eventually("the event processed", 20, || async {
            processed(&billed, event).await.then_some(())
        })
        .await;
    }

    // Each three times, in a fixed shuffled order (reproducible), all at once.
    let mut events: Vec<Value> = storm_events
        .iter()
        .flat_map(|e| [e.clone(), e.clone(), e.clone()])
        .collect();
    let mut seed = 0x2545_f491_u64;
    for i in (1..events.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        events.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let deliveries =
        futures::future::join_all(events.iter().map(|e| billed.stripe.deliver(e))).await;
    assert!(deliveries.iter().all(|s| *s == 200), "{deliveries:?}");
    let stored: i64 = sqlx::query_scalar("select count(*) from stripe_events where id = any($1)")
        .bind(
            storm_events
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        )
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
    assert_eq!(
        stored as usize,
        storm_events.len(),
        "each event stored once"
    );

    // Every job settled (jobs scheduled for later, like the trial reminder, aside).
    plan_becomes(&billed, &storm_key, &storm, "business", "active").await;
    eventually("every event processed and every job run", 30, || async {
        let open: i64 = sqlx::query_scalar(
            "select (select count(*) from stripe_events where processed_at is null)
                  + (select count(*) from apalis.jobs
                     where status not in ('Done', 'Killed', 'Failed') and run_at <= now())",
        )
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
    // Let any mail in flight land before comparing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected = billing_outcome(&billed, &ordered_key, &ordered, "Ordered").await;
    let got = billing_outcome(&billed, &storm_key, &storm, "Stormy").await;
    assert_eq!(got, expected, "storm vs in order");
    // And that common end is Stripe's final state, each effect once.
    assert_eq!(expected["entitlements"]["plan"], "business", "{expected}");
    assert_eq!(expected["entitlements"]["restricted"], false, "{expected}");
    assert!(expected["payment_failed_at"].is_null(), "{expected}");
    let audited: Vec<(String, i64)> = serde_json::from_value(expected["audited"].clone()).unwrap();
    assert!(
        audited.iter().all(|(_, count)| *count == 1),
        "an effect happened twice: {audited:?}"
    );
    assert!(
        audited
            .iter()
            .any(|(action, _)| action == "billing.plan.changed"),
        "{audited:?}"
    );
    let emails: Vec<String> = serde_json::from_value(expected["emails"].clone()).unwrap();
    let mut distinct = emails.clone();
    distinct.dedup();
    assert_eq!(distinct, emails, "an email went out twice");
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_organisation_cancels_its_subscription_in_stripe_once() {
    let billed = Billed::start("7").await;
    let (org, _, subscription, _) = billed.subscribed("Leaving", "team").await;

    tenant_actions::delete(
        &billed.app.db.app,
        platform_admin(&billed.app.db, "billing").await,
        TenantId::from_uuid(org.tenant),
        Duration::from_secs(30 * 86_400),
        &Reason::new("the customer closed the account").unwrap(),
    )
    .await
    .unwrap();

    // Canceled in Stripe, and our copy says so: the deleted tenant is on the free plan.
    eventually("the subscription canceled and stored", 20, || async {
        let stored: Option<String> =
            sqlx::query_scalar("select status from billing_subscriptions where id = $1")
                .bind(&subscription)
                .fetch_optional(&billed.app.db.owner)
                .await
                .unwrap();
        (stored.as_deref() == Some("canceled")).then_some(())
    })
    .await;
    assert_eq!(
        billed.stripe.subscription(&subscription).unwrap()["status"],
        "canceled"
    );
    let plan: String = sqlx::query_scalar("select plan from tenants where id = $1")
        .bind(org.tenant)
        .fetch_one(&billed.app.db.owner)
        .await
        .unwrap();
    assert_eq!(plan, "free");
    let cancels: Vec<_> = billed
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].path, format!("/v1/subscriptions/{subscription}"));
    assert_eq!(
        cancels[0].idempotency_key.as_deref(),
        Some(format!("cancel:{subscription}").as_str())
    );
    assert_eq!(
        billed
            .audit_count(&org, "billing.subscription.canceled")
            .await,
        1
    );
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_lost_local_commit_creates_no_second_stripe_object() {
    let billed = Billed::start("7").await;
    let org = api::org(&billed.app, "Retry").await;
    let key = api::key(&billed.app, &org, Role::Owner).await;
    let attempt = Uuid::now_v7();
    let session = billed.checkout(&key, &org, "team", attempt).await;
    // The process died after Stripe answered and before our commit: the local record of the
    // customer is gone, Stripe's objects are not.
    sqlx::query("update billing_accounts set stripe_customer_id = null where tenant_id = $1")
        .bind(org.tenant)
        .execute(&billed.app.db.owner)
        .await
        .unwrap();
    sqlx::query("delete from stripe_customers")
        .execute(&billed.app.db.owner)
        .await
        .unwrap();
    let again = billed.checkout(&key, &org, "team", attempt).await;
    assert_eq!(again, session, "the same checkout session");
    assert_eq!(billed.stripe.customers().len(), 1, "no second customer");
    assert_eq!(
        billed.stripe.checkout_sessions().len(),
        1,
        "no second session"
    );
    let posts = billed.stripe.count("POST", "/v1/customers");
    assert_eq!(posts, 2, "asked twice, with the same key, created once");
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plans_seats_limit_invitations() {
    let billed = Billed::start("7").await;
    let org = api::org(&billed.app, "Seats").await;
    let key = api::key(&billed.app, &org, Role::Owner).await;
    let invitations = format!("/tenants/{}/invitations", org.tenant);
    let invite = |email: &str| {
        let body = json!({ "email": email, "role": "member" });
        api::call(&billed.app, &key, Method::POST, &invitations, Some(body))
    };
    // Free: 2 seats, the owner holds one.
    let (status, body) = invite("first@seats.test").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, problem) = invite("second@seats.test").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["type"].as_str().unwrap().ends_with("/seat-limit"),
        "{problem}"
    );
    // Resending the pending invitation takes no new seat.
    let (status, body) = invite("first@seats.test").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Ten invitations at once on a fresh tenant: exactly one gets the free seat.
    let other = api::org(&billed.app, "Race").await;
    let other_key = api::key(&billed.app, &other, Role::Owner).await;
    let other_invitations = format!("/tenants/{}/invitations", other.tenant);
    let results = futures::future::join_all((0..10).map(|i| {
        api::call(
            &billed.app,
            &other_key,
            Method::POST,
            &other_invitations,
            Some(json!({ "email": format!("racer{i}@seats.test"), "role": "member" })),
        )
    }))
    .await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    // An admin's seat override wins over the plan.
    sqlx::query("update tenants set entitlement_overrides = '{\"seats\": 3}' where id = $1")
        .bind(org.tenant)
        .execute(&billed.app.db.owner)
        .await
        .unwrap();
    let (status, body) = invite("second@seats.test").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_seat_subscription_follows_the_member_count_with_a_key_per_change() {
    let billed = Billed::start("7").await;
    let (org, key, subscription, body) = billed.subscribed("PerSeat", "starter").await;
    assert!(
        body["entitlements"]["seats"].is_null(),
        "per seat: no limit"
    );
    // Two more members (as accepted invitations would add them), then one leaves through
    // the API: that change queues the sync.
    for name in ["second", "third"] {
        let user = Uuid::now_v7();
        sqlx::query("insert into users (id, email, display_name) values ($1, $2, $3);")
            .bind(user)
            .bind(format!("{name}-{user}@seats.test"))
            .bind(name)
            .execute(&billed.app.db.owner)
            .await
            .unwrap();
        sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, 'member')")
            .bind(org.tenant)
            .bind(user)
            .execute(&billed.app.db.owner)
            .await
            .unwrap();
        if name == "third" {
            let (status, body) = api::call(
                &billed.app,
                &key,
                Method::DELETE,
                &format!("/tenants/{}/members/{user}", org.tenant),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
    }
    let quantity = eventually("the subscription's quantity follows", 20, || async {
        let current = billed.stripe.subscription(&subscription)?;
        let quantity = current["items"]["data"][0]["quantity"].as_u64()?;
        (quantity == 2).then_some(quantity)
    })
    .await;
    assert_eq!(quantity, 2, "owner and second");
    let keys: Vec<String> = billed
        .stripe
        .idempotency_keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("seats:{}:member-removed:", org.tenant)))
        .collect();
    assert!(!keys.is_empty(), "{:?}", billed.stripe.idempotency_keys());
    let mut distinct = keys.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 1, "one change, one key: {keys:?}");
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payment_warns_restricts_after_the_grace_period_and_recovers() {
    // No grace period: restriction follows the failure as soon as its job runs.
    let billed = Billed::start("0").await;
    let (org, key, subscription, _) = billed.subscribed("Dunning", "team").await;

    let failed = billed.stripe.fail_payment(&subscription);
    for event in &failed.events {
        assert_eq!(billed.stripe.deliver(event).await, 200);
    }
    let restricted = eventually("restricted mode", 20, || async {
        let body = billed.billing(&key, &org).await;
        (body["entitlements"]["restricted"] == true).then_some(body)
    })
    .await;
    assert_eq!(
        restricted["entitlements"]["status"], "past_due",
        "{restricted}"
    );
    // Writes are refused, reads and removals are not.
    let (status, problem) = api::call(
        &billed.app,
        &key,
        Method::POST,
        &format!("/tenants/{}/invitations", org.tenant),
        Some(json!({ "email": "late@dunning.test", "role": "member" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/billing-restricted"),
        "{problem}"
    );
    let (status, _) = api::call(
        &billed.app,
        &key,
        Method::GET,
        &format!("/tenants/{}/members", org.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The owners were told, once.
    let told = mail::wait_for(&org.email, 2, Duration::from_secs(15)).await;
    assert!(
        told.len() >= 2,
        "payment failed and restricted emails: {}",
        told.len()
    );

    // The payment succeeds: restored, and told once more.
    let paid = billed.stripe.pay_invoice(&failed.id);
    for event in &paid.events {
        assert_eq!(billed.stripe.deliver(event).await, 200);
    }
    let restored = plan_becomes(&billed, &key, &org, "team", "active").await;
    assert_eq!(restored["entitlements"]["restricted"], false, "{restored}");
    assert!(restored["payment_failed_at"].is_null(), "{restored}");
    let (status, body) = api::call(
        &billed.app,
        &key,
        Method::POST,
        &format!("/tenants/{}/invitations", org.tenant),
        Some(json!({ "email": "late@dunning.test", "role": "member" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(billed.audit_count(&org, "billing.restricted").await, 1);
    assert_eq!(
        billed.audit_count(&org, "billing.payment.recovered").await,
        1
    );
    billed.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_keys_the_kit_runs_on_the_free_plan_and_says_billing_is_off() {
    let app = TestApp::spawn().await;
    let org = api::org(&app, "Unbilled").await;
    let key = api::key(&app, &org, Role::Owner).await;
    let (status, body) = api::call(
        &app,
        &key,
        Method::GET,
        &format!("/tenants/{}/billing", org.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["configured"], false);
    assert_eq!(body["entitlements"]["plan"], "free");
    let (status, problem) = api::call(
        &app,
        &key,
        Method::POST,
        &format!("/tenants/{}/billing/checkout", org.tenant),
        Some(json!({ "plan": "team", "interval": "monthly", "attempt": Uuid::now_v7() })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not configured")
    );
    // The webhook endpoint does not exist without a secret.
    let response = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // A member (not owner or admin) cannot read billing.
    let member_key = api::key(&app, &org, Role::Member).await;
    let (status, _) = api::call(
        &app,
        &member_key,
        Method::GET,
        &format!("/tenants/{}/billing", org.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The owners hear of a trial's end 3 days before it, once: a long trial's reminder waits
/// until then, a trial shorter than that is announced at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trials_end_is_announced_three_days_before_once() {
    let billed = Billed::start_with("7", TRIAL_PLANS).await;
    let reminder_at = |org: &Org| {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "select run_at from apalis.jobs where job_type = 'email.billing'
             and convert_from(job, 'UTF8')::jsonb ->> 'tenant_id' = $1
             and convert_from(job, 'UTF8')::jsonb ->> 'kind' = 'trial_ending'",
        )
        .bind(org.tenant.to_string())
        .fetch_all(&billed.app.db.owner)
    };

    let long = api::org(&billed.app, "LongTrial").await;
    let key = api::key(&billed.app, &long, Role::Owner).await;
    let session = billed.checkout(&key, &long, "team", Uuid::now_v7()).await;
    billed.stripe.pay_checkout(&session).await;
    let body = plan_becomes(&billed, &key, &long, "team", "trialing").await;
    let trial_end: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["trial_ends_at"].clone()).expect("a trial end");
    let scheduled = eventually("the reminder scheduled", 20, || async {
        let runs = reminder_at(&long).await.unwrap();
        (!runs.is_empty()).then_some(runs)
    })
    .await;
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let early = (trial_end - chrono::Duration::days(3) - scheduled[0]).num_seconds();
    assert!(
        early.abs() <= 5,
        "reminder at {} for a trial ending {trial_end}",
        scheduled[0]
    );

    let short = api::org(&billed.app, "ShortTrial").await;
    let key = api::key(&billed.app, &short, Role::Owner).await;
    let session = billed
        .checkout(&key, &short, "business", Uuid::now_v7())
        .await;
    billed.stripe.pay_checkout(&session).await;
    plan_becomes(&billed, &key, &short, "business", "trialing").await;
    let reminders = |mails: &[String], organisation: &str| {
        let subject = format!("Subject: The {organisation} ends on");
        mails.iter().filter(|m| m.contains(&subject)).count()
    };
    eventually("the short trial announced", 20, || async {
        let told = mail::wait_for(&short.email, 0, Duration::ZERO).await;
        (reminders(&told, "Business trial of ShortTrial") > 0).then_some(())
    })
    .await;
    // Redelivering the subscription's events sends nothing more.
    for event in billed.stripe.events() {
        assert_eq!(billed.stripe.deliver(&event).await, 200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = mail::wait_for(&short.email, 0, Duration::ZERO).await;
    assert_eq!(
        reminders(&after, "Business trial of ShortTrial"),
        1,
        "{after:?}"
    );
    let long_mail = mail::wait_for(&long.email, 0, Duration::ZERO).await;
    assert_eq!(
        reminders(&long_mail, "Team trial of LongTrial"),
        0,
        "not yet"
    );
    billed.stop().await;
}
