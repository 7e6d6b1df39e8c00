//! Clients calling a server binary in a loop, and what each call got: for the outage and
//! shutdown tests.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;
use tenantkit_kernel::{Role, TenantId, UserId};
use tenantkit_tenancy::{api_keys, team::Actor};
use tenantkit_tests::{OWNER_PASSWORD, web_client::BrowserClient};
use uuid::Uuid;

/// The acquire timeout the servers here run with, and what a call may take beyond it.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const SLACK: Duration = Duration::from_secs(4);

#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Answered {
        status: u16,
        problem: bool,
        retry_after: bool,
    },
    /// The connection was refused: the request never reached the server.
    Refused,
    /// Reached the server (or never got an answer): reset, cut short, or timed out.
    Failed(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) what: &'static str,
    pub(crate) started: Duration,
    pub(crate) took: Duration,
    pub(crate) outcome: Outcome,
    /// What a write that succeeded created, to look for afterwards.
    pub(crate) created: Option<String>,
}

impl Outcome {
    pub(crate) fn succeeded(&self) -> bool {
        matches!(self, Self::Answered { status, .. } if (200..300).contains(status))
    }
}

impl Call {
    pub(crate) fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Answered { status, .. } => Some(status),
            _ => None,
        }
    }

    pub(crate) fn ended(&self) -> Duration {
        self.started + self.took
    }

    pub(crate) fn succeeded(&self) -> bool {
        self.outcome.succeeded()
    }
}

pub(crate) async fn send(request: reqwest::RequestBuilder) -> Outcome {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let problem = tenantkit_tests::content_type(&response) == "application/problem+json";
            let retry_after = response.headers().contains_key("retry-after");
            match response.bytes().await {
                Ok(_) => Outcome::Answered {
                    status,
                    problem,
                    retry_after,
                },
                Err(error) => Outcome::Failed(format!("body cut short: {error}")),
            }
        }
        Err(error) if error.is_connect() => Outcome::Refused,
        Err(error) => Outcome::Failed(format!("{error:?}")),
    }
}

/// Clients calling in a loop until stopped, recording every call.
pub(crate) struct Load {
    pub(crate) began: Instant,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) calls: Arc<Mutex<Vec<Call>>>,
    pub(crate) clients: Vec<tokio::task::JoinHandle<()>>,
}

/// Builds a client's `n`th request, and names what it creates when it succeeds.
pub(crate) type MakeRequest =
    Box<dyn Fn(usize) -> (reqwest::RequestBuilder, Option<String>) + Send + Sync>;

impl Load {
    pub(crate) fn new() -> Self {
        Self {
            began: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(Mutex::new(Vec::new())),
            clients: Vec::new(),
        }
    }

    pub(crate) fn since_start(&self) -> Duration {
        self.began.elapsed()
    }

    /// A client making `make`'s requests one after another, `pause` apart; it gives up after
    /// `give_up_after_refusals` refused connections in a row (the server is gone).
    pub(crate) fn client(
        &mut self,
        what: &'static str,
        pause: Duration,
        give_up_after_refusals: usize,
        make: MakeRequest,
    ) {
        let (began, stop, calls) = (self.began, self.stop.clone(), self.calls.clone());
        self.clients.push(tokio::spawn(async move {
            let mut refusals = 0;
            for n in 0.. {
                if stop.load(Ordering::Relaxed) || refusals >= give_up_after_refusals {
                    break;
                }
                let (request, creates) = make(n);
                let started = began.elapsed();
                let outcome = send(request).await;
                let took = began.elapsed() - started;
                refusals = if matches!(outcome, Outcome::Refused) {
                    refusals + 1
                } else {
                    0
                };
                let call = Call {
                    what,
                    started,
                    took,
                    created: creates.filter(|_| outcome.succeeded()),
                    outcome,
                };
                calls.lock().unwrap().push(call);
                tokio::time::sleep(pause).await;
            }
        }));
    }

    pub(crate) async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        let mut calls = self.calls.lock().unwrap().clone();
        calls.sort_by_key(|c| c.started);
        calls
    }
}

/// An HTTP client that gives up after `timeout` (a hang counts as a failure).
pub(crate) fn http(timeout: Duration, keep_alive: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout);
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder.build().unwrap()
}

/// The organisation a load works in: its tenant, owner and an owner's API key.
pub(crate) struct LoadOrg {
    pub(crate) tenant: Uuid,
    pub(crate) email: String,
    pub(crate) key: String,
}

/// Signs up through the server at `base`, then verifies the owner, lifts the plan's API rate
/// and makes an owner key through the domain, on `owner` (superuser) and `app_url`.
pub(crate) async fn load_org(
    base: &str,
    owner: &sqlx::PgPool,
    app_url: &str,
    label: &str,
) -> LoadOrg {
    let email = format!("{label}-owner@faults.test");
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/signups"))
        .json(&json!({
            "organisation": format!("Faults {label}"), "name": "Owner", "email": email,
            "password": OWNER_PASSWORD,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let (tenant, user): (Uuid, Uuid) = sqlx::query_as(
        "select m.tenant_id, u.id from users u join memberships m on m.user_id = u.id
         where u.email = $1",
    )
    .bind(&email)
    .fetch_one(owner)
    .await
    .unwrap();
    sqlx::query("update users set email_verified_at = now() where id = $1")
        .bind(user)
        .execute(owner)
        .await
        .unwrap();
    sqlx::query(
        "update tenants set entitlement_overrides = '{\"api_requests_per_minute\": 1000000}'
         where id = $1",
    )
    .bind(tenant)
    .execute(owner)
    .await
    .unwrap();
    let app = tenantkit_db::Database::from_pool(sqlx::PgPool::connect(app_url).await.unwrap());
    let mut tx = app.tenant(TenantId::from_uuid(tenant)).await.unwrap();
    let created = api_keys::create(
        &mut tx,
        Actor::member(UserId::from_uuid(user), Role::Owner),
        "load",
        Role::Owner,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.close().await;
    LoadOrg {
        tenant,
        email,
        key: created.token,
    }
}

/// GETs of the organisation's API keys with its key.
pub(crate) fn list_keys(client: &reqwest::Client, base: &str, org: &LoadOrg) -> MakeRequest {
    let (client, url, key) = (
        client.clone(),
        format!("{base}/api/v1/tenants/{}/api-keys", org.tenant),
        org.key.clone(),
    );
    Box::new(move |_| (client.get(&url).bearer_auth(&key), None))
}

/// POSTs creating an API key named `{prefix}-{n}`.
pub(crate) fn create_keys(
    client: &reqwest::Client,
    base: &str,
    org: &LoadOrg,
    prefix: &str,
) -> MakeRequest {
    let (client, url, key, prefix) = (
        client.clone(),
        format!("{base}/api/v1/tenants/{}/api-keys", org.tenant),
        org.key.clone(),
        prefix.to_owned(),
    );
    Box::new(move |n| {
        let name = format!("{prefix}-{n}");
        let request = client
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({ "name": name, "role": "member" }));
        (request, Some(name))
    })
}

pub(crate) async fn key_names(owner: &sqlx::PgPool, tenant: Uuid) -> HashSet<String> {
    sqlx::query_scalar("select name from api_keys where tenant_id = $1")
        .bind(tenant)
        .fetch_all(owner)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// `/readyz` every 250 ms until stopped: (when answered, status; 0 for no answer).
pub(crate) fn poll_readiness(
    base: String,
    load: &Load,
) -> tokio::task::JoinHandle<Vec<(Duration, u16)>> {
    let (began, stop) = (load.began, load.stop.clone());
    tokio::spawn(async move {
        let client = http(Duration::from_secs(3), true);
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let status = client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            seen.push((began.elapsed(), status));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        seen
    })
}

/// Calls by status ("refused" and "failed" for no answer), for the report.
pub(crate) fn tally<'a>(calls: impl IntoIterator<Item = &'a Call>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        let key = match &call.outcome {
            Outcome::Answered { status, .. } => status.to_string(),
            Outcome::Refused => "refused".to_owned(),
            Outcome::Failed(_) => "failed".to_owned(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

pub(crate) fn median(calls: &[&Call]) -> Duration {
    let mut took: Vec<Duration> = calls.iter().map(|c| c.took).collect();
    took.sort_unstable();
    took.get(took.len() / 2).copied().unwrap_or_default()
}

/// Every answer is a success or a 503 problem with Retry-After; nothing failed or hung.
pub(crate) fn assert_only_successes_and_documented_unavailability(
    calls: &[Call],
    hang_limit: Duration,
) {
    let failed: Vec<(&str, Duration, &str)> = calls
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Answered { .. } => None,
            Outcome::Refused => Some((c.what, c.started, "refused")),
            Outcome::Failed(why) => Some((c.what, c.started, why.as_str())),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} calls got no answer: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let wrong: Vec<_> = calls
        .iter()
        .filter(|c| match c.outcome {
            Outcome::Answered {
                status,
                problem,
                retry_after,
            } => !((200..300).contains(&status) || (status == 503 && problem && retry_after)),
            _ => false,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} answers were neither 2xx nor a 503 problem with Retry-After: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let slowest = calls.iter().map(|c| c.took).max().unwrap_or_default();
    assert!(slowest < hang_limit, "a call took {slowest:?}");
}

/// The session cookie a browser got at sign-in, as a `Cookie` header.
pub(crate) async fn signed_in_cookie(base: &str, email: &str) -> String {
    let browser = BrowserClient::new(base);
    let page = browser.log_in(email, OWNER_PASSWORD).await;
    assert_eq!(page.status, 303, "sign-in failed: {}", page.body);
    browser
        .cookie_names()
        .iter()
        .map(|name| format!("{name}={}", browser.cookie(name).unwrap()))
        .collect::<Vec<_>>()
        .join("; ")
}
