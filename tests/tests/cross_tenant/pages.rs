//! The browser half of the matrix: A's owner crawls A's pages; every link and form that names
//! one of A's ids (in its path or its fields) is replayed by each of B's signed-in people, with
//! B's own CSRF token, next to the same request with random ids. The admin area's routes with
//! A's ids are added by hand from its route table (A's owner cannot crawl them): B's people must
//! not reach them either.

use std::collections::{BTreeSet, VecDeque};

use reqwest::{Method, StatusCode};
use tenantkit_tests::web_client::{BrowserClient, Page};
use uuid::Uuid;

use super::{
    Tally,
    api_matrix::{blanked, random_like},
    html::{self, Field},
    world::Tenant,
};

/// A request a page offers: a link (GET) or a form (its method, action and fields).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub fields: Vec<(String, String)>,
    pub found_on: String,
}

impl Route {
    fn describe(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .filter(|(name, _)| name != "csrf_token")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if fields.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {} [{}]", self.method, self.path, fields.join(", "))
        }
    }

    fn text(&self) -> String {
        let mut text = self.path.clone();
        for (name, value) in &self.fields {
            text.push_str(&format!(" {name}={value}"));
        }
        text
    }

    /// The ids this route carries: A's known ones, and any other UUID in its path.
    fn ids(&self, known: &[String]) -> Vec<String> {
        let text = self.text();
        let mut ids: Vec<String> = known
            .iter()
            .filter(|id| text.contains(id.as_str()))
            .cloned()
            .collect();
        let path = self.path.split('?').next().unwrap_or_default();
        for segment in path.split('/') {
            if segment.parse::<Uuid>().is_ok() && !ids.iter().any(|id| id == segment) {
                ids.push(segment.to_owned());
            }
        }
        ids
    }

    /// The same request with each of `ids` replaced by a random value of its shape.
    fn twin(&self, ids: &[String]) -> (Self, Vec<String>) {
        let replacements: Vec<(String, String)> =
            ids.iter().map(|id| (id.clone(), random_like(id))).collect();
        let swap = |text: &str| {
            replacements
                .iter()
                .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
        };
        let twin = Self {
            method: self.method.clone(),
            path: swap(&self.path),
            fields: self
                .fields
                .iter()
                .map(|(n, v)| (n.clone(), swap(v)))
                .collect(),
            found_on: self.found_on.clone(),
        };
        (twin, replacements.into_iter().map(|(_, to)| to).collect())
    }

    /// Whether this route is an instance of a route table's `template` (`:name` matches any
    /// one segment).
    fn is_instance_of(&self, method: &str, template: &str) -> bool {
        let path = self.path.split('?').next().unwrap_or_default();
        let ours: Vec<&str> = path.split('/').collect();
        let theirs: Vec<&str> = template.split('/').collect();
        self.method == method
            && ours.len() == theirs.len()
            && ours
                .iter()
                .zip(&theirs)
                .all(|(o, t)| t.starts_with(':') || o == t)
    }

    async fn send(&self, browser: &BrowserClient, csrf: &str) -> Page {
        if self.method == "GET" {
            return browser.get(&self.path).await;
        }
        let mut fields: Vec<(&str, &str)> = self
            .fields
            .iter()
            .filter(|(name, _)| name != "csrf_token")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        fields.push(("csrf_token", csrf));
        browser.post(&self.path, &fields).await
    }
}

/// The site-relative path and query of `link`, when it stays on the site.
fn same_site(link: &str, base: &str) -> Option<String> {
    let link = link.split('#').next().unwrap_or_default();
    let link = link.strip_prefix(base).unwrap_or(link);
    (link.starts_with('/') && !link.starts_with("//")).then(|| link.to_owned())
}

/// Pages the crawler does not open: leaving, the API, static files.
fn not_crawled(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("logout")
        || lower.contains("sign-out")
        || lower.contains("signout")
        || lower.starts_with("/impersonation/stop")
        || lower.starts_with("/static/")
        || lower.starts_with("/api/")
}

/// Every combination of a form's fields; a choice whose options name ids is tried with each.
fn field_sets(fields: &[Field], ids: &[String]) -> Vec<Vec<(String, String)>> {
    let mut sets: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for field in fields {
        let values: Vec<(String, String)> = match field {
            Field::Value(name, value) => vec![(name.clone(), value.clone())],
            Field::Choice {
                name,
                options,
                selected,
            } => {
                if options
                    .iter()
                    .any(|o| ids.iter().any(|id| o.contains(id.as_str())))
                {
                    options.iter().map(|o| (name.clone(), o.clone())).collect()
                } else {
                    let value = selected
                        .clone()
                        .or_else(|| options.first().cloned())
                        .unwrap_or_default();
                    vec![(name.clone(), value)]
                }
            }
        };
        sets = sets
            .into_iter()
            .flat_map(|set| {
                values.iter().map(move |value| {
                    let mut more = set.clone();
                    more.push(value.clone());
                    more
                })
            })
            .collect();
    }
    sets
}

pub struct Crawl {
    pub pages: Vec<String>,
    /// The links and forms that carry an id, each once.
    pub routes: Vec<Route>,
}

/// Opens `start` and follows same-site links breadth-first (at most `limit` pages), never
/// submitting a form and never opening a link that carries an id (those are collected).
pub async fn crawl(browser: &BrowserClient, a: &Tenant, start: &str, limit: usize) -> Crawl {
    let base = browser.url("");
    let ids = a.ids();
    let mut queue = VecDeque::from([start.to_owned()]);
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut pages = Vec::new();
    let mut routes = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if pages.len() >= limit {
            break;
        }
        let page = browser.get(&path).await;
        assert!(
            !page.status.is_server_error(),
            "crawling {path}: {}",
            page.status
        );
        if page.status.is_redirection() {
            if let Some(next) = page.location().and_then(|l| same_site(l, &base))
                && !not_crawled(&next)
                && seen.insert(next.clone())
            {
                queue.push_back(next);
            }
            continue;
        }
        let is_html = page
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html"));
        if page.status != StatusCode::OK || !is_html {
            continue;
        }
        pages.push(path.clone());
        let tags = html::tags(&page.body);
        for link in html::links(&tags) {
            let Some(target) = same_site(&link, &base) else {
                continue;
            };
            let route = Route {
                method: "GET".to_owned(),
                path: target.clone(),
                fields: Vec::new(),
                found_on: path.clone(),
            };
            if !route.ids(&ids).is_empty() {
                routes.insert(route);
            } else if !not_crawled(&target) && seen.insert(target.clone()) {
                queue.push_back(target);
            }
        }
        for form in html::forms(&tags) {
            let action = if form.action.is_empty() {
                path.clone()
            } else {
                match same_site(&form.action, &base) {
                    Some(action) => action,
                    None => continue,
                }
            };
            if not_crawled(&action) {
                continue;
            }
            for fields in field_sets(&form.fields, &ids) {
                let route = Route {
                    method: form.method.clone(),
                    path: action.clone(),
                    fields,
                    found_on: path.clone(),
                };
                if !route.ids(&ids).is_empty() {
                    routes.insert(route);
                }
            }
        }
    }
    // One route per request, whichever page showed it first.
    let mut unique: Vec<Route> = Vec::new();
    for route in routes {
        if !unique
            .iter()
            .any(|r| r.method == route.method && r.path == route.path && r.fields == route.fields)
        {
            unique.push(route);
        }
    }
    Crawl {
        pages,
        routes: unique,
    }
}

/// The page routes with a path parameter, read from `pages::routes()` (as the CSRF tests do),
/// so that a new one that the crawl cannot find fails here.
pub fn parametrised_page_routes() -> Vec<(String, String)> {
    route_table(include_str!("../../../libs/web/src/pages/mod.rs"))
        .into_iter()
        .filter(|(_, path)| path.contains(':'))
        .collect()
}

/// (method, path) for every `.at(path, get(…).post(…))` of the `routes()` function in `source`.
fn route_table(source: &str) -> Vec<(String, String)> {
    let routes = source
        .split("fn routes()")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("a routes() function");
    let mut table = Vec::new();
    for at in routes.split(".at(").skip(1) {
        let path = at.split('"').nth(1).expect("a route path").to_owned();
        for (call, method) in [("get(", "GET"), ("post(", "POST")] {
            if at.contains(call) {
                table.push((method.to_owned(), path.clone()));
            }
        }
    }
    table
}

/// The parametrised page routes no crawled route is an instance of.
pub fn uncovered(routes: &[Route]) -> Vec<String> {
    parametrised_page_routes()
        .into_iter()
        .filter(|(method, template)| !routes.iter().any(|r| r.is_instance_of(method, template)))
        .map(|(method, template)| format!("{method} {template}"))
        .collect()
}

/// The admin area's routes, from its route table, with A's ids (and a search for A's marker):
/// platform admins only, so A's owner never sees them, but B's people must not reach them.
pub fn admin_routes(a: &Tenant) -> Vec<Route> {
    let table = route_table(include_str!("../../../libs/web/src/admin/mod.rs"));
    assert!(
        table.len() >= 10,
        "the admin routes were not read: {table:?}"
    );
    let mut routes = Vec::new();
    let mut unknown = Vec::new();
    for (method, template) in table {
        let template = format!("/admin{}", template.trim_end_matches('/'));
        let segments: Vec<&str> = template.split('/').collect();
        let mut paths = vec![String::new()];
        for (i, segment) in segments.iter().enumerate().skip(1) {
            let area = segments.get(2).copied().unwrap_or_default();
            let values: Vec<String> = match (*segment, area) {
                (":id", "tenants") => vec![a.id.to_string()],
                (":id", "users") => vec![a.owner().id.to_string(), a.least().id.to_string()],
                (":id", "jobs") => vec![a.dead_job.clone()],
                (":action", "tenants") => {
                    ["suspend", "reactivate", "delete", "plan", "entitlements"]
                        .map(String::from)
                        .to_vec()
                }
                (":action", "users") => ["lock", "unlock", "reset-password", "end-sessions"]
                    .map(String::from)
                    .to_vec(),
                (":action", "jobs") => ["retry", "discard"].map(String::from).to_vec(),
                (param, _) if param.starts_with(':') => {
                    unknown.push(format!("{param} (segment {i}) of {method} {template}"));
                    vec![param.to_owned()]
                }
                (plain, _) => vec![plain.to_owned()],
            };
            paths = paths
                .into_iter()
                .flat_map(|p| values.iter().map(move |v| format!("{p}/{v}")))
                .collect();
        }
        for path in paths {
            let fields = if method == "POST" {
                vec![
                    ("reason".to_owned(), "cross-tenant matrix".to_owned()),
                    ("plan".to_owned(), "team".to_owned()),
                ]
            } else {
                Vec::new()
            };
            routes.push(Route {
                method: method.clone(),
                path,
                fields,
                found_on: "the admin route table".to_owned(),
            });
        }
    }
    assert!(
        unknown.is_empty(),
        "admin routes with a parameter admin_routes() (tests/tests/cross_tenant/pages.rs) \
         cannot fill: {unknown:?}"
    );
    for search in ["tenants", "users"] {
        routes.push(Route {
            method: "GET".to_owned(),
            path: format!("/admin/{search}?q={}", a.marker),
            fields: Vec::new(),
            found_on: "a search for A's marker".to_owned(),
        });
    }
    routes
}

/// Each route, by each of `people`, next to its twin with random ids: the same answer (a 404
/// page, or a refusal that random ids get too), never a redirect or a server error, and nothing
/// of A in it.
pub async fn replay(routes: &[Route], people: &[(String, &BrowserClient)], a: &Tenant) -> Tally {
    let known = a.ids();
    let mut tally = Tally::default();
    for (who, browser) in people {
        let csrf = browser.csrf_token("/dashboard").await;
        for route in routes {
            let carried = route.ids(&known);
            let (twin_route, twin_carried) = route.twin(&carried);
            let page = route.send(browser, &csrf).await;
            let twin = twin_route.send(browser, &csrf).await;
            tally.count(page.status);
            let what = format!(
                "{} (found on {}) by {who}: {} {}",
                route.describe(),
                route.found_on,
                page.status,
                excerpt(&page.body)
            );
            if page.status.is_server_error() {
                tally.fail(format!("SERVER ERROR: {what}"));
                continue;
            }
            if page.status.is_redirection() {
                tally.fail(format!(
                    "followed (a redirect to {:?}): {what}",
                    page.location()
                ));
            }
            if page.body.contains("did not come from this site") {
                tally.fail(format!("refused for its CSRF token (a test fault): {what}"));
            }
            if page.status != twin.status {
                tally.fail(format!(
                    "A's ids and random ids are told apart ({} vs {}): {what}",
                    page.status, twin.status
                ));
            } else if blanked(&page.body, &carried) != blanked(&twin.body, &twin_carried) {
                tally.fail(format!(
                    "the page for A's ids differs from the one for random ids ({}): {what}",
                    excerpt(&twin.body)
                ));
            } else if page.status != StatusCode::NOT_FOUND && !page.status.is_redirection() {
                tally.note(format!(
                    "{} (as for random ids: {:?}): {} by {who}",
                    page.status,
                    gist(&page.body),
                    route.describe()
                ));
            }
            if let Some(secret) = a.leaked_in(&page.body, &carried) {
                tally.fail(format!("LEAK of {secret:?}: {what}"));
            }
        }
    }
    tally
}

/// When a control runs: reads, then changes, the ownership hand-over (to people still there),
/// removals, and the switch to another organisation last (after which the team's routes would
/// act elsewhere).
fn control_rank(route: &Route) -> u8 {
    let path = route.path.as_str();
    if route.method == "GET" {
        0
    } else if path.starts_with("/tenants/switch") {
        4
    } else if path.ends_with("/remove") || path.ends_with("/revoke") || path.ends_with("/delete") {
        3
    } else if path.contains("/transfer") {
        2
    } else {
        1
    }
}

/// The crawled routes sent by the one they belong to (A's owner), after the attacks: each must
/// work or be refused on its merits, not be "not found", which shows the replayed requests
/// were complete. GETs must show their page.
pub async fn controls(routes: &[Route], owner: &BrowserClient) -> Tally {
    let csrf = owner.csrf_token("/dashboard").await;
    let mut ordered: Vec<&Route> = routes.iter().collect();
    ordered.sort_by_key(|r| control_rank(r));
    let mut tally = Tally::default();
    for route in ordered {
        let page = route.send(owner, &csrf).await;
        tally.count(page.status);
        let line = format!("{} by A's owner: {}", route.describe(), page.status);
        let reached = if route.method == "GET" {
            page.status == StatusCode::OK
        } else {
            page.status != StatusCode::NOT_FOUND
                && !page.status.is_server_error()
                && !page.body.contains("did not come from this site")
        };
        tally.control(reached, line, || excerpt(&page.body));
    }
    tally
}

/// The admin routes' reads by a platform admin: they show A's things (so B's 404 was a refusal,
/// not a wrong address).
pub async fn admin_controls(routes: &[Route], admin: &BrowserClient) -> Tally {
    let mut tally = Tally::default();
    for route in routes.iter().filter(|r| r.method == "GET") {
        let page = route.send(admin, "").await;
        tally.count(page.status);
        let line = format!("{} by a platform admin: {}", route.describe(), page.status);
        tally.control(page.status == StatusCode::OK, line, || excerpt(&page.body));
    }
    tally
}

fn excerpt(text: &str) -> String {
    let text = text.split("<main>").nth(1).unwrap_or(text);
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(300).collect()
}

/// What a page says went wrong: its error paragraph, or its start.
fn gist(body: &str) -> String {
    body.split("<p class=\"error\"")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split("</p>").next())
        .map_or_else(|| excerpt(body), |error| html::decode(error.trim()))
}

/// For messages: the methods of `routes`, counted.
pub fn methods(routes: &[Route]) -> String {
    let get = routes
        .iter()
        .filter(|r| r.method == Method::GET.as_str())
        .count();
    format!("{get} links, {} forms", routes.len() - get)
}
