//! Billing's jobs and the worker's handlers for them.
//!
//! | queue           | job                    | handler                  |
//! |-----------------|------------------------|--------------------------|
//! | `billing.event` | [`ProcessStripeEvent`] | [`run_stripe_event`]     |
//! | `billing.seats` | [`SyncSeats`]          | [`run_seat_sync`]        |
//! | `billing.dunning` | [`EnforceGracePeriod`] | [`run_grace_period`]   |
//! | `billing.cancel` | [`CancelSubscription`] | [`run_cancellation`]    |
//! | `email.billing` | [`crate::emails::BillingEmail`] | [`crate::emails::deliver_billing_email`] |
//!
//! Each handler needs `Data<Database>` and `Data<BillingJobContext>` (the email one also
//! `Data<Mailer>`).

use std::time::{Duration, SystemTime};

use apalis::prelude::{Attempt, BoxDynError, Data, TaskId};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tenantkit_db::{Database, TenantTx};
use tenantkit_jobs::{Job, JobError};
use tenantkit_kernel::TenantId;
use url::Url;

use crate::{Billing, dunning::GraceOutcome};

/// What the billing handlers share: billing itself, where links in emails point, and the
/// retry backoff.
#[derive(Clone, Debug)]
pub struct BillingJobContext {
    pub billing: Billing,
    /// `server.public_url`: emails link to the billing page from here, never from a request.
    pub public_url: Url,
    /// `worker.retry_base_delay`.
    pub retry_base: Duration,
}

impl BillingJobContext {
    pub(crate) fn link(&self, path: &str) -> String {
        self.public_url
            .join(path.trim_start_matches('/'))
            .unwrap_or_else(|_| self.public_url.clone())
            .to_string()
    }
}

/// Processes one stored webhook event. Not a tenant's job: which tenant it concerns is only
/// known once the event is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStripeEvent {
    pub event_id: String,
}

impl Job for ProcessStripeEvent {
    const QUEUE: &'static str = "billing.event";
    /// With the backoff capped at an hour, about half a day of Stripe being unreachable.
    const MAX_ATTEMPTS: usize = 20;

    fn tenant_id(&self) -> Option<TenantId> {
        None
    }

    fn idempotency_key(&self) -> String {
        format!("stripe-event:{}", self.event_id)
    }
}

/// Sets the subscription's quantity to the member count after a membership change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSeats {
    pub tenant_id: TenantId,
    /// Names the membership change (the caller's operation), so Stripe's idempotency key is
    /// tied to the change rather than to the attempt.
    pub change_key: String,
    /// Members right after the change. A job whose count is no longer current leaves the
    /// update to the job of the later change, so two changes cannot apply out of order.
    pub members: u64,
}

impl Job for SyncSeats {
    const QUEUE: &'static str = "billing.seats";
    const MAX_ATTEMPTS: usize = 20;

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    fn idempotency_key(&self) -> String {
        format!("seats:{}:{}", self.tenant_id, self.change_key)
    }
}

/// Runs when a failed payment's grace period ends: read-only mode if it is still unpaid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforceGracePeriod {
    pub tenant_id: TenantId,
    pub invoice_id: String,
}

impl Job for EnforceGracePeriod {
    const QUEUE: &'static str = "billing.dunning";

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    fn idempotency_key(&self) -> String {
        format!("dunning:{}:grace", self.invoice_id)
    }
}

/// Cancels a deleted organisation's subscription in Stripe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelSubscription {
    pub tenant_id: TenantId,
    pub subscription_id: String,
}

impl Job for CancelSubscription {
    const QUEUE: &'static str = "billing.cancel";
    const MAX_ATTEMPTS: usize = 20;

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    fn idempotency_key(&self) -> String {
        format!("cancel:{}", self.subscription_id)
    }
}

/// Enqueues `job` in `tx` (to run at `at`, or now) unless a job with its idempotency key was
/// already enqueued: apalis refuses a repeated key with a unique violation, which would abort
/// the caller's whole transaction. The advisory lock makes check-then-insert safe against a
/// concurrent transaction enqueuing the same key.
pub(crate) async fn enqueue_once<J: Job>(
    tx: &mut TenantTx,
    job: &J,
    at: Option<SystemTime>,
) -> Result<bool, JobError> {
    let key = job.idempotency_key();
    // Runtime-checked: the `apalis` schema belongs to apalis's migrations, not ours.
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("{}:{key}", J::QUEUE))
        .execute(tx.conn())
        .await
        .map_err(|e| JobError::Queue(e.into()))?;
    let exists: bool = sqlx::query_scalar(
        "select exists(select 1 from apalis.jobs where job_type = $1 and idempotency_key = $2)",
    )
    .bind(J::QUEUE)
    .bind(&key)
    .fetch_one(tx.conn())
    .await
    .map_err(|e| JobError::Queue(e.into()))?;
    if exists {
        return Ok(false);
    }
    match at {
        Some(at) => tenantkit_jobs::enqueue_at(tx, job, at).await?,
        None => tenantkit_jobs::enqueue(tx, job).await?,
    }
    Ok(true)
}

#[tracing::instrument(skip_all, fields(event_id = %job.event_id))]
pub async fn run_stripe_event(
    job: ProcessStripeEvent,
    db: Data<Database>,
    ctx: Data<BillingJobContext>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = ctx
        .billing
        .process_event(&db, &job.event_id, Utc::now())
        .await
        .map(|processed| tracing::info!(?processed, "stripe event processed"))
        .map_err(BoxDynError::from);
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), ctx.retry_base, result).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id, change = %job.change_key))]
pub async fn run_seat_sync(
    job: SyncSeats,
    db: Data<Database>,
    ctx: Data<BillingJobContext>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = ctx
        .billing
        .sync_seats(&db, &job)
        .await
        .map(|outcome| tracing::info!(?outcome, "seats synced"))
        .map_err(BoxDynError::from);
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), ctx.retry_base, result).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id, invoice_id = %job.invoice_id))]
pub async fn run_grace_period(
    job: EnforceGracePeriod,
    db: Data<Database>,
    ctx: Data<BillingJobContext>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let now = Utc::now();
    let result = match ctx.billing.enforce_grace_period(&db, &job, now).await {
        // Ran early (a clock change, a manual retry): wait for the end of the grace period
        // without using up an attempt.
        Ok(GraceOutcome::NotDue(due)) => match &task {
            Some(task) => {
                let wait = (due - now).to_std().unwrap_or_default() + Duration::from_secs(1);
                tenantkit_jobs::defer(&db, &task.to_string(), wait)
                    .await
                    .map_err(BoxDynError::from)
            }
            None => Err("an early grace-period job has no task id to defer".into()),
        },
        Ok(outcome) => {
            tracing::info!(?outcome, "grace period handled");
            Ok(())
        }
        Err(error) => Err(BoxDynError::from(error)),
    };
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), ctx.retry_base, result).await
}

#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id, subscription = %job.subscription_id))]
pub async fn run_cancellation(
    job: CancelSubscription,
    db: Data<Database>,
    ctx: Data<BillingJobContext>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = match ctx.billing.cancel_subscription(&db, &job).await {
        Ok(processed) => {
            tracing::info!(?processed, "subscription canceled");
            Ok(())
        }
        // Keys removed since the job was queued: nothing is billed any more.
        Err(crate::BillingError::NotConfigured) => Ok(()),
        Err(error) => Err(BoxDynError::from(error)),
    };
    tenantkit_jobs::back_off_on_failure(&db, task, attempt.current(), ctx.retry_base, result).await
}

#[cfg(test)]
mod tests {
    use apalis::prelude::WorkerBuilder;
    use tenantkit_notifications::Mailer;

    use super::*;
    use crate::emails::{BillingEmail, deliver_billing_email};

    /// Compiles only if a worker can run each handler (the data it asks for, a `Send` future):
    /// what `apps/worker` will do.
    #[allow(dead_code)]
    fn every_handler_fits_a_worker(db: Database, mailer: Mailer, ctx: BillingJobContext) {
        let _ = WorkerBuilder::new("event")
            .backend(tenantkit_jobs::consumer::<ProcessStripeEvent>(
                &db,
                &tenantkit_jobs::Wakeups::new(),
                10,
            ))
            .data(db.clone())
            .data(ctx.clone())
            .build(run_stripe_event);
        let _ = WorkerBuilder::new("seats")
            .backend(tenantkit_jobs::consumer::<SyncSeats>(
                &db,
                &tenantkit_jobs::Wakeups::new(),
                10,
            ))
            .data(db.clone())
            .data(ctx.clone())
            .build(run_seat_sync);
        let _ = WorkerBuilder::new("dunning")
            .backend(tenantkit_jobs::consumer::<EnforceGracePeriod>(
                &db,
                &tenantkit_jobs::Wakeups::new(),
                10,
            ))
            .data(db.clone())
            .data(ctx.clone())
            .build(run_grace_period);
        let _ = WorkerBuilder::new("cancel")
            .backend(tenantkit_jobs::consumer::<CancelSubscription>(
                &db,
                &tenantkit_jobs::Wakeups::new(),
                10,
            ))
            .data(db.clone())
            .data(ctx.clone())
            .build(run_cancellation);
        let _ = WorkerBuilder::new("email")
            .backend(tenantkit_jobs::consumer::<BillingEmail>(
                &db,
                &tenantkit_jobs::Wakeups::new(),
                10,
            ))
            .data(db.clone())
            .data(mailer)
            .data(ctx)
            .build(deliver_billing_email);
    }

    #[test]
    fn job_keys_name_the_business_operation() {
        let tenant = TenantId::new();
        let seats = SyncSeats {
            tenant_id: tenant,
            change_key: "member-added:u1".to_owned(),
            members: 3,
        };
        assert_eq!(
            seats.idempotency_key(),
            format!("seats:{tenant}:member-added:u1")
        );
        let event = ProcessStripeEvent {
            event_id: "evt_1".to_owned(),
        };
        assert_eq!(
            (event.idempotency_key().as_str(), event.tenant_id()),
            ("stripe-event:evt_1", None)
        );
        let grace = EnforceGracePeriod {
            tenant_id: tenant,
            invoice_id: "in_1".to_owned(),
        };
        assert_eq!(grace.idempotency_key(), "dunning:in_1:grace");
        let cancel = CancelSubscription {
            tenant_id: tenant,
            subscription_id: "sub_1".to_owned(),
        };
        assert_eq!(cancel.idempotency_key(), "cancel:sub_1");
    }
}
