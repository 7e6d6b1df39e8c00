//! Users across tenants in the admin API: search, detail, lock/unlock, a forced password
//! reset and ending every session. Each action is audited with the admin and the reason.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use tenantkit_kernel::UserId;
use tenantkit_platform::users::{self, UserMembership, UserRow};
use uuid::Uuid;

use super::{Done, ReasonBody, reading, reason};
use crate::{
    ApiError, AppState,
    api::{ApiTags, Items, caller::Caller},
    session,
};

pub(crate) struct AdminUsersApi;

#[derive(Object)]
struct AdminUser {
    id: Uuid,
    email: String,
    display_name: String,
    is_platform_admin: bool,
    two_factor: bool,
    verified: bool,
    locked: bool,
    created_at: DateTime<Utc>,
    /// How many organisations the user belongs to.
    tenants: i64,
}

impl From<UserRow> for AdminUser {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            email: row.email,
            display_name: row.display_name,
            is_platform_admin: row.is_platform_admin,
            two_factor: row.two_factor,
            verified: row.verified,
            locked: row.locked,
            created_at: row.created_at,
            tenants: row.tenants,
        }
    }
}

#[derive(Object)]
struct AdminUserMembership {
    tenant_id: Uuid,
    tenant_name: String,
    role: String,
}

impl From<UserMembership> for AdminUserMembership {
    fn from(membership: UserMembership) -> Self {
        Self {
            tenant_id: membership.tenant_id.as_uuid(),
            tenant_name: membership.tenant_name,
            role: membership.role.as_str().to_owned(),
        }
    }
}

#[derive(Object)]
struct AdminUserDetail {
    user: AdminUser,
    memberships: Vec<AdminUserMembership>,
    /// Signed-in browser sessions right now.
    sessions: i64,
}

#[derive(ApiResponse)]
enum UsersResponse {
    #[oai(status = 200)]
    Ok(Json<Items<AdminUser>>),
}

#[derive(ApiResponse)]
enum UserResponse {
    #[oai(status = 200)]
    Ok(Json<AdminUserDetail>),
}

/// The user actions: each audited; all but unlock end the user's sessions.
enum UserAction {
    Lock,
    Unlock,
    ResetPassword,
    EndSessions,
}

async fn act_on_user(
    state: &AppState,
    caller: &Caller,
    user: Uuid,
    action: UserAction,
    body: &ReasonBody,
) -> Result<Done, ApiError> {
    let admin = caller.platform_admin()?;
    let reason = reason(&body.reason)?;
    let (db, user) = (&state.db, UserId::from_uuid(user));
    match action {
        UserAction::Lock => users::lock(db, admin, user, &reason).await?,
        UserAction::Unlock => users::unlock(db, admin, user, &reason).await?,
        UserAction::ResetPassword => users::force_password_reset(db, admin, user, &reason).await?,
        UserAction::EndSessions => {
            let ended = session::list(&state.kv, user)
                .await
                .map_err(|_| ApiError::unavailable())?
                .len();
            users::record_sessions_ended(db, admin, user, &reason, ended).await?
        }
    }
    if !matches!(action, UserAction::Unlock) {
        session::end_all_others(&state.kv, user, None)
            .await
            .map_err(|_| ApiError::unavailable())?;
    }
    Ok(Done::NoContent)
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminUsersApi {
    /// Users of every organisation whose email starts with `q` or whose name contains it,
    /// by email; the next page starts `after` the last email shown.
    #[oai(path = "/admin/users", method = "get")]
    async fn users(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        #[oai(validator(max_length = 200))] q: Query<Option<String>>,
        #[oai(validator(max_length = 254))] after: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<i64>>,
    ) -> Result<UsersResponse, ApiError> {
        let admin = caller.platform_admin()?;
        let mut tx = state
            .db
            .platform(admin.id(), reading("user search"))
            .await?;
        let rows = users::search(
            &mut tx,
            q.0.as_deref(),
            after.0.as_deref(),
            limit.0.unwrap_or(50),
        )
        .await?;
        tx.commit().await?;
        Ok(UsersResponse::Ok(Json(Items {
            items: rows.into_iter().map(Into::into).collect(),
        })))
    }

    /// One user: their organisations and roles, and how many sessions they have.
    #[oai(path = "/admin/users/:user_id", method = "get")]
    async fn user(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        user_id: Path<Uuid>,
    ) -> Result<UserResponse, ApiError> {
        let admin = caller.platform_admin()?;
        let user = UserId::from_uuid(user_id.0);
        let mut tx = state
            .db
            .platform(admin.id(), reading("user detail"))
            .await?;
        let (row, memberships) = users::find(&mut tx, user).await?;
        tx.commit().await?;
        let sessions = session::list(&state.kv, user)
            .await
            .map_err(|_| ApiError::unavailable())?
            .len();
        Ok(UserResponse::Ok(Json(AdminUserDetail {
            user: row.into(),
            memberships: memberships.into_iter().map(Into::into).collect(),
            sessions: sessions as i64,
        })))
    }

    /// Lock a user: sign-in refused, sessions ended.
    #[oai(path = "/admin/users/:user_id/lock", method = "post")]
    async fn lock(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        user_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_user(&state, &caller, user_id.0, UserAction::Lock, &body.0).await
    }

    #[oai(path = "/admin/users/:user_id/unlock", method = "post")]
    async fn unlock(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        user_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_user(&state, &caller, user_id.0, UserAction::Unlock, &body.0).await
    }

    /// Remove the password (sign-in refused until reset), email a reset link, end sessions.
    #[oai(path = "/admin/users/:user_id/reset-password", method = "post")]
    async fn reset_password(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        user_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_user(
            &state,
            &caller,
            user_id.0,
            UserAction::ResetPassword,
            &body.0,
        )
        .await
    }

    /// Sign the user out everywhere.
    #[oai(path = "/admin/users/:user_id/end-sessions", method = "post")]
    async fn end_sessions(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        user_id: Path<Uuid>,
        body: Json<ReasonBody>,
    ) -> Result<Done, ApiError> {
        act_on_user(&state, &caller, user_id.0, UserAction::EndSessions, &body.0).await
    }
}
