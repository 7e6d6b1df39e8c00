//! When a queue's consumer looks for jobs, and the liveness of a worker's consumers.
//!
//! apalis's own consumer fetches again every time its task is woken, which an idle worker is
//! all the time: ~1,700 statements/s for nine idle queues. Here one task per worker process
//! decides instead:
//! - one `LISTEN` connection (not one per queue) hears the insert trigger's notifications and
//!   wakes the queue named in each;
//! - once a second, one statement asks which queues have due jobs (a retry whose backoff
//!   ended, a deferred or scheduled job, a job released by a stopping worker) and wakes those;
//! - every heartbeat ([`Liveness`], 10 s by default), one statement marks all the process's
//!   consumers alive and one hands the jobs of consumers silent for its orphan timeout (30 s)
//!   back to the queue.
//!
//! An idle worker therefore costs about 1.2 statements/s, whatever the number of queues.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::postgres::PgListener;
use tenantkit_db::Database;
use tokio::sync::Notify;

use crate::queue_sql;

/// How often the process looks for jobs that became due without a notification.
pub const DUE_CHECK: Duration = Duration::from_secs(1);
/// The channel apalis's insert trigger notifies on.
const INSERT_CHANNEL: &str = "apalis::job::insert";

/// When a worker counts as alive (`worker.heartbeat_secs`, `worker.orphan_after_secs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// How often the process reports its consumers alive.
    pub heartbeat: Duration,
    /// Silence after which a consumer is taken for dead and its jobs return to the queue.
    pub orphan_after: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(10),
            orphan_after: Duration::from_secs(30),
        }
    }
}

/// The wake-up signals of one worker process's queues. Cheap to clone.
#[derive(Clone, Default)]
pub struct Wakeups {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    liveness: Liveness,
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    consumers: Mutex<Vec<String>>,
}

impl Wakeups {
    /// With the default [`Liveness`].
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_liveness(liveness: Liveness) -> Self {
        Self {
            inner: Arc::new(Registry {
                liveness,
                ..Registry::default()
            }),
        }
    }

    pub fn liveness(&self) -> Liveness {
        self.inner.liveness
    }

    /// The signal that wakes `queue`'s consumer. `notify_one` keeps one wake-up for a
    /// consumer that is busy, so a notification during a fetch is never lost.
    pub(crate) fn signal(&self, queue: &str) -> Arc<Notify> {
        lock(&self.inner.queues)
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    /// Adds a registered consumer (its apalis worker name) to the ones kept alive.
    pub(crate) fn consumer_started(&self, name: &str) {
        let mut consumers = lock(&self.inner.consumers);
        if !consumers.iter().any(|known| known == name) {
            consumers.push(name.to_owned());
        }
    }

    /// Stops keeping a consumer alive: one whose backend failed, replaced by a new one. The
    /// jobs it still held then return to the queue after the orphan timeout (at the latest).
    pub fn consumer_ended(&self, name: &str) {
        lock(&self.inner.consumers).retain(|known| known != name);
    }

    fn queues(&self) -> Vec<String> {
        lock(&self.inner.queues).keys().cloned().collect()
    }

    fn consumers(&self) -> Vec<String> {
        lock(&self.inner.consumers).clone()
    }

    fn wake(&self, queue: &str) {
        if let Some(signal) = lock(&self.inner.queues).get(queue) {
            signal.notify_one();
        }
    }

    /// [`Self::drive`] in the background, for as long as the returned guard lives.
    pub fn spawn(&self, db: Database) -> AbortOnDrop {
        AbortOnDrop(tokio::spawn(self.clone().drive(db)))
    }

    /// Runs until dropped: the listener, the due check, the heartbeat and the orphan sweep.
    /// Database errors are logged and retried on the next tick; they never end the loop.
    pub async fn drive(self, db: Database) {
        let listener = tokio::spawn(self.clone().listen(db.clone()));
        let _abort_listener = AbortOnDrop(listener);
        let mut due = tokio::time::interval(DUE_CHECK);
        due.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(self.inner.liveness.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => self.keep_alive(&db).await,
                _ = due.tick() => self.wake_due(&db).await,
            }
        }
    }

    async fn wake_due(&self, db: &Database) {
        let queues = self.queues();
        if queues.is_empty() {
            return;
        }
        match sqlx::query_scalar::<_, String>(queue_sql::QUEUES_WITH_DUE_JOBS)
            .bind(&queues)
            .fetch_all(db.infrastructure_pool())
            .await
        {
            Ok(due) => due.iter().for_each(|queue| self.wake(queue)),
            Err(error) => tracing::warn!(%error, "cannot look for due jobs"),
        }
    }

    async fn keep_alive(&self, db: &Database) {
        let consumers = self.consumers();
        if !consumers.is_empty()
            && let Err(error) = sqlx::query(queue_sql::KEEP_ALIVE)
                .bind(&consumers)
                .execute(db.infrastructure_pool())
                .await
        {
            tracing::warn!(%error, "cannot report the worker alive");
        }
        let queues = self.queues();
        if queues.is_empty() {
            return;
        }
        match sqlx::query(queue_sql::REENQUEUE_ORPHANED)
            .bind(&queues)
            .bind(self.inner.liveness.orphan_after.as_secs_f64())
            .execute(db.infrastructure_pool())
            .await
        {
            Ok(done) if done.rows_affected() > 0 => {
                tracing::warn!(
                    jobs = done.rows_affected(),
                    "jobs of a silent worker returned to the queue"
                );
                queues.iter().for_each(|queue| self.wake(queue));
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot look for orphaned jobs"),
        }
    }

    /// Wakes each queue an inserted job names. While the connection is down the due check
    /// still finds new jobs, within a second.
    async fn listen(self, db: Database) {
        let mut delay = Duration::from_secs(1);
        loop {
            match self.listen_once(&db).await {
                Ok(()) => delay = Duration::from_secs(1),
                Err(error) => {
                    tracing::warn!(%error, ?delay, "job notifications lost; listening again");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    async fn listen_once(&self, db: &Database) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(db.infrastructure_pool()).await?;
        // Jobs inserted while no one listened are found by the due check.
        listener.listen(INSERT_CHANNEL).await?;
        loop {
            let notification = listener.recv().await?;
            match serde_json::from_str::<Inserted>(notification.payload()) {
                Ok(inserted) => self.wake(&inserted.job_type),
                Err(error) => tracing::debug!(%error, "unreadable job notification"),
            }
        }
    }
}

/// The part of the insert trigger's payload that matters here.
#[derive(serde::Deserialize)]
struct Inserted {
    job_type: String,
}

/// Ends a background task when its owner ends.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing here can leave the data half-changed: a panic elsewhere does not poison it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
