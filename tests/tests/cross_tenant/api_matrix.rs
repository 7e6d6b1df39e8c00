//! The API half of the matrix: every operation of the served OpenAPI document whose path names
//! an id, filled with A's ids, sent with each of B's credentials (an API key and a browser
//! session of every role), next to the same request with random ids (its "twin"). The answer
//! must be 404 (403 only when the twin gets 403 too: B's role may not use the operation at all),
//! the same as the twin's byte for byte once the ids are blanked, and free of A's data.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tenantkit_tests::{TestApp, content_type, web_client::BrowserClient};
use uuid::Uuid;

use super::{
    Tally,
    world::{Person, Tenant, dead_job},
};

/// Who sends a request: an API key or a signed-in browser's cookies (with the session's CSRF
/// token for unsafe methods, as the API demands of cookie callers).
pub struct Credential {
    pub label: String,
    auth: Auth,
}

enum Auth {
    Key(String),
    Session { cookies: String, csrf: String },
}

impl Credential {
    pub fn key(label: String, token: &str) -> Self {
        Self {
            label,
            auth: Auth::Key(token.to_owned()),
        }
    }

    /// The browser's cookies, and the CSRF token `GET /me` gives its session.
    pub async fn session(app: &TestApp, label: String, browser: &BrowserClient) -> Self {
        let cookies = cookie_header(browser);
        let me: Value = app
            .client
            .get(app.url("/api/v1/me"))
            .header("cookie", &cookies)
            .send()
            .await
            .expect("GET /me")
            .json()
            .await
            .expect("/me as JSON");
        let csrf = me["csrf_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{label}: no csrf_token in /me: {me}"))
            .to_owned();
        Self {
            label,
            auth: Auth::Session { cookies, csrf },
        }
    }
}

fn cookie_header(browser: &BrowserClient) -> String {
    browser
        .cookie_names()
        .into_iter()
        .filter_map(|name| browser.cookie(&name).map(|value| format!("{name}={value}")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// B's credentials: a key of every role, then a session of every role.
pub async fn credentials(app: &TestApp, b: &Tenant) -> Vec<Credential> {
    let mut all: Vec<Credential> = b
        .keys
        .iter()
        .map(|(role, token)| Credential::key(format!("B's {role} API key"), token))
        .collect();
    for Person { role, browser, .. } in &b.people {
        all.push(Credential::session(app, format!("B's {role} session"), browser).await);
    }
    all
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

#[derive(Clone, Debug)]
enum Payload {
    Empty,
    Json(Value),
    Bytes(&'static [u8]),
}

/// What an operation needs besides its path: query, headers and body. `"{name}"` in a JSON
/// body is filled in like a path parameter (an id in the body is as much an id).
#[derive(Clone, Debug)]
struct Input {
    query: Vec<(&'static str, &'static str)>,
    headers: Vec<(&'static str, &'static str)>,
    payload: Payload,
}

impl Input {
    fn json(body: Value) -> Self {
        Self {
            query: Vec::new(),
            headers: Vec::new(),
            payload: Payload::Json(body),
        }
    }
}

/// A minimal valid input for every operation that requires one, so each request gets past
/// validation to the id lookup (the controls prove it with C's own ids). An operation the spec
/// says needs input but that is missing here fails the test, as does an entry the spec lost.
fn inputs() -> Vec<(&'static str, &'static str, Input)> {
    let reason = || Input::json(json!({ "reason": "cross-tenant matrix" }));
    let bytes = |offset: &'static str| Input {
        query: Vec::new(),
        headers: vec![
            ("content-type", "application/octet-stream"),
            ("upload-offset", offset),
        ],
        payload: Payload::Bytes(b"0123456789"),
    };
    vec![
        (
            "POST",
            "/tenants/{tenant_id}/files",
            Input {
                query: vec![("name", "planted-by-b.txt"), ("folder", "/planted")],
                headers: vec![("content-type", "application/octet-stream")],
                payload: Payload::Bytes(b"planted"),
            },
        ),
        (
            "PATCH",
            "/tenants/{tenant_id}/files/{file_id}",
            Input::json(json!({ "name": "renamed-by-b.txt" })),
        ),
        (
            "POST",
            "/tenants/{tenant_id}/uploads",
            Input::json(json!({ "name": "planted-by-b.bin", "size": 10 })),
        ),
        (
            "PATCH",
            "/tenants/{tenant_id}/uploads/{upload_id}",
            bytes("0"),
        ),
        (
            "POST",
            "/tenants/{tenant_id}/api-keys",
            Input::json(json!({ "name": "planted by b", "role": "member" })),
        ),
        (
            "POST",
            "/tenants/{tenant_id}/invitations",
            Input::json(json!({ "email": "planted.by.b@api.test", "role": "member" })),
        ),
        (
            "PATCH",
            "/tenants/{tenant_id}/members/{user_id}",
            Input::json(json!({ "role": "member" })),
        ),
        (
            "POST",
            "/tenants/{tenant_id}/ownership",
            Input::json(json!({ "new_owner": "{new_owner}" })),
        ),
        (
            "POST",
            "/tenants/{tenant_id}/billing/checkout",
            Input::json(json!({
                "plan": "team",
                "interval": "monthly",
                "attempt": "0190a0a0-0000-7000-8000-000000000000",
            })),
        ),
        (
            "POST",
            "/tenants/{tenant_id}/billing/portal",
            Input::json(json!({})),
        ),
        ("POST", "/admin/tenants/{tenant_id}/suspend", reason()),
        ("POST", "/admin/tenants/{tenant_id}/reactivate", reason()),
        ("POST", "/admin/tenants/{tenant_id}/delete", reason()),
        (
            "POST",
            "/admin/tenants/{tenant_id}/plan",
            Input::json(json!({ "plan": "team", "reason": "cross-tenant matrix" })),
        ),
        (
            "POST",
            "/admin/tenants/{tenant_id}/entitlements",
            Input::json(json!({ "overrides": { "seats": 7 }, "reason": "cross-tenant matrix" })),
        ),
        ("POST", "/admin/users/{user_id}/lock", reason()),
        ("POST", "/admin/users/{user_id}/unlock", reason()),
        ("POST", "/admin/users/{user_id}/reset-password", reason()),
        ("POST", "/admin/users/{user_id}/end-sessions", reason()),
        ("POST", "/admin/jobs/{job_id}/retry", reason()),
        ("POST", "/admin/jobs/{job_id}/discard", reason()),
    ]
}

/// An operation of the spec.
pub struct Operation {
    pub method: Method,
    pub template: String,
    pub path_params: Vec<String>,
    input: Option<Input>,
}

impl Operation {
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The names this operation takes ids by: its path parameters and the body's placeholders.
    fn id_names(&self) -> Vec<String> {
        let mut names = self.path_params.clone();
        if let Some(Input {
            payload: Payload::Json(body),
            ..
        }) = &self.input
        {
            placeholders(body, &mut names);
        }
        names
    }

    pub fn is_admin(&self) -> bool {
        self.template.starts_with("/admin/")
    }
}

fn placeholders(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::String(text) if text.starts_with('{') && text.ends_with('}') => {
            names.push(text[1..text.len() - 1].to_owned());
        }
        Value::Object(map) => map.values().for_each(|v| placeholders(v, names)),
        Value::Array(items) => items.iter().for_each(|v| placeholders(v, names)),
        _ => {}
    }
}

fn fill(value: &Value, values: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(text) if text.starts_with('{') && text.ends_with('}') => values
            .get(&text[1..text.len() - 1])
            .map_or_else(|| value.clone(), |v| Value::String(v.clone())),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, values)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill(v, values)).collect()),
        other => other.clone(),
    }
}

/// Every operation of the served spec, with its input from [`inputs`]; fails when the spec
/// and the input table disagree.
pub fn operations(spec: &Value) -> Vec<Operation> {
    let mut table = inputs();
    let mut operations = Vec::new();
    let mut problems = Vec::new();
    let paths = spec["paths"].as_object().expect("paths in the spec");
    for (template, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !operation.is_object() || operation.get("responses").is_none() {
                continue;
            }
            let name = format!("{method} {template}");
            let from_template: Vec<String> = template
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split('}').next().map(str::to_owned))
                .collect();
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut declared: Vec<String> = parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            declared.sort();
            let mut sorted = from_template.clone();
            sorted.sort();
            if declared != sorted {
                problems.push(format!(
                    "{name}: path parameters {declared:?} do not match the path"
                ));
            }
            let needs_input = operation["requestBody"]["required"] == true
                || parameters
                    .iter()
                    .any(|p| p["in"] != "path" && p["required"] == true);
            let input = table
                .iter()
                .position(|(m, t, _)| *m == method.as_str() && *t == template.as_str())
                .map(|at| table.remove(at).2);
            // Only the operations with ids are sent with a body (the lists are plain GETs).
            if needs_input && input.is_none() && !from_template.is_empty() {
                problems.push(format!(
                    "{name} needs a body or parameters: add a minimal valid one to inputs() in \
                     tests/tests/cross_tenant/api_matrix.rs"
                ));
            }
            operations.push(Operation {
                method,
                template: template.clone(),
                path_params: from_template,
                input,
            });
        }
    }
    for (method, template, _) in table {
        problems.push(format!(
            "inputs() has {method} {template}, which the spec no longer has"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        operations.len() >= 30,
        "the spec was not read: {} operations",
        operations.len()
    );
    operations
}

/// For every id name the spec uses, the organisation's values (with what each is).
pub type IdTable = BTreeMap<&'static str, Vec<(&'static str, String)>>;

/// The organisation's value for every id name in the API. A new name in the spec that is not
/// here fails the test: add the new kind of thing to `World::tenant` and its id here.
pub fn id_table(t: &Tenant) -> IdTable {
    let mut table = IdTable::new();
    table.insert("tenant_id", vec![("tenant", t.id.to_string())]);
    table.insert(
        "user_id",
        vec![
            ("owner", t.owner().id.to_string()),
            ("least member", t.least().id.to_string()),
        ],
    );
    table.insert(
        "invitation_id",
        vec![("pending invitation", t.pending_invitation.to_string())],
    );
    table.insert("key_id", vec![("named key", t.named_key.to_string())]);
    table.insert("file_id", vec![("file", t.file.to_string())]);
    table.insert("upload_id", vec![("upload", t.upload.to_string())]);
    table.insert("job_id", vec![("dead job", t.dead_job.clone())]);
    table.insert("new_owner", vec![("deputy", t.deputy().id.to_string())]);
    table
}

/// A random value shaped like `value` (a UUID for a UUID), naming nothing.
pub fn random_like(value: &str) -> String {
    if value.parse::<Uuid>().is_ok() {
        return Uuid::now_v7().to_string();
    }
    let mut random = String::new();
    while random.len() < value.len() {
        random.push_str(&Uuid::now_v7().simple().to_string()[20..]);
    }
    random.truncate(value.len().max(8));
    random
}

/// One row of the matrix: an operation with ids chosen.
#[derive(Clone)]
pub struct Entry<'a> {
    pub op: &'a Operation,
    /// Whose tenant id the path names.
    pub variant: &'static str,
    /// What each id is, for messages.
    pub labels: String,
    pub values: BTreeMap<String, String>,
    /// The same with random ids.
    pub twin: BTreeMap<String, String>,
}

/// The concrete request for `values`.
pub struct Request {
    pub method: Method,
    pub path: String,
    headers: Vec<(&'static str, &'static str)>,
    payload: Payload,
}

impl Request {
    fn new(op: &Operation, values: &BTreeMap<String, String>) -> Self {
        let mut path = format!("/api/v1{}", op.template);
        for name in &op.path_params {
            path = path.replace(&format!("{{{name}}}"), &values[name]);
        }
        let (headers, payload) = match &op.input {
            Some(input) => {
                if !input.query.is_empty() {
                    let query: Vec<String> = input
                        .query
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    path = format!("{path}?{}", query.join("&"));
                }
                let payload = match &input.payload {
                    Payload::Json(body) => Payload::Json(fill(body, values)),
                    other => other.clone(),
                };
                (input.headers.clone(), payload)
            }
            None => (Vec::new(), Payload::Empty),
        };
        Self {
            method: op.method.clone(),
            path,
            headers,
            payload,
        }
    }

    pub fn describe(&self) -> String {
        match &self.payload {
            Payload::Json(body) => format!("{} {} {body}", self.method, self.path),
            Payload::Bytes(bytes) => {
                format!("{} {} ({} bytes)", self.method, self.path, bytes.len())
            }
            Payload::Empty => format!("{} {}", self.method, self.path),
        }
    }
}

/// The matrix's rows: for every operation with a path parameter, A's ids under A's tenant id,
/// and (when it names anything besides the tenant) A's ids under B's own tenant id.
pub fn entries<'a>(operations: &'a [Operation], a: &IdTable, b_tenant: Uuid) -> Vec<Entry<'a>> {
    let mut unknown = Vec::new();
    let mut entries = Vec::new();
    for op in operations.iter().filter(|op| !op.path_params.is_empty()) {
        let names = op.id_names();
        for name in &names {
            if !a.contains_key(name.as_str()) {
                unknown.push(format!(
                    "{}: the id {name:?} is not in id_table() (tests/tests/cross_tenant/\
                     api_matrix.rs): give A a thing of that kind and its id there",
                    op.name()
                ));
            }
        }
        if !unknown.is_empty() {
            continue;
        }
        // Every combination of the values (e.g. user_id: the owner, then the least member).
        let mut combinations: Vec<Vec<(String, &'static str, String)>> = vec![Vec::new()];
        for name in &names {
            combinations = combinations
                .into_iter()
                .flat_map(|chosen| {
                    a[name.as_str()].iter().map(move |(label, value)| {
                        let mut more = chosen.clone();
                        more.push((name.clone(), *label, value.clone()));
                        more
                    })
                })
                .collect();
        }
        for chosen in combinations {
            let values: BTreeMap<String, String> = chosen
                .iter()
                .map(|(n, _, v)| (n.clone(), v.clone()))
                .collect();
            let labels = chosen
                .iter()
                .map(|(n, l, _)| format!("{n} = A's {l}"))
                .collect::<Vec<_>>()
                .join(", ");
            let twin: BTreeMap<String, String> = values
                .iter()
                .map(|(n, v)| (n.clone(), random_like(v)))
                .collect();
            entries.push(Entry {
                op,
                variant: "A's tenant",
                labels: labels.clone(),
                values: values.clone(),
                twin: twin.clone(),
            });
            if values.contains_key("tenant_id") && values.len() > 1 {
                let mut values = values;
                let mut twin = twin;
                values.insert("tenant_id".to_owned(), b_tenant.to_string());
                twin.insert("tenant_id".to_owned(), b_tenant.to_string());
                entries.push(Entry {
                    op,
                    variant: "B's tenant",
                    labels: labels.replace("tenant_id = A's tenant", "tenant_id = B's own"),
                    values,
                    twin,
                });
            }
        }
    }
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
    entries
}

pub async fn send(app: &TestApp, credential: &Credential, request: &Request) -> Answer {
    let mut builder = app
        .client
        .request(request.method.clone(), app.url(&request.path));
    builder = match &credential.auth {
        Auth::Key(token) => builder.bearer_auth(token),
        Auth::Session { cookies, csrf } => {
            let builder = builder.header("cookie", cookies);
            if request.method.is_safe() {
                builder
            } else {
                builder.header("x-csrf-token", csrf)
            }
        }
    };
    for (name, value) in &request.headers {
        builder = builder.header(*name, *value);
    }
    builder = match &request.payload {
        Payload::Empty => builder,
        Payload::Json(body) => builder.json(body),
        Payload::Bytes(bytes) => builder.body(bytes.to_vec()),
    };
    let response = builder.send().await.expect("request");
    let status = response.status();
    let content_type = content_type(&response);
    let bytes = response.bytes().await.expect("body");
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `text` with each of `values` blanked, so two answers about different ids compare.
pub fn blanked(text: &str, values: &[String]) -> String {
    let mut text = text.to_owned();
    for value in values {
        text = text.replace(value.as_str(), "{id}");
    }
    text
}

fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(300).collect()
}

/// Sends every row with every credential, and its twin; returns the tally.
pub async fn attack(
    app: &TestApp,
    entries: &[Entry<'_>],
    credentials: &[Credential],
    a: &Tenant,
) -> Tally {
    let mut tally = Tally::default();
    for entry in entries {
        let request = Request::new(entry.op, &entry.values);
        let twin_request = Request::new(entry.op, &entry.twin);
        let carried: Vec<String> = entry.values.values().cloned().collect();
        let twin_carried: Vec<String> = entry.twin.values().cloned().collect();
        for credential in credentials {
            let answer = send(app, credential, &request).await;
            let twin = send(app, credential, &twin_request).await;
            tally.count(answer.status);
            let what = format!(
                "{} [{}; {}] with {}: {} {}",
                request.describe(),
                entry.variant,
                entry.labels,
                credential.label,
                answer.status,
                excerpt(&answer.body)
            );
            if answer.status.is_server_error() {
                tally.fail(format!("SERVER ERROR: {what}"));
                continue;
            }
            let refused = answer.status == StatusCode::NOT_FOUND
                || (answer.status == StatusCode::FORBIDDEN && twin.status == StatusCode::FORBIDDEN);
            if !refused {
                tally.fail(format!(
                    "expected 404 (or 403 when random ids get 403 too; they got {}): {what}",
                    twin.status
                ));
            }
            if answer.status == StatusCode::FORBIDDEN && twin.status == StatusCode::FORBIDDEN {
                tally.note(format!(
                    "403 (as for random ids): {} [{}] with {}",
                    request.describe(),
                    entry.variant,
                    credential.label
                ));
            }
            if answer.status != twin.status {
                tally.fail(format!(
                    "A's ids and random ids are told apart ({} vs {}): {what}",
                    answer.status, twin.status
                ));
            } else if blanked(&answer.body, &carried) != blanked(&twin.body, &twin_carried) {
                tally.fail(format!(
                    "the answer for A's ids differs from the one for random ids ({}): {what}",
                    excerpt(&twin.body)
                ));
            }
            if answer.status.is_client_error() && answer.content_type != "application/problem+json"
            {
                tally.fail(format!(
                    "not problem+json ({}): {what}",
                    answer.content_type
                ));
            }
            if let Some(secret) = a.leaked_in(&answer.body, &carried) {
                tally.fail(format!("LEAK of {secret:?}: {what}"));
            }
        }
    }
    tally
}

/// The operations without a path parameter that read (`/me`, `/tenants`, the admin lists…),
/// with each of B's credentials: nothing of A in them, and the admin ones not found.
pub async fn lists(
    app: &TestApp,
    operations: &[Operation],
    credentials: &[Credential],
    a: &Tenant,
) -> Tally {
    let mut tally = Tally::default();
    for op in operations
        .iter()
        .filter(|op| op.path_params.is_empty() && op.method == Method::GET)
    {
        let request = Request::new(op, &BTreeMap::new());
        for credential in credentials {
            let answer = send(app, credential, &request).await;
            tally.count(answer.status);
            let what = format!(
                "{} with {}: {} {}",
                request.describe(),
                credential.label,
                answer.status,
                excerpt(&answer.body)
            );
            if answer.status.is_server_error() {
                tally.fail(format!("SERVER ERROR: {what}"));
            }
            if op.is_admin() && answer.status != StatusCode::NOT_FOUND {
                tally.fail(format!("the admin API answered B: {what}"));
            }
            if let Some(secret) = a.leaked_in(&answer.body, &[]) {
                tally.fail(format!("LEAK of {secret:?}: {what}"));
            }
        }
    }
    tally
}

/// When a control runs: reads first, then changes, removals, the ownership hand-over, and the
/// platform admin's acts last (deleting the tenant last of all), so no control undoes the
/// ground of a later one.
fn control_rank(entry: &Entry<'_>) -> (u8, String) {
    let op = entry.op;
    let self_target = entry
        .values
        .get("user_id")
        .is_some_and(|user| Some(user) == entry.values.get("owner"));
    let rank = match (op.is_admin(), &op.method) {
        (false, &Method::GET) => 0,
        (false, &Method::DELETE) if self_target => 3,
        (false, &Method::DELETE) => 2,
        (false, _) if op.template.ends_with("/ownership") => 4,
        (false, _) => 1,
        (true, &Method::GET) => 5,
        (true, _) if op.template.ends_with("/delete") => 7,
        (true, _) => 6,
    };
    (rank, op.name())
}

/// Each row of A's tenant sent for C (a tenant shaped like A) by C's owner session, or the
/// platform admin's for the admin API: each must get past validation to a real answer (not
/// 400/404/415/422, no server error), which shows the matrix's requests were meaningful.
pub async fn controls(
    app: &TestApp,
    operations: &[Operation],
    c: &Tenant,
    owner: &Credential,
    admin: &Credential,
) -> Tally {
    let c_ids = id_table(c);
    let owner_id = c.owner().id.to_string();
    let mut rows: Vec<Entry<'_>> = entries(operations, &c_ids, Uuid::nil())
        .into_iter()
        .filter(|e| e.variant == "A's tenant")
        .map(|mut e| {
            // Marks the rows that act on the acting owner, for the ordering.
            e.values.insert("owner".to_owned(), owner_id.clone());
            e
        })
        .collect();
    rows.sort_by_key(control_rank);
    let mut tally = Tally::default();
    for entry in &mut rows {
        // Deciding on a dead job uses it up: each decision gets a dead job of its own.
        if entry.values.contains_key("job_id") {
            let job = dead_job(&app.db, c.id, &c.marker).await;
            entry.values.insert("job_id".to_owned(), job);
        }
        let request = Request::new(entry.op, &entry.values);
        let credential = if entry.op.is_admin() { admin } else { owner };
        let answer = send(app, credential, &request).await;
        tally.count(answer.status);
        let reached = !matches!(answer.status.as_u16(), 400 | 401 | 404 | 415 | 422)
            && !answer.status.is_server_error();
        let line = format!(
            "{} [{}] with {}: {}",
            request.describe(),
            entry.labels.replace("A's", "C's"),
            credential.label,
            answer.status
        );
        tally.control(reached, line, || excerpt(&answer.body));
    }
    tally
}
