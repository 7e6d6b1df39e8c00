//! The production worker, run by a test.

use std::{thread::JoinHandle, time::Duration};

use tenantkit_config::Settings;
use tokio::sync::oneshot;

/// A worker on a runtime of its own (its future is not `Send` for every lifetime, as apalis's
/// service types go), as it would run in its own process.
pub struct RunningWorker {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<Result<(), String>>,
}

impl RunningWorker {
    pub fn start(settings: Settings) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(tenantkit_worker::run(&settings, async {
                    let _ = stopped.await;
                }))
        });
        Self { stop, thread }
    }

    /// Asks the worker to stop and waits until it has, failing the test after `limit` or if
    /// the worker ends with an error.
    pub async fn stop_within(self, limit: Duration) {
        let _ = self.stop.send(());
        let thread = self.thread;
        let stopped = tokio::task::spawn_blocking(move || thread.join().expect("worker thread"));
        tokio::time::timeout(limit, stopped)
            .await
            .expect("the worker did not stop in time")
            .expect("join")
            .expect("the worker ended with an error");
    }
}

/// The worker binary as operators run it: configured through the environment only, against
/// `database_url` and the SMTP server at `smtp_url`, its logs discarded (see
/// [`crate::process::show_logs`]). `extra` adds or overrides variables (`TENANTKIT_WORKER__...`).
pub fn binary_command(
    database_url: &str,
    smtp_url: &str,
    extra: &[(&str, &str)],
) -> std::process::Command {
    let mut command = std::process::Command::new(crate::process::binary("tenantkit-worker"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", crate::env("TENANTKIT_TEST_REDIS"))
        .env("SMTP_URL", smtp_url)
        .env(
            "TENANTKIT_SMTP__FROM",
            "Tenantkit <no-reply@tenantkit.test>",
        )
        .env("TENANTKIT_LOG__FILTER", "warn")
        .env(
            "TENANTKIT_STORAGE__LOCAL__ROOT",
            std::env::temp_dir().join(format!(
                "tenantkit-test-files-{}",
                uuid::Uuid::now_v7().simple()
            )),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, value) in extra {
        command.env(key, value);
    }
    crate::process::show_logs(&mut command);
    command
}
