//! The billing page of the active organisation (owners and admins): plan, status, seats, next
//! invoice and invoices. Choosing a plan goes to Stripe Checkout and comes back to a page that
//! waits for Stripe's confirmation; "Manage billing" opens Stripe's billing portal.

use askama::Template;
use chrono::{DateTime, Utc};
use poem::{
    Response, handler,
    web::{Form, Query},
};
use serde::Deserialize;
use tenantkit_billing::{BillingError, Interval, Overview, Plan};
use tenantkit_kernel::TenantId;
use uuid::Uuid;

use super::{DoneQuery, Layout, PageError, page_with_status, redirect, redirect_with_notice};
use crate::browser::{Browser, SignedIn};

/// A plan as the page offers it.
struct PlanChoice {
    name: String,
    title: String,
    terms: String,
    current: bool,
    monthly: bool,
    yearly: bool,
}

impl PlanChoice {
    fn of(plan: &Plan, current: &str) -> Self {
        let price = |cents: Option<u64>, per: &str| {
            cents.map(|c| format!("{} {} {per}", money(c as i64), plan.currency.to_uppercase()))
        };
        let mut terms: Vec<String> = [
            price(plan.monthly_price_cents, "a month"),
            price(plan.yearly_price_cents, "a year"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match plan.per_seat_price_cents {
            Some(cents) => terms.push(format!(
                "{} included seats, then {} {} a seat",
                plan.included_seats,
                money(cents as i64),
                plan.currency.to_uppercase()
            )),
            None => terms.push(format!("up to {} members", plan.included_seats)),
        }
        terms.push(format!("{} of storage", bytes(plan.storage_quota_bytes)));
        if !plan.features.is_empty() {
            terms.push(plan.features.join(", "));
        }
        if plan.trial_days > 0 {
            terms.push(format!("{}-day trial", plan.trial_days));
        }
        Self {
            name: plan.name.clone(),
            title: title(plan),
            terms: terms.join(" · "),
            current: plan.name == current,
            monthly: plan.stripe_price_monthly.is_some(),
            yearly: plan.stripe_price_yearly.is_some(),
        }
    }
}

fn title(plan: &Plan) -> String {
    if plan.display_name.is_empty() {
        plan.name.clone()
    } else {
        plan.display_name.clone()
    }
}

/// Minor units as a decimal amount ("12.50").
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

fn bytes(count: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if count >= GIB {
        format!("{} GiB", count / GIB)
    } else {
        format!("{} MiB", count / MIB)
    }
}

fn day(at: &Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "billing.html")]
struct BillingPage {
    layout: Layout,
    tenant: String,
    overview: Overview,
    plan_title: String,
    plans: Vec<PlanChoice>,
    /// Names this page's checkout: a double submit or a retry opens the same session.
    attempt: String,
    /// Set on the page Stripe returns to, while the payment is not confirmed yet.
    confirming: bool,
}

impl BillingPage {
    fn seats(&self) -> String {
        match self.overview.seats_included {
            Some(included) => format!("{} of {included}", self.overview.seats_used),
            None => format!("{} (billed per seat)", self.overview.seats_used),
        }
    }

    fn next_invoice(&self) -> String {
        day(&self.overview.next_invoice_at)
    }

    fn trial_ends(&self) -> String {
        day(&self.overview.trial_ends_at)
    }

    fn grace_ends(&self) -> String {
        day(&self.overview.grace_ends_at)
    }
}

/// The signed-in owner or admin of the active organisation.
async fn manager(browser: &Browser) -> Result<(SignedIn, TenantId, String), PageError> {
    let me = browser.require_signed_in().await?;
    if me.user.is_platform_admin && !me.user.two_factor_enabled() {
        return Err(PageError::TwoFactorRequired);
    }
    let tenant = me.open_tenant()?.clone();
    if !tenant.role.can_manage_members() {
        return Err(PageError::Forbidden(
            "Only the organisation's owners and admins manage billing.".into(),
        ));
    }
    Ok((me, tenant.id, tenant.name))
}

async fn billing_page(
    browser: &Browser,
    notice: Option<&str>,
    error: Option<String>,
    confirming: bool,
) -> Result<Response, PageError> {
    let (me, tenant, tenant_name) = manager(browser).await?;
    let billing = &browser.state.billing;
    let mut tx = browser.state.db.tenant(tenant).await?;
    let overview = billing.overview(&mut tx).await?;
    tx.commit().await?;
    let mut layout = Layout::new(browser, Some(&me), "Billing");
    if let Some(notice) = notice {
        layout = layout.notice(notice);
    }
    let status = if error.is_some() {
        poem::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        poem::http::StatusCode::OK
    };
    if let Some(error) = error {
        layout = layout.error(error);
    }
    let plans = billing
        .plans()
        .iter()
        .map(|plan| PlanChoice::of(plan, &overview.plan.name))
        .collect();
    // Stripe's confirmation arrived: the page stops waiting for it.
    let confirming = confirming && overview.plan.is_free();
    let view = BillingPage {
        layout,
        tenant: tenant_name,
        plan_title: title(&overview.plan),
        overview,
        plans,
        attempt: Uuid::now_v7().to_string(),
        confirming,
    };
    let mut response = page_with_status(browser, status, &view);
    if let Ok(policy) = csp_allowing_stripe(browser).parse() {
        response
            .headers_mut()
            .insert(poem::http::header::CONTENT_SECURITY_POLICY, policy);
    }
    Ok(response)
}

/// The page's forms redirect to Stripe's hosted pages (Checkout, the billing portal), which
/// the default `form-action 'self'` would stop; with a custom Stripe API base (a test server,
/// a proxy) its origin too.
fn csp_allowing_stripe(browser: &Browser) -> String {
    let mut origins = vec![
        "https://checkout.stripe.com".to_owned(),
        "https://billing.stripe.com".to_owned(),
    ];
    let base = &browser.state.billing.settings().stripe_api_base;
    if base.host_str() != Some("api.stripe.com") {
        origins.push(base.origin().ascii_serialization());
    }
    crate::middleware::csp_with_form_targets(&origins)
}

#[handler]
pub(crate) async fn show(
    browser: Browser,
    Query(done): Query<DoneQuery>,
) -> Result<Response, PageError> {
    billing_page(&browser, done.notice(), None, false).await
}

#[derive(Deserialize)]
pub(crate) struct CheckoutForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    plan: String,
    #[serde(default)]
    interval: String,
    #[serde(default)]
    attempt: String,
}

#[handler]
pub(crate) async fn checkout(
    browser: Browser,
    Form(form): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let (me, tenant, _) = manager(&browser).await?;
    let interval = match form.interval.as_str() {
        "yearly" => Interval::Yearly,
        _ => Interval::Monthly,
    };
    // An attempt id is what the page sent; anything else starts a fresh one.
    let attempt = Uuid::parse_str(&form.attempt)
        .map(|id| id.to_string())
        .unwrap_or_else(|_| Uuid::now_v7().to_string());
    let base = &browser.state.settings.server.public_url;
    let success = format!("{base}billing/success?session_id={{CHECKOUT_SESSION_ID}}");
    let cancel = format!("{base}billing/cancel");
    let started = browser
        .state
        .billing
        .start_checkout(
            &browser.state.db,
            tenant,
            form.plan.trim(),
            interval,
            &attempt,
            &success,
            &cancel,
            Some(&me.user.email),
        )
        .await;
    match started {
        Ok(url) => Ok(redirect(url.as_str(), &[])),
        Err(error) => billing_page(&browser, None, Some(user_message(error)?), false).await,
    }
}

#[derive(Deserialize)]
pub(crate) struct PortalForm {
    #[serde(default)]
    csrf_token: String,
}

#[handler]
pub(crate) async fn portal(
    browser: Browser,
    Form(form): Form<PortalForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let (_, tenant, _) = manager(&browser).await?;
    let back = format!("{}billing", browser.state.settings.server.public_url);
    match browser
        .state
        .billing
        .portal(&browser.state.db, tenant, &back)
        .await
    {
        Ok(url) => Ok(redirect(url.as_str(), &[])),
        Err(error) => billing_page(&browser, None, Some(user_message(error)?), false).await,
    }
}

/// What an owner is told when checkout or the portal cannot open; failures of our own are
/// errors, not messages.
fn user_message(error: BillingError) -> Result<String, PageError> {
    Ok(match error {
        BillingError::NotConfigured => "Billing is not configured on this installation.".into(),
        BillingError::UnknownPlan(_) => "Choose one of the plans below.".into(),
        BillingError::NoCustomer => "There is nothing to manage yet: choose a plan first.".into(),
        BillingError::Invalid { message, .. } => message,
        BillingError::Conflict(message) => message,
        BillingError::Stripe(failure) => {
            tracing::warn!(error = %failure, "Stripe call failed");
            "Stripe could not be reached. Please try again in a moment.".into()
        }
        other => return Err(other.into()),
    })
}

/// Where Stripe Checkout returns. The subscription arrives by webhook, processed by a job:
/// until it has, the page says so and reloads itself (no JavaScript needed).
#[handler]
pub(crate) async fn returned(browser: Browser) -> Result<Response, PageError> {
    billing_page(&browser, None, None, true).await
}

#[handler]
pub(crate) async fn canceled(browser: Browser) -> Result<Response, PageError> {
    manager(&browser).await?;
    Ok(redirect_with_notice("/billing", "checkout-canceled"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_sizes_read_as_people_write_them() {
        assert_eq!(money(1250), "12.50");
        assert_eq!(money(5), "0.05");
        assert_eq!(bytes(10 << 30), "10 GiB");
        assert_eq!(bytes(512 << 20), "512 MiB");
    }
}
