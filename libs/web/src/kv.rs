//! Redis for the web tier. One multiplexed connection, whose driver task reads every reply,
//! so a request cancelled mid-command cannot leave its reply for the next request to read.
//! It is opened on first use (the server starts, not ready, while Redis is down) and every
//! key is namespaced by `redis.key_prefix`.

use std::time::Duration;

use redis::{
    RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::OnceCell;

/// Redis answers in well under a millisecond; anything slower counts as down.
const TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) struct Kv {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
}

impl Kv {
    pub(crate) fn new(client: redis::Client, prefix: String) -> Self {
        Self {
            client,
            connection: OnceCell::new(),
            prefix,
        }
    }

    /// `prefix:part:part…`
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// The shared connection; it reconnects by itself after Redis comes back. While Redis is
    /// down, each command makes one connection attempt (shared by the commands waiting at the
    /// time) and fails: the manager's retries back off a second or more, and a request that
    /// can do without Redis (an API key's rate limit) would wait them out, holding its
    /// database connection.
    pub(crate) async fn connection(&self) -> RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(0);
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
    }
}
