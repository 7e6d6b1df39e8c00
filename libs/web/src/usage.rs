//! API calls per tenant, counted in Redis in one pipelined round trip: per minute against the
//! plan's allowance (`api_requests_per_minute`, a [`RateLimit`]) and per UTC day for the
//! usage figures. When Redis is unreachable the call is neither counted nor limited, as for
//! every rate limit.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tenantkit_billing::Billing;
use tenantkit_db::TenantTx;
use tenantkit_kernel::TenantId;

use crate::{ApiError, kv::Kv, rate_limit::RateLimit};

/// Day counters outlive their day a little, for "yesterday" reports.
const KEEP_DAYS_SECS: i64 = 3 * 86_400;

fn day_key(kv: &Kv, tenant: TenantId, day: chrono::NaiveDate) -> String {
    kv.key(&["usage", "api", &tenant.to_string(), &day.to_string()])
}

/// Counts one API call of `tenant`; refuses it with 429 and `Retry-After` (the seconds to the
/// next minute) once the minute's allowance is spent. Refused calls count too: they reached
/// the API.
pub(crate) async fn count_api_call(
    kv: &Kv,
    tenant: TenantId,
    per_minute: u32,
) -> Result<(), ApiError> {
    let limit = RateLimit {
        name: "api",
        limit: per_minute,
        window: Duration::from_secs(60),
    };
    let day_key = day_key(kv, tenant, chrono::Utc::now().date_naive());
    let exceeded = limit
        .count(kv, &tenant.to_string(), |pipe| {
            pipe.incr(&day_key, 1u64)
                .ignore()
                .expire(&day_key, KEEP_DAYS_SECS)
                .ignore();
        })
        .await;
    match exceeded {
        Some(retry_after) => Err(ApiError::plan_rate_limited(per_minute, retry_after)),
        None => Ok(()),
    }
}

/// Today's count (UTC), or `None` when Redis cannot say.
pub(crate) async fn api_calls_today(kv: &Kv, tenant: TenantId) -> Option<u64> {
    let key = day_key(kv, tenant, chrono::Utc::now().date_naive());
    let mut conn = kv.connection().await.ok()?;
    redis::cmd("GET")
        .arg(&key)
        .query_async::<Option<u64>>(&mut conn)
        .await
        .ok()
        .map(|count| count.unwrap_or(0))
}

/// Each tenant's allowance per minute, remembered for [`ApiAllowances::FRESH_FOR`]: reading
/// the entitlements takes three queries, too many for every API call. A plan or override
/// change therefore reaches the limit within that time on every server.
#[derive(Default)]
pub(crate) struct ApiAllowances {
    remembered: Mutex<HashMap<TenantId, (Instant, u32)>>,
}

impl ApiAllowances {
    pub(crate) const FRESH_FOR: Duration = Duration::from_secs(30);
    /// Past this many tenants the memory is cleared rather than grown.
    const MAX_REMEMBERED: usize = 100_000;

    /// The allowance of the tenant of `tx`.
    pub(crate) async fn per_minute(
        &self,
        billing: &Billing,
        tx: &mut TenantTx,
    ) -> Result<u32, ApiError> {
        let tenant = tx.tenant_id();
        if let Some(allowance) = self.fresh(tenant) {
            return Ok(allowance);
        }
        let allowance = billing.entitlements(tx).await?.api_requests_per_minute;
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= Self::MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(tenant, (Instant::now(), allowance));
        Ok(allowance)
    }

    fn fresh(&self, tenant: TenantId) -> Option<u32> {
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        remembered
            .get(&tenant)
            .filter(|(at, _)| at.elapsed() < Self::FRESH_FOR)
            .map(|(_, allowance)| *allowance)
    }
}
