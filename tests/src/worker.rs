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
