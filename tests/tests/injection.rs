//! Injection and escaping corpus, in a browser: the payloads of
//! `tests/browser/injection-corpus.json` go through every text field a user or an admin can
//! enter that is later rendered, and every page, email and CSV export showing them is checked
//! in headless Chromium (with the CSP bypassed, so escaping alone is judged): nothing runs, no
//! dialog opens, no markup is created, the text is shown literally, and no CSV cell starts a
//! formula. The journey is `tests/browser/injection.mjs`, in five phases (each within the
//! browser time limit) sharing a state file; it reports every finding, then fails.

use secrecy::SecretString;
use tenantkit_accounts::{DisplayName, Email, NewUser, PasswordHasher, PlainPassword};
use tenantkit_kernel::UserId;
use tenantkit_tests::{TestApp, browser::scripts_dir, stack::Stack};

/// Plans with seats for everyone the journey invites; `business` has the audit export, which
/// the admin assigns to every tenant (with a payload as the reason) before the owners export.
const PLANS: &str = r#"[
  {"name": "free", "display_name": "Free", "included_seats": 50},
  {"name": "business", "display_name": "Business", "included_seats": 50,
   "features": ["audit_export"]}
]"#;

/// The corpus entry `id` with its `TAG` naming `field`, as the journey builds payloads.
fn payload(corpus: &serde_json::Value, id: &str, field: &str) -> String {
    corpus["payloads"]
        .as_array()
        .expect("payloads")
        .iter()
        .find(|entry| entry["id"] == id)
        .and_then(|entry| entry["payload"].as_str())
        .unwrap_or_else(|| panic!("no payload {id} in the corpus"))
        .replace("TAG", &format!("{field}.{id}"))
}

/// A verified user with a password, through the accounts domain (the name is validated as the
/// sign-up form validates it).
async fn user(app: &TestApp, email: &str, name: &str, password: &str, platform_admin: bool) {
    let user = NewUser {
        id: UserId::new(),
        email: Email::parse(email).expect("an email"),
        display_name: DisplayName::parse(name).expect("a display name the product accepts"),
        password_hash: PasswordHasher::default()
            .hash(
                PlainPassword::parse(SecretString::from(password.to_owned())).expect("a password"),
            )
            .await
            .expect("hash"),
        is_platform_admin: platform_admin,
    };
    let mut tx = app.db.app.global().await.expect("global tx");
    tenantkit_accounts::repo::insert(tx.conn(), &user)
        .await
        .expect("insert the user");
    tx.commit().await.expect("commit");
    sqlx::query("update users set email_verified_at = now() where id = $1")
        .bind(user.id.as_uuid())
        .execute(&app.db.owner)
        .await
        .expect("verify the user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entered_text_never_runs_in_pages_emails_or_csv_exports() {
    let corpus: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scripts_dir().join("injection-corpus.json")).expect("the corpus"),
    )
    .expect("the corpus is JSON");
    let files = tempfile::tempdir().expect("a folder for the files and the state");
    let root = files.path().join("files").display().to_string();
    let stack = Stack::start_with(&[
        ("storage.backend", "local"),
        ("storage.local.root", &root),
        ("billing.plans", PLANS),
        // Dozens of people sign up, log in and ask for resets from one address.
        ("rate_limit.signups_per_hour", "100000"),
        ("rate_limit.logins_per_account", "100000"),
        ("rate_limit.logins_per_address", "100000"),
    ])
    .await;
    let app = &stack.app;

    let run = uuid::Uuid::now_v7().simple().to_string()[16..].to_owned();
    let domain = format!("r{run}.inj.test");
    // The acting admin's name is itself a payload: it shows in the impersonation banner.
    let admin_name = format!(
        "{} {}",
        payload(&corpus, "script", "admin_name"),
        payload(&corpus, "img", "admin_name")
    );
    let admin_email = format!("admin@{domain}");
    let admin_password = format!("admin passphrase {run}");
    user(app, &admin_email, &admin_name, &admin_password, true).await;
    let collector_email = format!("collector@{domain}");
    let collector_password = format!("collector passphrase {run}");
    user(
        app,
        &collector_email,
        "Cole Collector",
        &collector_password,
        false,
    )
    .await;

    let state = files.path().join("state.json");
    let vars = |phase: &str| {
        vec![
            ("PHASE", phase.to_owned()),
            ("STATE_FILE", state.display().to_string()),
            ("RUN", run.clone()),
            ("ADMIN_EMAIL", admin_email.clone()),
            ("ADMIN_PASSWORD", admin_password.clone()),
            ("ADMIN_NAME", admin_name.clone()),
            ("COLLECTOR_EMAIL", collector_email.clone()),
            ("COLLECTOR_PASSWORD", collector_password.clone()),
        ]
    };

    stack.journey("injection.mjs", vars("owners-1")).await;
    stack.journey("injection.mjs", vars("owners-2")).await;
    // People who signed up with a payload as their address cannot always be mailed (the mailer
    // refuses `<` in an address): they are verified here, as following the link would.
    let verified = sqlx::query(
        "update users set email_verified_at = now()
         where email_verified_at is null and lower(email) like '%@' || $1",
    )
    .bind(&domain)
    .execute(&app.db.owner)
    .await
    .expect("verify the payload addresses")
    .rows_affected();
    eprintln!("verified {verified} payload addresses");
    stack.journey("injection.mjs", vars("admin")).await;
    // Mail to those addresses keeps failing; rather than wait out ten backed-off attempts, the
    // failed jobs are given their last one, so the admin's jobs page lists them as dead.
    let dead = sqlx::query(
        "update apalis.jobs set attempts = max_attempts
         where status = 'Failed' and attempts < max_attempts",
    )
    .execute(&app.db.owner)
    .await
    .expect("let the failing jobs die")
    .rows_affected();
    eprintln!("{dead} failing jobs dead-lettered");
    stack.journey("injection.mjs", vars("admin-2")).await;
    stack.journey("injection.mjs", vars("final")).await;

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("the journey's state"))
            .expect("the state is JSON");
    let findings = state["findings"].as_array().cloned().unwrap_or_default();
    assert!(
        findings.is_empty(),
        "the injection corpus found {} problem(s):\n{}",
        findings.len(),
        findings
            .iter()
            .map(|f| format!("  [{}] {}: {}", f["kind"], f["where"], f["detail"]))
            .collect::<Vec<_>>()
            .join("\n")
    );
    stack.stop().await;
}
