//! `billing_subscriptions` and `billing_invoices`: Stripe objects as last fetched.

use tenantkit_db::{DbError, TenantTx};

use crate::{Interval, InvoiceStatus, StoredInvoice, StoredSubscription, SubscriptionStatus};

/// Every subscription of the tenant (a handful at most), oldest first.
pub(crate) async fn all(tx: &mut TenantTx) -> Result<Vec<StoredSubscription>, DbError> {
    let tenant = tx.tenant_id();
    let rows = sqlx::query!(
        "select id, status, plan, price_id, billing_interval, quantity, item_id,
                current_period_end, trial_end, cancel_at_period_end, canceled_at, stripe_created_at
         from billing_subscriptions where tenant_id = $1 order by stripe_created_at, id",
        tenant.as_uuid()
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| StoredSubscription {
            // The check constraint admits only statuses this version knows.
            status: SubscriptionStatus::from_stripe(&row.status)
                .unwrap_or(SubscriptionStatus::Incomplete),
            id: row.id,
            plan: row.plan,
            price_id: row.price_id,
            interval: row
                .billing_interval
                .as_deref()
                .and_then(Interval::from_stripe_name),
            quantity: row.quantity.and_then(|q| u64::try_from(q).ok()),
            item_id: row.item_id,
            current_period_end: row.current_period_end,
            trial_end: row.trial_end,
            cancel_at_period_end: row.cancel_at_period_end,
            canceled_at: row.canceled_at,
            created_at: row.stripe_created_at,
        })
        .collect())
}

pub(crate) async fn upsert(tx: &mut TenantTx, s: &StoredSubscription) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into billing_subscriptions
             (tenant_id, id, status, plan, price_id, billing_interval, quantity, item_id,
              current_period_end, trial_end, cancel_at_period_end, canceled_at, stripe_created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         on conflict (tenant_id, id) do update set
             status = excluded.status, plan = excluded.plan, price_id = excluded.price_id,
             billing_interval = excluded.billing_interval, quantity = excluded.quantity,
             item_id = excluded.item_id, current_period_end = excluded.current_period_end,
             trial_end = excluded.trial_end, cancel_at_period_end = excluded.cancel_at_period_end,
             canceled_at = excluded.canceled_at, synced_at = now()",
        tenant.as_uuid(),
        s.id,
        s.status.as_str(),
        s.plan,
        s.price_id,
        s.interval.map(Interval::stripe_name),
        s.quantity.and_then(|q| i64::try_from(q).ok()),
        s.item_id,
        s.current_period_end,
        s.trial_end,
        s.cancel_at_period_end,
        s.canceled_at,
        s.created_at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Sets the quantity Stripe confirmed after a seat change.
pub(crate) async fn set_quantity(
    tx: &mut TenantTx,
    subscription: &str,
    quantity: u64,
) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update billing_subscriptions set quantity = $3, synced_at = now()
         where tenant_id = $1 and id = $2",
        tenant.as_uuid(),
        subscription,
        i64::try_from(quantity).unwrap_or(i64::MAX)
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

macro_rules! select_invoices {
    ($rest:literal $(, $arg:expr)*) => {
        sqlx::query!(
            "select id, subscription_id, number, status, currency, amount_due, amount_paid,
                    amount_remaining, hosted_invoice_url, invoice_pdf, period_start, period_end,
                    stripe_created_at
             from billing_invoices " + $rest
            $(, $arg)*
        )
    };
}

macro_rules! invoice_from_row {
    ($row:expr) => {{
        let row = $row;
        StoredInvoice {
            status: InvoiceStatus::from_stripe(&row.status).unwrap_or(InvoiceStatus::Open),
            id: row.id,
            subscription_id: row.subscription_id,
            number: row.number,
            currency: row.currency,
            amount_due: row.amount_due,
            amount_paid: row.amount_paid,
            amount_remaining: row.amount_remaining,
            hosted_invoice_url: row.hosted_invoice_url,
            invoice_pdf: row.invoice_pdf,
            period_start: row.period_start,
            period_end: row.period_end,
            created_at: row.stripe_created_at,
        }
    }};
}

pub(crate) async fn find_invoice(
    tx: &mut TenantTx,
    id: &str,
) -> Result<Option<StoredInvoice>, DbError> {
    let tenant = tx.tenant_id();
    let row = select_invoices!("where tenant_id = $1 and id = $2", tenant.as_uuid(), id)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.map(|row| invoice_from_row!(row)))
}

/// The newest invoices first, for the billing page.
pub(crate) async fn recent_invoices(
    tx: &mut TenantTx,
    limit: i64,
) -> Result<Vec<StoredInvoice>, DbError> {
    let tenant = tx.tenant_id();
    let rows = select_invoices!(
        "where tenant_id = $1 order by stripe_created_at desc, id desc limit $2",
        tenant.as_uuid(),
        limit
    )
    .fetch_all(tx.conn())
    .await?;
    Ok(rows.into_iter().map(|row| invoice_from_row!(row)).collect())
}

pub(crate) async fn upsert_invoice(tx: &mut TenantTx, i: &StoredInvoice) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into billing_invoices
             (tenant_id, id, subscription_id, number, status, currency, amount_due, amount_paid,
              amount_remaining, hosted_invoice_url, invoice_pdf, period_start, period_end,
              stripe_created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         on conflict (tenant_id, id) do update set
             subscription_id = excluded.subscription_id, number = excluded.number,
             status = excluded.status, currency = excluded.currency,
             amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
             amount_remaining = excluded.amount_remaining,
             hosted_invoice_url = excluded.hosted_invoice_url, invoice_pdf = excluded.invoice_pdf,
             period_start = excluded.period_start, period_end = excluded.period_end,
             synced_at = now()",
        tenant.as_uuid(),
        i.id,
        i.subscription_id,
        i.number,
        i.status.as_str(),
        i.currency,
        i.amount_due,
        i.amount_paid,
        i.amount_remaining,
        i.hosted_invoice_url,
        i.invoice_pdf,
        i.period_start,
        i.period_end,
        i.created_at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
