//! Two-factor authentication at sign-in, and platform admins made to enrol.

use reqwest::StatusCode;
use tenantkit_accounts::two_factor::{TotpSecret, code_at};
use tenantkit_tests::web_client::Page;

use super::{Kit, NEW_PASSWORD, PASSWORD, between, current_step, signed_in, unix_now};

/// A six-digit code the authenticator would not show around now.
fn wrong_code(secret: &TotpSecret) -> String {
    let step = u64::try_from(current_step()).unwrap();
    let valid: Vec<String> = (step - 2..=step + 3)
        .map(|s| code_at(secret, s * 30))
        .collect();
    (0..10u32)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_codes_are_required_single_use_and_recovery_codes_work_once() {
    let kit = Kit::spawn(&[]).await;
    let (ada, browser) = kit.owner("Acme", "ada@acme.test").await;

    // Enrolment through the pages.
    let page = browser.get("/account/two-factor").await;
    let secret = between(&page.body, "<code id=\"totp-secret\">", "</code>").expect("secret");
    let secret = TotpSecret::from_base32(secret).expect("a TOTP secret");
    let code = code_at(&secret, unix_now());
    let page = browser
        .submit(
            "/account/two-factor",
            "/account/two-factor",
            &[("code", &code)],
        )
        .await;
    let codes_html = between(&page.body, "<ul id=\"recovery-codes\">", "</ul>").expect("codes");
    let recovery: Vec<&str> = codes_html
        .split("<code>")
        .skip(1)
        .filter_map(|c| c.split("</code>").next())
        .collect();
    assert_eq!(recovery.len(), 10, "{codes_html}");
    browser.submit("/dashboard", "/logout", &[]).await;

    let refused = |page: &Page| page.status == StatusCode::OK && page.body.contains("not valid");

    // The password alone grants nothing.
    let first = kit.browser();
    let page = first.log_in(&ada.email, PASSWORD).await;
    assert!(page.redirects_to("/login/two-factor"), "{page:?}");
    for path in ["/dashboard", "/team", "/account", "/sessions"] {
        assert!(
            first.get(path).await.redirects_to("/login"),
            "{path} without the code"
        );
    }
    for bad in [
        wrong_code(&secret),
        "12345".to_owned(),
        "abcdef".to_owned(),
        String::new(),
    ] {
        let page = first
            .submit("/login/two-factor", "/login/two-factor", &[("code", &bad)])
            .await;
        assert!(refused(&page), "code {bad:?}: {page:?}");
    }
    assert!(!signed_in(&first).await);
    let code = kit.next_code(ada.id, &secret).await;
    let page = first
        .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    assert!(signed_in(&first).await);

    // The code seen once is not accepted again; a recovery code is, once.
    let second = kit.browser();
    second.log_in(&ada.email, PASSWORD).await;
    let page = second
        .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
        .await;
    assert!(refused(&page), "a replayed code: {page:?}");
    let page = second
        .submit(
            "/login/two-factor",
            "/login/two-factor",
            &[("code", recovery[0])],
        )
        .await;
    assert!(page.redirects_to("/dashboard"), "recovery code: {page:?}");

    let third = kit.browser();
    third.log_in(&ada.email, PASSWORD).await;
    let page = third
        .submit(
            "/login/two-factor",
            "/login/two-factor",
            &[("code", recovery[0])],
        )
        .await;
    assert!(refused(&page), "a used recovery code: {page:?}");
    let typed = recovery[1].to_uppercase().replace('-', " ");
    let page = third
        .submit(
            "/login/two-factor",
            "/login/two-factor",
            &[("code", &typed)],
        )
        .await;
    assert!(
        page.redirects_to("/dashboard"),
        "recovery code as typed: {page:?}"
    );
    let page = third.get("/account/two-factor").await;
    assert!(
        page.body.contains("8 recovery code(s) left"),
        "{}",
        page.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_admins_enrol_in_two_factor_before_anything_else() {
    let kit = Kit::spawn(&[]).await;
    let (root, _) = kit.owner("Acme", "root@acme.test").await;
    sqlx::query("update users set is_platform_admin = true where id = $1")
        .bind(root.id)
        .execute(&kit.app.db.owner)
        .await
        .unwrap();
    let browser = kit.logged_in(&root.email, PASSWORD).await;
    for path in ["/dashboard", "/team", "/account", "/sessions"] {
        let page = browser.get(path).await;
        assert!(page.redirects_to("/account/two-factor"), "{path}: {page:?}");
    }
    let hash = kit.password_hash(root.id).await;
    let page = browser
        .submit(
            "/account/two-factor",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert!(page.redirects_to("/account/two-factor"), "{page:?}");
    assert_eq!(kit.password_hash(root.id).await, hash);

    let page = browser.get("/account/two-factor").await;
    assert!(
        page.body.contains("must turn on two-factor"),
        "{}",
        page.body
    );
    let secret = between(&page.body, "<code id=\"totp-secret\">", "</code>").expect("secret");
    let secret = TotpSecret::from_base32(secret).expect("a TOTP secret");
    let code = code_at(&secret, unix_now());
    let page = browser
        .submit(
            "/account/two-factor",
            "/account/two-factor",
            &[("code", &code)],
        )
        .await;
    assert!(page.body.contains("recovery-codes"), "{}", page.body);
    for path in ["/dashboard", "/team"] {
        assert_eq!(browser.get(path).await.status, StatusCode::OK, "{path}");
    }
    let page = browser
        .submit(
            "/account/two-factor",
            "/account/two-factor/disable",
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
}
