//! Fixed-window rate limits counted in Redis, shared by every server pod.
//!
//! When Redis is unreachable the limit is not enforced (the request goes through, a warning
//! and a metric record it): an outage of the counter must not take the product down with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{ApiError, kv::Kv};

#[derive(Clone, Copy, Debug)]
pub(crate) struct RateLimit {
    pub(crate) name: &'static str,
    pub(crate) limit: u32,
    pub(crate) window: Duration,
}

impl RateLimit {
    /// Counts one request by `subject`; refuses it with 429 and `Retry-After` once the
    /// window's allowance is spent.
    pub(crate) async fn check(&self, kv: &Kv, subject: &str) -> Result<(), ApiError> {
        match self.count(kv, subject, |_| {}).await {
            Some(retry_after) => Err(ApiError::too_many_requests(retry_after)),
            None => Ok(()),
        }
    }

    /// Counts one request by `subject`, with whatever else `also` adds to the same pipelined
    /// round trip; the seconds until the next window when the allowance is spent, else
    /// `None` (also when Redis is unreachable).
    pub(crate) async fn count(
        &self,
        kv: &Kv,
        subject: &str,
        also: impl FnOnce(&mut redis::Pipeline),
    ) -> Option<u64> {
        let window = self.window.as_secs().max(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (index, retry_after) = (now / window, window - now % window);
        let key = kv.key(&["rl", self.name, subject, &index.to_string()]);
        let mut pipe = redis::pipe();
        pipe.incr(&key, 1u64).expire(&key, window as i64).ignore();
        also(&mut pipe);
        let counted: redis::RedisResult<(u64,)> = async {
            let mut conn = kv.connection().await?;
            pipe.query_async(&mut conn).await
        }
        .await;
        match counted {
            Ok((count,)) if count > u64::from(self.limit) => {
                metrics::counter!("rate_limited_total", "limit" => self.name).increment(1);
                Some(retry_after)
            }
            Ok(_) => None,
            Err(error) => {
                metrics::counter!("rate_limit_unavailable_total", "limit" => self.name)
                    .increment(1);
                tracing::warn!(%error, limit = self.name, "rate limit not enforced: Redis unavailable");
                None
            }
        }
    }
}

/// A subject (an email) as it appears in a Redis key: hashed, so keys carry no addresses.
pub(crate) fn subject_digest(subject: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(subject.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}
