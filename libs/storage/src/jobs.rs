//! Storage's job: removing a purged tenant's files.
//!
//! | queue           | job                  | handler             |
//! |-----------------|----------------------|---------------------|
//! | `storage.purge` | [`PurgeTenantFiles`] | [`run_purge_files`] |
//!
//! The handler needs `Data<Database>` and `Data<Storage>`. The platform's tenant purge
//! enqueues the job in its own transaction (the one that marks the tenant purged), with
//! `tenantkit_jobs::enqueue(&mut tx, &PurgeTenantFiles { tenant_id })`.

use std::time::Duration;

use apalis::prelude::{Attempt, BoxDynError, Data, TaskId};
use serde::{Deserialize, Serialize};
use tenantkit_db::Database;
use tenantkit_jobs::Job;
use tenantkit_kernel::TenantId;

use crate::{Storage, StorageError, repo};

/// Deletes every file of a purged tenant: rows, usage and the objects under `t/<tenant>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeTenantFiles {
    pub tenant_id: TenantId,
}

impl Job for PurgeTenantFiles {
    const QUEUE: &'static str = "storage.purge";

    fn tenant_id(&self) -> Option<TenantId> {
        Some(self.tenant_id)
    }

    /// A tenant is purged once: its files are removed once.
    fn idempotency_key(&self) -> String {
        format!("storage-purge:{}", self.tenant_id)
    }
}

/// What a purge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilesPurged {
    Done {
        files: u64,
        objects: u64,
    },
    /// The tenant is not purged (restored, or the job was enqueued by mistake): nothing is
    /// touched. Files are destroyed only for a tenant whose purge has been decided.
    NotPurged,
}

impl Storage {
    /// Removes the purged tenant's rows first (so nothing points at an object being
    /// deleted), then every object under its prefix. Safe to repeat: a retry after a failure
    /// half-way finds fewer rows and deletes the remaining objects by prefix.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn purge_tenant(
        &self,
        db: &Database,
        tenant: TenantId,
    ) -> Result<FilesPurged, StorageError> {
        let mut tx = db.tenant(tenant).await?;
        if !repo::tenant_is_purged(&mut tx).await? {
            return Ok(FilesPurged::NotPurged);
        }
        let files = repo::purge_rows(&mut tx).await?;
        tx.commit().await?;
        let objects = self.remove_tenant_objects(tenant).await?;
        Ok(FilesPurged::Done { files, objects })
    }
}

#[tracing::instrument(skip_all, fields(tenant_id = %job.tenant_id))]
pub async fn run_purge_files(
    job: PurgeTenantFiles,
    db: Data<Database>,
    storage: Data<Storage>,
    task: Option<TaskId>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = storage
        .purge_tenant(&db, job.tenant_id)
        .await
        .map(|outcome| tracing::info!(?outcome, "tenant files purged"))
        .map_err(BoxDynError::from);
    tenantkit_jobs::back_off_on_failure(
        &db,
        task,
        attempt.current(),
        Duration::from_secs(60),
        result,
    )
    .await
}

#[cfg(test)]
mod tests {
    use apalis::prelude::WorkerBuilder;

    use super::*;

    /// Compiles only if a worker can run the handler (the data it asks for, a `Send` future):
    /// what `apps/worker` will do.
    #[allow(dead_code)]
    fn the_handler_fits_a_worker(db: Database, storage: Storage) {
        let _ = WorkerBuilder::new("storage-purge")
            .backend(tenantkit_jobs::consumer::<PurgeTenantFiles>(
                &db,
                &tenantkit_jobs::Wakeups::new(),
                10,
            ))
            .data(db.clone())
            .data(storage)
            .build(run_purge_files);
    }

    #[test]
    fn the_job_is_keyed_by_its_tenant() {
        let tenant = TenantId::new();
        let job = PurgeTenantFiles { tenant_id: tenant };
        assert_eq!(job.idempotency_key(), format!("storage-purge:{tenant}"));
        assert_eq!(job.tenant_id(), Some(tenant));
        assert_eq!(PurgeTenantFiles::QUEUE, "storage.purge");
    }
}
