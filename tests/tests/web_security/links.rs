//! Emailed links: single use, expiry, death with a password change, and tampering.

use chrono::Utc;
use reqwest::StatusCode;
use secrecy::SecretString;
use tenantkit_accounts::tokens::{TokenClaims, TokenPurpose, TokenSigner};
use tenantkit_tests::web_client::Page;

use super::{Kit, NEW_PASSWORD, PASSWORD, SESSION, assert_done, changed_tables, encode};

/// A link refused with a page of its own saying why, never an error.
fn assert_link_refused(page: &Page, reason: &str, what: &str) {
    assert!(!page.status.is_server_error(), "{what}: {page:?}");
    assert_ne!(
        page.status,
        StatusCode::SEE_OTHER,
        "{what} was followed: {page:?}"
    );
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{what}: {page:?}"
    );
    assert!(
        page.body.contains("cannot be used"),
        "{what}: {}",
        page.body
    );
    assert!(
        page.body.contains(reason),
        "{what} should say {reason:?}: {}",
        page.body
    );
    assert!(page.set_cookie(SESSION).is_none(), "{what} signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_links_work_once_and_never_after_they_expire() {
    let kit = Kit::spawn(&[]).await;
    let ada = kit.sign_up("Acme", "Ada", "ada@acme.test").await;

    let lifetime = TokenPurpose::VerifyEmail.lifetime();
    let issued = Utc::now() - lifetime - chrono::Duration::minutes(1);
    let expired = kit.token(TokenPurpose::VerifyEmail, &ada, issued).await;
    let page = kit.browser().get(&format!("/verify?token={expired}")).await;
    assert_link_refused(&page, "expired", "an expired verification link");
    assert!(!kit.verified(ada.id).await);

    let link = format!(
        "/verify?token={}",
        kit.token(TokenPurpose::VerifyEmail, &ada, Utc::now()).await
    );
    let page = kit.browser().get(&link).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    assert!(kit.verified(ada.id).await);
    let page = kit.browser().get(&link).await;
    assert_link_refused(&page, "already been used", "a used verification link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_links_work_once_expire_and_die_with_a_password_change() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let browser = kit.browser();
    let csrf = browser.csrf_token("/password/forgot").await;
    let post_reset = async |link: &str, password: &str| {
        browser
            .post(
                &format!("/password/reset?token={link}"),
                &[("csrf_token", csrf.as_str()), ("new_password", password)],
            )
            .await
    };

    // Expired: neither the form nor the change.
    let issued = Utc::now() - TokenPurpose::ResetPassword.lifetime() - chrono::Duration::minutes(1);
    let expired = kit.token(TokenPurpose::ResetPassword, &ada, issued).await;
    let hash = kit.password_hash(ada.id).await;
    let page = browser
        .get(&format!("/password/reset?token={expired}"))
        .await;
    assert_link_refused(&page, "expired", "the form of an expired reset link");
    let page = post_reset(&expired, NEW_PASSWORD).await;
    assert_link_refused(&page, "expired", "an expired reset link");
    assert_eq!(kit.password_hash(ada.id).await, hash);

    // Once: the second use changes nothing.
    let link = kit
        .token(TokenPurpose::ResetPassword, &ada, Utc::now())
        .await;
    let page = browser.get(&format!("/password/reset?token={link}")).await;
    assert!(page.body.contains("name=\"new_password\""), "{}", page.body);
    assert_done(
        &post_reset(&link, NEW_PASSWORD).await,
        "Your password was changed",
    );
    let after_reset = kit.password_hash(ada.id).await;
    assert_ne!(after_reset, hash);
    let page = post_reset(&link, "a passphrase of my own 9").await;
    assert_link_refused(&page, "not valid", "a used reset link");
    let page = browser.get(&format!("/password/reset?token={link}")).await;
    assert_link_refused(&page, "not valid", "the form of a used reset link");
    assert_eq!(kit.password_hash(ada.id).await, after_reset);

    // Issued before the password changed (here by its owner, signed in): dead.
    let link = kit
        .token(TokenPurpose::ResetPassword, &ada, Utc::now())
        .await;
    let ada_browser = kit.logged_in(&ada.email, NEW_PASSWORD).await;
    let page = ada_browser
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", NEW_PASSWORD),
                ("new_password", PASSWORD),
            ],
        )
        .await;
    assert_done(&page, "Your password was changed");
    let changed = kit.password_hash(ada.id).await;
    assert_ne!(changed, after_reset);
    let page = browser.get(&format!("/password/reset?token={link}")).await;
    assert_link_refused(
        &page,
        "not valid",
        "the form of a link older than the password",
    );
    let page = post_reset(&link, "a passphrase of my own 9").await;
    assert_link_refused(&page, "not valid", "a link older than the password");
    assert_eq!(kit.password_hash(ada.id).await, changed);
}

/// One-byte changes and other damage to a genuine token.
fn tampered(token: &str) -> Vec<String> {
    let (payload, signature) = token.split_once('.').expect("payload.signature");
    let flip = |text: &str, at: usize| {
        let mut bytes = text.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).expect("ASCII")
    };
    let mut variants = Vec::new();
    for at in [0, payload.len() / 3, payload.len() / 2, payload.len() - 1] {
        variants.push(format!("{}.{signature}", flip(payload, at)));
    }
    for at in [0, signature.len() / 2, signature.len() - 1] {
        variants.push(format!("{payload}.{}", flip(signature, at)));
    }
    variants.extend([
        payload.to_owned(),
        format!("{payload}."),
        format!(".{signature}"),
        token[..token.len() - 1].to_owned(),
        format!("{token}A"),
        format!("{token}.{signature}"),
        format!("{payload}.{signature}=="),
        String::new(),
        "not-a-token".to_owned(),
        "é.ü\u{0}".to_owned(),
        "x".repeat(5000),
    ]);
    variants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_links_get_a_friendly_page_never_an_error() {
    let kit = Kit::spawn(&[]).await;
    let (ada, ada_browser) = kit.owner("Acme", "ada@acme.test").await;
    let bo = kit.sign_up("Bo Org", "Bo", "bo@bo.test").await;
    let (_, invitation) = kit.invite(&ada_browser, ada.tenant, "cy@acme.test").await;
    let verify = kit.token(TokenPurpose::VerifyEmail, &bo, Utc::now()).await;
    let reset = kit
        .token(TokenPurpose::ResetPassword, &ada, Utc::now())
        .await;
    let mut claims = TokenClaims::new(
        TokenPurpose::ChangeEmail,
        ada.id,
        kit.stamp(ada.id).await,
        Utc::now(),
    );
    claims.email = Some("ada.new@acme.test".to_owned());
    let change_email = kit.signer.sign(&claims);
    let another_deployment = TokenSigner::new(&SecretString::from(
        "another deployment's secret key, 32+ bytes",
    ));
    let foreign = another_deployment.sign(&TokenClaims::new(
        TokenPurpose::ResetPassword,
        ada.id,
        kit.stamp(ada.id).await,
        Utc::now(),
    ));

    let browser = kit.browser();
    let csrf = browser.csrf_token("/login").await;
    let before = kit.snapshot().await;
    let links = [
        ("/verify", &verify, false),
        ("/password/reset", &reset, false),
        ("/password/reset", &reset, true),
        ("/account/email/confirm", &change_email, false),
        ("/invitations/accept", &invitation, false),
        ("/invitations/accept", &invitation, true),
    ];
    for (path, genuine, post) in links {
        let mut variants = tampered(genuine);
        // Genuine tokens, but for another link or from another deployment.
        variants.extend(
            [
                verify.clone(),
                reset.clone(),
                change_email.clone(),
                invitation.clone(),
            ]
            .into_iter()
            .filter(|t| t != genuine),
        );
        variants.push(foreign.clone());
        for variant in variants {
            let url = format!("{path}?token={}", encode(&variant));
            let page = if post {
                let fields = [
                    ("csrf_token", csrf.as_str()),
                    ("new_password", NEW_PASSWORD),
                    ("name", "Mallory"),
                    ("password", PASSWORD),
                ];
                browser.post(&url, &fields).await
            } else {
                browser.get(&url).await
            };
            let what = format!(
                "{} {path} with {variant:.60}",
                if post { "POST" } else { "GET" }
            );
            assert_link_refused(&page, "", &what);
        }
    }
    let after = kit.snapshot().await;
    assert!(
        before == after,
        "tampered links changed {:?}",
        changed_tables(&before, &after)
    );

    // The genuine links do work: the refusals were the tampering's doing.
    let page = browser.get(&format!("/password/reset?token={reset}")).await;
    assert!(page.body.contains("name=\"new_password\""), "{}", page.body);
    let page = browser
        .get(&format!("/invitations/accept?token={invitation}"))
        .await;
    assert!(page.body.contains("Join as member"), "{}", page.body);
    let page = browser
        .get(&format!("/account/email/confirm?token={change_email}"))
        .await;
    assert!(page.body.contains("Email address changed"), "{}", page.body);
    let page = browser.get(&format!("/verify?token={verify}")).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
}
