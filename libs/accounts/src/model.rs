//! Validated values: once built, an `Email` or `DisplayName` is known to be acceptable.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantkit_kernel::UserId;

use crate::AccountError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// A deliberately modest check (one `@`, a dot in the domain, no spaces or control
    /// characters): the verification email is the real proof.
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let email = raw.trim();
        let invalid = |m: &str| AccountError::invalid("email", m);
        if email.chars().count() > 254 {
            return Err(invalid("is longer than 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("must look like name@example.com"));
        };
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("must look like name@example.com"));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, AccountError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(AccountError::invalid("name", "is required"));
        }
        if name.chars().count() > 200 {
            return Err(AccountError::invalid(
                "name",
                "is longer than 200 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(AccountError::invalid("name", "contains control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub is_platform_admin: bool,
}

/// A user as sign-in and the account flows see them (never serialised: it holds the hash).
#[derive(Clone)]
pub struct Credentials {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub is_platform_admin: bool,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub totp_secret: Option<String>,
    pub totp_enabled_at: Option<DateTime<Utc>>,
    pub totp_last_step: Option<i64>,
    /// Set by a platform admin: the user cannot sign in until unlocked.
    pub locked_at: Option<DateTime<Utc>>,
}

impl Credentials {
    pub fn two_factor_enabled(&self) -> bool {
        self.totp_enabled_at.is_some()
    }

    /// Outstanding tokens die when this changes (see [`crate::tokens::account_stamp`]).
    pub fn stamp(&self) -> String {
        crate::tokens::account_stamp(self.password_hash.as_deref(), &self.email)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub display_name: DisplayName,
    pub password_hash: String,
    pub is_platform_admin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_domains_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "Ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@example.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn display_names_need_visible_text() {
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("Ada\u{7}").is_err());
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
    }
}
