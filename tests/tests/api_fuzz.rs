//! Schemathesis generates requests from the served OpenAPI document and checks every answer
//! against it: no server errors, no undocumented statuses or bodies, no schema-valid request
//! refused, undeclared methods answered with 405 and `Allow`.

use std::process::Command;

use tenantkit_kernel::Role;
use tenantkit_tests::{
    TestApp, TestDb,
    api::{key, org},
    settings_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_own_spec_under_generated_input() {
    // Generated sign-ups far exceed the production allowance per client address.
    let db = TestDb::new().await;
    let settings = settings_for(&db, &[("rate_limit.signups_per_hour", "1000000")]);
    let app = TestApp::spawn_with(db, settings).await;
    // Authenticated as an owner key, so operations get past authentication; schemathesis
    // also checks that each refuses the request without it (ignored_auth).
    let acme = org(&app, "Acme").await;
    // Thousands of calls a minute: far beyond any plan's API allowance.
    sqlx::query(
        "update tenants set entitlement_overrides = '{\"api_requests_per_minute\": 1000000}'
         where id = $1",
    )
    .bind(acme.tenant)
    .execute(&app.db.owner)
    .await
    .unwrap();
    let authorization = format!(
        "Authorization: Bearer {}",
        key(&app, &acme, Role::Owner).await
    );
    let spec = app.url("/api/openapi.json");
    // A fixed seed keeps CI reproducible; set TENANTKIT_FUZZ_SEED to explore other inputs
    // (and TENANTKIT_FUZZ_EXAMPLES for more of them).
    let seed = std::env::var("TENANTKIT_FUZZ_SEED").unwrap_or_else(|_| "20261124".to_owned());
    let examples = std::env::var("TENANTKIT_FUZZ_EXAMPLES").unwrap_or_else(|_| "100".to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("st")
            // New passwords must not be common or contain the email: rules no JSON schema can
            // state, so a schema-valid password may rightly get 422 (positive_data_acceptance).
            .args([
                "run",
                &spec,
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--no-color",
                "--header",
                &authorization,
            ])
            .args(["--max-examples", &examples, "--seed", &seed])
            // schemathesis keeps a cache in its working folder: keep it out of the clone.
            .current_dir(std::env::temp_dir())
            .output()
            .expect("schemathesis (`st`) is installed by scripts/test")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "no test case ran:\n{report}");
}
