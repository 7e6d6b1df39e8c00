use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantkit_kernel::{ApiKeyId, InvitationId, Role, TenantId, UserId};

use crate::TenancyError;

/// The organisation's address, e.g. `acme-labs`: lowercase letters, digits and inner hyphens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, TenancyError> {
        let slug = raw.trim();
        let invalid = |message: &str| TenancyError::Invalid {
            field: "slug",
            message: message.to_owned(),
        };
        if slug.len() < 2 || slug.len() > 63 {
            return Err(invalid("must be 2 to 63 characters"));
        }
        if !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || slug.starts_with('-')
            || slug.ends_with('-')
        {
            return Err(invalid(
                "may use lowercase letters, digits and inner hyphens only",
            ));
        }
        Ok(Self(slug.to_owned()))
    }

    /// A slug derived from a name: "Acme Labs, Inc." → "acme-labs-inc"; a name with no
    /// ASCII letters or digits gives "org".
    pub fn from_name(name: &TenantName) -> Self {
        let mut slug = String::new();
        for c in name.as_str().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        // What remains is lowercase ASCII with inner hyphens: a valid slug once it has 2+ characters.
        let slug = slug.trim_end_matches('-');
        Self::fitted(if slug.len() >= 2 { slug } else { "org" }, "")
    }

    /// This slug with `-suffix` appended, shortened so the result stays within 63 characters.
    pub fn with_suffix(&self, suffix: &str) -> Self {
        Self::fitted(&self.0, suffix)
    }

    fn fitted(base: &str, suffix: &str) -> Self {
        let room = if suffix.is_empty() {
            63
        } else {
            62 - suffix.len()
        };
        // Only ASCII reaches here, so byte slicing is safe.
        let base = base[..base.len().min(room)].trim_end_matches('-');
        // `base` is a valid slug (2+ characters), so the result is one too.
        Self(if suffix.is_empty() {
            base.to_owned()
        } else {
            format!("{base}-{suffix}")
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, TenancyError> {
        let name = raw.trim();
        let invalid = |message: &str| TenancyError::Invalid {
            field: "organisation",
            message: message.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("is required"));
        }
        if name.chars().count() > 200 {
            return Err(invalid("is longer than 200 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("contains control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
    /// Soft-deleted: its users are locked out; the data is purged after the retention period.
    Deleted,
    /// The data is gone; the row remains so the audit trail keeps its tenant.
    Purged,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
            Self::Purged => "purged",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub status: TenantStatus,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub role: Role,
}

/// A member as the team page shows them.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// One of the user's tenants, with their role in it.
#[derive(Clone, Debug, Serialize)]
pub struct UserTenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub status: TenantStatus,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
}

#[derive(Clone, Debug, Serialize)]
pub struct Invitation {
    pub tenant_id: TenantId,
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<UserId>,
    pub status: InvitationStatus,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl Invitation {
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.status == InvitationStatus::Pending && self.expires_at > now
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_the_documented_alphabet_only() {
        assert!(TenantSlug::parse("acme-labs-2").is_ok());
        for bad in [
            "a",
            "-acme",
            "acme-",
            "Acme",
            "acme labs",
            "acme_labs",
            "ac/me",
            "ünï",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn slugs_derive_from_names() {
        let derive = |name: &str| {
            TenantSlug::from_name(&TenantName::parse(name).unwrap())
                .as_str()
                .to_owned()
        };
        assert_eq!(derive("  Acme Labs, Inc.  "), "acme-labs-inc");
        assert_eq!(derive("!!!"), "org");
        assert_eq!(derive("Ω"), "org");
        assert_eq!(derive(&"x".repeat(200)).len(), 63);
        for name in ["a", "Acme", "a-b", "Ünïcödé GmbH", &"yz-".repeat(66)] {
            let slug = TenantSlug::from_name(&TenantName::parse(name).unwrap());
            assert!(
                TenantSlug::parse(slug.as_str()).is_ok(),
                "{name:?} gave {slug:?}"
            );
            let suffixed = slug.with_suffix("a1b2");
            assert!(TenantSlug::parse(suffixed.as_str()).is_ok(), "{suffixed:?}");
            assert!(suffixed.as_str().ends_with("-a1b2"));
        }
    }
}
