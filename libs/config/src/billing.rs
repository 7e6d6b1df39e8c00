//! Billing settings: Stripe credentials and the plans a tenant can be on.
//!
//! Plans come from `[[billing.plans]]` tables in the file, or from `TENANTKIT_BILLING__PLANS`
//! holding a JSON array (an environment variable cannot carry TOML tables). A `free` plan always
//! exists: it is added with its defaults when the list lacks one. Billing counts as configured
//! only when both the Stripe secret key and at least one webhook secret are set; without them
//! the kit runs on the free plan and admin-assigned plans.

use std::time::Duration;

use figment::value::Value;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::reader::{Reader, env_name};

/// The plan every tenant starts on; it needs no Stripe price.
pub const FREE_PLAN: &str = "free";

#[derive(Clone, Debug)]
pub struct BillingSettings {
    /// `sk_...` or a restricted `rk_...` key; `None` runs without Stripe.
    pub stripe_secret_key: Option<SecretString>,
    /// Webhook signing secrets (`whsec_...`). Several while a secret is being rotated: Stripe
    /// then signs each event with every one of its active secrets.
    pub webhook_secrets: Vec<SecretString>,
    /// Where the Stripe client sends requests; tests point it at a local server.
    pub stripe_api_base: Url,
    /// Per attempt; outbound calls must never hang a request or a job.
    pub stripe_timeout: Duration,
    /// How long a tenant whose payment failed keeps full access before it becomes read-only.
    pub grace_period: Duration,
    /// How old (or how far in the future) a webhook's signed timestamp may be.
    pub webhook_tolerance: Duration,
    /// `free` first, then the configured order.
    pub plans: Vec<PlanSettings>,
}

impl BillingSettings {
    /// Stripe is usable: a secret key to call it and a webhook secret to hear from it.
    pub fn is_configured(&self) -> bool {
        self.stripe_secret_key.is_some() && !self.webhook_secrets.is_empty()
    }

    pub fn plan(&self, name: &str) -> Option<&PlanSettings> {
        self.plans.iter().find(|p| p.name == name)
    }
}

impl Default for BillingSettings {
    /// No Stripe, the built-in plans: what a fresh checkout of the kit runs with.
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            webhook_secrets: Vec::new(),
            stripe_api_base: Url::parse(DEFAULT_API_BASE).expect("a valid URL"),
            stripe_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(7 * 86_400),
            webhook_tolerance: Duration::from_secs(300),
            plans: default_plans(),
        }
    }
}

/// One plan: what it costs in Stripe and what it grants.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    /// Stored in `tenants.plan`: lowercase letters, digits, `_` or `-`, at most 40.
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub stripe_price_monthly: Option<String>,
    #[serde(default)]
    pub stripe_price_yearly: Option<String>,
    /// Members the plan allows; for a per-seat plan, the members its base price covers.
    #[serde(default = "default_seats")]
    pub included_seats: u32,
    /// Set for plans billed per member (the subscription quantity follows the member count).
    /// The amount itself is Stripe's; this copy is for display.
    #[serde(default)]
    pub per_seat_price_cents: Option<u64>,
    /// Display only (Stripe's price is authoritative), in minor units of `currency`.
    #[serde(default)]
    pub monthly_price_cents: Option<u64>,
    #[serde(default)]
    pub yearly_price_cents: Option<u64>,
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default = "default_storage")]
    pub storage_quota_bytes: u64,
    #[serde(default = "default_api_rate")]
    pub api_requests_per_minute: u32,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub trial_days: u32,
}

impl PlanSettings {
    pub fn is_free(&self) -> bool {
        self.name == FREE_PLAN
    }

    pub fn is_per_seat(&self) -> bool {
        self.per_seat_price_cents.is_some()
    }
}

const DEFAULT_API_BASE: &str = "https://api.stripe.com/";
const GIB: u64 = 1 << 30;

fn default_seats() -> u32 {
    3
}
fn default_currency() -> String {
    "usd".to_owned()
}
fn default_storage() -> u64 {
    GIB
}
fn default_api_rate() -> u32 {
    60
}

fn plan(
    name: &str,
    display: &str,
    seats: u32,
    storage: u64,
    rate: u32,
    features: &[&str],
) -> PlanSettings {
    PlanSettings {
        name: name.to_owned(),
        display_name: display.to_owned(),
        stripe_price_monthly: None,
        stripe_price_yearly: None,
        included_seats: seats,
        per_seat_price_cents: None,
        monthly_price_cents: None,
        yearly_price_cents: None,
        currency: default_currency(),
        storage_quota_bytes: storage,
        api_requests_per_minute: rate,
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        trial_days: 0,
    }
}

fn free_plan() -> PlanSettings {
    plan(
        FREE_PLAN,
        "Free",
        default_seats(),
        default_storage(),
        default_api_rate(),
        &[],
    )
}

/// The plans a configuration without `billing.plans` has: the same names `admin.plans` always
/// had, so existing deployments keep assigning them. Their prices must be configured before
/// Stripe can sell them.
fn default_plans() -> Vec<PlanSettings> {
    vec![
        free_plan(),
        plan("team", "Team", 10, 50 * GIB, 600, &["priority_support"]),
        plan(
            "business",
            "Business",
            50,
            500 * GIB,
            3000,
            &["priority_support", "audit_export"],
        ),
    ]
}

/// A plan or feature name: what `tenants.plan` accepts (its check constraint).
pub(crate) fn is_plan_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

pub(crate) fn read(r: &mut Reader) -> BillingSettings {
    let defaults = BillingSettings::default();
    let stripe_secret_key = r.secret("billing.stripe_secret_key");
    let webhook_secrets = read_secret_list(r, "billing.webhook_secrets");
    let stripe_api_base = r.or("billing.stripe_api_base", defaults.stripe_api_base);
    let timeout_secs = r.or("billing.stripe_timeout_secs", 10u64);
    let grace_days = r.or("billing.grace_period_days", 7u64);
    let tolerance_secs = r.or("billing.webhook_tolerance_secs", 300u64);
    let plans = read_plans(r).unwrap_or(defaults.plans);

    let settings = BillingSettings {
        stripe_secret_key,
        webhook_secrets,
        stripe_api_base: with_trailing_slash(stripe_api_base),
        stripe_timeout: Duration::from_secs(timeout_secs),
        grace_period: Duration::from_secs(grace_days.saturating_mul(86_400)),
        webhook_tolerance: Duration::from_secs(tolerance_secs),
        plans: with_free_plan_first(plans),
    };
    validate(r, &settings, timeout_secs, grace_days, tolerance_secs);
    settings
}

/// The client joins `v1/...` onto the base as text: without the slash the path would fuse
/// with the host or last segment.
fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn with_free_plan_first(mut plans: Vec<PlanSettings>) -> Vec<PlanSettings> {
    match plans.iter().position(PlanSettings::is_free) {
        Some(at) => {
            let free = plans.remove(at);
            plans.insert(0, free);
        }
        None => plans.insert(0, free_plan()),
    }
    plans
}

/// Comma-separated text (one environment variable) or an array in the file.
fn read_secret_list(r: &mut Reader, key: &str) -> Vec<SecretString> {
    let parts: Vec<String> = match r.value(key) {
        Some(Value::Array(_, items)) => items
            .into_iter()
            .filter_map(|item| item.into_string())
            .collect(),
        _ => match r.secret(key) {
            Some(text) => text
                .expose_secret()
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
            None => Vec::new(),
        },
    };
    parts
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(SecretString::from)
        .collect()
}

/// `None` when unset (the defaults apply) or unreadable (a problem is recorded).
fn read_plans(r: &mut Reader) -> Option<Vec<PlanSettings>> {
    const KEY: &str = "billing.plans";
    let parsed = match r.value(KEY)? {
        // JSON from the environment arrives as text: figment's own syntax has no `:`.
        Value::String(_, text) => serde_json::from_str::<Vec<PlanSettings>>(&text)
            .map_err(|e| format!("not a JSON array of plans ({e})")),
        value => value
            .deserialize::<Vec<PlanSettings>>()
            .map_err(|e| e.to_string()),
    };
    match parsed {
        Ok(plans) => Some(plans),
        Err(error) => {
            r.problems.push(format!(
                "{KEY} (set by {}, env {}): {error}",
                r.source(KEY),
                env_name(KEY)
            ));
            None
        }
    }
}

fn validate(r: &mut Reader, s: &BillingSettings, timeout: u64, grace: u64, tolerance: u64) {
    let problems = &mut r.problems;
    if !matches!(s.stripe_api_base.scheme(), "http" | "https") {
        problems.push("billing.stripe_api_base must be an http(s) URL".to_owned());
    }
    if !(1..=120).contains(&timeout) {
        problems.push("billing.stripe_timeout_secs must be between 1 and 120".to_owned());
    }
    if grace > 90 {
        problems.push("billing.grace_period_days must be at most 90".to_owned());
    }
    if !(1..=3600).contains(&tolerance) {
        problems.push("billing.webhook_tolerance_secs must be between 1 and 3600".to_owned());
    }
    // Header values: the key and secrets travel in headers or HMAC keys; never echoed.
    let printable = |secret: &SecretString| {
        let text = secret.expose_secret();
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
    };
    if s.stripe_secret_key.as_ref().is_some_and(|k| !printable(k)) {
        problems
            .push("billing.stripe_secret_key must be printable ASCII without spaces".to_owned());
    }
    if !s.webhook_secrets.iter().all(printable) {
        problems
            .push("billing.webhook_secrets must be printable ASCII, comma-separated".to_owned());
    }
    // Half a configuration is almost certainly a mistake: say so rather than run without billing.
    match (s.stripe_secret_key.is_some(), s.webhook_secrets.is_empty()) {
        (true, true) => problems.push(format!(
            "billing.webhook_secrets is missing: Stripe billing needs it beside the secret key (set {})",
            env_name("billing.webhook_secrets")
        )),
        (false, false) => problems.push(format!(
            "billing.stripe_secret_key is missing: Stripe billing needs it beside the webhook secrets (set {})",
            env_name("billing.stripe_secret_key")
        )),
        _ => {}
    }
    validate_plans(problems, &s.plans, s.is_configured());
}

fn validate_plans(problems: &mut Vec<String>, plans: &[PlanSettings], stripe: bool) {
    let mut names = std::collections::BTreeSet::new();
    let mut prices = std::collections::BTreeMap::new();
    for plan in plans {
        let at = format!("billing.plans[{}]", plan.name);
        if !is_plan_name(&plan.name) {
            problems.push(format!(
                "{at}: the name must be 1-40 lowercase letters, digits, '_' or '-'"
            ));
        }
        if !names.insert(plan.name.as_str()) {
            problems.push(format!("{at}: the name is used by more than one plan"));
        }
        if plan.features.iter().any(|f| !is_plan_name(f)) {
            problems.push(format!(
                "{at}: features must be lowercase letters, digits, '_' or '-'"
            ));
        }
        if plan.currency.len() != 3 || !plan.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            problems.push(format!(
                "{at}: currency must be a lowercase ISO code such as usd"
            ));
        }
        let plan_prices = [&plan.stripe_price_monthly, &plan.stripe_price_yearly];
        for price in plan_prices.into_iter().flatten() {
            if let Some(other) = prices.insert(price.as_str(), plan.name.as_str()) {
                problems.push(format!(
                    "{at}: price {price} is also plan {other}'s; a price must name one plan"
                ));
            }
        }
        let has_price = plan_prices.iter().any(|p| p.is_some());
        if plan.is_free() && has_price {
            problems.push(format!("{at}: the free plan cannot have Stripe prices"));
        }
        if stripe && !plan.is_free() && !has_price {
            problems.push(format!(
                "{at}: a paid plan needs stripe_price_monthly or stripe_price_yearly when Stripe is configured"
            ));
        }
    }
}

/// What admins may assign: `admin.plans` when set (each must be a billing plan), otherwise
/// every billing plan. The list used to be the only definition of plans; billing owns it now.
pub(crate) fn admin_plans(r: &mut Reader, billing: &BillingSettings) -> Vec<String> {
    const KEY: &str = "admin.plans";
    let known: Vec<String> = billing.plans.iter().map(|p| p.name.clone()).collect();
    if !r.is_set(KEY) {
        return known;
    }
    let listed: String = r.or(KEY, String::new());
    let listed: Vec<String> = listed
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let unknown: Vec<&str> = listed
        .iter()
        .filter(|p| !known.contains(p))
        .map(String::as_str)
        .collect();
    if listed.is_empty() || !unknown.is_empty() {
        r.problems.push(format!(
            "{KEY} must list billing plans (comma-separated; it defaults to all of them): {} not among {}",
            if unknown.is_empty() { "nothing listed".to_owned() } else { unknown.join(", ") },
            known.join(", ")
        ));
        return known;
    }
    listed
}
