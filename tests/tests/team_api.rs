//! The team API (/api/v1/tenants/{id}/…): members, roles, invitations and API keys, with API
//! keys and with session cookies. Every refusal is problem+json; another tenant's ids are 404.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit_kernel::Role;
use tenantkit_tests::{
    OWNER_PASSWORD, TestApp,
    api::{call, key, org},
    content_type,
    web_client::BrowserClient,
};
use uuid::Uuid;

#[tokio::test]
async fn an_owner_key_manages_invitations_and_keys() {
    let app = TestApp::spawn().await;
    let acme = org(&app, "Acme").await;
    let owner_key = key(&app, &acme, Role::Owner).await;
    let base = format!("/tenants/{}", acme.tenant);

    let (status, tenants) = call(&app, &owner_key, Method::GET, "/tenants", None).await;
    assert_eq!(status, 200);
    assert_eq!(tenants["items"][0]["id"], acme.tenant.to_string());
    assert_eq!(tenants["items"][0]["role"], "owner");

    let (status, members) = call(
        &app,
        &owner_key,
        Method::GET,
        &format!("{base}/members"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(members["items"][0]["email"], acme.email);
    assert_eq!(members["items"][0]["role"], "owner");

    // Invite, see it pending, resend, revoke.
    let (status, invitation) = call(
        &app,
        &owner_key,
        Method::POST,
        &format!("{base}/invitations"),
        Some(json!({ "email": "new.person@api.test", "role": "admin" })),
    )
    .await;
    assert_eq!(status, 201, "{invitation}");
    assert_eq!(invitation["role"], "admin");
    let invitation_id = invitation["id"].as_str().unwrap().to_owned();
    let (_, pending) = call(
        &app,
        &owner_key,
        Method::GET,
        &format!("{base}/invitations"),
        None,
    )
    .await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    let (status, _) = call(
        &app,
        &owner_key,
        Method::POST,
        &format!("{base}/invitations/{invitation_id}/resend"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = call(
        &app,
        &owner_key,
        Method::DELETE,
        &format!("{base}/invitations/{invitation_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, pending) = call(
        &app,
        &owner_key,
        Method::GET,
        &format!("{base}/invitations"),
        None,
    )
    .await;
    assert_eq!(pending["items"], json!([]));
    // Each invitation (and its resend) queued an email job in the same transaction.
    let jobs: i64 =
        sqlx::query_scalar("select count(*) from apalis.jobs where job_type = 'email.invitation'")
            .fetch_one(&app.db.owner)
            .await
            .expect("jobs");
    assert_eq!(jobs, 2, "the invitation and its resend each queue an email");

    // A new key: shown once, not cached, stored hashed, works at once, records its use.
    let response = app
        .client
        .post(app.url(&format!("/api/v1{base}/api-keys")))
        .bearer_auth(&owner_key)
        .json(&json!({ "name": "CI deploys", "role": "admin" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.expect("json");
    let token = created["token"].as_str().unwrap().to_owned();
    let key_id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("tk_"));
    let stored: Vec<u8> = sqlx::query_scalar("select secret_hash from api_keys where id = $1")
        .bind(Uuid::parse_str(&key_id).unwrap())
        .fetch_one(&app.db.owner)
        .await
        .expect("stored key");
    let secret = token.rsplit('_').next().unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(secret));
    assert_eq!(stored.len(), 32, "a SHA-256, not the secret");

    let (status, listed) = call(&app, &token, Method::GET, &format!("{base}/api-keys"), None).await;
    assert_eq!(status, 200);
    let listed = listed["items"].as_array().unwrap();
    let mine = listed.iter().find(|k| k["id"] == key_id.as_str()).unwrap();
    assert!(mine["last_used_at"].is_string(), "{mine}");
    assert!(mine.get("token").is_none() && !mine.to_string().contains(secret));

    let (status, _) = call(
        &app,
        &owner_key,
        Method::DELETE,
        &format!("{base}/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, problem) = call(&app, &token, Method::GET, "/tenants", None).await;
    assert_eq!(status, 401, "a revoked key stops working: {problem}");
}

#[tokio::test]
async fn roles_limit_what_a_key_may_do() {
    let app = TestApp::spawn().await;
    let acme = org(&app, "Acme").await;
    let base = format!("/tenants/{}", acme.tenant);
    let member = key(&app, &acme, Role::Member).await;
    let admin = key(&app, &acme, Role::Admin).await;
    let owner = key(&app, &acme, Role::Owner).await;

    let invite = json!({ "email": "x@api.test", "role": "member" });
    let (status, problem) = call(
        &app,
        &member,
        Method::POST,
        &format!("{base}/invitations"),
        Some(invite.clone()),
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["status"], 403);
    for path in ["invitations", "api-keys"] {
        let (status, _) = call(&app, &member, Method::GET, &format!("{base}/{path}"), None).await;
        assert_eq!(status, 403, "a member lists {path}");
    }
    // Members may see the team.
    let (status, _) = call(&app, &member, Method::GET, &format!("{base}/members"), None).await;
    assert_eq!(status, 200);

    // Admins manage below owner only.
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("{base}/api-keys"),
        Some(json!({ "name": "escalate", "role": "owner" })),
    )
    .await;
    assert_eq!(status, 403, "an admin key minted an owner key");
    let (status, _) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("{base}/members/{}", acme.owner),
        Some(json!({ "role": "member" })),
    )
    .await;
    assert_eq!(status, 403, "an admin demoted the owner");
    let (status, _) = call(
        &app,
        &admin,
        Method::POST,
        &format!("{base}/invitations"),
        Some(invite),
    )
    .await;
    assert_eq!(status, 201);

    // The last owner stays owner, even at an owner key's request.
    let (status, problem) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("{base}/members/{}", acme.owner),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("{base}/members/{}", acme.owner),
        None,
    )
    .await;
    assert_eq!(status, 409, "the last owner was removed");
    // Handing over ownership is a person's act.
    let (status, _) = call(
        &app,
        &owner,
        Method::POST,
        &format!("{base}/ownership"),
        Some(json!({ "new_owner": acme.owner })),
    )
    .await;
    assert_eq!(status, 403);
    // A key is not a user.
    let (status, _) = call(&app, &owner, Method::GET, "/me", None).await;
    assert_eq!(status, 403);

    let role: String = sqlx::query_scalar("select role from memberships where user_id = $1")
        .bind(acme.owner)
        .fetch_one(&app.db.owner)
        .await
        .expect("role");
    assert_eq!(role, "owner");
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_leak_nothing() {
    let app = TestApp::spawn().await;
    let a = org(&app, "Alpha").await;
    let b = org(&app, "Bravo").await;
    let a_key = key(&app, &a, Role::Owner).await;
    let b_key = key(&app, &b, Role::Owner).await;
    let a_base = format!("/tenants/{}", a.tenant);
    let (_, invitation) = call(
        &app,
        &a_key,
        Method::POST,
        &format!("{a_base}/invitations"),
        Some(json!({ "email": "secret.person@alpha.test", "role": "member" })),
    )
    .await;
    let invitation = invitation["id"].as_str().unwrap().to_owned();
    let (_, created) = call(
        &app,
        &a_key,
        Method::POST,
        &format!("{a_base}/api-keys"),
        Some(json!({ "name": "alpha secret key", "role": "member" })),
    )
    .await;
    let a_key_id = created["key"]["id"].as_str().unwrap().to_owned();

    let b_base = format!("/tenants/{}", b.tenant);
    let role = Some(json!({ "role": "member" }));
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        // A's tenant, with B's key.
        (Method::GET, format!("{a_base}/members"), None),
        (Method::GET, format!("{a_base}/invitations"), None),
        (Method::GET, format!("{a_base}/api-keys"), None),
        (
            Method::PATCH,
            format!("{a_base}/members/{}", a.owner),
            role.clone(),
        ),
        (
            Method::DELETE,
            format!("{a_base}/members/{}", a.owner),
            None,
        ),
        (
            Method::POST,
            format!("{a_base}/invitations/{invitation}/resend"),
            None,
        ),
        (
            Method::DELETE,
            format!("{a_base}/invitations/{invitation}"),
            None,
        ),
        (
            Method::DELETE,
            format!("{a_base}/api-keys/{a_key_id}"),
            None,
        ),
        (
            Method::POST,
            format!("{a_base}/invitations"),
            Some(json!({ "email": "planted@api.test", "role": "owner" })),
        ),
        // A's ids under B's own tenant.
        (Method::PATCH, format!("{b_base}/members/{}", a.owner), role),
        (
            Method::DELETE,
            format!("{b_base}/members/{}", a.owner),
            None,
        ),
        (
            Method::POST,
            format!("{b_base}/invitations/{invitation}/resend"),
            None,
        ),
        (
            Method::DELETE,
            format!("{b_base}/invitations/{invitation}"),
            None,
        ),
        (
            Method::DELETE,
            format!("{b_base}/api-keys/{a_key_id}"),
            None,
        ),
        (
            Method::POST,
            format!("{b_base}/ownership"),
            Some(json!({ "new_owner": a.owner })),
        ),
    ];
    for (method, path, body) in attempts {
        let (status, answer) = call(&app, &b_key, method.clone(), &path, body).await;
        // Ownership transfer by a key is refused before any id is looked at.
        let expected = if path.ends_with("/ownership") && path.starts_with(&b_base) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "{method} {path}: {answer}");
        let text = answer.to_string();
        for secret in [
            a.email.as_str(),
            "secret.person",
            "alpha secret key",
            &a.tenant.to_string(),
        ] {
            assert!(
                !text.contains(secret),
                "{method} {path} leaked {secret}: {text}"
            );
        }
    }
    // Nothing of A changed.
    let (_, pending) = call(
        &app,
        &a_key,
        Method::GET,
        &format!("{a_base}/invitations"),
        None,
    )
    .await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert_eq!(pending["items"][0]["email"], "secret.person@alpha.test");
    let (_, keys) = call(
        &app,
        &a_key,
        Method::GET,
        &format!("{a_base}/api-keys"),
        None,
    )
    .await;
    assert!(
        keys["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revoked_at"].is_null())
    );
}

#[tokio::test]
async fn bad_credentials_are_refused_with_401() {
    let app = TestApp::spawn().await;
    let acme = org(&app, "Acme").await;
    let good = key(&app, &acme, Role::Owner).await;
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // Another tenant's id in an otherwise valid key.
    let other_tenant = good.replacen(
        &acme.tenant.simple().to_string(),
        &Uuid::now_v7().simple().to_string(),
        1,
    );
    for bad in [
        "",
        "tk_",
        "nonsense",
        tampered.as_str(),
        other_tenant.as_str(),
    ] {
        let (status, problem) = call(&app, bad, Method::GET, "/tenants", None).await;
        assert_eq!(status, 401, "{bad:?}: {problem}");
    }
    let response = app.get("/api/v1/tenants").await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = app
        .client
        .get(app.url("/api/v1/tenants"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// A POST carrying the browser's cookies, as any page on any site can make the browser send.
async fn post_with_cookies(
    app: &TestApp,
    browser: &BrowserClient,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let cookies = browser
        .cookie_names()
        .into_iter()
        .filter_map(|name| browser.cookie(&name).map(|value| format!("{name}={value}")))
        .collect::<Vec<_>>()
        .join("; ");
    let mut request = app
        .client
        .post(app.url(path))
        .header("cookie", cookies)
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

#[tokio::test]
async fn a_session_cookie_works_and_unsafe_requests_need_the_csrf_header() {
    let app = TestApp::spawn().await;
    let acme = org(&app, "Acme").await;
    let browser = BrowserClient::new(&app.url(""));
    let login = browser.log_in(&acme.email, OWNER_PASSWORD).await;
    assert_eq!(login.status, 303, "{}", login.body);

    let me = browser.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    let me: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["email"], acme.email);
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let tenants: Value = serde_json::from_str(&browser.get("/api/v1/tenants").await.body).unwrap();
    assert_eq!(tenants["items"][0]["id"], acme.tenant.to_string());

    // A cross-site form or fetch carries the cookie but cannot know the token.
    let path = format!("/api/v1/tenants/{}/invitations", acme.tenant);
    let body = r#"{"email":"csrf.victim@api.test","role":"owner"}"#;
    for token in [None, Some("forged"), Some("")] {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(token) = token {
            headers.push(("x-csrf-token", token));
        }
        let answer = post_with_cookies(&app, &browser, &path, &headers, body).await;
        assert_eq!(answer.status(), 403, "token {token:?}");
        assert_eq!(content_type(&answer), "application/problem+json");
    }
    let invited: i64 =
        sqlx::query_scalar("select count(*) from invitations where email = 'csrf.victim@api.test'")
            .fetch_one(&app.db.owner)
            .await
            .expect("count");
    assert_eq!(invited, 0, "a refused request wrote something");

    let answer = post_with_cookies(
        &app,
        &browser,
        &path,
        &[
            ("content-type", "application/json"),
            ("x-csrf-token", &csrf),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status(), 201, "{:?}", answer.text().await);

    // After logging out the cookie is worth nothing.
    let logout_token = browser.csrf_token("/dashboard").await;
    browser
        .post("/logout", &[("csrf_token", &logout_token)])
        .await;
    assert_eq!(browser.get("/api/v1/me").await.status, 401);
}

#[tokio::test]
async fn the_spec_documents_the_team_api_and_its_security() {
    let app = TestApp::spawn().await;
    let spec: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["ApiKey"]["scheme"], "bearer");
    assert_eq!(schemes["SessionCookie"]["in"], "cookie");
    for (path, method) in [
        ("/me", "get"),
        ("/tenants", "get"),
        ("/roles", "get"),
        ("/tenants/{tenant_id}/members", "get"),
        ("/tenants/{tenant_id}/members/{user_id}", "patch"),
        ("/tenants/{tenant_id}/members/{user_id}", "delete"),
        ("/tenants/{tenant_id}/ownership", "post"),
        ("/tenants/{tenant_id}/invitations", "post"),
        ("/tenants/{tenant_id}/invitations/{invitation_id}", "delete"),
        (
            "/tenants/{tenant_id}/invitations/{invitation_id}/resend",
            "post",
        ),
        ("/tenants/{tenant_id}/api-keys", "post"),
        ("/tenants/{tenant_id}/api-keys/{key_id}", "delete"),
    ] {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        if path != "/roles" {
            let security = operation["security"].to_string();
            assert!(
                security.contains("ApiKey") && security.contains("SessionCookie"),
                "{method} {path}: {security}"
            );
            for status in ["401", "403", "404"] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
}

/// The audit log export is a plan feature (`audit_export`): refused, with the plans that
/// include it, on the API and the page alike, until the plan or an admin grants it.
#[tokio::test]
async fn the_audit_export_needs_the_plans_feature_on_the_api_and_the_page() {
    let app = TestApp::spawn().await;
    let acme = org(&app, "Acme").await;
    let owner_key = key(&app, &acme, Role::Owner).await;
    let member_key = key(&app, &acme, Role::Member).await;
    let export = format!("/tenants/{}/audit-events/export", acme.tenant);
    // Something in the trail: a key named like a spreadsheet formula.
    let (status, _) = call(
        &app,
        &owner_key,
        Method::POST,
        &format!("/tenants/{}/api-keys", acme.tenant),
        Some(json!({ "name": "=HYPERLINK(\"http://evil.test\")", "role": "member" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, problem) = call(&app, &owner_key, Method::GET, &export, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("/feature-not-in-plan"),
        "{problem}"
    );
    // The default plans: Business includes the export.
    assert!(
        problem["detail"].as_str().unwrap().contains("Business"),
        "{problem}"
    );
    let (status, _) = call(
        &app,
        &member_key,
        Method::GET,
        &format!("/tenants/{}/audit-events", acme.tenant),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "members do not read the trail"
    );

    let browser = BrowserClient::new(&app.url(""));
    assert_eq!(
        browser.log_in(&acme.email, OWNER_PASSWORD).await.status,
        303
    );
    let page = browser.get("/audit").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("csv-export-unavailable"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("format=csv"));
    assert_eq!(browser.get("/audit?format=csv").await.status, 403);

    // An admin grants the feature to this tenant.
    sqlx::query(
        "update tenants set entitlement_overrides = '{\"features\": [\"audit_export\"]}'
         where id = $1",
    )
    .bind(acme.tenant)
    .execute(&app.db.owner)
    .await
    .unwrap();
    let response = app
        .client
        .get(app.url(&format!("/api/v1{export}?action=api_key")))
        .bearer_auth(&owner_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "text/csv; charset=utf-8");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().contains("action"), "{csv}");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{csv}");
    assert!(rows.iter().all(|r| r.contains(",api_key.")), "{csv}");
    // The key's name is in the detail cell, never at the start of a cell.
    assert!(
        !csv.split([',', '\n']).any(|cell| cell.starts_with('=')),
        "{csv}"
    );
    let page = browser.get("/audit").await;
    assert!(page.body.contains("id=\"csv-export\""), "{}", page.body);
    let exported = browser.get("/audit?format=csv").await;
    assert_eq!(exported.status, 200);
    assert!(exported.body.contains("api_key."), "{}", exported.body);
}
