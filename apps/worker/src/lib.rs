//! Worker wiring, a library so tests run the very worker production runs.

use std::{future::Future, time::Duration};

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tenantkit_jobs::TenantJob;
use tenantkit_notifications::{Mailer, WelcomeEmail, deliver_welcome};
use tokio::sync::watch;

/// The longest pause between attempts to restart a worker whose backend failed.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// Runs until `shutdown` completes, then stops fetching and waits for running jobs.
///
/// apalis ends a worker when its backend fails (PostgreSQL restarting, say); this loop starts
/// it again with a growing pause, so an outage delays jobs but never stops the process.
pub async fn run(
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let db = Database::connect_lazy(&settings.database).map_err(|e| e.to_string())?;
    let mailer = Mailer::new(&settings.smtp).map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested; finishing running jobs");
        let _ = stop_tx.send(true);
    });

    let mut delay = Duration::from_secs(1);
    loop {
        let name = format!("tenantkit-worker-{}", uuid::Uuid::now_v7());
        tracing::info!(worker = %name, "worker starting");
        let welcome = WorkerBuilder::new(name.as_str())
            .backend(tenantkit_jobs::storage::<WelcomeEmail>(&db).with_pubsub())
            .data(db.clone())
            .data(mailer.clone())
            .enable_tracing()
            .catch_panic()
            .concurrency(settings.worker.concurrency)
            .build(deliver_welcome);
        let started = std::time::Instant::now();
        let mut stop = stop_rx.clone();
        let running = welcome.run_until(async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
            Ok::<(), std::io::Error>(())
        });
        // Once asked to stop, running jobs get `worker.shutdown_timeout`; what is still held
        // then goes back to the queue for another worker, instead of waiting out the orphan
        // timeout.
        let mut stop = stop_rx.clone();
        let deadline = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(settings.worker.shutdown_timeout).await;
        };
        let result = tokio::select! {
            result = running => result,
            () = deadline => {
                match tenantkit_jobs::release_held(&db, WelcomeEmail::QUEUE, &name).await {
                    Ok(released) => tracing::warn!(released, "jobs still running at the shutdown deadline were released"),
                    Err(error) => tracing::error!(%error, "could not release held jobs; they return after the orphan timeout"),
                }
                break;
            }
        };
        if *stop_rx.borrow() {
            break;
        }
        if started.elapsed() > MAX_RESTART_DELAY {
            delay = Duration::from_secs(1); // it ran well for a while: this is a new outage
        }
        match result {
            Ok(()) => tracing::warn!("worker ended without a shutdown request; restarting"),
            Err(error) => tracing::warn!(%error, ?delay, "worker failed; restarting"),
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
    db.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
