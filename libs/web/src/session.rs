//! Server-side sessions in Redis. The cookie holds a random id; Redis holds the session under
//! a SHA-256 of it (a dump of Redis yields no usable cookie), and each user's sessions are
//! indexed so they can be listed and ended ("sessions page", "sign out everywhere else").

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantkit_kernel::{TenantId, UserId};

use crate::kv::Kv;

/// A browser session without "remember me" lasts this long at most…
const SHORT_TTL_SECS: u64 = 12 * 3600;
/// …and a remembered one this long.
const LONG_TTL_SECS: u64 = 30 * 24 * 3600;
/// A sign-in waiting for its second factor must finish quickly.
const SECOND_FACTOR_TTL_SECS: u64 = 5 * 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stage {
    /// Signed in.
    Active,
    /// The password was right; the second factor is still to come. Grants nothing else.
    SecondFactor,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SessionData {
    pub(crate) user_id: UserId,
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) stage: Stage,
    pub(crate) remember: bool,
    pub(crate) created_at: i64,
    pub(crate) last_seen: i64,
    pub(crate) ip: String,
    pub(crate) device: String,
    #[serde(default)]
    pub(crate) failed_codes: u32,
    /// Set when a platform admin acts as this user (see `admin::impersonation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) impersonation: Option<Impersonation>,
}

/// A platform admin acting as the session's user, for a limited time, read-only unless the
/// admin widened it when starting (both recorded in the audit trail).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Impersonation {
    pub(crate) admin_id: UserId,
    pub(crate) admin_name: String,
    pub(crate) expires_at: i64,
    pub(crate) allow_writes: bool,
}

impl Impersonation {
    pub(crate) fn expired(&self) -> bool {
        now() >= self.expires_at
    }
}

impl SessionData {
    fn ttl(&self) -> u64 {
        if let Some(impersonation) = &self.impersonation {
            return u64::try_from(impersonation.expires_at - now())
                .unwrap_or(0)
                .max(1);
        }
        match (self.stage, self.remember) {
            (Stage::SecondFactor, _) => SECOND_FACTOR_TTL_SECS,
            (Stage::Active, true) => LONG_TTL_SECS,
            (Stage::Active, false) => SHORT_TTL_SECS,
        }
    }

    /// Max-Age of the cookie: none (ends with the browser) unless remembered.
    pub(crate) fn cookie_max_age(&self) -> Option<u64> {
        (self.stage == Stage::Active && self.remember && self.impersonation.is_none())
            .then_some(LONG_TTL_SECS)
    }
}

/// A session as loaded: its key (the id's digest) and its data.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) key: String,
    pub(crate) data: SessionData,
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn digest(id: &str) -> String {
    let hash = Sha256::digest(id.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_key(kv: &Kv, key: &str) -> String {
    kv.key(&["session", key])
}

fn index_key(kv: &Kv, user: UserId) -> String {
    kv.key(&["user-sessions", &user.to_string()])
}

/// Stores a new session; returns the cookie value (the only copy of the id).
pub(crate) async fn create(kv: &Kv, data: &SessionData) -> redis::RedisResult<(String, Session)> {
    let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let key = digest(&id);
    save(kv, &key, data).await?;
    let mut conn = kv.connection().await?;
    let index = index_key(kv, data.user_id);
    let _: () = redis::pipe()
        .sadd(&index, &key)
        .expire(&index, LONG_TTL_SECS as i64)
        .query_async(&mut conn)
        .await?;
    Ok((
        id,
        Session {
            key,
            data: data.clone(),
        },
    ))
}

pub(crate) async fn save(kv: &Kv, key: &str, data: &SessionData) -> redis::RedisResult<()> {
    let json = serde_json::to_string(data).expect("session data serialises");
    let mut conn = kv.connection().await?;
    conn.set_ex(session_key(kv, key), json, data.ttl()).await
}

/// The session a cookie names, if it is live.
pub(crate) async fn load(kv: &Kv, cookie: &str) -> redis::RedisResult<Option<Session>> {
    if cookie.len() > 100 {
        return Ok(None);
    }
    let key = digest(cookie);
    let mut conn = kv.connection().await?;
    let json: Option<String> = conn.get(session_key(kv, &key)).await?;
    Ok(json
        .and_then(|j| serde_json::from_str(&j).ok())
        .map(|data| Session { key, data }))
}

pub(crate) async fn destroy(kv: &Kv, session: &Session) -> redis::RedisResult<()> {
    let mut conn = kv.connection().await?;
    let _: () = redis::pipe()
        .del(session_key(kv, &session.key))
        .srem(index_key(kv, session.data.user_id), &session.key)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// The user's live sessions, most recently seen first; dangling index entries are dropped.
pub(crate) async fn list(kv: &Kv, user: UserId) -> redis::RedisResult<Vec<Session>> {
    let mut conn = kv.connection().await?;
    let index = index_key(kv, user);
    let keys: Vec<String> = conn.smembers(&index).await?;
    let mut sessions = Vec::new();
    for key in keys {
        let json: Option<String> = conn.get(session_key(kv, &key)).await?;
        match json.and_then(|j| serde_json::from_str::<SessionData>(&j).ok()) {
            Some(data) if data.user_id == user => sessions.push(Session { key, data }),
            _ => {
                let _: () = conn.srem(&index, &key).await?;
            }
        }
    }
    sessions.sort_by_key(|s| std::cmp::Reverse(s.data.last_seen));
    Ok(sessions)
}

/// Ends one of the user's sessions by its key; `false` when it is not theirs.
pub(crate) async fn revoke(kv: &Kv, user: UserId, key: &str) -> redis::RedisResult<bool> {
    let found = list(kv, user).await?.into_iter().find(|s| s.key == key);
    match found {
        Some(session) => {
            destroy(kv, &session).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Ends every session of the user but `keep` (after a password change or reset).
pub(crate) async fn end_all_others(
    kv: &Kv,
    user: UserId,
    keep: Option<&str>,
) -> redis::RedisResult<usize> {
    let mut ended = 0;
    for session in list(kv, user).await? {
        if Some(session.key.as_str()) != keep {
            destroy(kv, &session).await?;
            ended += 1;
        }
    }
    Ok(ended)
}
