//! API keys: per tenant, with a name and a role; the secret is shown once and stored as a
//! SHA-256. A presented key names its tenant and id (`tk_<tenant>_<id>_<secret>`), so it is
//! looked up inside that tenant's row level security, and compared in constant time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use tenantkit_db::TenantTx;
use tenantkit_kernel::{ApiKeyId, Role, TenantId};
use uuid::Uuid;

use crate::{ApiKey, TenancyError, TenantStatus, audit, repo, team::Actor};

/// A key as created: the only time its secret exists outside the client.
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub token: String,
}

/// Who an accepted key speaks for.
#[derive(Clone, Copy, Debug)]
pub struct ApiKeyPrincipal {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub role: Role,
    /// The organisation's status, read in the transaction that checked the key (`None`: the
    /// organisation's row is gone).
    pub tenant_status: Option<TenantStatus>,
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Who manages keys: owners and admins.
fn require_manager(actor: Actor) -> Result<(), TenancyError> {
    if actor.role.can_manage_members() {
        Ok(())
    } else {
        Err(TenancyError::Forbidden(
            "only owners and admins manage API keys",
        ))
    }
}

/// The tenant's keys, revoked ones included (without their secrets, which are not kept).
pub async fn list(tx: &mut TenantTx, actor: Actor) -> Result<Vec<ApiKey>, TenancyError> {
    require_manager(actor)?;
    Ok(repo::api_keys::list(tx).await?)
}

pub async fn create(
    tx: &mut TenantTx,
    actor: Actor,
    name: &str,
    role: Role,
) -> Result<CreatedApiKey, TenancyError> {
    require_manager(actor)?;
    if role == Role::Owner && actor.role != Role::Owner {
        return Err(TenancyError::Forbidden(
            "only an owner can create an owner key",
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(TenancyError::invalid(
            "name",
            "must be 1 to 100 visible characters",
        ));
    }
    let id = ApiKeyId::new();
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    repo::api_keys::insert(tx, id, name, role, &digest(&secret), actor.user()).await?;
    audit::record_by(
        tx,
        actor,
        "api_key.created",
        json!({ "key_id": id, "role": role }),
    )
    .await?;
    let key = repo::api_keys::list(tx)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or(TenancyError::NotFound)?;
    let token = format!(
        "tk_{}_{}_{}",
        tx.tenant_id().as_uuid().simple(),
        id.as_uuid().simple(),
        secret
    );
    Ok(CreatedApiKey { key, token })
}

pub async fn revoke(tx: &mut TenantTx, actor: Actor, id: ApiKeyId) -> Result<(), TenancyError> {
    require_manager(actor)?;
    if !repo::api_keys::revoke(tx, id).await? {
        return Err(TenancyError::NotFound);
    }
    audit::record_by(tx, actor, "api_key.revoked", json!({ "key_id": id })).await?;
    Ok(())
}

/// The tenant a presented key names, or `None` for anything not shaped like a key. Which
/// tenant's transaction [`authenticate`] must run in.
pub fn presented_tenant(presented: &str) -> Option<TenantId> {
    parse(presented).map(|(tenant, _, _)| tenant)
}

/// The principal of a presented key, or `None` for anything not a live key of `tx`'s tenant.
/// Runs in the caller's transaction, which the request then goes on using: one transaction
/// per API call, not one for the key and one for the work. The key's use is recorded in that
/// transaction too, so a request that fails and rolls back leaves `last_used_at` as it was.
pub async fn authenticate(
    tx: &mut TenantTx,
    presented: &str,
) -> Result<Option<ApiKeyPrincipal>, TenancyError> {
    let Some((tenant, id, secret)) = parse(presented) else {
        return Ok(None);
    };
    if tenant != tx.tenant_id() {
        return Ok(None);
    }
    let Some(key) = repo::api_keys::live_key(tx, id).await? else {
        return Ok(None);
    };
    if !constant_time_eq(&key.secret_hash, &digest(secret)) {
        return Ok(None);
    }
    // A key in steady use skips the statement: one round trip fewer per request.
    if !key.recently_used {
        repo::api_keys::touch(tx, id).await?;
    }
    Ok(Some(ApiKeyPrincipal {
        tenant_id: tenant,
        key_id: id,
        role: key.role,
        tenant_status: key.tenant_status,
    }))
}

fn parse(presented: &str) -> Option<(TenantId, ApiKeyId, &str)> {
    let rest = presented.strip_prefix("tk_")?;
    let (tenant, rest) = rest.split_once('_')?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 43 {
        return None;
    }
    Some((
        TenantId::from_uuid(simple_uuid(tenant)?),
        ApiKeyId::from_uuid(simple_uuid(id)?),
        secret,
    ))
}

/// A UUID in the one form keys are written in: 32 lowercase hex digits. `Uuid::try_parse`
/// would also take hyphens, braces and capitals, so one key would have many spellings.
fn simple_uuid(text: &str) -> Option<Uuid> {
    let canonical = text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical.then(|| Uuid::try_parse(text).ok()).flatten()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_keys_parse_only_in_their_exact_shape() {
        let tenant = TenantId::new();
        let id = ApiKeyId::new();
        let secret = "a".repeat(43);
        let key = format!(
            "tk_{}_{}_{secret}",
            tenant.as_uuid().simple(),
            id.as_uuid().simple()
        );
        assert_eq!(parse(&key), Some((tenant, id, secret.as_str())));
        for bad in [
            "",
            "tk_",
            "tk_x_y_z",
            &key[..key.len() - 1],
            &key.replace("tk_", "tx_"),
            &key.replace(
                &tenant.as_uuid().simple().to_string(),
                &tenant.as_uuid().hyphenated().to_string(),
            ),
            &key.replace(
                &tenant.as_uuid().simple().to_string(),
                &tenant.as_uuid().braced().to_string(),
            ),
            &key.replace(
                &id.as_uuid().simple().to_string(),
                &id.as_uuid().simple().to_string().to_uppercase(),
            ),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
