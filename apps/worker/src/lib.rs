//! Worker wiring, a library so tests run the very worker production runs.

use std::{future::Future, time::Duration};

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use tenantkit_accounts::{
    emails::{AccountEmail, EmailSettings, deliver_account_email},
    links::Links,
};
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tenantkit_jobs::Job;
use tenantkit_notifications::Mailer;
use tenantkit_platform::purge::{PurgeTenant, run_purge};
use tenantkit_tenancy::emails::{InvitationEmail, deliver_invitation_email};
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

    let email_settings = EmailSettings {
        links: Links::new(&settings.server.public_url, &settings.secret_key),
        retry_base: settings.worker.retry_base_delay,
    };
    let mut delay = Duration::from_secs(1);
    loop {
        let name = format!("tenantkit-worker-{}", uuid::Uuid::now_v7());
        let account_name = format!("{name}-account");
        let invitation_name = format!("{name}-invitation");
        let purge_name = format!("{name}-purge");
        tracing::info!(worker = %name, "worker starting");
        // One consumer per queue. When any ends (its backend failed), the others are told to
        // stop too, and they restart together.
        let (ended_tx, ended_rx) = watch::channel(false);
        let stop_when = |global: watch::Receiver<bool>, sibling: watch::Receiver<bool>| async move {
            let (mut global, mut sibling) = (global, sibling);
            tokio::select! {
                _ = global.wait_for(|stopping| *stopping) => {}
                _ = sibling.wait_for(|ended| *ended) => {}
            }
            Ok::<(), std::io::Error>(())
        };
        let account = WorkerBuilder::new(account_name.as_str())
            .backend(tenantkit_jobs::storage::<AccountEmail>(&db).with_pubsub())
            .data(db.clone())
            .data(mailer.clone())
            .data(email_settings.clone())
            .enable_tracing()
            .catch_panic()
            .concurrency(settings.worker.concurrency)
            .build(deliver_account_email);
        let invitation = WorkerBuilder::new(invitation_name.as_str())
            .backend(tenantkit_jobs::storage::<InvitationEmail>(&db).with_pubsub())
            .data(db.clone())
            .data(mailer.clone())
            .data(email_settings.clone())
            .enable_tracing()
            .catch_panic()
            .concurrency(settings.worker.concurrency)
            .build(deliver_invitation_email);
        let purge = WorkerBuilder::new(purge_name.as_str())
            .backend(tenantkit_jobs::storage::<PurgeTenant>(&db).with_pubsub())
            .data(db.clone())
            .enable_tracing()
            .catch_panic()
            .concurrency(1)
            .build(run_purge);
        let started = std::time::Instant::now();
        let running = async {
            let account = async {
                let result = account
                    .run_until(stop_when(stop_rx.clone(), ended_rx.clone()))
                    .await;
                let _ = ended_tx.send(true);
                result
            };
            let invitation = async {
                let result = invitation
                    .run_until(stop_when(stop_rx.clone(), ended_rx.clone()))
                    .await;
                let _ = ended_tx.send(true);
                result
            };
            let purge = async {
                let result = purge
                    .run_until(stop_when(stop_rx.clone(), ended_rx.clone()))
                    .await;
                let _ = ended_tx.send(true);
                result
            };
            let (account, invitation, purge) = tokio::join!(account, invitation, purge);
            account.and(invitation).and(purge)
        };
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
                for (queue, worker) in [
                    (AccountEmail::QUEUE, &account_name),
                    (InvitationEmail::QUEUE, &invitation_name),
                    (PurgeTenant::QUEUE, &purge_name),
                ] {
                    match tenantkit_jobs::release_held(&db, queue, worker).await {
                        Ok(released) => tracing::warn!(released, queue, "jobs still running at the shutdown deadline were released"),
                        Err(error) => tracing::error!(%error, queue, "could not release held jobs; they return after the orphan timeout"),
                    }
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
