//! Browser journeys against the real application and worker, in Debian's Chromium driven by
//! playwright-core: what a customer does, found by labels and button text. The scripts are in
//! `tests/browser`; screenshots go to `$TENANTKIT_TEST_ARTIFACTS/<journey>`.

use std::{process::Command, time::Duration};

use secrecy::SecretString;
use tenantkit_accounts::{DisplayName, Email, NewUser, PasswordHasher, PlainPassword};
use tenantkit_kernel::{Role, UserId};
use tenantkit_tests::{
    OWNER_PASSWORD, TestApp, api,
    browser::run_journey,
    env,
    process::binary,
    stack::Stack,
    stripe::{FakeStripe, FakeStripeConfig, SECRET_KEY},
};

/// Runs one journey against a fresh app with a worker.
async fn journey(script: &str) {
    Stack::start().await.run(script, vec![]).await;
}

/// The harness itself: TOTP, the Maildir reader, and Chromium loading the landing page without
/// console errors or CSP violations, and taking a screenshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_harness_works() {
    let app = TestApp::spawn().await;
    run_journey("harness.mjs", &[("BASE_URL", app.url(""))]).await;
    app.stop().await;
}

/// Sign up, verify, remember me, invite and accept, change a role, two-factor, password reset,
/// sessions and account pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_up_invites_a_teammate_and_secures_the_account() {
    journey("journey.mjs").await;
}

/// Two organisations and a person in both: invite an existing user, switch tenants, resend and
/// revoke an invitation, remove a member, transfer ownership and leave, revoke a session,
/// change the password and the email address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_organisations_share_a_member_who_switches_between_them() {
    journey("team.mjs").await;
}

/// A user with a password and a verified address, member of `tenant` with `role`: arranged
/// through the accounts domain (the password hashed as the product does) and the owner pool.
async fn verified_member(
    app: &TestApp,
    tenant: uuid::Uuid,
    email: &str,
    password: &str,
    role: Role,
) {
    let user = NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("an email"),
        display_name: DisplayName::parse("Mia Member").expect("a name"),
        password_hash: PasswordHasher::default()
            .hash(
                PlainPassword::parse(SecretString::from(password.to_owned())).expect("a password"),
            )
            .await
            .expect("hash"),
        is_platform_admin: false,
    };
    let mut tx = app.db.app.global().await.expect("global tx");
    tenantkit_accounts::repo::insert(tx.conn(), &user)
        .await
        .expect("insert the member");
    tx.commit().await.expect("commit");
    sqlx::query("update users set email_verified_at = now() where id = $1")
        .bind(user.id.as_uuid())
        .execute(&app.db.owner)
        .await
        .expect("verify the member");
    sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, $3)")
        .bind(tenant)
        .bind(user.id.as_uuid())
        .bind(role.to_string())
        .execute(&app.db.owner)
        .await
        .expect("add the member");
}

/// A platform admin created the way operators do: `tenantkit-admin create-admin`.
fn create_admin(app: &TestApp, email: &str, password: &str) {
    let output = Command::new(binary("tenantkit-admin"))
        .args(["create-admin", "--email", email, "--name", "Pat Platform"])
        .env_clear()
        .env("DATABASE_URL", &app.db.app_url)
        .env("REDIS_URL", env("TENANTKIT_TEST_REDIS"))
        .env("TENANTKIT_ADMIN_PASSWORD", password)
        .output()
        .expect("run tenantkit-admin");
    assert!(
        output.status.success(),
        "tenantkit-admin create-admin failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The platform admin area: an organisation (owner, a member, an API key) is arranged; the
/// admin (made with the CLI) enrols two-factor, finds the tenant by the member's email,
/// suspends it (the member's pages and the API answer 403), reactivates it, impersonates the
/// member read-only (banner, writes refused, stop hands the admin session back) and finds
/// every action in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_suspends_reactivates_and_impersonates() {
    let stack = Stack::start().await;
    let app = &stack.app;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let org = api::org(app, "Rocketry").await;
    let member_email = format!("member-{run}@rocketry.test");
    let member_password = format!("member passphrase {run}");
    verified_member(
        app,
        org.tenant,
        &member_email,
        &member_password,
        Role::Member,
    )
    .await;
    let api_key = api::key(app, &org, Role::Member).await;
    let admin_email = format!("admin-{run}@platform.test");
    let admin_password = format!("admin passphrase {run}");
    create_admin(app, &admin_email, &admin_password);
    let organisation: String = sqlx::query_scalar("select name from tenants where id = $1")
        .bind(org.tenant)
        .fetch_one(&app.db.owner)
        .await
        .expect("the organisation's name");
    stack
        .run(
            "admin.mjs",
            vec![
                ("TENANT_ID", org.tenant.to_string()),
                ("ORGANISATION", organisation),
                ("OWNER_EMAIL", org.email.clone()),
                ("OWNER_PASSWORD", OWNER_PASSWORD.to_owned()),
                ("MEMBER_EMAIL", member_email),
                ("MEMBER_PASSWORD", member_password),
                ("MEMBER_API_KEY", api_key),
                ("ADMIN_EMAIL", admin_email),
                ("ADMIN_PASSWORD", admin_password),
            ],
        )
        .await;
}

/// The plans of the billing journey: Free, and Team and Business at the test server's seeded
/// prices.
const PLANS: &str = r#"[
  {"name": "free", "display_name": "Free", "included_seats": 2},
  {"name": "team", "display_name": "Team", "stripe_price_monthly": "price_team_monthly",
   "stripe_price_yearly": "price_team_yearly", "included_seats": 5,
   "monthly_price_cents": 2900, "yearly_price_cents": 29000},
  {"name": "business", "display_name": "Business",
   "stripe_price_monthly": "price_business_monthly", "included_seats": 50,
   "monthly_price_cents": 9900}
]"#;

/// Stripe's webhooks arriving late, as they may: the checkout page's Pay button finds no
/// webhook URL (its deliveries fail), and a few seconds after the payment, while the customer
/// waits on the success page, the failed events are delivered again, as Stripe retries them.
async fn deliver_late(stripe: &FakeStripe, webhook_url: String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while !stripe
        .checkout_sessions()
        .iter()
        .any(|session| session["status"] == "complete")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkout was paid within 240 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stripe.set_webhook_url(webhook_url);
    let failed: Vec<String> = stripe
        .deliveries()
        .iter()
        .filter(|delivery| delivery.status.is_none())
        .map(|delivery| delivery.event_id.clone())
        .collect();
    assert_eq!(failed.len(), 3, "the payment's events: {failed:?}");
    for event in stripe
        .events()
        .iter()
        .filter(|event| failed.iter().any(|id| event["id"] == id.as_str()))
    {
        assert_eq!(stripe.deliver(event).await, 200, "delivering {event}");
    }
}

/// Billing, with the Stripe-compatible test server as Stripe: an owner signs up, opens the
/// billing page (Free, status none), chooses Team billed monthly, pays on the test server's
/// checkout page and comes back to the success page, which says Stripe is confirming and
/// reloads itself until the (late) webhooks have put the tenant on Team: active, with "Manage
/// billing".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_chooses_a_plan_and_pays_at_checkout() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let secret = stripe.webhook_secret();
    let base = stripe.url();
    let stack = Stack::start_with(&[
        ("billing.stripe_secret_key", SECRET_KEY),
        ("billing.webhook_secrets", &secret),
        ("billing.stripe_api_base", &base),
        ("billing.plans", PLANS),
    ])
    .await;
    let webhook_url = stack.app.url("/webhooks/stripe");
    tokio::join!(
        stack.run("billing.mjs", vec![("STRIPE_URL", stripe.url())]),
        deliver_late(&stripe, webhook_url),
    );
    let sessions = stripe.checkout_sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["status"], "complete", "{:?}", sessions[0]);
    stripe.stop().await;
}

/// Files: an owner opens the files page (nothing used), uploads an image and a short video
/// (the progress reaches 100%), sees the image's preview load and the video play in the page
/// (its content route answers `Range`), downloads the image, deletes both and sees the usage
/// bar back at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_uploads_previews_plays_and_deletes_files() {
    let root = tempfile::tempdir().expect("a folder for the files");
    let root_text = root.path().display().to_string();
    let stack = Stack::start_with(&[
        ("storage.backend", "local"),
        ("storage.local.root", &root_text),
    ])
    .await;
    stack.run("files.mjs", vec![]).await;
}
