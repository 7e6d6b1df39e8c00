//! Worker wiring, a library so tests run the very worker production runs.

use std::future::Future;

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tenantkit_notifications::{Mailer, WelcomeEmail, deliver_welcome};

/// Runs until `shutdown` completes, then stops fetching and waits for running jobs.
pub async fn run(
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let db = Database::connect_lazy(&settings.database).map_err(|e| e.to_string())?;
    let mailer = Mailer::new(&settings.smtp).map_err(|e| e.to_string())?;
    let name = format!("tenantkit-worker-{}", uuid::Uuid::now_v7());
    tracing::info!(worker = %name, "worker starting");
    let welcome = WorkerBuilder::new(name.as_str())
        .backend(tenantkit_jobs::storage::<WelcomeEmail>(&db).with_pubsub())
        .data(db.clone())
        .data(mailer)
        .enable_tracing()
        .catch_panic()
        .concurrency(settings.worker.concurrency)
        .build(deliver_welcome);
    let stopping = async move {
        shutdown.await;
        tracing::info!("shutdown requested; finishing running jobs");
        Ok::<(), std::io::Error>(())
    };
    let result = welcome.run_until(stopping).await.map_err(|e| e.to_string());
    db.close().await;
    tracing::info!("worker stopped");
    result
}
