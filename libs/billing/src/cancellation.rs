//! A deleted organisation stops paying: its deletion queues a job, in the same transaction,
//! that cancels each of its live subscriptions in Stripe at once and stores what Stripe says
//! (the tenant falls back to the free plan; restored, it stays there until someone subscribes
//! again).

use chrono::Utc;
use tenantkit_db::{Database, TenantTx};

use crate::{
    Billing, BillingError, Processed,
    jobs::{CancelSubscription, enqueue_once},
    repo,
    sync::LockedTenant,
};

/// Queues the cancellation of every subscription of the tenant of `tx` that has not ended.
/// Returns how many were queued (none without Stripe keys: nothing is billed).
pub async fn enqueue_cancellations(tx: &mut TenantTx) -> Result<usize, BillingError> {
    let mut queued = 0;
    for subscription in repo::subscriptions::all(tx).await? {
        if subscription.status.has_ended() {
            continue;
        }
        let job = CancelSubscription {
            tenant_id: tx.tenant_id(),
            subscription_id: subscription.id,
        };
        if enqueue_once(tx, &job, None).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

impl Billing {
    /// The `billing.cancel` job: cancels the subscription in Stripe unless Stripe says it has
    /// ended already, then stores Stripe's answer under the billing lock.
    pub async fn cancel_subscription(
        &self,
        db: &Database,
        job: &CancelSubscription,
    ) -> Result<Processed, BillingError> {
        let stripe = self.stripe()?;
        let mut tx = db.tenant(job.tenant_id).await?;
        let account = repo::accounts::lock(&mut tx).await?;
        let mut locked = LockedTenant::new(self, tx, account, Utc::now())?;
        let current = stripe.subscription(&job.subscription_id).await?;
        if !crate::stripe_api::has_ended(&current) {
            // Stripe's idempotency key names the subscription: a retry after a lost answer
            // gets the first cancellation back.
            let key = tenantkit_jobs::Job::idempotency_key(job);
            stripe.cancel(&job.subscription_id, &key).await?;
        }
        let processed = locked.sync_subscription(&job.subscription_id).await?;
        locked.finish().commit().await?;
        Ok(processed)
    }
}
