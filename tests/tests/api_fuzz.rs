//! Schemathesis generates requests from the served OpenAPI document and checks every answer
//! against it: no server errors, no undocumented statuses or bodies, no schema-valid request
//! refused, undeclared methods answered with 405 and `Allow`.

use std::process::Command;

use tenantkit_tests::{TestApp, TestDb, settings_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_own_spec_under_generated_input() {
    // Generated sign-ups far exceed the production allowance per client address.
    let db = TestDb::new().await;
    let settings = settings_for(&db, &[("rate_limit.signups_per_hour", "1000000")]);
    let app = TestApp::spawn_with(db, settings).await;
    let spec = app.url("/api/openapi.json");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("st")
            .args([
                "run",
                &spec,
                "--checks",
                "all",
                "--max-examples",
                "100",
                "--no-color",
            ])
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
