//! Newtype ids: a `TenantId` can never be passed where a `UserId` is expected.
//! All ids are UUIDv7, so they sort by creation time and index well.

/// Declares a UUIDv7 newtype id (serde and sqlx transparent, `Display`, `FromStr`). Exported
/// for the ids other crates own (`FileId` in storage); the user crate needs `uuid`, `serde`
/// and `sqlx`.
#[macro_export]
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize, ::sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(::uuid::Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }

            pub const fn from_uuid(uuid: ::uuid::Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> ::uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for ::uuid::Uuid {
            fn from(id: $name) -> ::uuid::Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// An organisation: the unit of isolation.
    TenantId
);
uuid_id!(
    /// A person; one user may belong to several tenants.
    UserId
);
uuid_id!(
    /// A row of the audit trail.
    AuditEventId
);
uuid_id!(
    /// A tenant's API key.
    ApiKeyId
);
uuid_id!(
    /// An invitation to join a tenant.
    InvitationId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_time_ordered() {
        let first = TenantId::new();
        let second = TenantId::new();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second);
    }

    #[test]
    fn ids_round_trip_through_text() {
        let id = UserId::new();
        let parsed: UserId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
