//! An organisation's billing: its plan, entitlements and invoices; a Stripe Checkout session
//! to change plan, a billing portal session to manage payment. Owners and admins only.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use tenantkit_billing::{Interval, Overview};
use tenantkit_kernel::TenantId;
use tenantkit_tenancy::team::Actor;
use uuid::Uuid;

use super::{ApiTags, caller::Caller, text::Text};
use crate::{ApiError, AppState};

pub(crate) struct BillingApi;

#[derive(Object)]
struct EntitlementsView {
    plan: String,
    /// `none` for a tenant without a subscription (free or admin-assigned plan).
    status: String,
    /// Read-only: a payment is overdue past the grace period.
    restricted: bool,
    /// Members allowed; absent for a per-seat plan.
    #[oai(skip_serializing_if_is_none)]
    seats: Option<u32>,
    storage_quota_bytes: u64,
    api_requests_per_minute: u32,
    features: Vec<String>,
}

#[derive(Object)]
struct InvoiceView {
    id: String,
    #[oai(skip_serializing_if_is_none)]
    number: Option<String>,
    status: String,
    currency: String,
    /// In the currency's minor units.
    amount_due: i64,
    amount_paid: i64,
    #[oai(skip_serializing_if_is_none)]
    hosted_invoice_url: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Object)]
struct BillingView {
    /// Stripe is configured: checkout and portal are available.
    configured: bool,
    entitlements: EntitlementsView,
    seats_used: u64,
    #[oai(skip_serializing_if_is_none)]
    next_invoice_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    trial_ends_at: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
    #[oai(skip_serializing_if_is_none)]
    payment_failed_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    grace_ends_at: Option<DateTime<Utc>>,
    invoices: Vec<InvoiceView>,
}

impl From<Overview> for BillingView {
    fn from(o: Overview) -> Self {
        let e = o.entitlements;
        Self {
            configured: o.configured,
            entitlements: EntitlementsView {
                plan: e.plan,
                status: e.status.as_str().to_owned(),
                restricted: e.restricted,
                seats: e.seats,
                storage_quota_bytes: e.storage_quota_bytes,
                api_requests_per_minute: e.api_requests_per_minute,
                features: e.features.into_iter().collect(),
            },
            seats_used: o.seats_used,
            next_invoice_at: o.next_invoice_at,
            trial_ends_at: o.trial_ends_at,
            cancel_at_period_end: o.cancel_at_period_end,
            payment_failed_at: o.payment_failed_at,
            grace_ends_at: o.grace_ends_at,
            invoices: o
                .invoices
                .into_iter()
                .map(|i| InvoiceView {
                    id: i.id,
                    number: i.number,
                    status: i.status.as_str().to_owned(),
                    currency: i.currency,
                    amount_due: i.amount_due,
                    amount_paid: i.amount_paid,
                    hosted_invoice_url: i.hosted_invoice_url,
                    created_at: i.created_at,
                })
                .collect(),
        }
    }
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum ApiInterval {
    Monthly,
    Yearly,
}

#[derive(Object)]
struct CheckoutRequest {
    #[oai(validator(min_length = 1, max_length = 40))]
    plan: Text,
    interval: ApiInterval,
    /// Names this checkout: the same value again (a retry) returns the same session.
    attempt: Uuid,
    /// Where Stripe sends the customer after paying (`{CHECKOUT_SESSION_ID}` is filled in).
    #[oai(validator(max_length = 2000))]
    success_url: Option<String>,
    #[oai(validator(max_length = 2000))]
    cancel_url: Option<String>,
}

#[derive(Object)]
struct PortalRequest {
    #[oai(validator(max_length = 2000))]
    return_url: Option<String>,
}

/// A Stripe page to send the customer to.
#[derive(Object)]
struct Redirect {
    url: String,
}

#[derive(ApiResponse)]
enum BillingResponse {
    #[oai(status = 200)]
    Ok(Json<BillingView>),
}

#[derive(ApiResponse)]
enum RedirectResponse {
    #[oai(status = 201)]
    Created(Json<Redirect>),
}

#[allow(clippy::result_large_err)] // the operations' own error type
fn require_billing_manager(actor: &Actor) -> Result<(), ApiError> {
    if actor.role.can_manage_members() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "Only the organisation's owners and admins manage billing.",
        ))
    }
}

/// A return address must be this site's own: Stripe would otherwise send a paying customer
/// anywhere a caller named. Beyond starting with the public URL it must parse to the same
/// origin, and hold no whitespace, control character or backslash (which browsers read as a
/// slash, and which only tricks need).
#[allow(clippy::result_large_err)]
fn own_url(
    state: &AppState,
    field: &str,
    url: Option<String>,
    default: &str,
) -> Result<String, ApiError> {
    let public = &state.settings.server.public_url;
    let base = public.as_str();
    let Some(url) = url else {
        return Ok(format!("{base}{default}"));
    };
    let plain = !url
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    let same_origin = url::Url::parse(&url)
        .is_ok_and(|parsed| parsed.origin() == public.origin() && parsed.username().is_empty());
    if plain && same_origin && url.starts_with(base) {
        Ok(url)
    } else {
        Err(ApiError::invalid(field, format!("Must start with {base}.")))
    }
}

#[OpenApi(tag = "ApiTags::Billing")]
impl BillingApi {
    /// The plan, entitlements, seats, next invoice and invoices.
    #[oai(path = "/tenants/:tenant_id/billing", method = "get")]
    async fn billing(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
    ) -> Result<BillingResponse, ApiError> {
        let (mut tx, actor) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        require_billing_manager(&actor)?;
        let overview = state.billing.overview(&mut tx).await?;
        tx.commit().await?;
        Ok(BillingResponse::Ok(Json(overview.into())))
    }

    /// Start a Stripe Checkout to put the organisation on a plan; send the customer to `url`.
    #[oai(path = "/tenants/:tenant_id/billing/checkout", method = "post")]
    async fn checkout(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<CheckoutRequest>,
    ) -> Result<RedirectResponse, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (tx, actor) = caller.open_tenant(&state, tenant).await?;
        tx.commit().await?;
        require_billing_manager(&actor)?;
        let body = body.0;
        let success = own_url(
            &state,
            "success_url",
            body.success_url,
            "billing/success?session_id={CHECKOUT_SESSION_ID}",
        )?;
        let cancel = own_url(&state, "cancel_url", body.cancel_url, "billing/cancel")?;
        let interval = match body.interval {
            ApiInterval::Monthly => Interval::Monthly,
            ApiInterval::Yearly => Interval::Yearly,
        };
        let email = match &caller {
            Caller::Session { me, .. } => Some(me.user.email.clone()),
            Caller::Key(_) => None,
        };
        let url = state
            .billing
            .start_checkout(
                &state.db,
                tenant,
                body.plan.0.trim(),
                interval,
                &body.attempt.to_string(),
                &success,
                &cancel,
                email.as_deref(),
            )
            .await?;
        Ok(RedirectResponse::Created(Json(Redirect {
            url: url.to_string(),
        })))
    }

    /// Open Stripe's billing portal (payment method, invoices, cancellation).
    #[oai(path = "/tenants/:tenant_id/billing/portal", method = "post")]
    async fn portal(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<PortalRequest>,
    ) -> Result<RedirectResponse, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (tx, actor) = caller.open_tenant(&state, tenant).await?;
        tx.commit().await?;
        require_billing_manager(&actor)?;
        let back = own_url(&state, "return_url", body.0.return_url, "billing")?;
        let url = state.billing.portal(&state.db, tenant, &back).await?;
        Ok(RedirectResponse::Created(Json(Redirect {
            url: url.to_string(),
        })))
    }
}
