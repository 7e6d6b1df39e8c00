//! Seats: a per-seat subscription's quantity follows the member count. The membership code
//! queues a sync in the transaction of each change; the job sets the quantity with an
//! idempotency key tied to that change.

use serde_json::json;
use tenantkit_db::{Database, TenantTx};

use crate::{
    Billing, BillingError, effective_subscription,
    jobs::{SyncSeats, enqueue_once},
    repo,
};

/// Queues a seat sync for the member change named `change_key` (e.g.
/// `member-added:{user}:{operation}`), in the change's own transaction so neither can happen
/// without the other. Tenants without a live subscription get no job. Returns whether one was
/// queued.
pub async fn enqueue_seat_sync(tx: &mut TenantTx, change_key: &str) -> Result<bool, BillingError> {
    // Stripe keys are at most 255 characters: "seats:" + a tenant id + ":" leave this much.
    if change_key.is_empty() || change_key.len() > 200 {
        return Err(BillingError::invalid(
            "change_key",
            "a change key is 1 to 200 characters",
        ));
    }
    let subscriptions = repo::subscriptions::all(tx).await?;
    let live = effective_subscription(&subscriptions).is_some_and(|s| s.status.grants_plan());
    if !live {
        return Ok(false);
    }
    let job = SyncSeats {
        tenant_id: tx.tenant_id(),
        change_key: change_key.to_owned(),
        members: repo::tenant::member_count(tx).await?,
    };
    Ok(enqueue_once(tx, &job, None).await?)
}

/// What a seat sync did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeatSync {
    NotConfigured,
    NoSubscription,
    /// The plan is not billed per seat.
    NotPerSeat,
    /// Members changed again since; that change's job sets the quantity.
    Superseded,
    Unchanged,
    Updated {
        from: Option<u64>,
        to: u64,
    },
}

impl Billing {
    /// The `billing.seats` job.
    pub async fn sync_seats(
        &self,
        db: &Database,
        job: &SyncSeats,
    ) -> Result<SeatSync, BillingError> {
        let Ok(stripe) = self.stripe() else {
            return Ok(SeatSync::NotConfigured);
        };
        let mut tx = db.tenant(job.tenant_id).await?;
        // The billing lock: a webhook storing the subscription waits, and so does another sync.
        repo::accounts::lock(&mut tx).await?;
        let members = repo::tenant::member_count(&mut tx).await?;
        if members != job.members {
            return Ok(SeatSync::Superseded);
        }
        let subscriptions = repo::subscriptions::all(&mut tx).await?;
        let Some(subscription) =
            effective_subscription(&subscriptions).filter(|s| s.status.grants_plan())
        else {
            return Ok(SeatSync::NoSubscription);
        };
        let per_seat = subscription
            .plan
            .as_deref()
            .and_then(|p| self.plan(p))
            .is_some_and(|p| p.is_per_seat());
        if !per_seat {
            return Ok(SeatSync::NotPerSeat);
        }
        let Some(item) = subscription.item_id.as_deref() else {
            return Ok(SeatSync::NoSubscription);
        };
        let target = members.max(1);
        if subscription.quantity == Some(target) {
            return Ok(SeatSync::Unchanged);
        }
        let key = tenantkit_jobs::Job::idempotency_key(job);
        let confirmed = stripe
            .set_item_quantity(item, target, &key)
            .await?
            .unwrap_or(target);
        repo::subscriptions::set_quantity(&mut tx, &subscription.id, confirmed).await?;
        repo::tenant::audit(
            &mut tx,
            "billing.seats.updated",
            json!({
                "subscription": subscription.id,
                "from": subscription.quantity,
                "to": confirmed,
                "change": job.change_key,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(SeatSync::Updated {
            from: subscription.quantity,
            to: confirmed,
        })
    }
}
