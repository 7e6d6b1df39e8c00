//! Worker wiring, a library so tests run the very worker production runs.

use std::{future::Future, pin::Pin, time::Duration};

use apalis::prelude::{WorkerBuilder, WorkerBuilderExt};
use tenantkit_accounts::{
    emails::{AccountEmail, EmailSettings, deliver_account_email},
    links::Links,
};
use tenantkit_billing::{
    Billing,
    emails::{BillingEmail, deliver_billing_email},
    jobs::{
        BillingJobContext, CancelSubscription, EnforceGracePeriod, ProcessStripeEvent, SyncSeats,
        run_cancellation, run_grace_period, run_seat_sync, run_stripe_event,
    },
};
use tenantkit_config::Settings;
use tenantkit_db::Database;
use tenantkit_jobs::{Job, Liveness, Wakeups};
use tenantkit_notifications::Mailer;
use tenantkit_platform::purge::{PurgeTenant, run_purge};
use tenantkit_storage::{
    Storage,
    jobs::{PurgeTenantFiles, run_purge_files},
};
use tenantkit_tenancy::emails::{InvitationEmail, deliver_invitation_email};
use tokio::sync::watch;

/// One queue's consumer, running until told to stop.
type Consumer<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

/// The longest pause between attempts to restart a worker whose backend failed.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// Runs until `shutdown` completes, then stops fetching and waits for running jobs.
///
/// apalis ends a worker when its backend fails (PostgreSQL restarting, say); this loop starts
/// it again (a second later while PostgreSQL is unreachable, after a growing pause otherwise),
/// so an outage delays jobs but never stops the process.
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
    let billing = BillingJobContext {
        billing: Billing::new(&settings.billing).map_err(|e| format!("billing: {e}"))?,
        public_url: settings.server.public_url.clone(),
        retry_base: settings.worker.retry_base_delay,
    };
    let storage = Storage::new(&settings.storage, &settings.secret_key)
        .map_err(|e| format!("storage: {e}"))?;
    // One listener, due check and heartbeat for all the queues below, however often they
    // restart.
    let wakeups = Wakeups::with_liveness(Liveness {
        heartbeat: settings.worker.heartbeat,
        orphan_after: settings.worker.orphan_after,
    });
    let batch = settings.worker.fetch_batch;
    let _drive_wakeups = wakeups.spawn(db.clone());
    let mut delay = Duration::from_secs(1);
    // Consumers of a failed round, with jobs they may still hold.
    let mut abandoned: Vec<(&'static str, String)> = Vec::new();
    loop {
        abandoned = release_abandoned(&db, abandoned).await;
        let name = format!("tenantkit-worker-{}", uuid::Uuid::now_v7());
        tracing::info!(worker = %name, "worker starting");
        // One consumer per queue, each named after the worker and its queue (so what it holds
        // can be released by name). When any ends (its backend failed), the others are told to
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
        let consumer_name = |queue: &str| format!("{name}-{queue}");
        let mut consumers: Vec<(&'static str, String)> = Vec::new();
        let mut running: Vec<Consumer<'_>> = Vec::new();
        macro_rules! consume {
            ($job:ty, $handler:expr, $concurrency:expr $(, $data:expr)*) => {{
                let worker_name = consumer_name(<$job as Job>::QUEUE);
                let worker = WorkerBuilder::new(worker_name.as_str())
                    .backend(tenantkit_jobs::consumer::<$job>(&db, &wakeups, batch))
                    .data(db.clone())
                    $(.data($data.clone()))*
                    .enable_tracing()
                    .catch_panic()
                    .concurrency($concurrency)
                    .build($handler);
                let (stop, ended, ended_tx) = (stop_rx.clone(), ended_rx.clone(), ended_tx.clone());
                running.push(Box::pin(async move {
                    let result = worker.run_until(stop_when(stop, ended)).await;
                    let _ = ended_tx.send(true);
                    result.map_err(|e| e.to_string())
                }));
                consumers.push((<$job as Job>::QUEUE, worker_name));
            }};
        }
        let concurrency = settings.worker.concurrency;
        consume!(
            AccountEmail,
            deliver_account_email,
            concurrency,
            mailer,
            email_settings
        );
        consume!(
            InvitationEmail,
            deliver_invitation_email,
            concurrency,
            mailer,
            email_settings
        );
        consume!(PurgeTenant, run_purge, 1);
        consume!(ProcessStripeEvent, run_stripe_event, concurrency, billing);
        consume!(SyncSeats, run_seat_sync, concurrency, billing);
        consume!(EnforceGracePeriod, run_grace_period, concurrency, billing);
        consume!(CancelSubscription, run_cancellation, concurrency, billing);
        consume!(
            BillingEmail,
            deliver_billing_email,
            concurrency,
            mailer,
            billing
        );
        consume!(PurgeTenantFiles, run_purge_files, 1, storage);
        let started = std::time::Instant::now();
        let running = async {
            futures::future::join_all(running)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, String>>()
                .map(|_| ())
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
                for (queue, worker) in &consumers {
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
        // While PostgreSQL is unreachable each round fails by itself after the acquire
        // timeout: it is tried again a second later, so the queues start within seconds of its
        // return. A failure with the database answering backs off, doubling.
        let database_down = !matches!(
            tokio::time::timeout(Duration::from_secs(1), db.ping()).await,
            Ok(Ok(()))
        );
        let pause = if database_down {
            Duration::from_secs(1)
        } else {
            delay
        };
        match result {
            Ok(()) => tracing::warn!("worker ended without a shutdown request; restarting"),
            Err(error) => {
                tracing::warn!(%error, ?pause, database_down, "worker failed; restarting")
            }
        }
        // The new round's consumers have new names. The old ones are no longer kept alive, and
        // what they held is released when the database answers again (or, failing that,
        // returned by the orphan sweep), instead of staying claimed while this process lives.
        for (queue, consumer) in consumers {
            wakeups.consumer_ended(&consumer);
            abandoned.push((queue, consumer));
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
        if !database_down {
            delay = (delay * 2).min(MAX_RESTART_DELAY);
        }
    }
    db.close().await;
    tracing::info!("worker stopped");
    Ok(())
}

/// Puts the jobs still held by the consumers of a failed round back to pending; returns the
/// consumers it could not reach the database for, to try again at the next round.
async fn release_abandoned(
    db: &Database,
    abandoned: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut pending = abandoned.into_iter();
    while let Some((queue, consumer)) = pending.next() {
        match tenantkit_jobs::release_held(db, queue, &consumer).await {
            Ok(0) => {}
            Ok(released) => {
                tracing::warn!(released, queue, "jobs of a failed consumer released");
            }
            Err(error) => {
                // The database is still away: one wait for it per round is enough.
                tracing::debug!(%error, queue, "cannot release a failed consumer's jobs yet");
                return std::iter::once((queue, consumer)).chain(pending).collect();
            }
        }
    }
    Vec::new()
}
