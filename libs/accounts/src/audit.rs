//! The account audit trail: security events about a person rather than a tenant (sign-up,
//! logins, two-factor, password and email changes, admin actions on the user). Append-only:
//! the application role may insert and read, never change or delete (grants and a trigger).

use serde_json::Value;
use tenantkit_db::{DbError, PgConnection};
use tenantkit_kernel::{AuditEventId, UserId};

/// One event. `user` is whom it is about (none for a login to an unknown address); `actor` is
/// who did it when that is someone else (a platform admin).
pub struct AccountEvent<'a> {
    pub user: Option<UserId>,
    pub actor: Option<UserId>,
    pub action: &'a str,
    pub reason: Option<&'a str>,
    pub detail: Value,
    pub ip: Option<&'a str>,
}

impl<'a> AccountEvent<'a> {
    /// Something the user did themself.
    pub fn by_user(user: UserId, action: &'a str, ip: Option<&'a str>) -> Self {
        Self {
            user: Some(user),
            actor: Some(user),
            action,
            reason: None,
            detail: Value::Object(Default::default()),
            ip,
        }
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

pub async fn record(
    conn: &mut PgConnection,
    event: AccountEvent<'_>,
) -> Result<AuditEventId, DbError> {
    let id = AuditEventId::new();
    sqlx::query!(
        "insert into account_audit_events (id, user_id, actor_user_id, action, reason, detail, ip)
         values ($1, $2, $3, $4, $5, $6, $7)",
        id.as_uuid(),
        event.user.map(|u| u.as_uuid()),
        event.actor.map(|u| u.as_uuid()),
        event.action,
        event.reason,
        event.detail,
        event.ip
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Records `event` in a transaction of its own (events that accompany no other change, such
/// as a login). A failure is logged, not returned: an unavailable audit store must not turn a
/// refused login into an error page that says more than "refused".
pub async fn record_alone(db: &tenantkit_db::Database, event: AccountEvent<'_>) {
    let action = event.action.to_owned();
    let result = async {
        let mut tx = db.global().await?;
        record(tx.conn(), event).await?;
        tx.commit().await
    }
    .await;
    if let Err(error) = result {
        tracing::error!(%error, action, "could not record an account audit event");
    }
}
