//! Account emails end to end: a form or an API call commits a job, the real worker sends the
//! email through the real SMTP server, and the link in the message as received works over HTTP
//! against the real app, once. A job run again sends nothing twice, and no usable link token
//! ever sits in the queue.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantkit_tests::{
    account_flows::{
        AccountStack, PASSWORD, SESSION_COOKIE, assert_link_refused, assert_login_refused,
        assert_signed_in, emails_to, message_id_of, received_message_ids, subject, unique_email,
    },
    env,
    web_client::{BrowserClient, Page},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const NEW_PASSWORD: &str = "a different horse entirely";

/// Where a form post lands: the redirect it answers with, followed, or the page itself.
async fn landed(browser: &BrowserClient, page: Page) -> Page {
    match page.location() {
        Some(location) if page.status == StatusCode::SEE_OTHER => browser.get(location).await,
        _ => page,
    }
}

/// A form post that went through: no error page, no field errors.
#[track_caller]
fn assert_accepted(page: &Page) {
    assert!(
        page.status == StatusCode::OK || page.status == StatusCode::SEE_OTHER,
        "refused: {page:?}"
    );
    assert!(!page.body.contains("field-error"), "{}", page.body);
}

/// Invites `email` to the active tenant of the signed-in `owner` with the team page's form.
async fn invite_in_browser(owner: &BrowserClient, email: &str, role: &str) {
    let page = owner
        .submit(
            "/team",
            "/team/invitations",
            &[("email", email), ("role", role)],
        )
        .await;
    assert_accepted(&page);
}

/// Signs up an organisation (its owner is Ada) in a new browser, which is not signed in: the
/// address is not verified yet.
async fn sign_up_in_browser(
    stack: &AccountStack,
    organisation: &str,
    email: &str,
) -> BrowserClient {
    let browser = stack.browser();
    let page = browser
        .submit(
            "/signup",
            "/signup",
            &[
                ("organisation", organisation),
                ("name", "Ada"),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(page.redirects_to("/signup/check-inbox"), "{page:?}");
    assert!(
        browser.cookie(SESSION_COOKIE).is_none(),
        "signed in before verifying"
    );
    browser
}

async fn request_password_reset(stack: &AccountStack, email: &str) {
    let browser = stack.browser();
    let page = browser
        .submit("/password/forgot", "/password/forgot", &[("email", email)])
        .await;
    assert_accepted(&page);
    let page = landed(&browser, page).await;
    assert!(page.body.contains("Check your inbox"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emailed_verification_link_verifies_and_signs_in_once_then_a_welcome_follows() {
    let stack = AccountStack::start().await;
    let email = unique_email("signup");
    let browser = sign_up_in_browser(&stack, "Verify Works", &email).await;
    assert_eq!(stack.verified_at(&email).await, None);

    let verification = stack.wait_for_email(&email, subject::VERIFY).await;
    assert!(
        verification.text.contains("Hello Ada"),
        "{}",
        verification.text
    );
    let link = stack.link_in(&verification, "/verify");
    stack.assert_no_token_in_queue(&link).await;

    assert_signed_in(&browser.get(&link).await);
    let verified_at = stack.verified_at(&email).await;
    assert!(verified_at.is_some(), "the address was not marked verified");
    let dashboard = browser.get("/dashboard").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{dashboard:?}");
    assert!(
        dashboard.body.contains("Welcome, Ada"),
        "{}",
        dashboard.body
    );

    let welcome = stack.wait_for_email(&email, subject::WELCOME).await;
    assert!(
        welcome.subject.contains("Verify Works"),
        "{}",
        welcome.subject
    );
    stack.link_in(&welcome, "/dashboard");

    // The same link again, say from another device: refused, no session, nothing redone.
    let other = stack.browser();
    let page = other.get(&link).await;
    assert_link_refused(&page);
    assert!(page.body.contains("already been used"), "{}", page.body);
    assert!(other.get("/dashboard").await.redirects_to("/login"));
    assert_eq!(stack.verified_at(&email).await, verified_at);
    assert_eq!(stack.account_jobs("welcome").await, 1, "a second welcome");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_through_the_emailed_link_once() {
    let stack = AccountStack::start().await;
    let (signed_in_before, email, _) = stack.verified_owner("Reset Works").await;
    let (_, page) = stack.log_in(&email, PASSWORD).await;
    assert_signed_in(&page);

    request_password_reset(&stack, &email).await;
    let reset = stack.wait_for_email(&email, subject::RESET).await;
    let link = stack.link_in(&reset, "/password/reset");
    stack.assert_no_token_in_queue(&link).await;

    let browser = stack.browser();
    let form = browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    assert!(form.body.contains("name=\"new_password\""), "{}", form.body);
    let page = browser
        .submit(&link, &link, &[("new_password", NEW_PASSWORD)])
        .await;
    assert_accepted(&page);
    let page = landed(&browser, page).await;
    assert!(
        page.body.contains("Your password was changed"),
        "{}",
        page.body
    );
    let changed = stack
        .wait_for_email(&email, subject::PASSWORD_CHANGED)
        .await;
    stack.link_in(&changed, "/password/forgot");

    let (_, page) = stack.log_in(&email, PASSWORD).await;
    assert_login_refused(&page);
    let (browser, page) = stack.log_in(&email, NEW_PASSWORD).await;
    assert_signed_in(&page);
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);
    // A new password ends the sessions that were open.
    assert!(
        signed_in_before
            .get("/dashboard")
            .await
            .redirects_to("/login")
    );

    // The same link again: no form, and a post with it changes nothing.
    let hash = stack.password_hash(&email).await;
    let again = stack.browser();
    let page = again.get(&link).await;
    assert_link_refused(&page);
    assert!(!page.body.contains("new_password"), "{}", page.body);
    let page = again
        .submit(
            "/password/forgot",
            &link,
            &[("new_password", "yet another long password")],
        )
        .await;
    assert_link_refused(&page);
    assert_eq!(stack.password_hash(&email).await, hash);
    let (_, page) = stack.log_in(&email, "yet another long password").await;
    assert_login_refused(&page);
    assert_eq!(
        stack.account_jobs("password_changed").await,
        1,
        "the password was changed twice"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_email_lets_a_new_person_create_an_account_with_the_invited_role() {
    let stack = AccountStack::start().await;
    let (owner, _, tenant) = stack.verified_owner("Invite Works").await;
    let invitee = unique_email("invitee");
    invite_in_browser(&owner, &invitee, "admin").await;

    let invitation = stack.wait_for_email(&invitee, subject::INVITATION).await;
    assert!(
        invitation.subject.contains("Invite Works"),
        "{}",
        invitation.subject
    );
    assert!(invitation.text.contains("as admin"), "{}", invitation.text);
    let link = stack.link_in(&invitation, "/invitations/accept");
    stack.assert_no_token_in_queue(&link).await;

    let browser = stack.browser();
    let form = browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    assert!(
        form.body
            .contains(&format!("Create your account for {invitee}")),
        "{}",
        form.body
    );
    let page = browser
        .submit(&link, &link, &[("name", "Grace"), ("password", PASSWORD)])
        .await;
    assert_signed_in(&page);
    let dashboard = browser.get("/dashboard").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{dashboard:?}");
    assert!(
        dashboard.body.contains("You are admin of Invite Works"),
        "{}",
        dashboard.body
    );
    assert_eq!(
        stack.roles_of(&invitee).await,
        BTreeMap::from([(tenant, "admin".to_owned())])
    );
    assert!(
        stack.verified_at(&invitee).await.is_some(),
        "the invited address counts as verified"
    );

    // The link is spent: no second account, no second membership.
    let again = stack.browser();
    let page = again.get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(
        page.body.contains("This invitation cannot be used"),
        "{}",
        page.body
    );
    let page = again
        .submit(
            "/signup",
            &link,
            &[("name", "Mallory"), ("password", PASSWORD)],
        )
        .await;
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "a spent invitation signed someone in"
    );
    assert_eq!(stack.users_with_email(&invitee).await, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_another_organisation_accepts_an_invitation_while_signed_in() {
    let stack = AccountStack::start().await;
    let (owner, _, tenant) = stack.verified_owner("Host Org").await;
    let (guest, guest_email, guest_tenant) = stack.verified_owner("Guest Org").await;
    invite_in_browser(&owner, &guest_email, "member").await;

    let invitation = stack
        .wait_for_email(&guest_email, subject::INVITATION)
        .await;
    assert!(
        invitation.subject.contains("Host Org"),
        "{}",
        invitation.subject
    );
    let link = stack.link_in(&invitation, "/invitations/accept");
    stack.assert_no_token_in_queue(&link).await;

    // Not signed in, the existing account is asked to log in rather than sign up again.
    let page = stack.browser().get(&link).await;
    assert!(
        page.body.contains("already has an account"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("name=\"password\""), "{}", page.body);

    let form = guest.get(&link).await;
    assert_eq!(form.status, StatusCode::OK, "{form:?}");
    assert!(
        form.body
            .contains(&format!("Accept the invitation for {guest_email}")),
        "{}",
        form.body
    );
    let page = guest.submit(&link, &link, &[]).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    let dashboard = guest.get("/dashboard").await;
    assert_eq!(dashboard.status, StatusCode::OK, "{dashboard:?}");
    assert!(
        dashboard.body.contains("You are member of Host Org"),
        "the joined organisation is not the active one: {}",
        dashboard.body
    );
    assert_eq!(
        stack.roles_of(&guest_email).await,
        BTreeMap::from([
            (tenant, "member".to_owned()),
            (guest_tenant, "owner".to_owned())
        ])
    );
    assert_eq!(stack.users_with_email(&guest_email).await, 1);
    stack.stop().await;
}

/// A JSON API call authenticated by `browser`'s session cookie, with its CSRF token.
async fn api_as(
    stack: &AccountStack,
    browser: &BrowserClient,
    path: &str,
    body: Value,
) -> (StatusCode, String) {
    let cookie = format!(
        "{SESSION_COOKIE}={}",
        browser.cookie(SESSION_COOKIE).expect("signed in")
    );
    let me = browser.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    let me: Value = serde_json::from_str(&me.body).expect("JSON");
    let response = stack
        .app
        .client
        .post(stack.app.url(path))
        .header("cookie", cookie)
        .header(
            "x-csrf-token",
            me["csrf_token"].as_str().expect("csrf_token"),
        )
        .json(&body)
        .send()
        .await
        .expect("request");
    (response.status(), response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_made_with_an_api_key_is_emailed_and_accepted() {
    let stack = AccountStack::start().await;
    let (owner, _, tenant) = stack.verified_owner("Api Org").await;
    let (status, body) = api_as(
        &stack,
        &owner,
        &format!("/api/v1/tenants/{tenant}/api-keys"),
        json!({ "name": "invitations", "role": "admin" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "creating an API key: {body}");
    let created: Value = serde_json::from_str(&body).expect("JSON");
    let key = created["token"].as_str().expect("the key");

    let invitee = unique_email("api-invitee");
    let response = stack
        .app
        .client
        .post(
            stack
                .app
                .url(&format!("/api/v1/tenants/{tenant}/invitations")),
        )
        .bearer_auth(key)
        .json(&json!({ "email": invitee, "role": "member" }))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{:?}",
        response.text().await
    );

    let invitation = stack.wait_for_email(&invitee, subject::INVITATION).await;
    assert!(invitation.text.contains("as member"), "{}", invitation.text);
    let link = stack.link_in(&invitation, "/invitations/accept");
    stack.assert_no_token_in_queue(&link).await;
    let browser = stack.browser();
    let page = browser
        .submit(&link, &link, &[("name", "Grace"), ("password", PASSWORD)])
        .await;
    assert_signed_in(&page);
    assert_eq!(
        stack.roles_of(&invitee).await,
        BTreeMap::from([(tenant, "member".to_owned())])
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_unverified_resends_a_verification_link_that_works() {
    let stack = AccountStack::start().await;
    let email = unique_email("unverified");
    sign_up_in_browser(&stack, "Resend Works", &email).await;
    let first = stack.link_in(
        &stack.wait_for_email(&email, subject::VERIFY).await,
        "/verify",
    );

    let (_, page) = stack.log_in(&email, PASSWORD).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "signed in unverified"
    );
    assert!(page.body.contains("not verified yet"), "{}", page.body);
    let links: Vec<String> = stack
        .wait_for_emails(&email, subject::VERIFY, 2)
        .await
        .iter()
        .map(|e| stack.link_in(e, "/verify"))
        .collect();
    assert_eq!(links.len(), 2);
    let second = links
        .into_iter()
        .find(|link| *link != first)
        .expect("a new link");
    stack.assert_no_token_in_queue(&second).await;

    let browser = stack.browser();
    assert_signed_in(&browser.get(&second).await);
    assert!(stack.verified_at(&email).await.is_some());
    assert_eq!(browser.get("/dashboard").await.status, StatusCode::OK);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_email_is_sent_once_however_many_verification_links_are_opened() {
    let stack = AccountStack::start().await;
    let email = unique_email("twolinks");
    sign_up_in_browser(&stack, "Two Links", &email).await;
    stack.wait_for_email(&email, subject::VERIFY).await;
    // Logging in before verifying sends a second link.
    let (_, page) = stack.log_in(&email, PASSWORD).await;
    assert!(page.body.contains("not verified yet"), "{}", page.body);
    let links: Vec<String> = stack
        .wait_for_emails(&email, subject::VERIFY, 2)
        .await
        .iter()
        .map(|e| stack.link_in(e, "/verify"))
        .collect();

    for link in &links {
        stack.browser().get(link).await;
    }
    assert!(stack.verified_at(&email).await.is_some());
    assert_eq!(
        stack.account_jobs("welcome").await,
        1,
        "the address was verified once, yet more than one welcome email was queued"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_resends_the_verification_email() {
    let stack = AccountStack::start().await;
    let (browser, email, _) = stack.verified_owner("Account Resend").await;
    // The page offers a new link to a signed-in user whose address is not verified; the
    // database says this one's is not.
    sqlx::query("update users set email_verified_at = null where lower(email) = lower($1)")
        .bind(&email)
        .execute(&stack.app.db.owner)
        .await
        .expect("unverify");
    let account = browser.get("/account").await;
    assert!(
        account.body.contains("Resend verification email"),
        "{}",
        account.body
    );

    let page = browser
        .submit("/account", "/account/verification", &[])
        .await;
    assert_accepted(&page);
    let emails = stack.wait_for_emails(&email, subject::VERIFY, 2).await;
    assert_eq!(emails.len(), 2);
    // The first link was used at sign-up: of the two, exactly the new one works.
    let mut signed_in = Vec::new();
    for email in &emails {
        let page = stack.browser().get(&stack.link_in(email, "/verify")).await;
        signed_in.push(page.set_cookie(SESSION_COOKIE).is_some());
    }
    assert_eq!(
        signed_in.iter().filter(|yes| **yes).count(),
        1,
        "{signed_in:?}"
    );
    assert!(stack.verified_at(&email).await.is_some());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_email_address_takes_effect_only_once_its_emailed_link_is_opened() {
    let stack = AccountStack::start().await;
    let (browser, old_email, _) = stack.verified_owner("Email Change").await;
    let new_email = unique_email("moved");

    let page = browser
        .submit(
            "/account",
            "/account/email",
            &[("new_email", &new_email), ("password", PASSWORD)],
        )
        .await;
    assert_accepted(&page);

    let confirmation = stack
        .wait_for_email(&new_email, subject::EMAIL_CHANGE)
        .await;
    let link = stack.link_in(&confirmation, "/account/email/confirm");
    stack.assert_no_token_in_queue(&link).await;
    // Nothing changes until the link is opened.
    assert_eq!(stack.users_with_email(&old_email).await, 1);
    assert_eq!(stack.users_with_email(&new_email).await, 0);
    let (_, page) = stack.log_in(&new_email, PASSWORD).await;
    assert_login_refused(&page);

    let page = stack.browser().get(&link).await;
    assert_eq!(page.status, StatusCode::OK, "{page:?}");
    assert!(page.body.contains("Email address changed"), "{}", page.body);
    assert_eq!(stack.users_with_email(&old_email).await, 0);
    assert!(stack.verified_at(&new_email).await.is_some());
    let (_, page) = stack.log_in(&new_email, PASSWORD).await;
    assert_signed_in(&page);
    let (_, page) = stack.log_in(&old_email, PASSWORD).await;
    assert_login_refused(&page);

    let page = stack.browser().get(&link).await;
    assert!(
        page.body.contains("This link cannot be used"),
        "{}",
        page.body
    );
    assert_eq!(stack.users_with_email(&new_email).await, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_email_job_run_again_sends_nothing_twice() {
    let mut stack = AccountStack::start().await;
    let (owner, email, _) = stack.verified_owner("Repeat Co").await;
    stack.wait_for_email(&email, subject::WELCOME).await;
    request_password_reset(&stack, &email).await;
    stack.wait_for_email(&email, subject::RESET).await;
    let invitee = unique_email("repeat-invitee");
    invite_in_browser(&owner, &invitee, "member").await;
    stack.wait_for_email(&invitee, subject::INVITATION).await;
    stack.stop_worker().await;
    stack.assert_all_jobs_done().await;

    let jobs = stack.jobs().await;
    let in_queue = |queue: &str| jobs.iter().filter(|job| job.queue == queue).count();
    assert_eq!(
        (in_queue("email.account"), in_queue("email.invitation")),
        (3, 1),
        "{jobs:?}"
    );
    let once: BTreeMap<String, usize> = jobs
        .iter()
        .map(|job| (message_id_of(&job.key), 1))
        .collect();
    assert_eq!(received_message_ids(&[&email, &invitee]), once);

    // The queue hands every job out again, as it does when it takes a worker for lost.
    let requeued = sqlx::query(
        "update apalis.jobs set status = 'Pending', attempts = attempts + 1, lock_by = null,
         lock_at = null, done_at = null, run_at = now() - interval '1 second'",
    )
    .execute(&stack.app.db.owner)
    .await
    .expect("requeue");
    assert_eq!(requeued.rows_affected(), 4);
    stack.drain_queue().await;

    assert_eq!(received_message_ids(&[&email, &invitee]), once);
    let mut ledger: BTreeSet<String> =
        sqlx::query_scalar::<_, String>("select idempotency_key from account_emails_sent")
            .fetch_all(&stack.app.db.owner)
            .await
            .expect("account ledger")
            .into_iter()
            .collect();
    ledger.extend(
        sqlx::query_scalar::<_, String>("select idempotency_key from sent_emails")
            .fetch_all(&stack.app.db.owner)
            .await
            .expect("tenant ledger"),
    );
    let keys: BTreeSet<String> = jobs.into_iter().map(|job| job.key).collect();
    assert_eq!(ledger, keys, "one ledger row per job");
    stack.stop().await;
}

/// A TCP relay to the real SMTP server that holds back each of the server's replies for
/// `delay`: every delivery takes a while, so a batch is still running when the worker stops.
async fn slow_smtp_relay(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let upstream = env("TENANTKIT_TEST_SMTP")
        .trim_start_matches("smtp://")
        .to_owned();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let up = tokio::io::copy(&mut client_read, &mut server_write);
                let down = async {
                    let mut buffer = [0u8; 4096];
                    loop {
                        let n = server_read.read(&mut buffer).await?;
                        if n == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        tokio::time::sleep(delay).await;
                        client_write.write_all(&buffer[..n]).await?;
                    }
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    format!("smtp://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_batch_and_restarted_sends_each_email_exactly_once() {
    let mut stack = AccountStack::without_worker().await;
    let email = unique_email("batch");
    stack.app.sign_up("Batch Co", &email).await;
    for _ in 0..7 {
        request_password_reset(&stack, &email).await;
    }
    let jobs = stack.jobs().await;
    assert_eq!(jobs.len(), 8, "{jobs:?}");

    // One job at a time through a slow SMTP server; stopped once the first email is in.
    let relay = slow_smtp_relay(Duration::from_millis(150)).await;
    stack.start_worker(&[("smtp.url", relay.as_str()), ("worker.concurrency", "1")]);
    stack.wait_for_emails(&email, "", 1).await;
    stack.stop_worker().await;
    let before_restart = emails_to(&email).len();
    assert!(
        before_restart < jobs.len(),
        "the whole batch was sent before the worker stopped: the test proves nothing"
    );

    stack.start_worker(&[]);
    stack.wait_for_emails(&email, "", jobs.len()).await;
    stack.stop_worker().await;
    stack.assert_all_jobs_done().await;
    let once: BTreeMap<String, usize> = jobs
        .iter()
        .map(|job| (message_id_of(&job.key), 1))
        .collect();
    assert_eq!(
        received_message_ids(&[&email]),
        once,
        "{before_restart} sent before the restart"
    );
    let ledger: BTreeSet<String> =
        sqlx::query_scalar::<_, String>("select idempotency_key from account_emails_sent")
            .fetch_all(&stack.app.db.owner)
            .await
            .expect("ledger")
            .into_iter()
            .collect();
    let keys: BTreeSet<String> = jobs.into_iter().map(|job| job.key).collect();
    assert_eq!(ledger, keys);
    stack.stop().await;
}
