//! Sessions: fixation, logging out, a new password ending the other sessions, and the
//! attributes of the cookies that carry them.

use chrono::Utc;
use reqwest::StatusCode;
use tenantkit_accounts::tokens::TokenPurpose;

use super::{Kit, NEW_PASSWORD, PASSWORD, SESSION, assert_done, signed_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_is_renewed_at_sign_in_and_after_the_second_factor() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let (mallory, _) = kit.owner("Mallory Org", "mallory@evil.test").await;

    // An id the attacker made up, planted in the victim's browser before they log in.
    let victim = kit.browser();
    victim.get("/login").await;
    let planted = "attacker-chosen-session-id-0123456789abcdef";
    victim.set_cookie(SESSION, planted);
    let page = victim.log_in(&ada.email, PASSWORD).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    assert!(page.set_cookie(SESSION).is_some(), "no new session cookie");
    let first = victim.cookie(SESSION).expect("session cookie");
    assert_ne!(first, planted);
    assert!(!kit.cookie_signs_in(planted).await);
    assert!(kit.cookie_signs_in(&first).await);

    // A live session of the attacker's own, planted the same way, is replaced and ended.
    let attacker = kit.logged_in(&mallory.email, PASSWORD).await;
    let attackers = attacker.cookie(SESSION).expect("session cookie");
    victim.set_cookie(SESSION, &attackers);
    let page = victim.log_in(&ada.email, PASSWORD).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    let second = victim.cookie(SESSION).expect("session cookie");
    assert_ne!(second, attackers);
    assert_ne!(second, first);
    assert!(!kit.cookie_signs_in(&attackers).await);

    // Logging in again while signed in: a new id, and the old one is over.
    let page = victim.log_in(&ada.email, PASSWORD).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    let third = victim.cookie(SESSION).expect("session cookie");
    assert_ne!(third, second);
    assert!(!kit.cookie_signs_in(&second).await);
    assert!(kit.cookie_signs_in(&third).await);

    // With two-factor: the half-signed-in id grants nothing and is replaced after the code.
    let (dee, _) = kit.owner("Dee Org", "dee@dee.test").await;
    let secret = kit.enable_two_factor(dee.id).await;
    let browser = kit.browser();
    let page = browser.log_in(&dee.email, PASSWORD).await;
    assert!(page.redirects_to("/login/two-factor"), "{page:?}");
    let pending = browser.cookie(SESSION).expect("pending session cookie");
    assert!(!signed_in(&browser).await, "a password alone signed in");
    assert_eq!(browser.get("/team").await.location(), Some("/login"));
    let code = kit.next_code(dee.id, &secret).await;
    let page = browser
        .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    let full = browser.cookie(SESSION).expect("session cookie");
    assert_ne!(full, pending);
    assert!(kit.cookie_signs_in(&full).await);
    let replayed = kit.browser();
    replayed.set_cookie(SESSION, &pending);
    assert!(
        replayed
            .get("/login/two-factor")
            .await
            .redirects_to("/login"),
        "the pending session outlived the second factor"
    );
    assert!(!signed_in(&replayed).await);

    // Logging out ends the id for good.
    let page = browser.submit("/dashboard", "/logout", &[]).await;
    assert!(page.redirects_to("/"), "{page:?}");
    assert!(!kit.cookie_signs_in(&full).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_session_and_a_new_password_ends_every_other_one() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let (_, bo) = kit.owner("Bo Org", "bo@bo.test").await;
    let laptop = kit.logged_in(&ada.email, PASSWORD).await;
    let phone = kit.logged_in(&ada.email, PASSWORD).await;

    let old = laptop.cookie(SESSION).expect("session cookie");
    let page = laptop.submit("/dashboard", "/logout", &[]).await;
    assert!(page.redirects_to("/"), "{page:?}");
    let cleared = page.set_cookie(SESSION).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(!signed_in(&laptop).await);
    // Replaying the cookie a copy was kept of: the session is over on the server.
    let replay = kit.browser();
    replay.set_cookie(SESSION, &old);
    assert!(replay.get("/dashboard").await.redirects_to("/login"));
    assert!(replay.get("/account").await.redirects_to("/login"));
    assert!(
        signed_in(&phone).await,
        "logging out on one device ended another"
    );

    let tablet = kit.logged_in(&ada.email, PASSWORD).await;
    let page = phone
        .submit(
            "/account",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_done(&page, "other sessions were signed out");
    assert!(
        signed_in(&phone).await,
        "the session that changed the password ended"
    );
    assert!(
        !signed_in(&tablet).await,
        "another session survived the new password"
    );
    assert!(signed_in(&bo).await, "another user's session ended");
    let refused = kit.browser().log_in(&ada.email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.body.contains("not correct"), "{}", refused.body);
    let desktop = kit.logged_in(&ada.email, NEW_PASSWORD).await;

    // A reset from an emailed link ends every session, the one that asked included.
    let link = kit
        .token(TokenPurpose::ResetPassword, &ada, Utc::now())
        .await;
    let path = format!("/password/reset?token={link}");
    let page = kit
        .browser()
        .submit(
            &path,
            &path,
            &[("new_password", "yet another passphrase 7")],
        )
        .await;
    assert_done(&page, "Your password was changed");
    assert!(!signed_in(&phone).await);
    assert!(!signed_in(&desktop).await);
    assert!(signed_in(&bo).await);
}

/// A `Set-Cookie` value's attributes, lowercased, without the name=value pair.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

fn has(attributes: &[String], wanted: &str) -> bool {
    attributes.iter().any(|a| a == wanted)
}

fn starts(attributes: &[String], prefix: &str) -> Option<String> {
    attributes.iter().find(|a| a.starts_with(prefix)).cloned()
}

/// HttpOnly, SameSite=Lax, Path=/, no Domain; Secure when `secure`; Max-Age only if remembered.
fn assert_cookie(set_cookie: &str, secure: bool, remembered: bool) {
    let attrs = attributes(set_cookie);
    assert!(has(&attrs, "httponly"), "{set_cookie}");
    assert!(has(&attrs, "samesite=lax"), "{set_cookie}");
    assert!(has(&attrs, "path=/"), "{set_cookie}");
    assert!(starts(&attrs, "domain").is_none(), "{set_cookie}");
    assert_eq!(has(&attrs, "secure"), secure, "{set_cookie}");
    assert!(starts(&attrs, "expires").is_none(), "{set_cookie}");
    match starts(&attrs, "max-age=") {
        Some(max_age) => {
            let seconds: u64 = max_age["max-age=".len()..].parse().expect("seconds");
            assert!(
                remembered,
                "a browser-session cookie has {max_age}: {set_cookie}"
            );
            assert!(seconds >= 24 * 3600, "remembered for {seconds} s only");
        }
        None => assert!(
            !remembered,
            "a remembered cookie without Max-Age: {set_cookie}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_http_only_same_site_lax_and_remembered_only_when_asked() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let browser = kit.browser();
    let page = browser.get("/login").await;
    assert_cookie(
        page.set_cookie("tk_anon").expect("anonymous cookie"),
        false,
        false,
    );
    let page = browser.log_in(&ada.email, PASSWORD).await;
    assert!(page.redirects_to("/dashboard"));
    assert_cookie(
        page.set_cookie(SESSION).expect("session cookie"),
        false,
        false,
    );

    let page = kit
        .browser()
        .submit(
            "/login",
            "/login",
            &[
                ("email", &ada.email),
                ("password", PASSWORD),
                ("remember", "on"),
            ],
        )
        .await;
    assert!(page.redirects_to("/dashboard"));
    assert_cookie(
        page.set_cookie(SESSION).expect("session cookie"),
        false,
        true,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_are_host_prefixed_and_secure() {
    let kit = Kit::spawn(&[("server.secure_cookies", "true")]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let browser = kit.browser();
    let page = browser.get("/login").await;
    assert!(page.set_cookie("tk_anon").is_none(), "{page:?}");
    assert_cookie(
        page.set_cookie("__Host-tk_anon").expect("anonymous cookie"),
        true,
        false,
    );

    let page = browser.log_in(&ada.email, PASSWORD).await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    assert!(page.set_cookie(SESSION).is_none(), "{page:?}");
    let set = page
        .set_cookie("__Host-tk_session")
        .expect("session cookie");
    assert_cookie(set, true, false);
    assert!(signed_in(&browser).await);
    // Only the prefixed cookie counts: one without the prefix (which a sibling subdomain or a
    // plain-HTTP page could set) is ignored.
    let session = browser.cookie("__Host-tk_session").unwrap();
    assert!(!kit.cookie_signs_in(&session).await);

    let remembered = kit.browser();
    let page = remembered
        .submit(
            "/login",
            "/login",
            &[
                ("email", &ada.email),
                ("password", PASSWORD),
                ("remember", "on"),
            ],
        )
        .await;
    assert_cookie(
        page.set_cookie("__Host-tk_session").expect("session"),
        true,
        true,
    );

    // Deleting a __Host- cookie needs the same attributes, or the browser ignores it.
    let page = browser.submit("/dashboard", "/logout", &[]).await;
    let cleared = page.set_cookie("__Host-tk_session").expect("cleared");
    let attrs = attributes(cleared);
    assert!(has(&attrs, "secure") && has(&attrs, "path=/") && has(&attrs, "max-age=0"));
    assert!(starts(&attrs, "domain").is_none(), "{cleared}");
}

/// Another application on the same host may set cookies holding any UTF-8 text (bytes that are
/// not UTF-8 are refused with 400 for every cookie). Such a cookie must not hide the session
/// cookie beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_cookie_with_non_ascii_bytes_does_not_sign_the_user_out() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let session = kit
        .logged_in(&ada.email, PASSWORD)
        .await
        .cookie(SESSION)
        .expect("session cookie");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for other in [
        "other=caf\u{e9}".as_bytes().to_vec(),
        b"\xc3\xa9=x".to_vec(),
        b"broken".to_vec(),
    ] {
        let mut header = other.clone();
        header.extend_from_slice(format!("; {SESSION}={session}; later=\u{fc}ber").as_bytes());
        let response = client
            .get(kit.app.url("/dashboard"))
            .header(
                reqwest::header::COOKIE,
                reqwest::header::HeaderValue::from_bytes(&header).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "signed out by the cookie {:?}",
            String::from_utf8_lossy(&other)
        );
    }
}
