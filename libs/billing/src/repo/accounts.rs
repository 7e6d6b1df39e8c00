//! `billing_accounts` (a tenant's customer and dunning state) and the global
//! `stripe_customers` lookup.

use chrono::{DateTime, Utc};
use tenantkit_db::{DbError, PgConnection, TenantTx};
use tenantkit_kernel::TenantId;

use crate::Account;

/// Creates the tenant's (empty) account row if it has none, so that it can be locked.
pub(crate) async fn ensure(tx: &mut TenantTx) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into billing_accounts (tenant_id) values ($1) on conflict (tenant_id) do nothing",
        tenant.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The account, locked until the transaction ends: every billing change of a tenant runs
/// under this lock, so concurrent jobs apply one after the other.
pub(crate) async fn lock(tx: &mut TenantTx) -> Result<Account, DbError> {
    ensure(tx).await?;
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        Account,
        "select stripe_customer_id, customer_email, dunning_invoice_id, payment_failed_at,
                grace_ends_at, restricted_at
         from billing_accounts where tenant_id = $1 for update",
        tenant.as_uuid()
    )
    .fetch_one(tx.conn())
    .await?)
}

pub(crate) async fn find(tx: &mut TenantTx) -> Result<Option<Account>, DbError> {
    let tenant = tx.tenant_id();
    Ok(sqlx::query_as!(
        Account,
        "select stripe_customer_id, customer_email, dunning_invoice_id, payment_failed_at,
                grace_ends_at, restricted_at
         from billing_accounts where tenant_id = $1",
        tenant.as_uuid()
    )
    .fetch_optional(tx.conn())
    .await?)
}

/// Records that `customer` is the tenant's: in the account (unless it already has one, which
/// it keeps) and in the global lookup. Returns the account's customer.
pub(crate) async fn attach_customer(tx: &mut TenantTx, customer: &str) -> Result<String, DbError> {
    ensure(tx).await?;
    let tenant = tx.tenant_id();
    sqlx::query!(
        "insert into stripe_customers (id, billed_tenant_id) values ($1, $2)
         on conflict (id) do nothing",
        customer,
        tenant.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(sqlx::query_scalar!(
        r#"update billing_accounts set stripe_customer_id = coalesce(stripe_customer_id, $2)
           where tenant_id = $1 returning stripe_customer_id as "customer!""#,
        tenant.as_uuid(),
        customer
    )
    .fetch_one(tx.conn())
    .await?)
}

/// The tenant a Stripe customer belongs to (global lookup, on any transaction).
pub(crate) async fn tenant_of_customer(
    conn: &mut PgConnection,
    customer: &str,
) -> Result<Option<TenantId>, DbError> {
    Ok(sqlx::query_scalar!(
        r#"select billed_tenant_id as "tenant: TenantId" from stripe_customers where id = $1"#,
        customer
    )
    .fetch_optional(conn)
    .await?)
}

pub(crate) async fn set_customer_details(
    tx: &mut TenantTx,
    email: Option<&str>,
    name: Option<&str>,
) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update billing_accounts set customer_email = $2, customer_name = $3 where tenant_id = $1",
        tenant.as_uuid(),
        email,
        name
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub(crate) async fn start_dunning(
    tx: &mut TenantTx,
    invoice: &str,
    failed_at: DateTime<Utc>,
    grace_ends_at: DateTime<Utc>,
) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update billing_accounts
         set dunning_invoice_id = $2, payment_failed_at = $3, grace_ends_at = $4,
             restricted_at = null
         where tenant_id = $1",
        tenant.as_uuid(),
        invoice,
        failed_at,
        grace_ends_at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub(crate) async fn restrict(tx: &mut TenantTx, at: DateTime<Utc>) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update billing_accounts set restricted_at = $2
         where tenant_id = $1 and dunning_invoice_id is not null",
        tenant.as_uuid(),
        at
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub(crate) async fn clear_dunning(tx: &mut TenantTx) -> Result<(), DbError> {
    let tenant = tx.tenant_id();
    sqlx::query!(
        "update billing_accounts
         set dunning_invoice_id = null, payment_failed_at = null, grace_ends_at = null,
             restricted_at = null
         where tenant_id = $1",
        tenant.as_uuid()
    )
    .execute(tx.conn())
    .await?;
    Ok(())
}
