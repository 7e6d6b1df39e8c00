//! Entitlements: what a tenant may use right now. One interface for every service (seat limit
//! on invitations, storage quota on uploads, features and rate limits on the API).
//!
//! Computed from `tenants.plan` (set by billing from the subscription, or by an admin), that
//! plan's configuration, the subscription's state, and `tenants.entitlement_overrides` (an
//! admin's word wins over the plan's).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::{Plan, SubscriptionStatus};

/// The features the kit itself gates. A plan lists them in `features`; an admin can grant
/// them to one tenant in its overrides.
pub mod features {
    /// Exporting the organisation's audit log as CSV (page and API).
    pub const AUDIT_EXPORT: &str = "audit_export";
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlements {
    /// The plan's name (`tenants.plan`).
    pub plan: String,
    pub status: SubscriptionStatus,
    /// Read-only mode: a payment is overdue past the grace period. Reads work; writes that
    /// create or change data are refused until the payment succeeds.
    pub restricted: bool,
    /// Members allowed; `None` for a per-seat plan, which bills each member instead.
    pub seats: Option<u32>,
    pub storage_quota_bytes: u64,
    pub api_requests_per_minute: u32,
    pub features: BTreeSet<String>,
}

impl Entitlements {
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.contains(feature)
    }

    /// Whether a tenant with `members` members (pending invitations included, as the caller
    /// counts them) may add one more.
    pub fn allows_another_member(&self, members: u64) -> bool {
        self.seats.is_none_or(|seats| members < u64::from(seats))
    }
}

/// An admin's overrides, read leniently: a key with a value of the wrong type is ignored (and
/// logged) rather than failing every request of the tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub seats: Option<u32>,
    pub storage_bytes: Option<u64>,
    pub api_requests_per_minute: Option<u32>,
    /// Granted on top of the plan's features.
    pub features: Vec<String>,
}

impl Overrides {
    pub fn from_json(value: &Value) -> Self {
        let number = |key: &str| {
            let found = value.get(key)?;
            let number = found.as_u64();
            if number.is_none() && !found.is_null() {
                tracing::warn!(key, "ignoring an entitlement override that is not a number");
            }
            number
        };
        Self {
            seats: number("seats").and_then(|n| u32::try_from(n).ok()),
            storage_bytes: number("storage_bytes"),
            api_requests_per_minute: number("api_requests_per_minute")
                .and_then(|n| u32::try_from(n).ok()),
            features: value
                .get("features")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The storage quota: the subscription's state never changes it, so views without the
/// tenant's billing state (the admin's) can read it alone.
pub(crate) fn storage_quota(plan: &Plan, overrides: &Overrides) -> u64 {
    overrides.storage_bytes.unwrap_or(plan.storage_quota_bytes)
}

/// What the stored state gives: pure, so every combination is tested without a database.
pub fn resolve(
    plan_name: &str,
    plan: &Plan,
    status: SubscriptionStatus,
    restricted_at_is_set: bool,
    overrides: &Overrides,
) -> Entitlements {
    let plan_seats = (!plan.is_per_seat()).then_some(plan.included_seats);
    let mut features: BTreeSet<String> = plan.features.iter().cloned().collect();
    features.extend(overrides.features.iter().cloned());
    Entitlements {
        plan: plan_name.to_owned(),
        status,
        // Restriction only bites while money is owed: a subscription that became active
        // again, or ended (back to free), lifts it even before the account row is cleared.
        restricted: restricted_at_is_set && status.is_overdue(),
        seats: overrides.seats.or(plan_seats),
        storage_quota_bytes: storage_quota(plan, overrides),
        api_requests_per_minute: overrides
            .api_requests_per_minute
            .unwrap_or(plan.api_requests_per_minute),
        features,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tenantkit_config::BillingSettings;

    use super::*;

    fn plans() -> Vec<Plan> {
        BillingSettings::default().plans
    }

    #[test]
    fn the_plan_decides_when_nothing_is_overridden() {
        let plans = plans();
        let free = &plans[0];
        let e = resolve(
            "free",
            free,
            SubscriptionStatus::None,
            false,
            &Overrides::default(),
        );
        assert_eq!(e.seats, Some(free.included_seats));
        assert_eq!(e.storage_quota_bytes, free.storage_quota_bytes);
        assert_eq!(e.api_requests_per_minute, free.api_requests_per_minute);
        assert!(e.features.is_empty());
        assert!(!e.restricted);
        assert!(e.allows_another_member(u64::from(free.included_seats) - 1));
        assert!(!e.allows_another_member(u64::from(free.included_seats)));
    }

    #[test]
    fn admin_overrides_win_and_add_features() {
        let plans = plans();
        let overrides = Overrides::from_json(&json!({
            "seats": 100, "storage_bytes": 5, "api_requests_per_minute": 7,
            "features": ["sso"]
        }));
        let e = resolve(
            "team",
            &plans[1],
            SubscriptionStatus::Active,
            false,
            &overrides,
        );
        assert_eq!(e.seats, Some(100));
        assert_eq!(e.storage_quota_bytes, 5);
        assert_eq!(e.api_requests_per_minute, 7);
        assert!(e.has_feature("sso") && e.has_feature("priority_support"));
    }

    #[test]
    fn odd_overrides_are_ignored_not_fatal() {
        let overrides = Overrides::from_json(&json!({
            "seats": "many", "storage_bytes": -1, "features": [1, "beta"], "other": true
        }));
        assert_eq!(
            overrides,
            Overrides {
                features: vec!["beta".to_owned()],
                ..Overrides::default()
            }
        );
        assert_eq!(Overrides::from_json(&json!([])), Overrides::default());
    }

    #[test]
    fn per_seat_plans_have_no_seat_limit_unless_an_admin_sets_one() {
        let mut plan = plans()[1].clone();
        plan.per_seat_price_cents = Some(900);
        let e = resolve(
            "team",
            &plan,
            SubscriptionStatus::Active,
            false,
            &Overrides::default(),
        );
        assert_eq!(e.seats, None);
        assert!(e.allows_another_member(10_000));
        let capped = Overrides {
            seats: Some(20),
            ..Overrides::default()
        };
        assert_eq!(
            resolve("team", &plan, SubscriptionStatus::Active, false, &capped).seats,
            Some(20)
        );
    }

    #[test]
    fn restriction_applies_only_while_payment_is_overdue() {
        use SubscriptionStatus::{Active, Canceled, PastDue, Unpaid};
        let plan = &plans()[1];
        let none = Overrides::default();
        assert!(resolve("team", plan, PastDue, true, &none).restricted);
        assert!(resolve("team", plan, Unpaid, true, &none).restricted);
        assert!(
            !resolve("team", plan, PastDue, false, &none).restricted,
            "grace period"
        );
        assert!(
            !resolve("team", plan, Active, true, &none).restricted,
            "paid since"
        );
        assert!(
            !resolve("free", plan, Canceled, true, &none).restricted,
            "ended"
        );
    }
}
