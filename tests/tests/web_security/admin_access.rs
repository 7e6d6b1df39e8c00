//! The admin area and the admin API are invisible to everyone but platform admins with
//! two-factor: visitors, tenant owners and admins without two-factor get 404 on every route,
//! and a refused action changes nothing. A suspended tenant's pages and API are closed; a
//! read-only impersonation cannot write.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Kit, PASSWORD};

/// Every admin page and action, with ids that exist.
fn admin_routes(tenant: uuid::Uuid, user: uuid::Uuid) -> (Vec<String>, Vec<String>) {
    let gets = vec![
        "/admin".to_owned(),
        "/admin/".to_owned(),
        "/admin/tenants?q=acme".to_owned(),
        format!("/admin/tenants/{tenant}"),
        format!("/admin/tenants/{tenant}/export"),
        "/admin/users".to_owned(),
        format!("/admin/users/{user}"),
        "/admin/jobs".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/audit?format=csv".to_owned(),
        "/admin/no-such-page".to_owned(),
    ];
    let mut posts: Vec<String> = ["suspend", "reactivate", "plan", "entitlements", "delete"]
        .iter()
        .map(|a| format!("/admin/tenants/{tenant}/{a}"))
        .collect();
    posts.extend(
        [
            "impersonate",
            "lock",
            "unlock",
            "reset-password",
            "end-sessions",
        ]
        .iter()
        .map(|a| format!("/admin/users/{user}/{a}")),
    );
    posts.push("/admin/jobs/some-job/retry".to_owned());
    posts.push("/admin/jobs/some-job/discard".to_owned());
    (gets, posts)
}

async fn state_of(kit: &Kit, tenant: uuid::Uuid, user: uuid::Uuid) -> (String, bool, i64) {
    let status: String = sqlx::query_scalar("select status from tenants where id = $1")
        .bind(tenant)
        .fetch_one(&kit.app.db.owner)
        .await
        .unwrap();
    let locked: bool = sqlx::query_scalar("select locked_at is not null from users where id = $1")
        .bind(user)
        .fetch_one(&kit.app.db.owner)
        .await
        .unwrap();
    let admin_events: i64 = sqlx::query_scalar(
        "select (select count(*) from tenant_audit_events where action like 'admin.%')
              + (select count(*) from account_audit_events where action like 'admin.%')
              + (select count(*) from platform_audit_events where action like 'admin.%')",
    )
    .fetch_one(&kit.app.db.owner)
    .await
    .unwrap();
    (status, locked, admin_events)
}

/// A platform admin signed in with password and code.
async fn admin_with_two_factor(
    kit: &Kit,
    email: &str,
) -> tenantkit_tests::web_client::BrowserClient {
    let (admin, _) = kit.owner("Staff", email).await;
    sqlx::query("update users set is_platform_admin = true where id = $1")
        .bind(admin.id)
        .execute(&kit.app.db.owner)
        .await
        .unwrap();
    let secret = kit.enable_two_factor(admin.id).await;
    let browser = kit.browser();
    let page = browser.log_in(email, PASSWORD).await;
    assert!(page.redirects_to("/login/two-factor"), "{page:?}");
    let code = kit.next_code(admin.id, &secret).await;
    let page = browser
        .submit("/login/two-factor", "/login/two-factor", &[("code", &code)])
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_is_a_404_for_anyone_but_an_admin_with_two_factor() {
    let kit = Kit::spawn(&[]).await;
    let (owner, owner_browser) = kit.owner("Acme", "owner@acme.test").await;
    let (half_admin, _) = kit.owner("Half", "half-admin@staff.test").await;
    sqlx::query("update users set is_platform_admin = true where id = $1")
        .bind(half_admin.id)
        .execute(&kit.app.db.owner)
        .await
        .unwrap();
    let half_admin_browser = kit.logged_in(&half_admin.email, PASSWORD).await;
    let anonymous = kit.browser();
    let (gets, posts) = admin_routes(owner.tenant, owner.id);
    let before = state_of(&kit, owner.tenant, owner.id).await;

    for (who, browser, token_page) in [
        ("anonymous", &anonymous, "/login"),
        ("tenant owner", &owner_browser, "/account"),
        (
            "admin without two-factor",
            &half_admin_browser,
            "/account/two-factor",
        ),
    ] {
        for path in &gets {
            let page = browser.get(path).await;
            assert_eq!(
                page.status,
                StatusCode::NOT_FOUND,
                "{who} GET {path}: {page:?}"
            );
            assert!(
                !page.body.contains("Tenants"),
                "{who} GET {path} leaked the admin page"
            );
        }
        // A valid CSRF token, a reason and the confirmation: authorization alone refuses.
        let token = browser.csrf_token(token_page).await;
        for path in &posts {
            let page = browser
                .post(
                    path,
                    &[
                        ("csrf_token", token.as_str()),
                        ("reason", "attack"),
                        ("confirm", "on"),
                        ("plan", "team"),
                    ],
                )
                .await;
            assert_eq!(
                page.status,
                StatusCode::NOT_FOUND,
                "{who} POST {path}: {page:?}"
            );
            // Even an unreadable body reveals nothing.
            let page = browser.post(path, &[("%%%", "\u{0}")]).await;
            assert_eq!(
                page.status,
                StatusCode::NOT_FOUND,
                "{who} POST {path} (garbage)"
            );
        }
    }
    assert_eq!(state_of(&kit, owner.tenant, owner.id).await, before);

    // The same routes open for an admin with two-factor.
    let admin = admin_with_two_factor(&kit, "root@staff.test").await;
    for path in gets.iter().filter(|p| !p.contains("no-such-page")) {
        let page = admin.get(path).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "admin GET {path}: {}",
            page.body
        );
    }
    let page = admin
        .submit(
            &format!("/admin/tenants/{}", owner.tenant),
            &format!("/admin/tenants/{}/suspend", owner.tenant),
            &[("reason", "abuse report 17"), ("confirm", "on")],
        )
        .await;
    assert!(
        page.redirects_to(&format!(
            "/admin/tenants/{}?done=tenant-suspended",
            owner.tenant
        )),
        "{page:?}"
    );
    assert_eq!(state_of(&kit, owner.tenant, owner.id).await.0, "suspended");

    // Without the confirmation box or a reason nothing happens.
    let page = admin
        .submit(
            &format!("/admin/tenants/{}", owner.tenant),
            &format!("/admin/tenants/{}/reactivate", owner.tenant),
            &[("reason", "ok now")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("confirmation box"), "{}", page.body);
    assert_eq!(state_of(&kit, owner.tenant, owner.id).await.0, "suspended");

    // The suspended tenant's owner sees the suspended page.
    let page = owner_browser.get("/team").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("suspended"), "{}", page.body);
}

/// Whether a concrete path (`/users/1234?q=x`) is an instance of a declared one
/// (`/users/{user_id}`).
fn same_route(declared: &str, concrete: &str) -> bool {
    let concrete = concrete.split('?').next().unwrap_or_default();
    let (declared, concrete): (Vec<_>, Vec<_>) =
        (declared.split('/').collect(), concrete.split('/').collect());
    declared.len() == concrete.len()
        && declared
            .iter()
            .zip(&concrete)
            .all(|(d, c)| d == c || (d.starts_with('{') && d.ends_with('}')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_everyone_but_admins_and_a_suspended_tenant_api_answers_403() {
    let kit = Kit::spawn(&[]).await;
    let (owner, _) = kit.owner("Acme", "owner@acme.test").await;
    let org = tenantkit_tests::api::Org {
        tenant: owner.tenant,
        owner: owner.id,
        email: owner.email.clone(),
    };
    let key = tenantkit_tests::api::key(&kit.app, &org, tenantkit_kernel::Role::Owner).await;
    let t = owner.tenant;
    let u = owner.id;
    let reason = json!({ "reason": "attack" });
    let calls: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, "/admin/tenants".into(), None),
        (Method::GET, format!("/admin/tenants/{t}"), None),
        (
            Method::POST,
            format!("/admin/tenants/{t}/suspend"),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/admin/tenants/{t}/reactivate"),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/admin/tenants/{t}/delete"),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/admin/tenants/{t}/plan"),
            Some(json!({ "plan": "team", "reason": "attack" })),
        ),
        (
            Method::POST,
            format!("/admin/tenants/{t}/entitlements"),
            Some(json!({ "overrides": { "seats": 1000 }, "reason": "attack" })),
        ),
        (Method::GET, "/admin/users?q=owner".into(), None),
        (Method::GET, format!("/admin/users/{u}"), None),
        (
            Method::POST,
            format!("/admin/users/{u}/lock"),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/admin/users/{u}/unlock"),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/admin/users/{u}/reset-password"),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            format!("/admin/users/{u}/end-sessions"),
            Some(reason.clone()),
        ),
        (Method::GET, "/admin/jobs".into(), None),
        (
            Method::POST,
            "/admin/jobs/some-job/retry".into(),
            Some(reason.clone()),
        ),
        (
            Method::POST,
            "/admin/jobs/some-job/discard".into(),
            Some(reason.clone()),
        ),
        (Method::GET, "/admin/audit-events".into(), None),
    ];
    // Every admin operation the API document declares is among the calls above, so a new
    // one cannot go untested.
    let spec: serde_json::Value = kit.app.get("/api/openapi.json").await.json().await.unwrap();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        let Some(admin_path) = path.strip_prefix("/admin") else {
            continue;
        };
        for method in operations.as_object().expect("operations").keys() {
            let covered = calls.iter().any(|(m, p, _)| {
                m.as_str().eq_ignore_ascii_case(method)
                    && same_route(admin_path, &p["/admin".len()..])
            });
            assert!(covered, "{method} /admin{admin_path} is not attacked here");
        }
    }
    let before = state_of(&kit, t, u).await;
    for (method, path, body) in &calls {
        let (status, problem) =
            tenantkit_tests::api::call(&kit.app, &key, method.clone(), path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "owner key {method} {path}: {problem}"
        );
    }
    assert_eq!(state_of(&kit, t, u).await, before);

    // An admin (session with two-factor) suspends through the API…
    let admin = admin_with_two_factor(&kit, "root@staff.test").await;
    let me: serde_json::Value =
        serde_json::from_str(&admin.get("/api/v1/me").await.body).expect("me");
    let csrf = me["csrf_token"].as_str().expect("csrf token").to_owned();
    let http = reqwest::Client::new();
    let session = admin.cookie("tk_session").expect("admin session");
    let response = http
        .post(kit.app.url(&format!("/api/v1/admin/tenants/{t}/suspend")))
        .header("cookie", format!("tk_session={session}"))
        .header("x-csrf-token", &csrf)
        .json(&json!({ "reason": "chargeback" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // …and the tenant's own key now gets 403 with the reason, as problem+json.
    let (status, problem) = tenantkit_tests::api::call(
        &kit.app,
        &key,
        Method::GET,
        &format!("/tenants/{t}/members"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/tenant-suspended"),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("suspended"),
        "{problem}"
    );
    let events: i64 = sqlx::query_scalar(
        "select count(*) from tenant_audit_events where tenant_id = $1 and action = 'admin.tenant.suspend'",
    )
    .bind(t)
    .fetch_one(&kit.app.db.owner)
    .await
    .unwrap();
    assert_eq!(events, 1);

    // The rest of the admin API works for the admin, each action leaving its audit row.
    let send = |method: Method, path: String, body: Option<serde_json::Value>| {
        let request = http
            .request(method, kit.app.url(&format!("/api/v1{path}")))
            .header("cookie", format!("tk_session={session}"))
            .header("x-csrf-token", &csrf);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let (status, _) = send(
        Method::POST,
        format!("/admin/tenants/{t}/entitlements"),
        Some(json!({ "overrides": { "seats": 25, "features": ["sso"] }, "reason": "deal" })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, problem) = send(
        Method::POST,
        format!("/admin/tenants/{t}/entitlements"),
        Some(json!({ "overrides": { "seats": -1 }, "reason": "deal" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, found) = send(Method::GET, "/admin/users?q=owner@acme".into(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["items"][0]["email"], "owner@acme.test", "{found}");
    let (status, detail) = send(Method::GET, format!("/admin/users/{u}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        detail["memberships"][0]["tenant_id"],
        t.to_string(),
        "{detail}"
    );
    let (status, jobs) = send(Method::GET, "/admin/jobs".into(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(jobs["dead_jobs"].is_array(), "{jobs}");
    let (status, _) = send(
        Method::POST,
        "/admin/jobs/no-such-job/retry".into(),
        Some(reason.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for action in ["end-sessions", "reset-password"] {
        let (status, problem) = send(
            Method::POST,
            format!("/admin/users/{u}/{action}"),
            Some(json!({ "reason": "support ticket 42" })),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{action}: {problem}");
    }
    let trail: Vec<String> = sqlx::query_scalar(
        "select action from tenant_audit_events where tenant_id = $1 and action like 'admin.%'
         union all
         select action from account_audit_events where user_id = $2 and action like 'admin.%'
         order by 1",
    )
    .bind(t)
    .bind(u)
    .fetch_all(&kit.app.db.owner)
    .await
    .unwrap();
    assert_eq!(
        trail,
        [
            "admin.tenant.entitlements",
            "admin.tenant.suspend",
            "admin.user.end_sessions",
            "admin.user.force_password_reset"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_impersonation_shows_a_banner_refuses_writes_and_stops_in_one_click() {
    let kit = Kit::spawn(&[]).await;
    let (owner, _) = kit.owner("Acme", "owner@acme.test").await;
    let admin = admin_with_two_factor(&kit, "root@staff.test").await;
    let user_page = format!("/admin/users/{}", owner.id);
    let page = admin
        .submit(
            &user_page,
            &format!("/admin/users/{}/impersonate", owner.id),
            &[
                ("reason", "ticket 4711: cannot see invoices"),
                ("confirm", "on"),
            ],
        )
        .await;
    assert!(page.redirects_to("/dashboard"), "{page:?}");

    let page = admin.get("/team").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("impersonation-banner"), "{}", page.body);
    assert!(page.body.contains("owner@acme.test"));
    // Writes are refused, through the pages and through the API.
    let page = admin
        .submit(
            "/team",
            "/team/invitations",
            &[("email", "new@acme.test"), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{page:?}");
    assert!(page.body.contains("read-only"), "{}", page.body);
    let invitations: i64 = sqlx::query_scalar("select count(*) from invitations")
        .fetch_one(&kit.app.db.owner)
        .await
        .unwrap();
    assert_eq!(invitations, 0);
    let me: serde_json::Value =
        serde_json::from_str(&admin.get("/api/v1/me").await.body).expect("me");
    let response = reqwest::Client::new()
        .post(
            kit.app
                .url(&format!("/api/v1/tenants/{}/invitations", owner.tenant)),
        )
        .header(
            "cookie",
            format!("tk_session={}", admin.cookie("tk_session").unwrap()),
        )
        .header("x-csrf-token", me["csrf_token"].as_str().unwrap())
        .json(&json!({ "email": "new@acme.test", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // The admin area is closed while impersonating.
    assert_eq!(admin.get("/admin").await.status, StatusCode::NOT_FOUND);

    let page = admin.submit("/team", "/impersonation/stop", &[]).await;
    assert!(
        page.redirects_to(&format!("{user_page}?done=impersonation-stopped")),
        "{page:?}"
    );
    assert_eq!(admin.get("/admin").await.status, StatusCode::OK);
    assert!(
        !admin
            .get("/dashboard")
            .await
            .body
            .contains("impersonation-banner")
    );
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from account_audit_events where user_id = $1 and action like 'admin.%'
         order by occurred_at",
    )
    .bind(owner.id)
    .fetch_all(&kit.app.db.owner)
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["admin.user.impersonate", "admin.user.impersonate_stop"]
    );
}

/// Text with a NUL (U+0000), which PostgreSQL cannot store, typed into a sign-in, an admin's
/// reason, search or filter, or a tenant's audit filter: a 400 page that says what to fix,
/// never a 500, and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_a_nul_is_a_400_page_never_a_500() {
    let kit = Kit::spawn(&[]).await;
    let (owner, owner_browser) = kit.owner("Acme", "ada@acme.test").await;
    let admin = admin_with_two_factor(&kit, "root@staff.test").await;
    let nul = "x\u{0}y";
    let explains = |page: &tenantkit_tests::web_client::Page, case: &str| {
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            page.body
        );
        assert!(page.body.contains("NUL character"), "{case}: {}", page.body);
    };

    let anonymous = kit.browser();
    anonymous.get("/login").await;
    let page = anonymous
        .submit(
            "/login",
            "/login",
            &[("email", nul), ("password", PASSWORD)],
        )
        .await;
    explains(&page, "sign-in");

    let before = kit.snapshot().await;
    let (_, posts) = admin_routes(owner.tenant, owner.id);
    let mut tried = 0;
    for path in posts
        .iter()
        .filter(|p| !p.ends_with("/entitlements") && !p.ends_with("/delete"))
    {
        let form_page = path.rsplit_once('/').unwrap().0;
        let form_page = if form_page.starts_with("/admin/jobs") {
            "/admin/jobs"
        } else {
            form_page
        };
        let page = admin
            .submit(
                form_page,
                path,
                &[("reason", nul), ("confirm", "on"), ("plan", "free")],
            )
            .await;
        assert_ne!(
            page.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "POST {path}: {}",
            page.body
        );
        if page.status == StatusCode::BAD_REQUEST {
            explains(&page, path);
            tried += 1;
        }
    }
    assert!(tried >= 5, "only {tried} reasons reached the database");
    // (Reading the admin pages records the reads: only the acted-on rows are compared.)
    let after = kit.snapshot().await;
    let changed: Vec<String> = super::changed_tables(&before, &after)
        .into_iter()
        .filter(|t| ["public.tenants", "public.users", "public.memberships"].contains(&t.as_str()))
        .collect();
    assert!(changed.is_empty(), "the refused forms changed {changed:?}");

    for path in [
        "/admin/tenants?q=x%00y",
        "/admin/users?q=x%00y",
        "/admin/audit?action=x%00y",
        "/admin/audit?actor=x%00y",
    ] {
        explains(&admin.get(path).await, path);
    }
    for path in ["/audit?action=x%00y", "/audit?actor=x%00y"] {
        explains(&owner_browser.get(path).await, path);
    }
}
