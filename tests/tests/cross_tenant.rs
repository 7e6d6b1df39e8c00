//! The cross-tenant access matrix. Organisation B's people and keys, of every role, try every
//! id of organisation A that the API (every operation of the served OpenAPI document with a
//! path parameter) and the pages (every link and form a crawl of A's pages finds with an id in
//! it, and the admin area's routes) accept. Every attempt must be answered 404 — or a refusal
//! random ids get too — indistinguishable from the answer for random ids, with nothing of A in
//! it; afterwards A's data is unchanged. Controls show the requests were meaningful: the same
//! requests by the rightful owner (on A, or on C shaped like A) reach the ids.
//!
//! A new operation, path parameter or page route that this cannot fill fails the test, so a new
//! endpoint cannot slip past the matrix.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tenantkit_tests::{
    TestApp,
    digest::{TableDigest, changed_tables},
    web_client::BrowserClient,
};

#[path = "cross_tenant/api_matrix.rs"]
mod api_matrix;
#[path = "cross_tenant/html.rs"]
mod html;
#[path = "cross_tenant/pages.rs"]
mod pages;
#[path = "cross_tenant/world.rs"]
mod world;

use api_matrix::Credential;
use world::{World, digest, views};

/// What one area of the matrix sent and got.
#[derive(Default)]
struct Tally {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    failures: Vec<String>,
    notes: Vec<String>,
}

impl Tally {
    fn count(&mut self, status: StatusCode) {
        self.requests += 1;
        *self.statuses.entry(status.as_u16()).or_default() += 1;
    }

    fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// A control request (one that must reach its id): noted when it did, a failure with an
    /// excerpt of the answer when it did not.
    fn control(&mut self, reached: bool, line: String, excerpt: impl FnOnce() -> String) {
        if reached {
            self.note(line);
        } else {
            self.fail(format!(
                "CONTROL did not reach the id: {line} {}",
                excerpt()
            ));
        }
    }

    fn statuses(&self) -> String {
        self.statuses
            .iter()
            .map(|(status, n)| format!("{n}× {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A's rows and what A's people see, before the attacks.
struct Snapshot {
    digest: Vec<TableDigest>,
    views: Vec<(String, String)>,
}

impl Snapshot {
    async fn take(app: &TestApp, a: &world::Tenant) -> Self {
        Self {
            views: views(app, a).await,
            digest: digest(&app.db, a).await,
        }
    }

    /// What changed since: A's rows (by table) and A's views.
    async fn changes(self, app: &TestApp, a: &world::Tenant) -> Vec<String> {
        let mut changes = Vec::new();
        let digest = digest(&app.db, a).await;
        if self.digest != digest {
            changes.push(format!(
                "A's data changed during the attacks, in {:?}",
                changed_tables(&self.digest, &digest)
            ));
        }
        for (was, is) in self.views.iter().zip(&views(app, a).await) {
            if was != is {
                changes.push(format!("A's {} changed: {} → {}", was.0, was.1, is.1));
            }
        }
        changes
    }
}

/// Prints every area's summary, then fails with every failure of every area.
fn report(areas: &[(String, &Tally)], extra_failures: Vec<String>) {
    for (summary, tally) in areas {
        println!("{summary}: {}", tally.statuses());
        for note in &tally.notes {
            println!("    {note}");
        }
    }
    let mut failures = extra_failures;
    for (summary, tally) in areas {
        failures.extend(tally.failures.iter().map(|f| format!("[{summary}] {f}")));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_of_tenant_b_reaches_tenant_as_ids_through_the_api() {
    let world = World::spawn().await;
    let app = &world.app;
    let roles = world.roles().await;
    let a = world.tenant("zqalpha", &roles).await;
    let b = world.tenant("zqbravo", &roles).await;
    let c = world.tenant("zqcontrol", &roles).await;

    let spec: Value = app
        .get("/api/openapi.json")
        .await
        .json()
        .await
        .expect("the spec");
    let operations = api_matrix::operations(&spec);
    let with_ids = operations
        .iter()
        .filter(|op| !op.path_params.is_empty())
        .count();
    let list_operations = operations
        .iter()
        .filter(|op| op.path_params.is_empty() && op.method == Method::GET)
        .count();
    let entries = api_matrix::entries(&operations, &api_matrix::id_table(&a), b.id);
    let credentials = api_matrix::credentials(app, &b).await;

    let before = Snapshot::take(app, &a).await;
    let attacked = api_matrix::attack(app, &entries, &credentials, &a).await;
    let listed = api_matrix::lists(app, &operations, &credentials, &a).await;
    let mut failures = before.changes(app, &a).await;

    // The rightful owner's key reads every one of those ids (so the 404s above were refusals,
    // not wrong addresses), and the same checks flag each of its answers.
    let reads: Vec<api_matrix::Entry<'_>> = entries
        .iter()
        .filter(|e| e.op.method == Method::GET && e.variant == "A's tenant" && !e.op.is_admin())
        .cloned()
        .collect();
    let own_key = [Credential::key(
        "A's own owner key".to_owned(),
        a.owner_key(),
    )];
    let own = api_matrix::attack(app, &reads, &own_key, &a).await;
    let own_not_found = own.statuses.get(&404).copied().unwrap_or_default();
    if own_not_found > 0 || own.failures.len() < reads.len() {
        failures.push(format!(
            "A's own key: {own_not_found} of {} reads not found, {} flagged by the checks: {}",
            reads.len(),
            own.failures.len(),
            own.statuses()
        ));
    }

    let owner = Credential::session(app, "C's owner session".to_owned(), &c.owner().browser).await;
    let admin_browser = world.platform_admin().await;
    let admin =
        Credential::session(app, "a platform admin's session".to_owned(), &admin_browser).await;
    let controlled = api_matrix::controls(app, &operations, &c, &owner, &admin).await;

    let labels: Vec<&str> = credentials.iter().map(|c| c.label.as_str()).collect();
    println!("credentials: {}", labels.join(", "));
    println!(
        "api own reads: {} GET rows by A's own owner key: {} (each flagged by the checks)",
        reads.len(),
        own.statuses()
    );
    report(
        &[
            (
                format!(
                    "api: {with_ids} operations with ids → {} rows (A's tenant, and A's ids \
                     under B's tenant) × {} credentials × 2 (A's ids, random ids) = {} \
                     requests; A's ids answered",
                    entries.len(),
                    credentials.len(),
                    attacked.requests * 2
                ),
                &attacked,
            ),
            (
                format!(
                    "api lists: {} operations without ids × {} credentials = {} requests",
                    list_operations,
                    credentials.len(),
                    listed.requests
                ),
                &listed,
            ),
            (
                format!(
                    "api controls: {} rows by C's owner / a platform admin, each reached its id",
                    controlled.requests
                ),
                &controlled,
            ),
        ],
        failures,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_person_of_tenant_b_reaches_tenant_as_ids_through_the_pages() {
    let world = World::spawn().await;
    let app = &world.app;
    let roles = world.roles().await;
    let a = world.tenant("zqalpha", &roles).await;
    let b = world.tenant("zqbravo", &roles).await;

    let crawl = pages::crawl(&a.owner().browser, &a, "/dashboard", 60).await;
    let uncovered = pages::uncovered(&crawl.routes);
    assert!(
        uncovered.is_empty(),
        "the crawl of A's pages ({:?}) found no link or form for {uncovered:?}: give A what \
         those pages list, or link to them",
        crawl.pages
    );
    assert!(
        crawl.routes.len() >= 10,
        "the crawl found only {} routes with an id: {:#?}",
        crawl.routes.len(),
        crawl.routes
    );
    let admin_routes = pages::admin_routes(&a);
    let people: Vec<(String, &BrowserClient)> = b
        .people
        .iter()
        .map(|p| (format!("B's {} session", p.role), &p.browser))
        .collect();

    let before = Snapshot::take(app, &a).await;
    let replayed = pages::replay(&crawl.routes, &people, &a).await;
    let admin_replayed = pages::replay(&admin_routes, &people, &a).await;
    let mut failures = before.changes(app, &a).await;

    // A's owner opening the same links is answered (and the same checks flag each answer):
    // the 404s above were refusals, not wrong addresses.
    let reads: Vec<pages::Route> = crawl
        .routes
        .iter()
        .filter(|r| r.method == "GET")
        .cloned()
        .collect();
    let own = pages::replay(
        &reads,
        &[("A's own owner".to_owned(), &a.owner().browser)],
        &a,
    )
    .await;
    if own.statuses.contains_key(&404) || own.failures.len() < reads.len() {
        failures.push(format!(
            "A's owner: of {} links, {} flagged by the checks: {}",
            reads.len(),
            own.failures.len(),
            own.statuses()
        ));
    }

    let admin = world.platform_admin().await;
    let admin_controlled = pages::admin_controls(&admin_routes, &admin).await;
    let controlled = pages::controls(&crawl.routes, &a.owner().browser).await;

    println!("pages crawled as A's owner: {}", crawl.pages.join(" "));
    println!(
        "pages own reads: {} links by A's owner: {} (each flagged by the checks)",
        reads.len(),
        own.statuses()
    );
    for route in &crawl.routes {
        println!(
            "    {} {} (on {})",
            route.method, route.path, route.found_on
        );
    }
    report(
        &[
            (
                format!(
                    "pages: {} pages crawled, {} routes with A's ids ({}) × {} sessions × 2 \
                     (A's ids, random ids) = {} requests; A's ids answered",
                    crawl.pages.len(),
                    crawl.routes.len(),
                    pages::methods(&crawl.routes),
                    people.len(),
                    replayed.requests * 2
                ),
                &replayed,
            ),
            (
                format!(
                    "admin pages: {} routes × {} sessions × 2 = {} requests; answered",
                    admin_routes.len(),
                    people.len(),
                    admin_replayed.requests * 2
                ),
                &admin_replayed,
            ),
            (
                format!(
                    "page controls: {} crawled routes by A's owner after the attacks",
                    controlled.requests
                ),
                &controlled,
            ),
            (
                format!(
                    "admin page controls: {} reads by a platform admin",
                    admin_controlled.requests
                ),
                &admin_controlled,
            ),
        ],
        failures,
    );
}
