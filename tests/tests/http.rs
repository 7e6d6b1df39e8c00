//! The server's public surface: probes, the API document and docs page, problem+json errors,
//! request ids and security headers.

use serde_json::json;
use tenantkit_tests::{TestApp, content_type};

#[tokio::test]
async fn probes_answer_and_metrics_count_requests() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/readyz\""),
        "routes are labelled by template: {metrics}"
    );
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_are_served() {
    let app = TestApp::spawn().await;
    let spec: serde_json::Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let responses = &spec["paths"]["/signups"]["post"]["responses"];
    for status in ["202", "400", "409", "422", "503"] {
        assert!(
            responses.get(status).is_some(),
            "status {status} missing from the spec"
        );
    }
    assert!(
        responses["422"]["content"]
            .get("application/problem+json")
            .is_some()
    );
    let docs = app.get("/api/docs").await;
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "not the docs page");
    assert!(
        !html.contains("cdn"),
        "the docs page must not load from a CDN"
    );
}

#[tokio::test]
async fn invalid_input_gets_problem_details_naming_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({ "organisation": "Acme", "name": "Ada", "email": "not-an-email", "password": "correct horse battery" }),
            "email",
        ),
        (
            json!({ "organisation": "Acme", "name": "Ada", "email": "a@b.co", "password": "short" }),
            "password",
        ),
        (
            json!({ "organisation": " ", "name": "Ada", "email": "a@b.co", "password": "correct horse battery" }),
            "organisation",
        ),
        (
            json!({ "organisation": "Acme", "name": "Ad\u{13}a", "email": "a@b.co", "password": "correct horse battery" }),
            "name",
        ),
        (
            json!({ "organisation": "Acme", "slug": "../etc", "name": "Ada", "email": "a@b.co", "password": "correct horse battery" }),
            "slug",
        ),
    ];
    for (body, field) in cases {
        let response = app.post_json("/api/v1/signups", body).await;
        assert_eq!(response.status(), 422, "{field}");
        assert!(
            content_type(&response).starts_with("application/problem+json"),
            "{field}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 422);
        assert_eq!(problem["errors"][0]["field"], field);
    }
    // Nothing was written by any of them.
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.owner)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn malformed_requests_get_4xx_problem_details_not_500() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("application/json", b"{not json".to_vec(), "malformed json"),
        (
            "application/json",
            b"{\"organisation\": 5}".to_vec(),
            "wrong types",
        ),
        ("application/json", vec![0xff, 0xfe, 0x00], "bad utf-8"),
        (
            "application/json",
            br#"{"organisation": "A", "name": false, "email": "a@b.co", "password": "correct horse battery"}"#.to_vec(),
            "a boolean where a string belongs",
        ),
        ("text/plain", b"hello".to_vec(), "wrong content type"),
        (
            "application/json",
            "[".repeat(100_000).into_bytes(),
            "deep nesting",
        ),
        (
            "application/json",
            vec![b' '; 2 * 1024 * 1024],
            "oversized body",
        ),
    ];
    for (kind, body, case) in cases {
        let response = app
            .client
            .post(app.url("/api/v1/signups"))
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{case}: got {}",
            response.status()
        );
        let kind = content_type(&response);
        assert!(
            kind.starts_with("application/problem+json"),
            "{case}: {kind}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_are_404_problem_json_for_the_api_and_html_for_browsers() {
    let app = TestApp::spawn().await;
    let api = app.get("/api/v1/nothing-here").await;
    assert_eq!(api.status(), 404);
    assert!(content_type(&api).starts_with("application/problem+json"));
    let page = app.get("/nothing-here").await;
    assert_eq!(page.status(), 404);
    assert!(content_type(&page).starts_with("text/html"));
    let wrong_method = app
        .client
        .delete(app.url("/api/v1/signups"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(
        wrong_method.headers()["allow"],
        "POST",
        "a 405 must say what is allowed"
    );
    assert!(content_type(&wrong_method).starts_with("application/problem+json"));
}

#[tokio::test]
async fn a_known_email_gets_the_same_answer_and_no_second_account() {
    let app = TestApp::spawn().await;
    app.sign_up("Dup", "one@dup.test").await;
    let same_email = json!({
        "organisation": "Other", "slug": "other", "name": "Two", "email": "ONE@dup.test",
        "password": "correct horse battery staple",
    });
    let fresh = json!({
        "organisation": "Fresh", "slug": "fresh", "name": "Three", "email": "three@dup.test",
        "password": "correct horse battery staple",
    });
    let again = app.post_json("/api/v1/signups", same_email).await;
    let new = app.post_json("/api/v1/signups", fresh).await;
    assert_eq!(again.status(), new.status(), "no account enumeration");
    let (again, new): (serde_json::Value, serde_json::Value) =
        (again.json().await.unwrap(), new.json().await.unwrap());
    assert_eq!(again, new, "identical bodies for known and unknown emails");
    let users: i64 =
        sqlx::query_scalar("select count(*) from users where lower(email) = 'one@dup.test'")
            .fetch_one(&app.db.owner)
            .await
            .unwrap();
    assert_eq!(users, 1, "emails are unique regardless of case");
    // A taken address chosen explicitly is still a conflict, known email or not.
    let taken_slug = json!({
        "organisation": "Dup", "slug": "fresh", "name": "Two", "email": "one@dup.test",
        "password": "correct horse battery staple",
    });
    assert_eq!(
        app.post_json("/api/v1/signups", taken_slug).await.status(),
        409
    );
}

#[tokio::test]
async fn responses_carry_a_request_id_and_security_headers() {
    let app = TestApp::spawn().await;
    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");
    let generated = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "an unsafe request id must be replaced, got {id}"
    );
    for header in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        assert!(generated.headers().contains_key(header), "missing {header}");
    }
    let landing = app.get("/").await;
    assert_eq!(landing.status(), 200);
    assert!(landing.headers().contains_key("content-security-policy"));
}

#[tokio::test]
async fn a_derived_address_that_is_taken_gets_a_suffix() {
    let app = TestApp::spawn().await;
    let first = app.sign_up("Acme Labs", "one@acme.test").await;
    let second = app.sign_up("Acme Labs", "two@acme.test").await;
    assert_eq!(first["slug"], "acme-labs");
    let suffixed = second["slug"].as_str().unwrap();
    assert!(
        suffixed.starts_with("acme-labs-") && suffixed.len() == "acme-labs-".len() + 4,
        "{suffixed}"
    );
    // An address chosen explicitly is not changed behind the customer's back: it conflicts.
    let chosen = app
        .post_json(
            "/api/v1/signups",
            json!({ "organisation": "Other", "slug": "acme-labs", "name": "Three", "email": "three@acme.test",
                    "password": "correct horse battery staple" }),
        )
        .await;
    assert_eq!(chosen.status(), 409);
}
