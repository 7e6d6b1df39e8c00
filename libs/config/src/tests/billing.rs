use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use secrecy::ExposeSecret;

use super::{base, problems};
use crate::Settings;

fn with_stripe(figment: Figment) -> Figment {
    figment
        .merge(Serialized::default(
            "billing.stripe_secret_key",
            "sk_test_123",
        ))
        .merge(Serialized::default(
            "billing.webhook_secrets",
            "whsec_old, whsec_new",
        ))
}

const PLANS_TOML: &str = r#"
    [[billing.plans]]
    name = "team"
    display_name = "Team"
    stripe_price_monthly = "price_team_m"
    stripe_price_yearly = "price_team_y"
    included_seats = 5
    per_seat_price_cents = 900
    storage_quota_bytes = 10_000_000_000
    api_requests_per_minute = 600
    features = ["audit_export"]
    trial_days = 14
"#;

#[test]
fn without_stripe_the_built_in_plans_apply_and_billing_is_off() {
    let settings = Settings::load_from(base()).unwrap();
    let billing = &settings.billing;
    assert!(!billing.is_configured());
    let names: Vec<&str> = billing.plans.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["free", "team", "business"]);
    assert_eq!(billing.stripe_api_base.as_str(), "https://api.stripe.com/");
    assert_eq!(billing.grace_period.as_secs(), 7 * 86_400);
    assert_eq!(billing.webhook_tolerance.as_secs(), 300);
    // admin.plans is derived from the billing plans.
    assert_eq!(settings.admin.plans, ["free", "team", "business"]);
}

#[test]
fn plans_come_from_toml_tables_and_free_is_always_there_first() {
    let settings =
        Settings::load_from(with_stripe(base()).merge(Toml::string(PLANS_TOML))).unwrap();
    let billing = &settings.billing;
    assert!(billing.is_configured());
    assert_eq!(billing.webhook_secrets.len(), 2);
    assert_eq!(billing.webhook_secrets[1].expose_secret(), "whsec_new");
    let names: Vec<&str> = billing.plans.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["free", "team"]);
    let team = billing.plan("team").unwrap();
    assert_eq!(team.stripe_price_yearly.as_deref(), Some("price_team_y"));
    assert_eq!(team.storage_quota_bytes, 10_000_000_000);
    assert_eq!(team.trial_days, 14);
    assert!(team.is_per_seat());
    assert_eq!(settings.admin.plans, ["free", "team"]);
}

#[test]
fn plans_come_from_json_in_the_environment() {
    let json = r#"[{"name":"pro","stripe_price_monthly":"price_pro","features":["sso"]},
                   {"name":"free","included_seats":2}]"#;
    let settings =
        Settings::load_from(with_stripe(base()).merge(Serialized::default("billing.plans", json)))
            .unwrap();
    let plans = &settings.billing.plans;
    assert_eq!(plans[0].name, "free");
    assert_eq!(plans[0].included_seats, 2);
    assert_eq!(plans[1].features, ["sso"]);
    assert_eq!(
        plans[1].api_requests_per_minute, 60,
        "defaults fill the rest"
    );
}

#[test]
fn the_api_base_is_configurable_and_ends_in_a_slash() {
    let settings = Settings::load_from(base().merge(Serialized::default(
        "billing.stripe_api_base",
        "http://127.0.0.1:12111",
    )))
    .unwrap();
    assert_eq!(
        settings.billing.stripe_api_base.as_str(),
        "http://127.0.0.1:12111/"
    );
    let settings = Settings::load_from(base().merge(Serialized::default(
        "billing.stripe_api_base",
        "http://127.0.0.1:12111/stripe",
    )))
    .unwrap();
    assert_eq!(
        settings.billing.stripe_api_base.as_str(),
        "http://127.0.0.1:12111/stripe/"
    );
}

#[test]
fn every_plan_problem_is_reported_at_once() {
    let json = r#"[{"name":"Team!"},{"name":"pro"},{"name":"pro","stripe_price_monthly":"p1"},
                   {"name":"free","stripe_price_monthly":"p2"},{"name":"max","stripe_price_yearly":"p1"}]"#;
    let found = problems(
        with_stripe(base())
            .merge(Serialized::default("billing.plans", json))
            .merge(Serialized::default("billing.webhook_tolerance_secs", 0)),
    );
    for expected in [
        "billing.plans[Team!]: the name",
        "billing.plans[Team!]: a paid plan needs",
        "billing.plans[pro]: the name is used by more than one plan",
        "billing.plans[pro]: a paid plan needs",
        "billing.plans[free]: the free plan cannot have Stripe prices",
        "billing.plans[max]: price p1 is also plan pro's",
        "billing.webhook_tolerance_secs",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "no {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn unreadable_plans_name_the_key_and_its_variable() {
    let found = problems(base().merge(Serialized::default("billing.plans", "[{oops")));
    assert!(found[0].starts_with("billing.plans"), "{found:?}");
    assert!(found[0].contains("TENANTKIT_BILLING__PLANS"), "{found:?}");
    let unknown_field = problems(base().merge(Serialized::default(
        "billing.plans",
        r#"[{"name":"x","seats":3}]"#,
    )));
    assert!(unknown_field[0].contains("seats"), "{unknown_field:?}");
}

#[test]
fn paid_plans_need_prices_only_when_stripe_is_configured() {
    // The built-in team and business plans have no prices: fine without Stripe…
    assert!(Settings::load_from(base()).is_ok());
    // …but not once Stripe is configured.
    let found = problems(with_stripe(base()));
    assert!(
        found.iter().any(|p| p.starts_with("billing.plans[team]")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("billing.plans[business]")),
        "{found:?}"
    );
}

#[test]
fn half_a_stripe_configuration_is_a_problem() {
    let key_only = problems(base().merge(Serialized::default(
        "billing.stripe_secret_key",
        "sk_test_1",
    )));
    assert!(
        key_only[0].starts_with("billing.webhook_secrets is missing"),
        "{key_only:?}"
    );
    let secret_only =
        problems(base().merge(Serialized::default("billing.webhook_secrets", "whsec_1")));
    assert!(secret_only[0].starts_with("billing.stripe_secret_key is missing"));
}

#[test]
fn stripe_secrets_stay_out_of_debug_output_and_problems() {
    let settings =
        Settings::load_from(with_stripe(base()).merge(Toml::string(PLANS_TOML))).unwrap();
    let debug = format!("{:?}", settings.billing);
    assert!(
        !debug.contains("sk_test_123") && !debug.contains("whsec_"),
        "{debug}"
    );
    let found = problems(
        base()
            .merge(Serialized::default(
                "billing.stripe_secret_key",
                "sk_test bad",
            ))
            .merge(Serialized::default("billing.webhook_secrets", "whsec_x")),
    );
    assert!(
        found.iter().all(|p| !p.contains("sk_test bad")),
        "{found:?}"
    );
}

#[test]
fn admin_plans_narrow_the_billing_plans_and_must_name_them() {
    let settings =
        Settings::load_from(base().merge(Serialized::default("admin.plans", "free, team")))
            .unwrap();
    assert_eq!(settings.admin.plans, ["free", "team"]);
    let found = problems(base().merge(Serialized::default("admin.plans", "free,enterprise")));
    assert!(
        found[0].starts_with("admin.plans") && found[0].contains("enterprise"),
        "{found:?}"
    );
}

#[test]
fn webhook_secrets_can_be_a_list_in_the_file() {
    let settings = Settings::load_from(base().merge(Toml::string(
        r#"
        [billing]
        stripe_secret_key = "sk_test_1"
        webhook_secrets = ["whsec_a", "whsec_b"]
        plans = [{ name = "free" }]
        "#,
    )))
    .unwrap();
    assert_eq!(settings.billing.webhook_secrets.len(), 2);
    assert!(settings.billing.is_configured());
}

#[test]
fn the_example_configuration_loads_with_its_plans() {
    // Embedded: a path baked at compile time may name another checkout sharing the cache.
    let example = include_str!("../../../../deploy/tenantkit.example.toml");
    let settings = Settings::load_from(Figment::new().merge(Toml::string(example))).unwrap();
    let names: Vec<&str> = settings
        .billing
        .plans
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["free", "team", "business"]);
    assert_eq!(settings.admin.plans, names);
    assert!(!settings.billing.is_configured());
}
