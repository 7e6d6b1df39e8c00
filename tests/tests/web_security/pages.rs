//! What every page carries: security headers, and what users typed shown escaped.

use reqwest::StatusCode;
use tenantkit_tests::web_client::Page;

use super::Kit;

fn assert_security_headers(page: &Page, what: &str) {
    let csp = page
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .map(str::to_owned)
    };
    let default = directive("default-src");
    for kind in ["script-src", "style-src"] {
        let effective = directive(kind)
            .or_else(|| default.clone())
            .unwrap_or_else(|| panic!("{what}: {kind} is unrestricted: {csp}"));
        for weak in [
            "'unsafe-inline'",
            "'unsafe-eval'",
            "*",
            "data:",
            "http:",
            "https:",
        ] {
            assert!(
                !effective.split_whitespace().any(|source| source == weak),
                "{what}: {kind} allows {weak}: {csp}"
            );
        }
    }
    let frame_ancestors_none =
        directive("frame-ancestors").as_deref() == Some("frame-ancestors 'none'");
    let x_frame_deny = page
        .header("x-frame-options")
        .is_some_and(|v| v.eq_ignore_ascii_case("deny"));
    assert!(
        frame_ancestors_none || x_frame_deny,
        "{what}: may be framed"
    );
    assert_eq!(
        page.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    let referrer = page.header("referrer-policy").unwrap_or_default();
    assert!(
        [
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer),
        "{what}: Referrer-Policy {referrer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers_and_escape_what_users_typed() {
    let kit = Kit::spawn(&[]).await;
    let script = "<script>alert(1)</script>";
    let ada = kit.sign_up(script, script, "ada@acme.test").await;
    let browser = kit.verified_by_link(&ada).await;
    kit.invite(
        &browser,
        ada.tenant,
        "<img/src=x/onerror=alert(2)>@evil.test",
    )
    .await;

    let anonymous = kit.browser();
    for path in ["/", "/login", "/signup", "/password/forgot", "/nowhere"] {
        assert_security_headers(&anonymous.get(path).await, path);
    }
    assert_security_headers(&anonymous.get("/verify?token=x").await, "a refused link");
    assert_security_headers(&anonymous.post("/logout", &[]).await, "a CSRF refusal");
    for path in [
        "/dashboard",
        "/team",
        "/account",
        "/sessions",
        "/account/two-factor",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {page:?}");
        assert_security_headers(&page, path);
        assert!(
            !page.body.contains("<script"),
            "{path} runs the name: {}",
            page.body
        );
    }
    for path in ["/dashboard", "/team"] {
        let body = browser.get(path).await.body;
        // The organisation's and the owner's names are shown, as text.
        assert!(
            unescaped(&body).matches(script).count() >= 2,
            "{path}: {body}"
        );
    }
    let team = browser.get("/team").await.body;
    assert!(
        !team.contains("<img"),
        "the invited address is markup: {team}"
    );
    assert!(
        unescaped(&team).contains("<img/src=x/onerror=alert(2)>@evil.test"),
        "{team}"
    );
}

/// Text as a browser shows it: the character references HTML escaping writes, decoded.
fn unescaped(html: &str) -> String {
    [
        ("&lt;", "<"),
        ("&#60;", "<"),
        ("&#x3c;", "<"),
        ("&#x3C;", "<"),
        ("&gt;", ">"),
        ("&#62;", ">"),
        ("&#x3e;", ">"),
        ("&#x3E;", ">"),
        ("&#47;", "/"),
        ("&#x2f;", "/"),
        ("&#x2F;", "/"),
        ("&#61;", "="),
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&amp;", "&"),
        ("&#38;", "&"),
    ]
    .iter()
    .fold(html.to_owned(), |text, (entity, character)| {
        text.replace(entity, character)
    })
}
