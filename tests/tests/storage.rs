//! The storage library against both of its backends: the local filesystem (in a temporary
//! folder) and a real S3-compatible server (moto, started by `scripts/test`; a bucket per
//! test). Every test runs once per backend (`local::...` and `s3::...`), each with its own
//! database. One module per area; this one holds the fixture.

use std::{io, path::PathBuf, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tenantkit_config::{S3Settings, StorageBackend, StorageSettings};
use tenantkit_kernel::{TenantId, UserId};
use tenantkit_storage::{
    ByteStream, FileName, Folder, NewFile, Storage, StorageError, StoredFile, Usage,
};
use tenantkit_tests::{TestDb, env};
use uuid::Uuid;

#[path = "storage/failures.rs"]
mod failures;
#[path = "storage/isolation.rs"]
mod isolation;
#[path = "storage/listing.rs"]
mod listing;
#[path = "storage/resumable.rs"]
mod resumable;
#[path = "storage/transfers.rs"]
mod transfers;

pub const MIB: usize = 1 << 20;
pub const GIB: u64 = 1 << 30;
const SECRET: &str = "storage-test-secret-key-0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// A database, a store of the chosen kind and the storage library on them.
pub struct Fixture {
    pub db: TestDb,
    pub storage: Storage,
    pub backend: Backend,
    pub settings: StorageSettings,
    pub http: reqwest::Client,
    /// The local backend's folder (removed with the fixture).
    _dir: Option<tempfile::TempDir>,
    root: Option<PathBuf>,
    /// The S3 bucket's URL.
    bucket_url: Option<String>,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Self {
        Self::with(backend, |_| {}).await
    }

    pub async fn with(backend: Backend, adjust: impl FnOnce(&mut StorageSettings)) -> Self {
        let db = TestDb::new().await;
        let http = reqwest::Client::new();
        let (store, dir, root, bucket_url) = match backend {
            Backend::Local => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let root = dir.path().join("files");
                let store = StorageBackend::Local { root: root.clone() };
                (store, Some(dir), Some(root), None)
            }
            Backend::S3 => {
                let endpoint = env("TENANTKIT_TEST_S3_URL");
                let bucket = format!("test-{}", Uuid::now_v7().simple());
                let bucket_url = format!("{endpoint}/{bucket}");
                let created = http.put(&bucket_url).send().await.expect("S3 server");
                assert!(created.status().is_success(), "create bucket: {created:?}");
                let store = StorageBackend::S3(S3Settings {
                    bucket,
                    region: "us-east-1".to_owned(),
                    endpoint: Some(endpoint.parse().unwrap()),
                    force_path_style: true,
                    access_key_id: Some(SecretString::from("test")),
                    secret_access_key: Some(SecretString::from("test")),
                });
                (store, None, None, Some(bucket_url))
            }
        };
        let mut settings = StorageSettings {
            backend: store,
            max_file_bytes: 64 * MIB as u64,
            signed_link_ttl: Duration::from_secs(3600),
            clamav_socket: None,
        };
        adjust(&mut settings);
        let storage = Storage::new(&settings, &SecretString::from(SECRET)).expect("storage");
        Self {
            db,
            storage,
            backend,
            settings,
            http,
            _dir: dir,
            root,
            bucket_url,
        }
    }

    /// Another storage on the same store and database, with other settings or secret.
    pub fn storage_with(&self, secret: &str, adjust: impl FnOnce(&mut StorageSettings)) -> Storage {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        Storage::new(&settings, &SecretString::from(secret)).expect("storage")
    }

    pub async fn tenant(&self) -> TenantId {
        let tenant = TenantId::new();
        sqlx::query("insert into tenants (id, slug, name) values ($1, $2, 'Files Ltd')")
            .bind(tenant.as_uuid())
            .bind(format!("t{}", tenant.as_uuid().simple()))
            .execute(&self.db.owner)
            .await
            .unwrap();
        tenant
    }

    pub async fn user(&self) -> UserId {
        let user = UserId::new();
        sqlx::query("insert into users (id, email, display_name) values ($1, $2, 'Uploader')")
            .bind(user.as_uuid())
            .bind(format!("{}@files.test", user.as_uuid().simple()))
            .execute(&self.db.owner)
            .await
            .unwrap();
        user
    }

    pub async fn upload(
        &self,
        tenant: TenantId,
        folder: &str,
        name: &str,
        data: &[u8],
        quota: u64,
    ) -> Result<StoredFile, StorageError> {
        self.storage
            .upload(
                &self.db.app,
                tenant,
                None,
                &new_file(folder, name),
                quota,
                chunked(data.to_vec(), 64 * 1024 + 7),
            )
            .await
    }

    /// Everything in the store: object keys on S3; every file under the folder on the
    /// filesystem, staging files of unfinished uploads included.
    pub async fn objects(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(root) = &self.root {
            let mut folders = vec![root.clone()];
            while let Some(folder) = folders.pop() {
                let Ok(entries) = std::fs::read_dir(&folder) else {
                    continue;
                };
                for entry in entries.map(Result::unwrap) {
                    if entry.file_type().unwrap().is_dir() {
                        folders.push(entry.path());
                    } else {
                        let relative = entry.path().strip_prefix(root).unwrap().to_owned();
                        found.push(relative.to_string_lossy().into_owned());
                    }
                }
            }
        }
        if let Some(bucket_url) = &self.bucket_url {
            let listing = self
                .http
                .get(format!("{bucket_url}?list-type=2&max-keys=1000"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            for part in listing.split("<Key>").skip(1) {
                found.push(part[..part.find("</Key>").unwrap()].to_owned());
            }
        }
        found.sort();
        found
    }

    /// The tenant's usage, its pending records and its file rows, as the owner sees them.
    pub async fn bookkeeping(&self, tenant: TenantId) -> (Usage, i64, i64) {
        let usage: Option<(i64, i64)> = sqlx::query_as(
            "select used_bytes, reserved_bytes from storage_usage where tenant_id = $1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(&self.db.owner)
        .await
        .unwrap();
        let count = |table: &str| {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "select count(*) from {table} where tenant_id = $1"
            )))
            .bind(tenant.as_uuid())
            .fetch_one(&self.db.owner)
        };
        let pending = count("storage_pending_objects").await.unwrap();
        let files = count("files").await.unwrap();
        let (used, reserved) = usage.unwrap_or_default();
        let usage = Usage {
            used_bytes: used as u64,
            reserved_bytes: reserved as u64,
        };
        (usage, pending, files)
    }
}

pub fn new_file(folder: &str, name: &str) -> NewFile {
    NewFile {
        name: FileName::parse(name).unwrap(),
        folder: Folder::parse(folder).unwrap(),
    }
}

/// `data` as a request body arrives: in chunks of `size` bytes.
pub fn chunked(data: Vec<u8>, size: usize) -> BoxStream<'static, Result<Bytes, io::Error>> {
    let data = Bytes::from(data);
    let chunks: Vec<_> = (0..data.len())
        .step_by(size)
        .map(|at| Ok(data.slice(at..(at + size).min(data.len()))))
        .collect();
    futures::stream::iter(chunks).boxed()
}

pub async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("a download chunk"));
    }
    bytes
}

/// Bytes that look like nothing in particular (deterministic per seed).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Each listed test once per backend: `local::<name>` and `s3::<name>`.
macro_rules! on_both_backends {
    ($($module:ident::$name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$module::$name(crate::Backend::Local).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::$module::$name(crate::Backend::S3).await
                }
            )*
        }
    };
}

on_both_backends!(
    transfers::uploads_and_downloads_are_byte_exact,
    transfers::ranges_are_byte_exact,
    transfers::large_files_stream_in_bounded_memory,
    transfers::the_quota_holds_under_20_concurrent_uploads,
    transfers::deleting_frees_usage_and_the_object,
    transfers::types_are_sniffed_and_only_harmless_ones_are_inline,
    failures::failed_uploads_leave_nothing_behind,
    failures::a_cancelled_upload_is_cleaned_up_in_the_background,
    failures::abandoned_uploads_are_swept,
    failures::infected_uploads_are_refused,
    isolation::tenants_cannot_reach_each_others_files,
    isolation::signed_links_work_expire_and_refuse_alteration,
    isolation::purging_a_tenant_removes_only_its_files,
    listing::listings_page_sort_filter_and_move,
    resumable::resumable_uploads_resume_after_a_broken_chunk_and_leave_nothing,
    resumable::resumable_uploads_hold_the_quota_and_abort_cleanly,
);
