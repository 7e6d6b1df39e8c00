//! Hostile input against the real server: foreign `Host` headers, open redirects, oversized
//! bodies and heads, slow clients, malformed multipart, bytes that are not UTF-8, deep JSON,
//! and the server's memory while all of it arrives. Every answer is a success or a clear 4xx
//! (problem+json under /api, an HTML page for browsers), never a 5xx, and the server keeps
//! answering. Everything targets 127.0.0.1, and every loop is bounded.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use tenantkit_kernel::Role;
use tenantkit_tests::{
    OWNER_PASSWORD, TestApp, TestDb,
    account_flows::{AccountStack, Email, PASSWORD, subject, unique_email},
    api::{self, Org},
    content_type, env,
    process::{binary, free_port, wait_for_port},
    settings_for,
    stripe::{FakeStripe, FakeStripeConfig, SECRET_KEY},
    web_client::BrowserClient,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use url::Url;

const EVIL: &str = "evil.test";

/// What a proxy, or an attacker, may say about where a request was addressed: all of it names
/// another host. Links and redirects must come from `server.public_url` regardless.
const FOREIGN_HOST_HEADERS: [(&str, &str); 7] = [
    ("host", "evil.test"),
    ("x-forwarded-host", "evil.test"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-port", "443"),
    ("forwarded", "for=1.2.3.4;host=evil.test;proto=https"),
    ("x-original-host", "evil.test"),
    ("x-host", "evil.test"),
];

fn foreign_host_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in FOREIGN_HOST_HEADERS {
        headers.insert(name, value.parse().unwrap());
    }
    headers
}

/// Redirect targets that leave the site, or try to: the classic forms, then backslash,
/// whitespace, encoding and userinfo tricks.
const OFF_SITE: [&str; 16] = [
    "//evil.test",
    "https://evil.test",
    "/\\evil.test",
    "javascript:alert(1)",
    "%2F%2Fevil.test",
    "\\\\evil.test",
    "/\\/evil.test",
    " //evil.test",
    "\t//evil.test",
    "/\t/evil.test",
    "/\r\n/evil.test",
    "//evil.test\\@127.0.0.1",
    "https:evil.test",
    "///evil.test/",
    "data:text/html,<script>alert(1)</script>",
    "//%65vil.test",
];

/// Asserts that `location`, followed from `base`, stays on `base`'s origin, and that it is a
/// plain local path (or the base's own absolute URL).
#[track_caller]
fn assert_stays_on(base: &Url, location: &str, case: &str) {
    let target = base
        .join(location)
        .unwrap_or_else(|e| panic!("{case}: {location:?} is not a URL: {e}"));
    assert_eq!(
        (target.scheme(), target.host_str(), target.port()),
        (base.scheme(), base.host_str(), base.port()),
        "{case}: sent the browser to {location:?}"
    );
    assert!(
        !location.contains('\\') && !location.chars().any(char::is_control),
        "{case}: {location:?}"
    );
    assert!(
        location.starts_with(base.as_str())
            || (location.starts_with('/') && !location.starts_with("//")),
        "{case}: {location:?}"
    );
}

/// [`assert_stays_on`], and the foreign host is not even named.
#[track_caller]
fn assert_home(base: &Url, location: &str, case: &str) {
    assert_stays_on(base, location, case);
    assert!(!location.contains(EVIL), "{case}: {location:?}");
}

/// Statuses seen, by case; every one is checked to be below 500 as it arrives.
#[derive(Default, Debug)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
}

impl Tally {
    #[track_caller]
    fn saw(&mut self, status: u16, case: &str) {
        assert!(status < 500, "{case}: answered {status}");
        *self.statuses.entry(status).or_default() += 1;
    }

    fn total(&self) -> usize {
        self.statuses.values().sum()
    }
}

/// One raw HTTP/1.1 exchange: what the server answered, if anything.
#[derive(Debug)]
struct Raw {
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` byte for byte (the writer runs beside the reader, so an answer that comes
/// before the server read everything is still seen), then reads until the server closes or
/// `limit` passes. `half_close` ends the sending side after the bytes: a body cut short.
async fn exchange(address: SocketAddr, request: Vec<u8>, half_close: bool) -> Raw {
    let stream = TcpStream::connect(address).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may close early (431, 413): the rest is then refused, which is fine.
        for chunk in request.chunks(64 * 1024) {
            if writer.write_all(chunk).await.is_err() {
                return writer;
            }
        }
        if half_close {
            let _ = writer.shutdown().await;
        }
        writer
    });
    let mut received = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
    // A server that stopped reading must not hold the test: what was not sent is dropped.
    writing.abort();
    let text = String::from_utf8_lossy(&received).into_owned();
    let (head, body) = match text.find("\r\n\r\n") {
        Some(end) => (text[..end].to_owned(), received[end + 4..].to_vec()),
        None => (text, Vec::new()),
    };
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    Raw { status, head, body }
}

/// A `Connection: close` request with `headers` (raw bytes, each ending in CRLF) and `body`.
fn request(method: &str, target: &[u8], headers: &[u8], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{method} ").into_bytes();
    bytes.extend_from_slice(target);
    bytes.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.windows(5).any(|w| w.eq_ignore_ascii_case(b"host:")) {
        bytes.extend_from_slice(b"Host: 127.0.0.1\r\n");
    }
    bytes.extend_from_slice(headers);
    if !body.is_empty() {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    bytes.extend_from_slice(body);
    bytes
}

/// [`request`] with `body`, or, when `cut`, a request that declares 1,000 bytes more than
/// `body` (sent with [`exchange`]'s half-close, it then stops sending).
fn request_maybe_cut(method: &str, target: &[u8], headers: &str, body: &str, cut: bool) -> Vec<u8> {
    if !cut {
        return request(method, target, headers.as_bytes(), body.as_bytes());
    }
    let mut bytes = request(method, target, headers.as_bytes(), b"");
    // Without the blank line that ends the head: the false length goes in its place.
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(
        format!("Content-Length: {}\r\n\r\n{body}", body.len() + 1000).as_bytes(),
    );
    bytes
}

/// [`request`], with `body` sent in 64 KiB chunks and no length declared.
fn chunked_request(method: &str, target: &[u8], headers: &[u8], body: &[u8]) -> Vec<u8> {
    let mut head = headers.to_vec();
    head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    let mut bytes = request(method, target, &head, b"");
    for chunk in body.chunks(64 * 1024) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

async fn assert_still_serving(app_url: &str) {
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{app_url}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the server stopped answering");
    assert_eq!(response.status(), StatusCode::OK);
}

/// The `Cookie` header `browser` would send.
fn cookie_header(browser: &BrowserClient) -> String {
    browser
        .cookie_names()
        .iter()
        .map(|name| format!("{name}={}", browser.cookie(name).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Posts `fields` (with the CSRF token of `form_page`) as `browser`, carrying every foreign
/// host header. Returns status, headers and body.
async fn post_from_elsewhere(
    browser: &BrowserClient,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let token = browser.csrf_token(form_page).await;
    let mut all = fields.to_vec();
    all.push(("csrf_token", &token));
    let response = no_redirects()
        .post(browser.url(action))
        .headers(foreign_host_headers())
        .header("cookie", cookie_header(browser))
        .form(&all)
        .send()
        .await
        .expect("post");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap_or_default())
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

#[track_caller]
fn assert_email_links_home(email: &Email, public_url: &str) {
    for part in [&email.text, &email.html] {
        assert!(
            !part.contains(EVIL),
            "\"{}\" names the foreign host:\n{part}",
            email.subject
        );
        assert!(
            part.contains(public_url),
            "\"{}\" has no link to {public_url}:\n{part}",
            email.subject
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_never_reaches_emailed_links_or_redirects() {
    let stack = AccountStack::start().await;
    let public_url = stack.app.url("");
    let base = Url::parse(&public_url).unwrap();

    // Sign-up, password reset, invitation and email change, each asked for from "evil.test":
    // the emails link to the public URL, and only to it.
    let email = unique_email("host-signup");
    let browser = stack.browser();
    let (status, headers, _) = post_from_elsewhere(
        &browser,
        "/signup",
        "/signup",
        &[
            ("organisation", "Host Header Org"),
            ("name", "Ada"),
            ("email", &email),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_home(&base, headers["location"].to_str().unwrap(), "sign-up");
    let verification = stack.wait_for_email(&email, subject::VERIFY).await;
    assert_email_links_home(&verification, &public_url);
    let verify = stack.link_in(&verification, "/verify");
    assert!(browser.get(&verify).await.redirects_to("/dashboard"));

    let (status, headers, _) = post_from_elsewhere(
        &stack.browser(),
        "/password/forgot",
        "/password/forgot",
        &[("email", &email)],
    )
    .await;
    assert!(
        status.is_success() || status == StatusCode::SEE_OTHER,
        "{status}"
    );
    if let Some(location) = headers.get("location") {
        assert_home(&base, location.to_str().unwrap(), "password reset");
    }
    let reset = stack.wait_for_email(&email, subject::RESET).await;
    assert_email_links_home(&reset, &public_url);
    stack.link_in(&reset, "/password/reset");

    let invitee = unique_email("host-invitee");
    let (status, headers, _) = post_from_elsewhere(
        &browser,
        "/team",
        "/team/invitations",
        &[("email", &invitee), ("role", "member")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_home(&base, headers["location"].to_str().unwrap(), "invitation");
    let invitation = stack.wait_for_email(&invitee, subject::INVITATION).await;
    assert_email_links_home(&invitation, &public_url);
    stack.link_in(&invitation, "/invitations/accept");

    let new_address = unique_email("host-new-address");
    let (status, headers, _) = post_from_elsewhere(
        &browser,
        "/account",
        "/account/email",
        &[("new_email", &new_address), ("password", PASSWORD)],
    )
    .await;
    assert!(
        status.is_success() || status == StatusCode::SEE_OTHER,
        "{status}"
    );
    if let Some(location) = headers.get("location") {
        assert_home(&base, location.to_str().unwrap(), "email change");
    }
    let confirmation = stack
        .wait_for_email(&new_address, subject::EMAIL_CHANGE)
        .await;
    assert_email_links_home(&confirmation, &public_url);
    stack.link_in(&confirmation, "/account/email/confirm");

    // Pages, redirects and the API document, anonymous and signed in, asked for from
    // "evil.test": no redirect leaves the site and no page names the foreign host.
    let org = api::org(&stack.app, "HostLinks").await;
    let key = api::key(&stack.app, &org, Role::Owner).await;
    let signed_in = cookie_header(&browser);
    let paths = [
        "/",
        "/login",
        "/login?next=%2Fteam",
        "/signup",
        "/password/forgot",
        "/dashboard",
        "/account",
        "/team",
        "/files",
        "/billing",
        "/sessions",
        "/api/openapi.json",
        "/api/docs",
        "/api/v1/me",
        "/nothing-here",
    ];
    let mut tally = Tally::default();
    let client = no_redirects();
    for path in paths {
        for cookies in [None, Some(signed_in.as_str())] {
            let mut request = client
                .get(stack.app.url(path))
                .headers(foreign_host_headers());
            if let Some(cookies) = cookies {
                request = request.header("cookie", cookies);
            }
            let response = request.send().await.expect("get");
            let case = format!("GET {path} (signed in: {})", cookies.is_some());
            tally.saw(response.status().as_u16(), &case);
            if let Some(location) = response.headers().get("location") {
                assert_home(&base, location.to_str().unwrap(), &case);
            }
            let body = response.text().await.unwrap();
            assert!(!body.contains(EVIL), "{case} names the foreign host");
            if path == "/api/openapi.json" {
                let spec: Value = serde_json::from_str(&body).unwrap();
                let server = spec["servers"][0]["url"].as_str().unwrap_or_default();
                assert!(server.starts_with(&public_url), "{server}");
            }
        }
    }
    assert_eq!(tally.total(), paths.len() * 2);

    // A signed download link, asked for from "evil.test".
    let uploaded = stack
        .app
        .client
        .post(
            stack
                .app
                .url(&format!("/api/v1/tenants/{}/files", org.tenant)),
        )
        .query(&[("name", "note.txt")])
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    let file: Value = uploaded.json().await.unwrap();
    let link = client
        .post(stack.app.url(&format!(
            "/api/v1/tenants/{}/files/{}/link",
            org.tenant,
            file["id"].as_str().unwrap()
        )))
        .headers(foreign_host_headers())
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::CREATED);
    let link: Value = link.json().await.unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{public_url}/files/shared/")),
        "{url}"
    );

    // Logging in and out from "evil.test": both redirects stay here.
    let (status, headers, _) = post_from_elsewhere(
        &stack.browser(),
        "/login",
        "/login",
        &[("email", &org.email), ("password", OWNER_PASSWORD)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_home(&base, headers["location"].to_str().unwrap(), "log in");
    let (status, headers, _) = post_from_elsewhere(&browser, "/account", "/logout", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/");

    // Absurd Host values, sent raw: each is answered (a 4xx, or ignored), never with a 5xx,
    // and never echoed into a redirect or a page.
    let long_host = "h".repeat(10 * 1024);
    let hosts: Vec<(&str, Vec<u8>)> = vec![
        ("no Host", b"".to_vec()),
        ("empty Host", b"Host: \r\n".to_vec()),
        ("10 KiB Host", format!("Host: {long_host}\r\n").into_bytes()),
        (
            "non-ASCII bytes",
            b"Host: \xff\xfe\xc3(.evil.test\r\n".to_vec(),
        ),
        ("UTF-8 Host", "Host: évil.test\r\n".as_bytes().to_vec()),
        (
            "two Hosts",
            b"Host: evil.test\r\nHost: 127.0.0.1\r\n".to_vec(),
        ),
        ("bad port", b"Host: evil.test:99999\r\n".to_vec()),
        ("userinfo", b"Host: user@evil.test\r\n".to_vec()),
        ("path in Host", b"Host: evil.test/login\r\n".to_vec()),
        ("open bracket", b"Host: [::1\r\n".to_vec()),
    ];
    let targets: [&[u8]; 6] = [
        b"/healthz",
        b"/login",
        b"/dashboard",
        b"/api/openapi.json",
        b"/api/v1/nothing",
        b"http://evil.test/login",
    ];
    let mut raw_tally = Tally::default();
    for (case, host) in &hosts {
        for target in targets {
            let target_text = String::from_utf8_lossy(target);
            let case = format!("{case}, GET {target_text}");
            let answer =
                exchange(stack.app.address, request("GET", target, host, b""), false).await;
            let status = answer
                .status
                .unwrap_or_else(|| panic!("{case}: no answer: {answer:?}"));
            raw_tally.saw(status, &case);
            if let Some(location) = answer.header("location") {
                assert_home(&base, location, &case);
            }
            let body = answer.body_text();
            assert!(
                !body.contains(EVIL) && !body.contains(&long_host[..64]),
                "{case} echoed the host: {body}"
            );
        }
    }
    eprintln!("foreign host: pages {tally:?}; raw Host values {raw_tally:?}");
    assert_eq!(raw_tally.total(), hosts.len() * targets.len());
    assert_still_serving(&public_url).await;
    stack.stop().await;
}

/// Plans with Stripe prices (the test server's seeded ones); the free plan's API allowance is
/// large enough for every attempt below.
const PLANS: &str = r#"[
  {"name": "free", "display_name": "Free", "included_seats": 2, "api_requests_per_minute": 100000},
  {"name": "team", "display_name": "Team", "stripe_price_monthly": "price_team_monthly",
   "included_seats": 5}
]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redirect_parameter_keeps_the_browser_on_this_site() {
    let stripe = FakeStripe::start(FakeStripeConfig::default()).await;
    let db = TestDb::new().await;
    let root = tempfile::tempdir().unwrap();
    let root_text = root.path().to_string_lossy().into_owned();
    let secret = stripe.webhook_secret();
    // Listening where the public URL points, so the site's own return addresses are real.
    let bind = format!("127.0.0.1:{}", free_port());
    let public_url = format!("http://{bind}");
    let settings = settings_for(
        &db,
        &[
            ("server.bind", &bind),
            ("server.public_url", &public_url),
            ("billing.stripe_secret_key", SECRET_KEY),
            ("billing.webhook_secrets", &secret),
            ("billing.stripe_api_base", &stripe.url()),
            ("billing.plans", PLANS),
            ("storage.local.root", &root_text),
            ("rate_limit.logins_per_account", "1000"),
        ],
    );
    let app = TestApp::spawn_with(db, settings).await;
    assert_eq!(app.url(""), public_url);
    let base = Url::parse(&app.url("/")).unwrap();
    let org = api::org(&app, "Redirects").await;
    let key = api::key(&app, &org, Role::Owner).await;

    // The billing API's return addresses: each hostile one is refused, naming its field,
    // before Stripe hears of it.
    let base_text = base.as_str();
    let port = base.port().unwrap();
    let mut hostile: Vec<String> = OFF_SITE.iter().map(|s| (*s).to_owned()).collect();
    hostile.extend([
        format!("http://127.0.0.1:{port}.evil.test/billing"),
        format!("http://127.0.0.1:{port}@evil.test/billing"),
        format!("{base_text}\\evil.test"),
        format!("{base_text}\t//evil.test"),
        format!("{base_text}billing\r\nLocation: https://evil.test"),
        format!("https://evil.test/{base_text}"),
        format!("http://user@127.0.0.1:{port}/billing"),
        format!(" {base_text}billing"),
    ]);
    let mut refused = 0;
    for url in &hostile {
        for (path, field) in [
            ("checkout", "success_url"),
            ("checkout", "cancel_url"),
            ("portal", "return_url"),
        ] {
            let mut body =
                json!({ "plan": "team", "interval": "monthly", "attempt": uuid::Uuid::now_v7() });
            body[field] = json!(url);
            let (status, problem) = api::call(
                &app,
                &key,
                Method::POST,
                &format!("/tenants/{}/billing/{path}", org.tenant),
                Some(body),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}={url:?}: {problem}"
            );
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
            refused += 1;
        }
    }
    assert_eq!(refused, hostile.len() * 3);
    assert!(
        stripe.checkout_sessions().is_empty(),
        "Stripe was given a hostile URL"
    );
    assert_eq!(stripe.count("POST", "/v1/billing_portal"), 0);
    // The site's own addresses are taken as given.
    let success = format!("{base_text}billing/success?session_id={{CHECKOUT_SESSION_ID}}");
    let cancel = format!("{base_text}billing/cancel");
    let (status, body) = api::call(
        &app,
        &key,
        Method::POST,
        &format!("/tenants/{}/billing/checkout", org.tenant),
        Some(
            json!({ "plan": "team", "interval": "monthly", "attempt": uuid::Uuid::now_v7(),
                     "success_url": success, "cancel_url": cancel }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let session = &stripe.checkout_sessions()[0];
    assert_eq!(session["success_url"], success.as_str());
    assert_eq!(session["cancel_url"], cancel.as_str());

    // The billing page's forms, posted from "evil.test": Stripe is given this site's URLs.
    let browser = BrowserClient::new(&public_url);
    assert!(
        browser
            .log_in(&org.email, OWNER_PASSWORD)
            .await
            .redirects_to("/dashboard")
    );
    let (status, headers, body) = post_from_elsewhere(
        &browser,
        "/billing",
        "/billing/checkout",
        &[("plan", "team"), ("interval", "monthly")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let to_stripe = headers["location"].to_str().unwrap();
    assert!(to_stripe.starts_with(&stripe.url()), "{to_stripe}");
    for session in stripe.checkout_sessions() {
        for field in ["success_url", "cancel_url"] {
            let url = session[field].as_str().unwrap();
            assert!(url.starts_with(base_text), "{field}: {url}");
        }
    }
    let (status, headers, body) =
        post_from_elsewhere(&browser, "/billing", "/billing/portal", &[]).await;
    assert!(status.as_u16() < 500, "{status}: {body}");
    if status == StatusCode::SEE_OTHER {
        assert!(
            headers["location"]
                .to_str()
                .unwrap()
                .starts_with(&stripe.url())
        );
    }
    for request in stripe.requests() {
        if let Some(url) = request.params.get("return_url") {
            assert!(url.starts_with(base_text), "portal return_url {url}");
        }
    }

    // The files page sends the browser back to the folder it names: hostile folder names
    // lead back to a local page.
    let mut deleted = 0;
    for folder in OFF_SITE.iter().take(8) {
        let uploaded = app
            .client
            .post(app.url(&format!("/api/v1/tenants/{}/files", org.tenant)))
            .query(&[("name", format!("f{deleted}.txt"))])
            .bearer_auth(&key)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), StatusCode::CREATED);
        let file: Value = uploaded.json().await.unwrap();
        let action = format!("/files/{}/delete", file["id"].as_str().unwrap());
        let page = browser
            .submit("/files", &action, &[("folder", folder)])
            .await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "folder={folder:?}: {page:?}"
        );
        let location = page.location().unwrap();
        assert!(location.starts_with("/files"), "{location}");
        assert_stays_on(&base, location, &format!("files back to {folder:?}"));
        deleted += 1;
    }
    assert_eq!(deleted, 8);

    // After signing in (tricks beyond those of web_security's sign-in tests), and logging out.
    let login_tricks = [
        "/%5Cevil.test",
        "/%2F/evil.test",
        "%5C%5Cevil.test",
        "/%09/evil.test",
        "/\u{3000}/evil.test",
        "\u{0}//evil.test",
        "https://127.0.0.1@evil.test/",
        "//127.0.0.1@evil.test",
        "/\\\\evil.test",
        "\\/\\/evil.test",
    ];
    let mut followed = 0;
    for next in login_tricks.iter().chain(OFF_SITE.iter().take(5)) {
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        for in_query in [false, true] {
            let (action, mut fields) = if in_query {
                (format!("/login?next={encoded}"), vec![])
            } else {
                ("/login".to_owned(), vec![("next", *next)])
            };
            fields.extend([("email", org.email.as_str()), ("password", OWNER_PASSWORD)]);
            let page = BrowserClient::new(&public_url)
                .submit("/login", &action, &fields)
                .await;
            // A query that is not UTF-8 once decoded is refused outright; anything else signs in.
            assert!(
                page.status == StatusCode::SEE_OTHER || page.status == StatusCode::BAD_REQUEST,
                "next={next:?}: {page:?}"
            );
            if let Some(location) = page.location() {
                assert_stays_on(&base, location, &format!("next={next:?}"));
            }
            followed += 1;
        }
    }
    assert_eq!(followed, (login_tricks.len() + 5) * 2);
    eprintln!(
        "redirects: {refused} billing URLs refused, {deleted} folder redirects, {followed} \
         sign-ins with a hostile next"
    );
    let page = browser
        .submit(
            "/account",
            "/logout?next=https%3A%2F%2Fevil.test",
            &[("next", "https://evil.test"), ("return_to", "//evil.test")],
        )
        .await;
    assert!(page.redirects_to("/"), "{page:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_heads_are_refused_and_the_server_answers_after() {
    let app = TestApp::spawn().await;
    let mut tally = Tally::default();

    // JSON above the API's 1 MiB: declared, chunked, or declared falsely.
    let big_json = format!(
        r#"{{"organisation": "A", "name": "B", "email": "a@b.co", "password": "correct horse battery", "pad": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let padded_valid = format!(
        r#"{{"organisation": "A", "name": "B", "email": "a@b.co", "password": "correct horse battery"}}{}"#,
        " ".repeat(2 << 20)
    );
    // Sent raw: the answer comes before the server reads the rest, and an HTTP client that
    // writes the whole body first sees only the connection closing.
    let json_type = b"Content-Type: application/json\r\n";
    for (case, body, chunked) in [
        ("declared", &big_json, false),
        ("chunked", &big_json, true),
        (
            "valid JSON then 2 MiB of spaces, chunked",
            &padded_valid,
            true,
        ),
    ] {
        let bytes = if chunked {
            chunked_request("POST", b"/api/v1/signups", json_type, body.as_bytes())
        } else {
            request("POST", b"/api/v1/signups", json_type, body.as_bytes())
        };
        let answer = exchange(app.address, bytes, false).await;
        let status = answer
            .status
            .unwrap_or_else(|| panic!("{case}: no answer: {answer:?}"));
        tally.saw(status, case);
        assert_eq!(status, 413, "{case}: {}", answer.body_text());
        assert!(
            answer
                .head
                .to_lowercase()
                .contains("application/problem+json"),
            "{case}: {}",
            answer.head
        );
        let problem: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(problem["status"], 413, "{case}");
    }
    let lying = exchange(
        app.address,
        request(
            "POST",
            b"/api/v1/signups",
            b"Content-Type: application/json\r\nContent-Length: 99999999999\r\n",
            b"",
        ),
        true,
    )
    .await;
    tally.saw(lying.status.unwrap_or(0), "a false Content-Length");
    assert_eq!(lying.status, Some(413), "{lying:?}");
    assert!(
        lying
            .head
            .to_lowercase()
            .contains("application/problem+json")
    );
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(users, 0, "an oversized sign-up got through");

    // A form above its 64 KiB, declared and chunked: a 413 page.
    let big_form = format!("email=a%40b.co&password={}", "p".repeat(100 * 1024));
    let form_type = b"Content-Type: application/x-www-form-urlencoded\r\n";
    for chunked in [false, true] {
        let bytes = if chunked {
            chunked_request("POST", b"/login", form_type, big_form.as_bytes())
        } else {
            request("POST", b"/login", form_type, big_form.as_bytes())
        };
        let answer = exchange(app.address, bytes, false).await;
        let case = format!("100 KiB form (chunked: {chunked})");
        let status = answer
            .status
            .unwrap_or_else(|| panic!("{case}: no answer: {answer:?}"));
        tally.saw(status, &case);
        assert_eq!(status, 413, "{case}");
        assert!(answer.head.to_lowercase().contains("text/html"), "{case}");
        assert!(answer.body_text().contains("larger than this site accepts"));
    }

    // Heads beyond what the server buffers: 431 (or 400), then it still answers.
    let eight_k = "v".repeat(8 * 1024);
    let many_big: String = (0..100)
        .map(|i| format!("X-Big-{i}: {eight_k}\r\n"))
        .collect();
    let one_huge = format!("X-Huge: {}\r\n", "w".repeat(64 * 1024));
    let many_small: String = (0..150).map(|i| format!("X-Small-{i}: s\r\n")).collect();
    let long_target = format!("/login?next={}", "a".repeat(64 * 1024));
    let heads: [(&str, &[u8], &[u8]); 4] = [
        ("100 headers of 8 KiB", b"/healthz", many_big.as_bytes()),
        ("one 64 KiB header", b"/healthz", one_huge.as_bytes()),
        ("150 headers", b"/api/v1/me", many_small.as_bytes()),
        ("a 64 KiB request target", long_target.as_bytes(), b""),
    ];
    for (case, target, headers) in heads {
        let answer = exchange(app.address, request("GET", target, headers, b""), false).await;
        let status = answer
            .status
            .unwrap_or_else(|| panic!("{case}: no answer: {:?}", answer.head));
        tally.saw(status, case);
        assert!(
            [400, 414, 431].contains(&status),
            "{case}: answered {status}"
        );
        assert_still_serving(&app.url("")).await;
    }
    eprintln!("oversized: {tally:?}");
    assert_eq!(tally.total(), 3 + 1 + 2 + 4);
}

/// Sends a request head a byte a second until the server closes the connection (or `cap`
/// passes); returns how long that took, or None at the cap. `trickle: false` sends nothing.
async fn slow_client(address: SocketAddr, trickle: bool, cap: Duration) -> Option<Duration> {
    let started = Instant::now();
    let stream = TcpStream::connect(address).await.ok()?;
    let (mut reader, mut writer) = stream.into_split();
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let writing = async move {
        if !trickle {
            return std::future::pending::<()>().await;
        }
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let closed = async {
        let mut buffer = [0u8; 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                // A 408 may come before the close: the answer to a head never finished.
                Ok(_) => continue,
            }
        }
    };
    tokio::select! {
        () = closed => Some(started.elapsed()),
        () = writing => None,
        () = tokio::time::sleep(cap) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_are_cut_off_while_others_are_served() {
    let app = TestApp::spawn().await;
    let cap = Duration::from_secs(22);
    let started = Instant::now();
    // 40 connections trickle a head a byte a second; 10 send nothing at all.
    let slow: Vec<_> = (0..50)
        .map(|i| tokio::spawn(slow_client(app.address, i < 40, cap)))
        .collect();
    // Meanwhile four clients ask for /healthz one after another, on fresh connections.
    let mut served = Vec::new();
    for _ in 0..4 {
        let url = app.url("/healthz");
        served.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            while started.elapsed() < Duration::from_secs(13) {
                let sent = Instant::now();
                let response = client.get(&url).send().await.expect("healthz");
                assert_eq!(response.status(), StatusCode::OK);
                latencies.push(sent.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            latencies
        }));
    }
    let mut cut_after = Vec::new();
    for (i, task) in slow.into_iter().enumerate() {
        let elapsed = task
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("slow connection {i} was still open after {cap:?}"));
        cut_after.push(elapsed);
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for task in served {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    assert!(
        latencies.len() >= 40,
        "only {} requests served",
        latencies.len()
    );
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(p99 < Duration::from_secs(1), "p99 of /healthz was {p99:?}");
    eprintln!(
        "slow clients: closed after {:?} to {:?}; {} /healthz served, p99 {p99:?}, max {:?}",
        cut_after.iter().min(),
        cut_after.iter().max(),
        latencies.len(),
        latencies.last()
    );
    // Cut off by the header deadline (10 s), not at once and not much later.
    for (i, elapsed) in cut_after.iter().enumerate() {
        assert!(
            *elapsed >= Duration::from_secs(8) && *elapsed <= Duration::from_secs(15),
            "slow connection {i} was closed after {elapsed:?}"
        );
    }
    assert_still_serving(&app.url("")).await;
}

/// The tenant's files, pending objects, upload sessions and usage, as the database has them.
async fn storage_rows(app: &TestApp, org: &Org) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "select (select count(*) from files where tenant_id = $1),
                (select count(*) from storage_pending_objects where tenant_id = $1),
                (select count(*) from storage_upload_sessions where tenant_id = $1),
                coalesce((select used_bytes from storage_usage where tenant_id = $1), 0),
                coalesce((select reserved_bytes from storage_usage where tenant_id = $1), 0)",
    )
    .bind(org.tenant)
    .fetch_one(&app.db.owner)
    .await
    .unwrap()
}

/// Every regular file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_multipart_uploads_are_refused_and_leave_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    let root_text = root.path().to_string_lossy().into_owned();
    let db = TestDb::new().await;
    let settings = settings_for(&db, &[("storage.local.root", &root_text)]);
    let app = TestApp::spawn_with(db, settings).await;
    let org = api::org(&app, "Multipart").await;
    let key = api::key(&app, &org, Role::Owner).await;
    let auth = format!("Authorization: Bearer {key}\r\n");

    let part = |name: &str, extra: &str, data: &str| {
        format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n{data}\r\n")
    };
    let huge_head = format!(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nX-Pad: {}\r\n\r\ndata\r\n--b--\r\n",
        "h".repeat(256 * 1024)
    );
    let nested = String::from(
        "--b\r\nContent-Disposition: form-data; name=\"file\"\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n\
         --inner\r\nContent-Disposition: file; filename=\"a.txt\"\r\n\r\ninner data\r\n--inner--\r\n\r\n--b--\r\n",
    );
    // (case, Content-Type, body, cut short)
    let bodies: Vec<(&str, &str, String, bool)> = vec![
        ("missing boundary", "multipart/form-data", part("file", "; filename=\"a.txt\"", "data"), false),
        (
            "truncated",
            "multipart/form-data; boundary=b",
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhalf of the".to_owned(),
            true,
        ),
        (
            "part without a name",
            "multipart/form-data; boundary=b",
            format!("{}--b--\r\n", part("", "; filename=\"a.txt\"", "data").replace("; name=\"\"", "")),
            false,
        ),
        ("huge part headers", "multipart/form-data; boundary=b", huge_head.clone(), false),
        ("nested multipart", "multipart/form-data; boundary=b", nested.clone(), false),
        ("multipart/mixed", "multipart/mixed; boundary=b", nested.clone(), false),
    ];

    // The API takes a file's bytes as the body: a multipart body, well-formed or not, is 415.
    let mut tally = Tally::default();
    for (case, kind, body, cut) in &bodies {
        for (method, target) in [
            (
                "POST",
                format!("/api/v1/tenants/{}/files?name=a.txt", org.tenant),
            ),
            (
                "PATCH",
                format!(
                    "/api/v1/tenants/{}/uploads/{}",
                    org.tenant,
                    uuid::Uuid::now_v7()
                ),
            ),
        ] {
            let headers = format!("{auth}Content-Type: {kind}\r\nUpload-Offset: 0\r\n");
            let bytes = request_maybe_cut(method, target.as_bytes(), &headers, body, *cut);
            let answer = exchange(app.address, bytes, *cut).await;
            let case = format!("API {method}, {case}");
            let status = answer
                .status
                .unwrap_or_else(|| panic!("{case}: no answer: {answer:?}"));
            tally.saw(status, &case);
            assert!(
                answer
                    .head
                    .to_lowercase()
                    .contains("application/problem+json"),
                "{case}: {}",
                answer.head
            );
            // The PATCH names no upload there is: refused before it is looked up.
            assert_eq!(status, 415, "{case}: {}", answer.body_text());
        }
    }
    // A raw body cut short: 400, and nothing kept.
    let target = format!("/api/v1/tenants/{}/files?name=cut.bin", org.tenant);
    let raw_headers = format!("{auth}Content-Type: application/octet-stream\r\n");
    let mut cut = request("POST", target.as_bytes(), raw_headers.as_bytes(), b"");
    cut.truncate(cut.len() - 2);
    cut.extend_from_slice(b"Content-Length: 100000\r\n\r\n");
    cut.extend_from_slice(&[7u8; 5000]);
    let answer = exchange(app.address, cut, true).await;
    tally.saw(answer.status.unwrap_or_default(), "raw body cut short");
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.body_text().contains("interrupted"), "{answer:?}");

    // The browser's upload form: a friendly page, a 4xx.
    let browser = BrowserClient::new(&app.url(""));
    assert!(
        browser
            .log_in(&org.email, OWNER_PASSWORD)
            .await
            .redirects_to("/dashboard")
    );
    let token = browser.csrf_token("/files").await;
    let cookies = cookie_header(&browser);
    let with_token = |rest: &str| format!("{}{rest}", part("csrf_token", "", &token));
    let huge_preamble = format!(
        "{}{}",
        "p".repeat(256 * 1024),
        part("csrf_token", "", &token)
    );
    let form_bodies: Vec<(&str, &str, String, bool, &[u16])> = vec![
        (
            "missing boundary",
            "multipart/form-data",
            with_token(&part("file", "; filename=\"a.txt\"", "data")),
            false,
            &[403],
        ),
        (
            "truncated",
            "multipart/form-data; boundary=b",
            with_token(
                "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhalf of the",
            ),
            true,
            &[422],
        ),
        (
            "part without a name",
            "multipart/form-data; boundary=b",
            with_token(&format!(
                "{}--b--\r\n",
                part("", "; filename=\"a.txt\"", "data").replace("; name=\"\"", "")
            )),
            false,
            &[422],
        ),
        (
            "huge part headers",
            "multipart/form-data; boundary=b",
            with_token(&huge_head),
            false,
            &[413],
        ),
        (
            "huge part headers before the token",
            "multipart/form-data; boundary=b",
            huge_head.clone(),
            false,
            &[413],
        ),
        (
            "huge preamble",
            "multipart/form-data; boundary=b",
            huge_preamble,
            false,
            &[413],
        ),
        (
            "nested multipart",
            "multipart/form-data; boundary=b",
            with_token(&nested),
            false,
            &[422],
        ),
        (
            "no closing boundary",
            "multipart/form-data; boundary=b",
            with_token(""),
            true,
            // The token's own part is cut short, so it cannot be checked.
            &[403],
        ),
    ];
    for (case, kind, body, cut, expected) in &form_bodies {
        let headers = format!("Cookie: {cookies}\r\nContent-Type: {kind}\r\n");
        let bytes = request_maybe_cut("POST", b"/files/upload", &headers, body, *cut);
        let answer = exchange(app.address, bytes, *cut).await;
        let case = format!("form, {case}");
        let status = answer
            .status
            .unwrap_or_else(|| panic!("{case}: no answer: {answer:?}"));
        tally.saw(status, &case);
        assert!(
            expected.contains(&status),
            "{case}: answered {status}: {}",
            answer.body_text()
        );
        assert!(
            answer.head.to_lowercase().contains("text/html"),
            "{case}: {}",
            answer.head
        );
        assert!(answer.body_text().contains("<h1>"), "{case}: not a page");
    }
    eprintln!("multipart: {tally:?}");
    assert_eq!(tally.total(), bodies.len() * 2 + 1 + form_bodies.len());

    // Nothing of any of it was kept: no file, no pending object, no reservation, no bytes.
    assert_eq!(storage_rows(&app, &org).await, (0, 0, 0, 0, 0));
    assert_eq!(files_under(root.path()), Vec::<std::path::PathBuf>::new());
    // And a well-formed upload still works, through both doors.
    let page = {
        let body = with_token(&format!(
            "{}--b--\r\n",
            part("file", "; filename=\"ok.txt\"", "fine")
        ));
        let headers =
            format!("Cookie: {cookies}\r\nContent-Type: multipart/form-data; boundary=b\r\n");
        exchange(
            app.address,
            request(
                "POST",
                b"/files/upload",
                headers.as_bytes(),
                body.as_bytes(),
            ),
            false,
        )
        .await
    };
    assert_eq!(page.status, Some(303), "{page:?}");
    let (files, ..) = storage_rows(&app, &org).await;
    assert_eq!(files, 1);
    assert_still_serving(&app.url("")).await;
}

/// A request carrying bytes that are not UTF-8: (case, method, target, headers, body, who
/// refuses it).
type NotUtf8 = (
    &'static str,
    &'static str,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_is_refused_with_400() {
    let app = TestApp::spawn().await;
    let org = api::org(&app, "Bytes").await;
    let key = api::key(&app, &org, Role::Owner).await;
    let auth = format!("Authorization: Bearer {key}\r\n");
    let tenant = org.tenant;
    let files = format!("/api/v1/tenants/{tenant}/files");
    let form = b"Content-Type: application/x-www-form-urlencoded\r\n".to_vec();
    let json_type = b"Content-Type: application/json\r\n".to_vec();
    let with_auth = |more: &[u8]| [auth.as_bytes(), more].concat();

    // (case, method, target, headers, body, who answers): "api" with problem+json, "page" with
    // an HTML page, "wire" (bytes that are not even ASCII in the request line) hyper itself,
    // with a bare 400, before any of the application runs.
    let cases: Vec<NotUtf8> = vec![
        ("JSON body, raw bytes", "POST", b"/api/v1/signups".to_vec(), json_type.clone(), b"\xff\xfe{}".to_vec(), "api"),
        (
            "JSON string with a bad byte",
            "POST",
            b"/api/v1/signups".to_vec(),
            json_type.clone(),
            b"{\"organisation\": \"A\xffB\", \"name\": \"n\", \"email\": \"a@b.co\", \"password\": \"correct horse battery\"}".to_vec(),
            "api",
        ),
        (
            "JSON string, a lone surrogate",
            "POST",
            b"/api/v1/signups".to_vec(),
            json_type.clone(),
            b"{\"organisation\": \"\\ud800\", \"name\": \"n\", \"email\": \"a@b.co\", \"password\": \"correct horse battery\"}".to_vec(),
            "api",
        ),
        ("form body, percent-encoded", "POST", b"/login".to_vec(), form.clone(), b"email=%FF%FE&password=x".to_vec(), "page"),
        ("form body, raw bytes", "POST", b"/login".to_vec(), form.clone(), b"email=\xff\xfe&password=x".to_vec(), "page"),
        ("form body, half a character", "POST", b"/signup".to_vec(), form.clone(), b"organisation=%C3&name=n".to_vec(), "page"),
        ("page query, percent-encoded", "GET", b"/login?next=%FF".to_vec(), vec![], vec![], "page"),
        ("page query, raw bytes", "GET", b"/login?next=\xff".to_vec(), vec![], vec![], "wire"),
        ("API query", "GET", format!("{files}?folder=%2F%FF").into_bytes(), with_auth(b""), vec![], "api"),
        ("API query, upload name", "POST", format!("{files}?name=%C0%AF").into_bytes(), with_auth(b""), b"data".to_vec(), "api"),
        ("page path", "GET", b"/files/%FF/content".to_vec(), vec![], vec![], "page"),
        ("page path, raw bytes", "GET", b"/files/\xff/content".to_vec(), vec![], vec![], "wire"),
        ("API path", "GET", format!("/api/v1/tenants/%FF{tenant}/files").into_bytes(), with_auth(b""), vec![], "api"),
        ("API path, overlong slash", "GET", format!("/api/v1/tenants/{tenant}/files/%C0%AF").into_bytes(), with_auth(b""), vec![], "api"),
        ("session cookie", "GET", b"/dashboard".to_vec(), b"Cookie: tk_session=\xff\xfe\xfd\r\n".to_vec(), vec![], "page"),
        ("anonymous cookie", "GET", b"/login".to_vec(), b"Cookie: tk_anon=\xc3\x28abcdefghijklmnopqrstuvwxyz\r\n".to_vec(), vec![], "page"),
        ("API cookie", "GET", b"/api/v1/me".to_vec(), b"Cookie: tk_session=\xff\r\n".to_vec(), vec![], "api"),
    ];
    let mut tally = Tally::default();
    for (case, method, target, headers, body, kind) in &cases {
        let answer = exchange(app.address, request(method, target, headers, body), false).await;
        let status = answer
            .status
            .unwrap_or_else(|| panic!("{case}: no answer: {answer:?}"));
        tally.saw(status, case);
        assert_eq!(status, 400, "{case}: {}", answer.body_text());
        let head = answer.head.to_lowercase();
        match *kind {
            "api" => {
                assert!(head.contains("application/problem+json"), "{case}: {head}");
                let problem: Value = serde_json::from_slice(&answer.body).unwrap();
                assert_eq!(problem["status"], 400, "{case}");
            }
            "page" => {
                assert!(head.contains("text/html"), "{case}: {head}");
                assert!(answer.body_text().contains("not valid text"), "{case}");
            }
            _ => assert!(answer.body.is_empty(), "{case}: {}", answer.body_text()),
        }
    }
    eprintln!("not UTF-8: {tally:?}");
    assert_eq!(tally.total(), cases.len());
    // Cookies are not percent-decoded: an encoded byte is just an unknown session.
    let answer = exchange(
        app.address,
        request("GET", b"/dashboard", b"Cookie: tk_session=%FF%FE\r\n", b""),
        false,
    )
    .await;
    assert_eq!(answer.status, Some(303), "{answer:?}");
    assert_eq!(answer.header("location"), Some("/login"));
    // Nothing was written by any of them; well-formed UTF-8 still passes.
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(users, 1, "only the organisation's owner");
    let page = BrowserClient::new(&app.url(""))
        .get("/login?next=%2Ffiles%3Ffolder%3D%2F%C3%A9t%C3%A9")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_still_serving(&app.url("")).await;
}

/// JSON that a recursive parser could choke on, each within the API's 1 MiB body limit.
fn deep_json() -> Vec<(&'static str, Vec<u8>)> {
    let depth = 100_000;
    let arrays = ["[".repeat(depth), "]".repeat(depth)].concat();
    let objects = [r#"{"a":"#.repeat(depth), "1".to_owned(), "}".repeat(depth)].concat();
    let inside = format!(
        r#"{{"organisation": {}1{}, "name": "n", "email": "a@b.co", "password": "correct horse battery"}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let unclosed = "[{\"a\":".repeat(depth / 2);
    let spaces = " ".repeat(1_000_000);
    let spaces_then_object = format!("{spaces}{{");
    let cases = vec![
        ("100,000 nested arrays", arrays.into_bytes()),
        ("100,000 nested objects", objects.into_bytes()),
        ("nesting inside a field", inside.into_bytes()),
        ("nesting never closed", unclosed.into_bytes()),
        ("1 MB of whitespace", spaces.into_bytes()),
        (
            "1 MB of whitespace, then an open object",
            spaces_then_object.into_bytes(),
        ),
    ];
    for (case, body) in &cases {
        assert!(body.len() <= 1 << 20, "{case} is over the body limit");
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_and_whitespace_floods_are_400() {
    let app = TestApp::spawn().await;
    let org = api::org(&app, "Nesting").await;
    let key = api::key(&app, &org, Role::Owner).await;
    let targets = [
        ("POST", "/api/v1/signups".to_owned(), None),
        (
            "POST",
            format!("/api/v1/tenants/{}/invitations", org.tenant),
            Some(&key),
        ),
        (
            "POST",
            format!("/api/v1/tenants/{}/api-keys", org.tenant),
            Some(&key),
        ),
    ];
    let mut tally = Tally::default();
    for (case, body) in deep_json() {
        for (method, path, key) in &targets {
            let mut request = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let case = format!("{case}, {method} {path}");
            tally.saw(response.status().as_u16(), &case);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
            assert!(
                content_type(&response).starts_with("application/problem+json"),
                "{case}"
            );
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 400, "{case}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{case} took {:?}",
                started.elapsed()
            );
        }
    }
    eprintln!("deep JSON: {tally:?}");
    assert_eq!(tally.total(), deep_json().len() * targets.len());
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(users, 1);
    assert_still_serving(&app.url("")).await;
}

/// The server binary on a database and Redis prefix of its own, as operators run it.
struct ServerProcess {
    child: Child,
    address: SocketAddr,
    _files: tempfile::TempDir,
    _db: TestDb,
}

impl ServerProcess {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let files = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(binary("tenantkit-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TENANTKIT_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &db.app_url)
            .env("REDIS_URL", env("TENANTKIT_TEST_REDIS"))
            .env("SMTP_URL", env("TENANTKIT_TEST_SMTP"))
            .env(
                "TENANTKIT_REDIS__KEY_PREFIX",
                format!("test:{}", uuid::Uuid::now_v7().simple()),
            )
            .env("TENANTKIT_STORAGE__LOCAL__ROOT", files.path())
            .env("TENANTKIT_LOG__FILTER", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tenantkit-server");
        assert!(
            wait_for_port(port, Duration::from_secs(20)).await,
            "the server did not start"
        );
        Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            _files: files,
            _db: db,
        }
    }

    /// (VmRSS, VmHWM) of the server process, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One round of everything above that needs no account, four at a time. Returns how many
/// requests were sent, and the statuses of the answers that came.
async fn hostile_round(server: &ServerProcess) -> (usize, Vec<u16>) {
    let address = server.address;
    let mut requests: Vec<(Vec<u8>, bool)> = Vec::new();
    for (_, body) in deep_json() {
        requests.push((
            request(
                "POST",
                b"/api/v1/signups",
                b"Content-Type: application/json\r\n",
                &body,
            ),
            false,
        ));
    }
    let two_mib = vec![b'x'; 2 << 20];
    requests.push((
        request(
            "POST",
            b"/api/v1/signups",
            b"Content-Type: application/json\r\n",
            &two_mib,
        ),
        false,
    ));
    let mut chunked = b"POST /api/v1/signups HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..32 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&[b' '; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    requests.push((chunked, false));
    let big_form = format!("email=a&password={}", "p".repeat(200 * 1024));
    requests.push((
        request(
            "POST",
            b"/login",
            b"Content-Type: application/x-www-form-urlencoded\r\n",
            big_form.as_bytes(),
        ),
        false,
    ));
    let many_big: String = (0..100)
        .map(|i| format!("X-Big-{i}: {}\r\n", "v".repeat(8 * 1024)))
        .collect();
    requests.push((request("GET", b"/healthz", many_big.as_bytes(), b""), false));
    let huge = format!("X-Huge: {}\r\n", "w".repeat(64 * 1024));
    requests.push((request("GET", b"/healthz", huge.as_bytes(), b""), false));
    // 64 MiB of multipart preamble, and a part head as long: multer would hold either whole.
    let preamble = vec![b'p'; 64 << 20];
    requests.push((
        request(
            "POST",
            b"/files/upload",
            b"Content-Type: multipart/form-data; boundary=b\r\n",
            &preamble,
        ),
        false,
    ));
    let mut long_head =
        b"--b\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\nX-Pad: ".to_vec();
    long_head.extend(std::iter::repeat_n(b'h', 64 << 20));
    requests.push((
        request(
            "POST",
            b"/files/upload",
            b"Content-Type: multipart/form-data; boundary=b\r\n",
            &long_head,
        ),
        false,
    ));
    for bad in [
        &b"/login?next=%FF"[..],
        b"/login?next=//evil.test",
        b"/files/%FF/content",
    ] {
        requests.push((request("GET", bad, b"Host: evil.test\r\n", b""), false));
    }
    requests.push((
        request(
            "POST",
            b"/login",
            b"Content-Type: application/x-www-form-urlencoded\r\nCookie: tk_anon=\xff\r\n",
            b"email=%FF",
        ),
        false,
    ));
    let long_host = format!("Host: {}\r\n", "h".repeat(10 * 1024));
    requests.push((request("GET", b"/login", long_host.as_bytes(), b""), false));
    let sent = requests.len();
    let answers = futures::stream::iter(requests)
        .map(|(bytes, half_close)| exchange(address, bytes, half_close))
        .buffer_unordered(4)
        .collect::<Vec<Raw>>()
        .await;
    (
        sent,
        answers.iter().filter_map(|answer| answer.status).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_process_memory_stays_bounded_under_hostile_input() {
    let server = ServerProcess::start().await;
    // Warm up: the pages, the API document and a few refusals, so lazily built state exists.
    let client = no_redirects();
    for _ in 0..3 {
        for path in [
            "/",
            "/login",
            "/signup",
            "/api/openapi.json",
            "/healthz",
            "/nothing",
        ] {
            let status = client.get(server.url(path)).send().await.unwrap().status();
            assert!(status.as_u16() < 500, "{path}: {status}");
        }
    }
    let _ = hostile_round(&server).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, hwm_before) = server.memory_kib();

    let (mut sent, mut statuses) = (0, Vec::new());
    for _ in 0..3 {
        let (round_sent, answers) = hostile_round(&server).await;
        sent += round_sent;
        statuses.extend(answers);
    }
    // 30 connections that send nothing, and are then dropped.
    let idle: Vec<TcpStream> =
        futures::future::join_all((0..30).map(|_| TcpStream::connect(server.address)))
            .await
            .into_iter()
            .map(|s| s.unwrap())
            .collect();
    assert_still_serving(&server.url("")).await;
    drop(idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_after, hwm_after) = server.memory_kib();
    eprintln!(
        "server RSS: {rss_before} KiB before, {rss_after} KiB after \
         ({:+} KiB); peak {hwm_before} KiB before, {hwm_after} KiB after; {} requests, {} answers: {:?}",
        rss_after as i64 - rss_before as i64,
        sent,
        statuses.len(),
        statuses
            .iter()
            .fold(BTreeMap::<u16, usize>::new(), |mut m, s| {
                *m.entry(*s).or_default() += 1;
                m
            })
    );
    assert!(
        statuses.iter().all(|s| *s < 500),
        "a hostile request got a 5xx: {statuses:?}"
    );
    // Every request was answered, floods included (the server reads a flood's first bytes,
    // answers, and closes).
    assert_eq!(statuses.len(), sent, "unanswered requests: {statuses:?}");
    let budget = 100 * 1024;
    assert!(
        rss_after < rss_before + budget,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        hwm_after < rss_before + budget,
        "RSS peaked at {hwm_after} KiB (from {rss_before} KiB)"
    );
    assert_still_serving(&server.url("")).await;
}
