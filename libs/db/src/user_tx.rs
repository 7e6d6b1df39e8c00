//! A transaction on behalf of one signed-in user: it sees that user's memberships and the
//! tenants they belong to, across tenants, and no other tenant rows (the `member_self_read`
//! policies). For "my tenants" lists and choosing a tenant at sign-in; everything inside a
//! tenant still goes through [`crate::TenantTx`].

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tenantkit_kernel::UserId;

use crate::{DbError, scoped_begin};

pub struct UserTx {
    tx: Transaction<'static, Postgres>,
    user: UserId,
}

impl UserTx {
    pub(crate) async fn begin(pool: &PgPool, user: UserId) -> Result<Self, DbError> {
        let tx = scoped_begin::begin(pool, Some(("app.user_id", user.as_uuid()))).await?;
        Ok(Self { tx, user })
    }

    pub fn user_id(&self) -> UserId {
        self.user
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }
}
