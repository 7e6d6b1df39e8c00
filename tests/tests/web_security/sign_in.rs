//! Signing in: no account enumeration (answers and timing), password guessing throttled, no
//! open redirect afterwards, and outdated password hashes upgraded.

use std::time::{Duration, Instant};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version,
    password_hash::PasswordHasher as _,
};
use reqwest::{StatusCode, Url};
use tenantkit_tests::web_client::{BrowserClient, Page};

use super::{Kit, PASSWORD, SESSION, encode, signed_in, unix_now};

/// A page as compared across two emails: the CSRF token and the typed email blanked out.
fn normalised(page: &Page, email: &str) -> (StatusCode, Option<String>, Vec<String>, String) {
    let mut body = page.body.clone();
    if let Some(token) = page.csrf_token() {
        body = body.replace(&token, "CSRF");
    }
    let cookies = page
        .set_cookies()
        .iter()
        .filter_map(|c| c.split_once('=').map(|(name, _)| name.to_owned()))
        .collect();
    (
        page.status,
        page.location().map(str::to_owned),
        cookies,
        body.replace(email, "EMAIL"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_and_unknown_emails_get_the_same_answers() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let unknown = "nobody@acme.test";

    let forgot = async |email: &str| {
        kit.browser()
            .submit("/password/forgot", "/password/forgot", &[("email", email)])
            .await
    };
    let known_page = forgot("ada@acme.test").await;
    let unknown_page = forgot(unknown).await;
    assert_eq!(known_page.status, StatusCode::OK, "{known_page:?}");
    assert_eq!(
        normalised(&known_page, &ada.email),
        normalised(&unknown_page, unknown),
        "the reset form tells known and unknown emails apart"
    );

    let sign_up = async |organisation: &str, email: &str| {
        let fields = [
            ("organisation", organisation),
            ("name", "Someone"),
            ("email", email),
            ("password", "another good passphrase"),
        ];
        kit.browser().submit("/signup", "/signup", &fields).await
    };
    let hash = kit.password_hash(ada.id).await;
    let known_page = sign_up("Known Org", "ada@acme.test").await;
    let unknown_page = sign_up("Unknown Org", unknown).await;
    assert!(
        known_page.redirects_to("/signup/check-inbox"),
        "{known_page:?}"
    );
    assert_eq!(
        normalised(&known_page, &ada.email),
        normalised(&unknown_page, unknown),
        "sign-up tells known and unknown emails apart"
    );
    assert_eq!(
        kit.password_hash(ada.id).await,
        hash,
        "signing up again changed the password"
    );

    let wrong_password = kit
        .browser()
        .log_in(&ada.email, "not the password at all")
        .await;
    let unknown_email = kit
        .browser()
        .log_in("nobody.else@acme.test", PASSWORD)
        .await;
    assert_eq!(wrong_password.status, StatusCode::OK, "{wrong_password:?}");
    assert!(
        wrong_password
            .body
            .contains("The email or password is not correct")
    );
    assert_eq!(
        normalised(&wrong_password, &ada.email),
        normalised(&unknown_email, "nobody.else@acme.test"),
        "log-in tells an unknown email from a wrong password"
    );
}

/// How long the log-in form takes to refuse `email` with a wrong password.
async fn timed_refusal(browser: &BrowserClient, csrf: &str, email: &str) -> Duration {
    let started = Instant::now();
    let page = browser
        .post(
            "/login",
            &[
                ("csrf_token", csrf),
                ("email", email),
                ("password", "not the password at all"),
            ],
        )
        .await;
    let elapsed = started.elapsed();
    assert!(page.body.contains("not correct"), "{page:?}");
    elapsed
}

/// The fastest of several attempts: a busy machine only ever adds time, so the minimum is the
/// work the request itself does (a median still swung to 0.4 when the CPU was saturated).
fn fastest(times: Vec<Duration>) -> Duration {
    times.into_iter().min().expect("at least one attempt")
}

/// An unknown email is checked against a decoy hash, so it takes as long as a wrong password.
/// The fastest of interleaved attempts and a wide band (0.5–2×) keep this steady on a busy machine;
/// skipping the hash would make the unknown email several times faster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_email_takes_as_long_to_refuse_as_a_wrong_password() {
    let kit = Kit::spawn(&[("rate_limit.logins_per_account", "100")]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let unknown = "nobody@acme.test";
    let browser = kit.browser();
    let csrf = browser.csrf_token("/login").await;
    // Warm-up: the decoy hash is made on first use.
    timed_refusal(&browser, &csrf, unknown).await;
    timed_refusal(&browser, &csrf, &ada.email).await;
    let (mut known, mut unknowns) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        known.push(timed_refusal(&browser, &csrf, &ada.email).await);
        unknowns.push(timed_refusal(&browser, &csrf, unknown).await);
    }
    let (known, unknown) = (fastest(known), fastest(unknowns));
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown email {unknown:?} vs wrong password {known:?} (ratio {ratio:.2})"
    );
}

/// The counters are per fixed 15-minute window: a test must not straddle two.
async fn not_at_the_end_of_a_rate_limit_window() {
    let into_window = unix_now() % 900;
    if into_window > 890 {
        tokio::time::sleep(Duration::from_secs(901 - into_window)).await;
    }
}

fn assert_throttled(page: &Page, what: &str) {
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{what}: {page:?}"
    );
    assert!(
        page.body.contains("Too many attempts"),
        "{what}: {}",
        page.body
    );
    assert!(page.set_cookie(SESSION).is_none(), "{what} signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_locks_the_account_even_for_the_right_password() {
    let kit = Kit::spawn(&[("rate_limit.logins_per_account", "3")]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let (bo, _) = kit.owner("Bo Org", "bo@bo.test").await;
    not_at_the_end_of_a_rate_limit_window().await;

    let browser = kit.browser();
    for guess in 1..=3 {
        let page = browser.log_in(&ada.email, "a wrong guess, again").await;
        assert!(page.body.contains("not correct"), "guess {guess}: {page:?}");
    }
    let page = browser.log_in(&ada.email, PASSWORD).await;
    assert_throttled(&page, "the right password after the account's allowance");
    let page = browser.log_in(" ADA@acme.test ", PASSWORD).await;
    assert_throttled(&page, "the same email written differently");
    assert!(!signed_in(&browser).await);
    // Another account from the same address is not locked with it.
    kit.logged_in(&bo.email, PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_guessing_across_accounts_is_throttled_at_the_address_allowance() {
    let kit = Kit::spawn(&[
        ("rate_limit.logins_per_account", "3"),
        ("rate_limit.logins_per_address", "5"),
    ])
    .await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let (bo, _) = kit.owner("Bo Org", "bo@bo.test").await;
    let (cy, _) = kit.owner("Cy Org", "cy@cy.test").await;
    not_at_the_end_of_a_rate_limit_window().await;

    for _ in 0..4 {
        kit.browser()
            .log_in(&ada.email, "a wrong guess, again")
            .await;
    }
    // Four attempts from this address so far: Bo's account has its whole allowance and the
    // address one attempt left, which Bo gets in with.
    kit.logged_in(&bo.email, PASSWORD).await;
    let page = kit.browser().log_in(&bo.email, PASSWORD).await;
    assert_throttled(
        &page,
        "an account within its allowance, beyond the address's",
    );
    let page = kit.browser().log_in(&cy.email, PASSWORD).await;
    assert_throttled(&page, "a third account beyond the address's allowance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_logging_in_only_local_pages_are_followed() {
    let kit = Kit::spawn(&[("rate_limit.logins_per_account", "1000")]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let base = Url::parse(&kit.app.url("/")).unwrap();
    let browser = kit.browser();
    let hostile = [
        "https://evil.test/",
        "http://evil.test",
        "//evil.test",
        "//evil.test/dashboard",
        "///evil.test",
        "/\\evil.test",
        "/\\/evil.test",
        "\\\\evil.test",
        "\\/evil.test",
        "https:evil.test",
        "https:/evil.test",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "evil.test",
        " //evil.test",
        "/\t/evil.test",
        "/\n/evil.test",
        "%2F%2Fevil.test",
    ];
    for next in hostile {
        for in_query in [false, true] {
            let (action, fields) = if in_query {
                (format!("/login?next={}", encode(next)), vec![])
            } else {
                ("/login".to_owned(), vec![("next", next)])
            };
            let mut all = fields;
            all.extend([("email", ada.email.as_str()), ("password", PASSWORD)]);
            let page = browser.submit("/login", &action, &all).await;
            let location = page.location().unwrap_or_default().to_owned();
            assert_eq!(
                page.status,
                StatusCode::SEE_OTHER,
                "next={next:?}: {page:?}"
            );
            let target = base.join(&location).expect("a location");
            assert_eq!(
                (target.scheme(), target.host_str(), target.port()),
                (base.scheme(), base.host_str(), base.port()),
                "next={next:?} (in the query: {in_query}) sent the browser to {location:?}"
            );
            assert!(
                location.starts_with('/') && !location.starts_with("//"),
                "next={next:?}: {location:?}"
            );
            assert!(!location.contains('\\') && !location.chars().any(char::is_control));
        }
        // Nor is it carried into the form.
        let form = browser.get(&format!("/login?next={}", encode(next))).await;
        assert!(
            !form.body.contains("evil.test"),
            "next={next:?}: {}",
            form.body
        );
    }
    // Local pages are followed.
    let page = browser
        .submit(
            "/login?next=%2Fteam",
            "/login?next=%2Fteam",
            &[("email", &ada.email), ("password", PASSWORD)],
        )
        .await;
    assert!(page.redirects_to("/team"), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outdated_password_hashes_are_upgraded_at_sign_in() {
    let kit = Kit::spawn(&[]).await;
    let (ada, _) = kit.owner("Acme", "ada@acme.test").await;
    let current = "$argon2id$v=19$m=19456,t=2,p=1$";
    let outdated = [
        (Algorithm::Argon2id, Params::new(4096, 1, 1, None).unwrap()),
        (
            Algorithm::Argon2i,
            Params::new(19 * 1024, 2, 1, None).unwrap(),
        ),
    ];
    for (algorithm, params) in outdated {
        let salt: [u8; 16] = rand::random();
        let weak = Argon2::new(algorithm, Version::V0x13, params)
            .hash_password_with_salt(PASSWORD.as_bytes(), &salt)
            .expect("hash")
            .to_string();
        assert!(!weak.starts_with(current));
        kit.set_password_hash(ada.id, &weak).await;

        let page = kit
            .browser()
            .log_in(&ada.email, "not the password at all")
            .await;
        assert!(page.body.contains("not correct"));
        assert_eq!(
            kit.password_hash(ada.id).await,
            weak,
            "a wrong password rehashed"
        );

        kit.logged_in(&ada.email, PASSWORD).await;
        let upgraded = kit.password_hash(ada.id).await;
        assert!(upgraded.starts_with(current), "{weak} became {upgraded}");
        let parsed = PasswordHash::new(&upgraded).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(PASSWORD.as_bytes(), &parsed)
                .is_ok()
        );
        kit.logged_in(&ada.email, PASSWORD).await;
        assert_eq!(kit.password_hash(ada.id).await, upgraded, "rehashed again");
    }
}
