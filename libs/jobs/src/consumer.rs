//! The backend a queue's consumer runs on: apalis-postgres's queries, fetched only when there
//! may be work.
//!
//! apalis-postgres's own `PostgresStorage` runs `get_jobs` every time its task is woken, and
//! an idle worker's tasks are woken constantly. This backend is the same `Persisted` loop from
//! apalis-core over the same queries; only the fetch differs: after a fetch that did not fill
//! a batch the queue is taken as drained, and the next fetch waits for the queue's wake-up
//! ([`Wakeups`]) instead of asking the database.
//!
//! A claimed job whose payload cannot be decoded is killed here (a dead letter with the reason)
//! and never handed to apalis: apalis takes a decoding failure for a failure of the backend and
//! ends the consumer, so one such job would stop the queue at every fetch.

use std::{
    marker::PhantomData,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::{
        Backend, BackendConfig, TaskResult, WireFormatBackend,
        finalize::Durable,
        persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer},
    },
    task::status::Status,
    worker::context::WorkerContext,
};
use apalis_postgres::{Config, Error, PgTask, queries};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;
use ulid::Ulid;

use crate::{queue_sql, wakeups::Wakeups};

/// How long an idle fetch waits for a wake-up before it returns nothing. Returning lets
/// apalis's loop record the acknowledgements of jobs that finished meanwhile (it does so only
/// between fetches), so this bounds how late an acknowledgement reaches the database.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// One queue's consumer backend.
pub struct QueueBackend<Args> {
    persisted: Persisted<QueuePersistence>,
    codec: JsonCodec,
    _job: PhantomData<Args>,
}

impl<Args: DeserializeOwned> QueueBackend<Args> {
    /// A consumer of `queue` claiming up to `batch` jobs per fetch.
    pub fn new(pool: PgPool, wakeups: &Wakeups, queue: &str, batch: usize) -> Self {
        let config = Config::default()
            .queue(queue)
            .batch_size(batch.max(1))
            // The heartbeat is the process's ([`Wakeups::drive`]); apalis's loop only needs a
            // tick to do its own bookkeeping.
            .heartbeat_interval(wakeups.liveness().heartbeat);
        Self {
            persisted: Persisted::new(QueuePersistence {
                pool,
                config,
                wakeups: wakeups.clone(),
                signal: wakeups.signal(queue),
                drained: Arc::new(AtomicBool::new(false)),
                undecodable: undecodable::<Args>,
            }),
            codec: JsonCodec::default(),
            _job: PhantomData,
        }
    }
}

impl<Args> Clone for QueueBackend<Args> {
    fn clone(&self) -> Self {
        Self {
            persisted: self.persisted.clone(),
            codec: self.codec.clone(),
            _job: PhantomData,
        }
    }
}

impl<Args> Backend for QueueBackend<Args> {
    type Task = PgTask;
    type Error = Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Error>> {
        let heartbeat = self.persisted.config.heartbeat_interval;
        self.persisted.poll_ready(cx, worker, heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<PgTask, Error>>> {
        self.persisted.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Error>> {
        self.persisted.poll_close(cx, worker)
    }
}

impl<Args> BackendConfig for QueueBackend<Args> {
    type Args = Args;
    type Kind = Durable;
    type Id = Ulid;
    type Config = Config;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &Config {
        &self.persisted.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        let config = self.persisted.config.clone();
        self.persisted
            .layer(JsonCodec::<Value>::default(), config.batch_size)
            .persist_results(config.persist_results)
            .lock_tasks(config.lock_tasks)
    }
}

impl<Args> WireFormatBackend for QueueBackend<Args> {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &JsonCodec {
        &self.codec
    }
}

#[derive(Clone)]
struct QueuePersistence {
    pool: PgPool,
    config: Config,
    wakeups: Wakeups,
    signal: Arc<Notify>,
    /// The last fetch did not fill a batch: wait for a wake-up before the next. Shared,
    /// because apalis's loop runs each operation on a clone.
    drained: Arc<AtomicBool>,
    /// Why a payload cannot be decoded as the queue's job, or `None` when it can.
    undecodable: fn(&[u8]) -> Option<String>,
}

/// A finished job's result as it must be stored. apalis's panic guard (`catch_panic`) sits
/// outside the layer that records a job's outcome, so a job whose handler panicked comes back
/// still "Running": stored so, it would never run again nor count as dead. It failed.
fn settled(result: &TaskResult<Value>) -> TaskResult<Value> {
    let mut result = result.clone();
    if result.result.is_err() && matches!(result.status, Status::Running | Status::Queued) {
        result.status = Status::Failed;
    }
    result
}

/// Decodes as apalis's codec will ([`JsonCodec`]: `serde_json::from_slice`).
fn undecodable<Args: DeserializeOwned>(payload: &[u8]) -> Option<String> {
    serde_json::from_slice::<Args>(payload)
        .err()
        .map(|error| error.to_string())
}

impl Persistence for QueuePersistence {
    type Compact = Vec<u8>;
    type Error = Error;
    type Response = Value;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        sqlx::query(queue_sql::REGISTER_CONSUMER)
            .bind(worker.name())
            .bind(self.config.queue.as_ref())
            .bind(worker.get_service())
            .execute(&self.pool)
            .await?;
        self.wakeups.consumer_started(worker.name());
        Ok(())
    }

    /// Liveness is reported for the whole process by [`Wakeups::drive`].
    async fn heartbeat(&mut self, _: &WorkerContext) -> Result<(), Error> {
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<PgTask>, Error> {
        if self.drained.load(Ordering::Acquire)
            && tokio::time::timeout(IDLE_WAIT, self.signal.notified())
                .await
                .is_err()
        {
            // Nothing to fetch. apalis parks its task after an empty fetch and counts on
            // being woken; wake it now so the loop comes round (acknowledgements, shutdown)
            // and this wait starts again, without a query.
            std::future::poll_fn(|cx| {
                cx.waker().wake_by_ref();
                Poll::Ready(())
            })
            .await;
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut tasks = queries::fetch_next(&mut *tx, &self.config, worker).await?;
        let claimed = tasks.len();
        let (mut ids, mut reasons) = (Vec::new(), Vec::new());
        tasks.retain(|task| match (self.undecodable)(&task.args) {
            None => true,
            Some(reason) => {
                ids.push(task.task_id().map(ToString::to_string).unwrap_or_default());
                reasons.push(reason);
                false
            }
        });
        if !ids.is_empty() {
            sqlx::query(queue_sql::KILL_UNDECODABLE)
                .bind(&ids)
                .bind(&reasons)
                .execute(&mut *tx)
                .await?;
            tracing::error!(
                queue = self.config.queue.as_ref(),
                jobs = ?ids,
                reasons = ?reasons,
                "jobs whose payload cannot be decoded were killed (dead letters)"
            );
        }
        tx.commit().await?;
        self.drained
            .store(claimed < self.config.batch_size, Ordering::Release);
        Ok(tasks)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        worker: &WorkerContext,
    ) -> Result<(), Error> {
        let completed: Vec<TaskResult<Value>> = events
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Complete(result) => Some(settled(result)),
                _ => None,
            })
            .collect();
        let completed_ids: std::collections::HashSet<String> = completed
            .iter()
            .map(|result| result.task_id().to_string())
            .collect();
        // A job that finished in the same batch needs no "running" mark.
        let started: Vec<String> = events
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Lock { task_id, .. } => Some(task_id.to_string()),
                _ => None,
            })
            .filter(|id| !completed_ids.contains(id))
            .collect();
        if completed.is_empty() && started.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        if !completed.is_empty() {
            let results = serde_json::to_value(&completed).map_err(Error::JsonError)?;
            sqlx::query(queue_sql::ACKNOWLEDGE)
                .bind(results)
                .bind(worker.name())
                .execute(&mut *tx)
                .await?;
        }
        if !started.is_empty() {
            queries::lock_tasks(&mut *tx, &started, worker.name()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<PgTask>,
        worker: &WorkerContext,
    ) -> Result<u64, Error> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|task| task.task_id().map(|id| id.to_string()))
            .collect();
        let mut tx = self.pool.begin().await?;
        let count =
            queries::reenqueue_abandoned(&mut *tx, self.config.queue.as_ref(), worker.name(), &ids)
                .await?;
        tx.commit().await?;
        Ok(count)
    }

    async fn push_tasks(&mut self, tasks: Vec<PgTask>) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        queries::push_tasks(&mut *tx, self.config.queue.as_ref(), tasks).await?;
        tx.commit().await?;
        Ok(())
    }
}
