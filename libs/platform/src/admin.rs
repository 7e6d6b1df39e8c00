//! The acting platform admin and the reason they give.

use tenantkit_db::PgConnection;
use tenantkit_kernel::UserId;

use crate::PlatformError;

/// Why an admin acts: 1 to 500 characters, stored with the audit row.
pub type Reason = tenantkit_db::PlatformAccessReason;

/// A user who claims to be a platform admin. Each action checks the claim again inside its
/// own transaction ([`Admin::check`]), so an admin demoted a moment ago cannot act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admin(pub UserId);

impl Admin {
    pub fn id(self) -> UserId {
        self.0
    }

    pub(crate) async fn check(self, conn: &mut PgConnection) -> Result<(), PlatformError> {
        let admin = sqlx::query_scalar!(
            "select is_platform_admin and locked_at is null from users where id = $1",
            self.0.as_uuid()
        )
        .fetch_optional(conn)
        .await?
        .flatten();
        if admin == Some(true) {
            Ok(())
        } else {
            Err(PlatformError::NotAdmin)
        }
    }
}
