//! Forged forms: every unsafe page route refuses a post without its own browser's CSRF token
//! (missing, empty, or another session's), and changes nothing.

use std::collections::BTreeSet;

use chrono::Utc;
use reqwest::StatusCode;
use tenantkit_accounts::{
    tokens::TokenPurpose,
    two_factor::{TotpSecret, code_at},
};
use tenantkit_tests::web_client::{BrowserClient, Page};
use uuid::Uuid;

use super::{
    CSRF_REFUSAL, Kit, NEW_PASSWORD, PASSWORD, SESSION, between, changed_tables, signed_in,
    unix_now,
};

/// The unsafe page routes anyone may post to, and those that need a signed-in session. Together
/// they must be every POST route in `libs/web/src/pages/mod.rs` (checked below).
const ANONYMOUS_POSTS: [&str; 6] = [
    "/signup",
    "/login",
    "/login/two-factor",
    "/password/forgot",
    "/password/reset",
    "/invitations/accept",
];
const SIGNED_IN_POSTS: [&str; 20] = [
    "/logout",
    "/impersonation/stop",
    "/account/password",
    "/account/email",
    "/account/verification",
    "/account/two-factor",
    "/account/two-factor/disable",
    "/sessions/:key/revoke",
    "/tenants/switch",
    "/team/invitations",
    "/team/invitations/:id/resend",
    "/team/invitations/:id/revoke",
    "/team/members/:id/role",
    "/team/members/:id/remove",
    "/team/leave",
    "/team/transfer",
    "/billing/checkout",
    "/billing/portal",
    "/files/upload",
    "/files/:id/delete",
];

/// The routes `pages::routes()` answers POST on, read from its source.
fn post_routes_in_source() -> BTreeSet<String> {
    let source = include_str!("../../../libs/web/src/pages/mod.rs");
    let routes = source
        .split("fn routes()")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("pages::routes() in pages/mod.rs");
    routes
        .split(".at(")
        .skip(1)
        .filter(|at| at.contains("post("))
        .map(|at| at.split('"').nth(1).expect("a route path").to_owned())
        .collect()
}

#[test]
fn the_csrf_tests_cover_every_post_route_of_the_pages() {
    let covered: BTreeSet<String> = ANONYMOUS_POSTS
        .iter()
        .chain(SIGNED_IN_POSTS.iter())
        .map(|r| (*r).to_owned())
        .collect();
    let routes = post_routes_in_source();
    assert!(
        routes.len() >= 20,
        "the route list was not read: {routes:?}"
    );
    assert_eq!(
        covered, routes,
        "a POST page route was added or removed: cover it in the CSRF tests"
    );
}

/// A form post as an attacker would forge it: the route it targets (as `pages/mod.rs` names
/// it), the URL, and the fields of the genuine form but its token.
struct Forged<'a> {
    route: &'static str,
    path: String,
    fields: Vec<(&'a str, &'a str)>,
}

fn forged<'a>(route: &'static str, path: &str, fields: &[(&'a str, &'a str)]) -> Forged<'a> {
    Forged {
        route,
        path: path.to_owned(),
        fields: fields.to_vec(),
    }
}

/// Posts the forged form from `browser` without a token, with an empty one, and with each
/// `foreign` token (valid, but another browser's): each is refused with 403, and the database
/// is untouched.
async fn assert_csrf_refused(
    kit: &Kit,
    covered: &mut BTreeSet<&'static str>,
    browser: &BrowserClient,
    forged: &Forged<'_>,
    foreign: &[&str],
) {
    let Forged {
        route,
        path,
        fields,
    } = forged;
    let before = kit.snapshot().await;
    let mut tokens: Vec<(&str, Option<&str>)> =
        vec![("no token", None), ("an empty token", Some(""))];
    tokens.extend(
        foreign
            .iter()
            .map(|t| ("another session's token", Some(*t))),
    );
    for (what, token) in tokens {
        let mut all = fields.to_vec();
        if let Some(token) = token {
            all.push(("csrf_token", token));
        }
        let page = browser.post(path, &all).await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "POST {path} with {what}: {page:?}"
        );
        assert!(
            page.body.contains(CSRF_REFUSAL),
            "POST {path} with {what}: {}",
            page.body
        );
        assert!(
            page.set_cookie(SESSION).is_none(),
            "POST {path} with {what} set a session"
        );
    }
    let after = kit.snapshot().await;
    assert!(
        before == after,
        "a refused POST {path} changed {:?}",
        changed_tables(&before, &after)
    );
    covered.insert(route);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_forms_refuse_a_missing_or_foreign_csrf_token() {
    let kit = Kit::spawn(&[]).await;
    let (ada, ada_browser) = kit.owner("Acme", "ada@acme.test").await;
    let (_, invitation) = kit.invite(&ada_browser, ada.tenant, "cy@acme.test").await;
    let (dee, _) = kit.owner("Dee Org", "dee@dee.test").await;
    let dee_secret = kit.enable_two_factor(dee.id).await;
    let reset = kit
        .token(TokenPurpose::ResetPassword, &ada, Utc::now())
        .await;

    let browser = kit.browser();
    let own = browser.csrf_token("/login").await;
    let foreign = kit.browser().csrf_token("/login").await;
    assert_ne!(own, foreign, "two browsers share a CSRF token");
    let mut covered = BTreeSet::new();

    let sign_up = [
        ("organisation", "Mallory Org"),
        ("name", "Mallory"),
        ("email", "mallory@evil.test"),
        ("password", PASSWORD),
    ];
    let reset_path = format!("/password/reset?token={reset}");
    let accept_path = format!("/invitations/accept?token={invitation}");
    let log_in = [("email", ada.email.as_str()), ("password", PASSWORD)];
    let cases = [
        forged("/signup", "/signup", &sign_up),
        forged("/login", "/login", &log_in),
        forged("/password/forgot", "/password/forgot", &log_in[..1]),
        forged(
            "/password/reset",
            &reset_path,
            &[("new_password", NEW_PASSWORD)],
        ),
        forged(
            "/invitations/accept",
            &accept_path,
            &[("name", "Cy"), ("password", PASSWORD)],
        ),
    ];
    for case in &cases {
        assert_csrf_refused(&kit, &mut covered, &browser, case, &[&foreign]).await;
    }
    assert!(
        !signed_in(&browser).await,
        "a forged log-in signed the browser in"
    );

    // Half-way through signing in: the code form is forged too.
    let pending = kit.browser();
    let page = pending.log_in(&dee.email, PASSWORD).await;
    assert!(page.redirects_to("/login/two-factor"), "{page:?}");
    let code = kit.next_code(dee.id, &dee_secret).await;
    let code_form = forged("/login/two-factor", "/login/two-factor", &[("code", &code)]);
    assert_csrf_refused(&kit, &mut covered, &pending, &code_form, &[&foreign, &own]).await;
    assert!(!signed_in(&pending).await);
    // The refusals were about the token alone: the same code with it goes through.
    let page = pending
        .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");

    assert_eq!(covered, ANONYMOUS_POSTS.into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_forms_refuse_a_missing_or_foreign_csrf_token() {
    let kit = Kit::spawn(&[]).await;
    let (ada, ada1) = kit.owner("Acme", "ada@acme.test").await;
    // Ada's second session: its tokens are valid, but not for the first one.
    let ada2 = kit.logged_in(&ada.email, PASSWORD).await;
    // A teammate who joined through an invitation, and an invitation still pending.
    let (_, bo_link) = kit.invite(&ada1, ada.tenant, "bo@acme.test").await;
    let bo = kit.browser();
    let accept = format!("/invitations/accept?token={bo_link}");
    let page = bo
        .submit(&accept, &accept, &[("name", "Bo"), ("password", PASSWORD)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    let bo_id: Uuid = sqlx::query_scalar("select id from users where email = 'bo@acme.test'")
        .fetch_one(&kit.app.db.owner)
        .await
        .unwrap();
    let (cy_invitation, _) = kit.invite(&ada1, ada.tenant, "cy@acme.test").await;
    // A second organisation Ada belongs to, with Acme chosen explicitly as the active one.
    let (other, _) = kit.owner("Other Org", "otto@other.test").await;
    sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, 'member')")
        .bind(other.tenant)
        .bind(ada.id)
        .execute(&kit.app.db.owner)
        .await
        .unwrap();
    let acme = ada.tenant.to_string();
    let page = ada1
        .submit("/dashboard", "/tenants/switch", &[("tenant_id", &acme)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    // Dee has two-factor on and is fully signed in.
    let (dee, _) = kit.owner("Dee Org", "dee@dee.test").await;
    let dee_secret = kit.enable_two_factor(dee.id).await;
    let dee_browser = kit.browser();
    dee_browser.log_in(&dee.email, PASSWORD).await;
    let code = kit.next_code(dee.id, &dee_secret).await;
    let page = dee_browser
        .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    // Ada starts enrolling in two-factor (opening the page stores the pending secret).
    let page = ada1.get("/account/two-factor").await;
    let secret = between(&page.body, "<code id=\"totp-secret\">", "</code>").expect("secret");
    let secret = TotpSecret::from_base32(secret).expect("a TOTP secret");
    // Ada's other session, as the first one's sessions page offers to revoke it.
    let session_keys = |page: Page| -> BTreeSet<String> {
        page.body
            .split("action=\"/sessions/")
            .skip(1)
            .filter_map(|rest| rest.split("/revoke\"").next().map(str::to_owned))
            .collect()
    };
    let seen_by_1 = session_keys(ada1.get("/sessions").await);
    let seen_by_2 = session_keys(ada2.get("/sessions").await);
    let ada2_key = seen_by_1
        .difference(&seen_by_2)
        .next()
        .expect("the second session is listed")
        .clone();

    let own = ada1.csrf_token("/dashboard").await;
    let foreign = ada2.csrf_token("/dashboard").await;
    let bos = bo.csrf_token("/dashboard").await;
    assert_ne!(own, foreign, "two sessions share a CSRF token");
    let anonymous = kit.browser().csrf_token("/login").await;
    let foreign_tokens = [foreign.as_str(), bos.as_str(), anonymous.as_str()];

    let mut covered = BTreeSet::new();
    let now_code = code_at(&secret, unix_now());
    let bo_user = bo_id.to_string();
    let other_tenant = other.tenant.to_string();
    let revoke = format!("/sessions/{ada2_key}/revoke");
    let resend = format!("/team/invitations/{cy_invitation}/resend");
    let revoke_invitation = format!("/team/invitations/{cy_invitation}/revoke");
    let change_role = format!("/team/members/{bo_id}/role");
    let remove = format!("/team/members/{bo_id}/remove");
    // The page's upload is multipart with the token first; a forged urlencoded post has no
    // token to find and is refused before anything is read or stored.
    let delete_file = format!("/files/{}/delete", Uuid::now_v7());
    let cases = [
        forged("/logout", "/logout", &[]),
        forged(
            "/account/password",
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
        forged(
            "/account/email",
            "/account/email",
            &[("new_email", "ada@evil.test"), ("password", PASSWORD)],
        ),
        forged("/account/verification", "/account/verification", &[]),
        forged(
            "/account/two-factor",
            "/account/two-factor",
            &[("code", &now_code)],
        ),
        forged("/sessions/:key/revoke", &revoke, &[]),
        forged(
            "/tenants/switch",
            "/tenants/switch",
            &[("tenant_id", &other_tenant)],
        ),
        forged(
            "/team/invitations",
            "/team/invitations",
            &[("email", "eve@evil.test"), ("role", "owner")],
        ),
        forged("/team/invitations/:id/resend", &resend, &[]),
        forged("/team/invitations/:id/revoke", &revoke_invitation, &[]),
        forged("/team/members/:id/role", &change_role, &[("role", "owner")]),
        forged("/team/members/:id/remove", &remove, &[]),
        forged("/team/transfer", "/team/transfer", &[("user_id", &bo_user)]),
        forged("/impersonation/stop", "/impersonation/stop", &[]),
        forged(
            "/billing/checkout",
            "/billing/checkout",
            &[("plan", "team"), ("interval", "monthly")],
        ),
        forged("/billing/portal", "/billing/portal", &[]),
        forged(
            "/files/upload",
            "/files/upload",
            &[("folder", "/"), ("file", "forged bytes")],
        ),
        forged("/files/:id/delete", &delete_file, &[("folder", "/")]),
    ];
    for case in &cases {
        assert_csrf_refused(&kit, &mut covered, &ada1, case, &foreign_tokens).await;
    }
    // Bo's leaving and Dee's turning two-factor off are forged with Ada's tokens.
    let leave = forged("/team/leave", "/team/leave", &[]);
    assert_csrf_refused(&kit, &mut covered, &bo, &leave, &[&own, &foreign]).await;
    let disable = forged(
        "/account/two-factor/disable",
        "/account/two-factor/disable",
        &[("password", PASSWORD)],
    );
    assert_csrf_refused(
        &kit,
        &mut covered,
        &dee_browser,
        &disable,
        &[&own, &foreign],
    )
    .await;

    // What lives in Redis stayed as well: no session was ended, the active tenant is Acme.
    for browser in [&ada1, &ada2, &bo, &dee_browser] {
        assert!(signed_in(browser).await, "a refused form ended a session");
    }
    let dashboard = ada1.get("/dashboard").await;
    assert!(
        dashboard.body.contains("<h1>Acme</h1>"),
        "{}",
        dashboard.body
    );
    assert_eq!(covered, SIGNED_IN_POSTS.into_iter().collect());
}
