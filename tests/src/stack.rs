//! The application and a worker sending its mail, started together for browser journeys: a
//! fresh database, the app listening on the port its public URL names (so the links in its
//! emails work as sent), and the worker delivering to the test SMTP server's Maildir.

use std::time::Duration;

use crate::{
    TestApp, TestDb,
    browser::{JourneyOutput, run_journey},
    env,
    process::free_port,
    settings_for,
    worker::RunningWorker,
};

pub struct Stack {
    pub app: TestApp,
    pub worker: RunningWorker,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Like [`Stack::start`], with `settings` added for both the app and the worker.
    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let address = format!("127.0.0.1:{}", free_port());
        let public_url = format!("http://{address}");
        let mut overrides = vec![
            ("server.bind", address.as_str()),
            ("server.public_url", public_url.as_str()),
        ];
        overrides.extend_from_slice(settings);
        let worker = RunningWorker::start(settings_for(&db, &overrides));
        let settings = settings_for(&db, &overrides);
        let app = TestApp::spawn_with(db, settings).await;
        Self { app, worker }
    }

    /// Runs `script` with BASE_URL, the Maildir and `extra` in its environment; the stack
    /// keeps running (several journeys may share it).
    pub async fn journey(&self, script: &str, extra: Vec<(&str, String)>) -> JourneyOutput {
        let mut vars = vec![
            ("BASE_URL", self.app.url("")),
            ("TENANTKIT_TEST_MAILDIR", env("TENANTKIT_TEST_MAILDIR")),
        ];
        vars.extend(extra);
        run_journey(script, &vars).await
    }

    /// Stops the worker (within 30 s) and the app.
    pub async fn stop(self) {
        self.worker.stop_within(Duration::from_secs(30)).await;
        self.app.stop().await;
    }

    /// [`Stack::journey`], then [`Stack::stop`].
    pub async fn run(self, script: &str, extra: Vec<(&str, String)>) -> JourneyOutput {
        let output = self.journey(script, extra).await;
        self.stop().await;
        output
    }
}
