//! Browser journeys against the real application and worker, in Debian's Chromium driven by
//! playwright-core: what a customer does, found by labels and button text. The scripts are in
//! `tests/browser`; screenshots go to `$TENANTKIT_TEST_ARTIFACTS/<journey>`.

use std::time::Duration;

use tenantkit_tests::{
    TestApp, TestDb, browser::run_journey, env, process::free_port, settings_for,
    worker::RunningWorker,
};

/// Runs one journey against a fresh app (its own database) with a worker sending its mail.
/// The app listens on the port its public URL names, so the links in its emails work as sent.
async fn journey(script: &str) {
    let db = TestDb::new().await;
    let address = format!("127.0.0.1:{}", free_port());
    let public_url = format!("http://{address}");
    let overrides = [
        ("server.bind", address.as_str()),
        ("server.public_url", public_url.as_str()),
    ];
    let worker = RunningWorker::start(settings_for(&db, &overrides));
    let settings = settings_for(&db, &overrides);
    let app = TestApp::spawn_with(db, settings).await;
    run_journey(
        script,
        &[
            ("BASE_URL", app.url("")),
            ("TENANTKIT_TEST_MAILDIR", env("TENANTKIT_TEST_MAILDIR")),
        ],
    )
    .await;
    worker.stop_within(Duration::from_secs(30)).await;
    app.stop().await;
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
