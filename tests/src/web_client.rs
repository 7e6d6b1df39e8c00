//! A browser for tests of the server-rendered pages: it keeps its cookies as a browser would
//! (without reqwest's cookie store, so a test can read, plant or replay any of them), follows
//! no redirects, and posts forms with the CSRF token of the page they came from.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use reqwest::{StatusCode, header::HeaderMap};

/// One response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Where a redirect points.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// Whether this is a 303 to exactly `path`.
    pub fn redirects_to(&self, path: &str) -> bool {
        self.status == StatusCode::SEE_OTHER && self.location() == Some(path)
    }

    /// Every `Set-Cookie` value as sent.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The `Set-Cookie` value for the cookie called `name`, when there is one.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.split_once('=').is_some_and(|(n, _)| n.trim() == name))
    }

    /// The value of the first `csrf_token` hidden input on the page.
    pub fn csrf_token(&self) -> Option<String> {
        let rest = self.body.split("name=\"csrf_token\" value=\"").nth(1)?;
        rest.split('"').next().map(str::to_owned)
    }
}

/// Cookies by name, as a browser keeps them for one site.
pub struct BrowserClient {
    base: String,
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl BrowserClient {
    /// A browser with no cookies, talking to `base` (e.g. `http://127.0.0.1:8000`).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .user_agent("web-security-test/1.0")
            .build()
            .expect("client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().expect("cookies").get(name).cloned()
    }

    /// Plants a cookie (or replaces it), as an attacker or a replay would.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .expect("cookies")
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn remove_cookie(&self, name: &str) {
        self.cookies.lock().expect("cookies").remove(name);
    }

    /// Every cookie name this browser holds.
    pub fn cookie_names(&self) -> Vec<String> {
        self.cookies
            .lock()
            .expect("cookies")
            .keys()
            .cloned()
            .collect()
    }

    fn cookie_header(&self) -> Option<String> {
        let cookies = self.cookies.lock().expect("cookies");
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Keeps what the response sets; an empty value or `Max-Age=0` deletes.
    fn remember(&self, headers: &HeaderMap) {
        let mut cookies = self.cookies.lock().expect("cookies");
        for raw in headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let mut parts = raw.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let deleted =
                value.is_empty() || parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if deleted {
                cookies.remove(name.trim());
            } else {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match self.cookie_header() {
            Some(cookies) => request.header("cookie", cookies),
            None => request,
        };
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        self.remember(&headers);
        let body = response.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(self.url(path))).await
    }

    /// Posts exactly `fields`, form-encoded (no token added).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.http.post(self.url(path)).form(fields)).await
    }

    /// The CSRF token of the form on the page at `path`.
    pub async fn csrf_token(&self, path: &str) -> String {
        let page = self.get(path).await;
        page.csrf_token()
            .unwrap_or_else(|| panic!("no csrf_token on {path} ({}): {}", page.status, page.body))
    }

    /// Opens `form_page`, then posts `fields` and its CSRF token to `action`.
    pub async fn submit(&self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf_token(form_page).await;
        let mut all = fields.to_vec();
        all.push(("csrf_token", token.as_str()));
        self.post(action, &all).await
    }

    /// Fills in the login form.
    pub async fn log_in(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }
}
