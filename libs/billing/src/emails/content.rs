//! The billing emails' content, rendered from `templates/email/<message>/` with the shared
//! layout of the notifications crate (see `askama.toml`).

use chrono::{DateTime, Utc};

// Each message and its `EmailContent`, declared like every email of the kit.
tenantkit_notifications::email_messages! {
    /// To each owner: a payment failed; what happens if it stays unpaid.
    PaymentFailedEmail in "billing_payment_failed" {
        subject: "email/billing_payment_failed/subject.txt",
        text: "email/billing_payment_failed/body.txt",
        html: "email/billing_payment_failed/body.html",
    } {
        name: String,
        organisation: String,
        amount: String,
        /// The date the organisation becomes read-only if still unpaid.
        restricted_on: String,
        link: String,
    }

    /// To each owner: the overdue payment arrived; full access again.
    PaymentRecoveredEmail in "billing_payment_recovered" {
        subject: "email/billing_payment_recovered/subject.txt",
        text: "email/billing_payment_recovered/body.txt",
        html: "email/billing_payment_recovered/body.html",
    } {
        name: String,
        organisation: String,
        link: String,
    }

    /// To each owner, 3 days before a trial ends.
    TrialEndingEmail in "billing_trial_ending" {
        subject: "email/billing_trial_ending/subject.txt",
        text: "email/billing_trial_ending/body.txt",
        html: "email/billing_trial_ending/body.html",
    } {
        name: String,
        organisation: String,
        plan: String,
        trial_end: String,
        link: String,
    }

    /// To each owner: the grace period ended unpaid; the organisation is read-only.
    AccountRestrictedEmail in "billing_account_restricted" {
        subject: "email/billing_account_restricted/subject.txt",
        text: "email/billing_account_restricted/body.txt",
        html: "email/billing_account_restricted/body.html",
    } {
        name: String,
        organisation: String,
        link: String,
    }

    /// To each platform admin: a tenant became read-only for an unpaid invoice.
    AdminTenantRestrictedEmail in "billing_admin_tenant_restricted" {
        subject: "email/billing_admin_tenant_restricted/subject.txt",
        text: "email/billing_admin_tenant_restricted/body.txt",
        html: "email/billing_admin_tenant_restricted/body.html",
    } {
        name: String,
        organisation: String,
        invoice: String,
        failed_on: String,
        link: String,
    }
}

/// Currencies without minor units (Stripe's list).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// `1999, "usd"` → `19.99 USD`.
pub fn format_amount(minor_units: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        return format!("{minor_units} {code}");
    }
    let sign = if minor_units < 0 { "-" } else { "" };
    let abs = minor_units.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

/// `5 March 2027` (UTC): unambiguous in every locale, unlike 03/05/2027.
pub fn format_date(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y").to_string()
}

#[cfg(test)]
mod tests {
    use tenantkit_notifications::{EmailContent, RenderedEmail};

    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script>";

    fn all(name: &str) -> Vec<(&'static str, RenderedEmail)> {
        fn render<E: EmailContent>(email: E) -> (&'static str, RenderedEmail) {
            (E::TEMPLATE, email.render().expect(E::TEMPLATE))
        }
        let (n, link) = (
            name.to_owned(),
            "https://app.example.test/billing?a=1&b=2".to_owned(),
        );
        vec![
            render(PaymentFailedEmail {
                name: n.clone(),
                organisation: n.clone(),
                amount: "10.00 USD".to_owned(),
                restricted_on: "5 March 2027".to_owned(),
                link: link.clone(),
            }),
            render(PaymentRecoveredEmail {
                name: n.clone(),
                organisation: n.clone(),
                link: link.clone(),
            }),
            render(TrialEndingEmail {
                name: n.clone(),
                organisation: n.clone(),
                plan: "Team".to_owned(),
                trial_end: "5 March 2027".to_owned(),
                link: link.clone(),
            }),
            render(AccountRestrictedEmail {
                name: n.clone(),
                organisation: n.clone(),
                link: link.clone(),
            }),
            render(AdminTenantRestrictedEmail {
                name: n.clone(),
                organisation: n,
                invoice: "in_1".to_owned(),
                failed_on: "1 March 2027".to_owned(),
                link,
            }),
        ]
    }

    #[test]
    fn every_billing_email_renders_in_the_shared_layout() {
        for (template, email) in all("Ada") {
            assert!(
                !email.subject.is_empty() && !email.subject.contains('\n'),
                "{template}"
            );
            assert!(
                email.text.contains("Ada") && email.html.contains("Ada"),
                "{template}"
            );
            assert!(email.html.starts_with("<!DOCTYPE html>"), "{template}");
            assert!(
                email.html.contains("You received this email because"),
                "{template}"
            );
            assert!(
                email
                    .text
                    .lines()
                    .any(|l| l == "https://app.example.test/billing?a=1&b=2"),
                "{template}: the link stands alone in the text:\n{}",
                email.text
            );
            assert!(
                email
                    .html
                    .contains("href=\"https://app.example.test/billing?a=1&#38;b=2\""),
                "{template}"
            );
        }
    }

    #[test]
    fn html_escapes_names_and_subjects_stay_on_one_line() {
        for (template, email) in all(HOSTILE) {
            assert!(!email.html.contains(HOSTILE), "{template}");
            assert!(email.text.contains(HOSTILE), "{template}");
        }
        for (template, email) in all("Acme\r\nBcc: x@example.test") {
            assert!(!email.subject.contains(['\r', '\n']), "{template}");
        }
    }

    #[test]
    fn amounts_and_dates_read_naturally() {
        assert_eq!(format_amount(1999, "usd"), "19.99 USD");
        assert_eq!(format_amount(5, "eur"), "0.05 EUR");
        assert_eq!(format_amount(-250, "gbp"), "-2.50 GBP");
        assert_eq!(format_amount(1000, "jpy"), "1000 JPY");
        let at = DateTime::from_timestamp(1_804_204_800, 0).unwrap();
        assert_eq!(format_date(at), "5 March 2027");
    }
}
