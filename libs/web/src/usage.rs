//! API calls per tenant per day, counted in Redis (one pipelined INCR+EXPIRE per call). A
//! counter that cannot be written is skipped: usage figures must never fail a request.

use tenantkit_kernel::TenantId;

use crate::kv::Kv;

/// Counters outlive their day a little, for "yesterday" reports.
const KEEP_SECS: i64 = 3 * 86_400;

fn key(kv: &Kv, tenant: TenantId, day: chrono::NaiveDate) -> String {
    kv.key(&["usage", "api", &tenant.to_string(), &day.to_string()])
}

pub(crate) async fn record_api_call(kv: &Kv, tenant: TenantId) {
    let key = key(kv, tenant, chrono::Utc::now().date_naive());
    let result: redis::RedisResult<()> = async {
        let mut conn = kv.connection().await?;
        redis::pipe()
            .incr(&key, 1)
            .ignore()
            .expire(&key, KEEP_SECS)
            .ignore()
            .query_async(&mut conn)
            .await
    }
    .await;
    if let Err(error) = result {
        tracing::debug!(%error, "API call not counted");
    }
}

/// Today's count (UTC), or `None` when Redis cannot say.
pub(crate) async fn api_calls_today(kv: &Kv, tenant: TenantId) -> Option<u64> {
    let key = key(kv, tenant, chrono::Utc::now().date_naive());
    let mut conn = kv.connection().await.ok()?;
    redis::cmd("GET")
        .arg(&key)
        .query_async::<Option<u64>>(&mut conn)
        .await
        .ok()
        .map(|count| count.unwrap_or(0))
}
