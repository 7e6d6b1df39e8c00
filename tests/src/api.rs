//! Organisations, API keys and API calls for tests of the JSON API.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tenantkit_kernel::{Role, TenantId, UserId};
use tenantkit_tenancy::{api_keys, team::Actor};
use uuid::Uuid;

use crate::{TestApp, content_type};

/// A signed-up organisation with its owner (verified, so they can log in).
pub struct Org {
    pub tenant: Uuid,
    pub owner: Uuid,
    pub email: String,
}

pub async fn org(app: &TestApp, name: &str) -> Org {
    let email = format!(
        "{}-{}@api.test",
        name.to_lowercase(),
        Uuid::now_v7().simple()
    );
    let body = app.sign_up(name, &email).await;
    sqlx::query("update users set email_verified_at = now() where lower(email) = lower($1)")
        .bind(&email)
        .execute(&app.db.owner)
        .await
        .expect("verify");
    Org {
        tenant: body["tenant_id"].as_str().unwrap().parse().unwrap(),
        owner: body["user_id"].as_str().unwrap().parse().unwrap(),
        email,
    }
}

/// A key created by the owner, through the domain (the first key cannot come from the API).
pub async fn key(app: &TestApp, org: &Org, role: Role) -> String {
    let mut tx = app
        .db
        .app
        .tenant(TenantId::from_uuid(org.tenant))
        .await
        .expect("tenant tx");
    let created = api_keys::create(
        &mut tx,
        Actor::member(UserId::from_uuid(org.owner), Role::Owner),
        &format!("{role} key"),
        role,
    )
    .await
    .expect("key");
    tx.commit().await.expect("commit");
    created.token
}

/// Sends `body` (if any) with the key; returns status and JSON body (null when empty).
pub async fn call(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method, app.url(&format!("/api/v1{path}")))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    if status.is_client_error() {
        assert_eq!(
            content_type(&response),
            "application/problem+json",
            "{path}"
        );
    }
    let text = response.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    (status, json)
}
