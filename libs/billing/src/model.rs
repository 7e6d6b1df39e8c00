//! Billing's vocabulary: intervals, subscription states, the stored copies of Stripe objects,
//! and which of a tenant's subscriptions counts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A plan as configured: prices, seats, quotas, features.
pub use tenantkit_config::PlanSettings as Plan;

/// How often a subscription is billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Monthly,
    Yearly,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// Stripe's name for it (`recurring.interval`).
    pub(crate) fn stripe_name(self) -> &'static str {
        match self {
            Self::Monthly => "month",
            Self::Yearly => "year",
        }
    }

    pub(crate) fn from_stripe_name(name: &str) -> Option<Self> {
        match name {
            "month" => Some(Self::Monthly),
            "year" => Some(Self::Yearly),
            _ => None,
        }
    }
}

impl std::str::FromStr for Interval {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "monthly" | "month" => Ok(Self::Monthly),
            "yearly" | "year" => Ok(Self::Yearly),
            _ => Err("expected monthly or yearly".to_owned()),
        }
    }
}

/// The price id of `plan` for `interval`, if it has one.
pub fn price_for(plan: &Plan, interval: Interval) -> Option<&str> {
    match interval {
        Interval::Monthly => plan.stripe_price_monthly.as_deref(),
        Interval::Yearly => plan.stripe_price_yearly.as_deref(),
    }
}

/// The configured plan a Stripe price belongs to, and at which interval.
pub fn plan_for_price<'a>(plans: &'a [Plan], price: &str) -> Option<(&'a Plan, Interval)> {
    plans.iter().find_map(|plan| {
        [Interval::Monthly, Interval::Yearly]
            .into_iter()
            .find(|i| price_for(plan, *i) == Some(price))
            .map(|i| (plan, i))
    })
}

/// A subscription's state, as Stripe names it; `None` when the tenant has no subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    None,
    /// Created, first payment not yet made (e.g. awaiting 3-D Secure).
    Incomplete,
    /// The first payment never came: the subscription is gone.
    IncompleteExpired,
    Trialing,
    Active,
    /// A payment failed; Stripe is retrying. Full access during the grace period.
    PastDue,
    /// Stripe stopped retrying; the invoice stays open.
    Unpaid,
    /// A trial ended without a payment method.
    Paused,
    Canceled,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Unpaid => "unpaid",
            Self::Paused => "paused",
            Self::Canceled => "canceled",
        }
    }

    /// Stripe's text; `None` for a state this version does not know.
    pub fn from_stripe(text: &str) -> Option<Self> {
        Some(match text {
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "unpaid" => Self::Unpaid,
            "paused" => Self::Paused,
            "canceled" => Self::Canceled,
            _ => return None,
        })
    }

    /// The subscription grants its plan (possibly restricted while payment is overdue).
    pub fn grants_plan(self) -> bool {
        matches!(
            self,
            Self::Trialing | Self::Active | Self::PastDue | Self::Unpaid
        )
    }

    /// The subscription is over: the tenant falls back to the free plan.
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            Self::Canceled | Self::IncompleteExpired | Self::Paused
        )
    }

    /// Money is owed: after the grace period, the tenant becomes read-only.
    pub fn is_overdue(self) -> bool {
        matches!(self, Self::PastDue | Self::Unpaid)
    }
}

/// A subscription as last fetched from Stripe (`billing_subscriptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSubscription {
    pub id: String,
    pub status: SubscriptionStatus,
    /// The configured plan of its price; `None` when the price is not a configured plan's.
    pub plan: Option<String>,
    pub price_id: Option<String>,
    pub interval: Option<Interval>,
    pub quantity: Option<u64>,
    pub item_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The subscription that decides a tenant's plan: a live one first (a tenant that subscribed
/// again after cancelling has an old cancelled one too), then the most recently created.
pub fn effective_subscription(subscriptions: &[StoredSubscription]) -> Option<&StoredSubscription> {
    subscriptions.iter().max_by(|a, b| {
        let rank = |s: &StoredSubscription| {
            (
                s.status.grants_plan(),
                s.status == SubscriptionStatus::Incomplete,
                s.created_at,
            )
        };
        rank(a).cmp(&rank(b)).then_with(|| a.id.cmp(&b.id))
    })
}

/// The plan the tenant should be on for `subscription`: its plan while it grants one, free once
/// it has ended, and no opinion (keep what the tenant has) while it is incomplete or its price
/// is unknown.
pub fn plan_of_subscription(subscription: &StoredSubscription) -> Option<&str> {
    if subscription.status.grants_plan() {
        subscription.plan.as_deref()
    } else if subscription.status.has_ended() {
        Some(tenantkit_config::FREE_PLAN)
    } else {
        None
    }
}

/// An invoice as last fetched from Stripe (`billing_invoices`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredInvoice {
    pub id: String,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    pub status: InvoiceStatus,
    pub currency: String,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub amount_remaining: i64,
    pub hosted_invoice_url: Option<String>,
    pub invoice_pdf: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Uncollectible,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Paid => "paid",
            Self::Uncollectible => "uncollectible",
            Self::Void => "void",
        }
    }

    pub fn from_stripe(text: &str) -> Option<Self> {
        Some(match text {
            "draft" => Self::Draft,
            "open" => Self::Open,
            "paid" => Self::Paid,
            "uncollectible" => Self::Uncollectible,
            "void" => Self::Void,
            _ => return None,
        })
    }

    /// Money is still owed on it.
    pub fn is_unpaid(self) -> bool {
        matches!(self, Self::Open | Self::Uncollectible)
    }
}

/// A tenant's Stripe customer and dunning state (`billing_accounts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub stripe_customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub dunning_invoice_id: Option<String>,
    pub payment_failed_at: Option<DateTime<Utc>>,
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub restricted_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(id: &str, status: SubscriptionStatus, created: i64) -> StoredSubscription {
        StoredSubscription {
            id: id.to_owned(),
            status,
            plan: Some("team".to_owned()),
            price_id: None,
            interval: None,
            quantity: None,
            item_id: None,
            current_period_end: None,
            trial_end: None,
            cancel_at_period_end: false,
            canceled_at: None,
            created_at: DateTime::from_timestamp(created, 0).unwrap(),
        }
    }

    #[test]
    fn a_live_subscription_wins_over_a_newer_ended_one() {
        use SubscriptionStatus::{Active, Canceled, Incomplete};
        let subs = [
            subscription("sub_old", Active, 10),
            subscription("sub_new", Canceled, 20),
        ];
        assert_eq!(effective_subscription(&subs).unwrap().id, "sub_old");
        let subs = [
            subscription("sub_a", Canceled, 10),
            subscription("sub_b", Canceled, 20),
        ];
        assert_eq!(effective_subscription(&subs).unwrap().id, "sub_b");
        let subs = [
            subscription("sub_a", Canceled, 30),
            subscription("sub_b", Incomplete, 20),
        ];
        assert_eq!(effective_subscription(&subs).unwrap().id, "sub_b");
        assert!(effective_subscription(&[]).is_none());
    }

    #[test]
    fn the_plan_follows_the_subscription_state() {
        use SubscriptionStatus::{
            Active, Canceled, Incomplete, IncompleteExpired, PastDue, Paused, Trialing, Unpaid,
        };
        for (status, plan) in [
            (Trialing, Some("team")),
            (Active, Some("team")),
            (PastDue, Some("team")),
            (Unpaid, Some("team")),
            (Canceled, Some("free")),
            (IncompleteExpired, Some("free")),
            (Paused, Some("free")),
            (Incomplete, Option::None),
        ] {
            assert_eq!(
                plan_of_subscription(&subscription("s", status, 1)),
                plan,
                "{status:?}"
            );
        }
        let mut unknown_price = subscription("s", Active, 1);
        unknown_price.plan = Option::None;
        assert_eq!(plan_of_subscription(&unknown_price), Option::None);
    }

    #[test]
    fn statuses_round_trip_through_stripe_names() {
        use SubscriptionStatus::{
            Active, Canceled, Incomplete, IncompleteExpired, PastDue, Paused, Trialing, Unpaid,
        };
        for status in [
            Incomplete,
            IncompleteExpired,
            Trialing,
            Active,
            PastDue,
            Unpaid,
            Paused,
            Canceled,
        ] {
            assert_eq!(
                SubscriptionStatus::from_stripe(status.as_str()),
                Some(status)
            );
        }
        assert_eq!(SubscriptionStatus::from_stripe("something_new"), None);
        assert_eq!("yearly".parse::<Interval>(), Ok(Interval::Yearly));
        assert_eq!(
            Interval::from_stripe_name(Interval::Monthly.stripe_name()),
            Some(Interval::Monthly)
        );
    }

    #[test]
    fn prices_map_back_to_their_plan_and_interval() {
        let mut team = tenantkit_config::BillingSettings::default().plans[1].clone();
        team.stripe_price_monthly = Some("price_m".to_owned());
        team.stripe_price_yearly = Some("price_y".to_owned());
        let plans = vec![
            tenantkit_config::BillingSettings::default().plans[0].clone(),
            team,
        ];
        let (plan, interval) = plan_for_price(&plans, "price_y").unwrap();
        assert_eq!((plan.name.as_str(), interval), ("team", Interval::Yearly));
        assert!(plan_for_price(&plans, "price_other").is_none());
        assert_eq!(price_for(&plans[1], Interval::Monthly), Some("price_m"));
        assert_eq!(price_for(&plans[0], Interval::Monthly), None);
    }
}
