//! File storage settings: where the bytes go (the local filesystem, or any S3-compatible store),
//! how big a file may be, how long signed links live, and an optional ClamAV scanner.
//!
//! The Helm chart sets `TENANTKIT_STORAGE__BACKEND=s3` and `TENANTKIT_STORAGE__S3__*`, with
//! empty strings for the values it was not given (region, endpoint): an empty value counts as
//! unset here. Without keys, the S3 client takes credentials from its environment (AWS_*
//! variables, a web identity token, instance metadata), which is how pod identities work.

use std::{path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::reader::{Reader, env_name};

const GIB: u64 = 1 << 30;
/// S3's largest object.
const MAX_OBJECT_BYTES: u64 = 5 * 1024 * GIB;
/// S3 refuses presigned URLs valid for longer than seven days.
const MAX_LINK_TTL_SECS: u64 = 7 * 86_400;

#[derive(Clone, Debug)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    /// Uploads stop with "too large" as soon as they pass this many bytes.
    pub max_file_bytes: u64,
    /// How long a signed (shareable) download link stays valid.
    pub signed_link_ttl: Duration,
    /// clamd's socket (a path, or `tcp://host:port`); every upload is scanned when set.
    pub clamav_socket: Option<String>,
}

#[derive(Clone, Debug)]
pub enum StorageBackend {
    /// Files under a folder of this machine: development and single-machine deployments.
    Local {
        root: PathBuf,
    },
    S3(S3Settings),
}

#[derive(Clone, Debug)]
pub struct S3Settings {
    pub bucket: String,
    /// `us-east-1` when not set (what most S3-compatible servers accept).
    pub region: String,
    /// For S3-compatible servers (MinIO, R2, ...); `None` for AWS itself.
    pub endpoint: Option<Url>,
    /// `bucket` in the path (`https://host/bucket/key`) instead of the host name.
    pub force_path_style: bool,
    /// Both or neither: without them the client's own credential chain applies.
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
}

impl StorageSettings {
    pub fn is_s3(&self) -> bool {
        matches!(self.backend, StorageBackend::S3(_))
    }
}

impl Default for StorageSettings {
    /// Local files under `.dev/files`, 5 GiB per file, links for an hour, no scanner.
    fn default() -> Self {
        Self {
            backend: StorageBackend::Local {
                root: PathBuf::from(DEFAULT_LOCAL_ROOT),
            },
            max_file_bytes: 5 * GIB,
            signed_link_ttl: Duration::from_secs(3600),
            clamav_socket: None,
        }
    }
}

const DEFAULT_LOCAL_ROOT: &str = ".dev/files";

/// A text value, with an empty one read as unset.
fn non_empty(r: &mut Reader, key: &str) -> Option<String> {
    r.optional::<String>(key)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn non_empty_secret(r: &mut Reader, key: &str) -> Option<SecretString> {
    r.secret(key)
        .filter(|secret| !secret.expose_secret().trim().is_empty())
}

pub(crate) fn read(r: &mut Reader) -> StorageSettings {
    let defaults = StorageSettings::default();
    let backend_name = non_empty(r, "storage.backend").unwrap_or_else(|| "local".to_owned());
    let max_file_bytes = r.or("storage.max_file_bytes", defaults.max_file_bytes);
    let ttl_secs = r.or("storage.signed_link_ttl_secs", 3600u64);
    let clamav_socket = non_empty(r, "storage.clamav_socket");

    let backend = match backend_name.as_str() {
        "local" => {
            let root =
                non_empty(r, "storage.local.root").unwrap_or_else(|| DEFAULT_LOCAL_ROOT.to_owned());
            StorageBackend::Local {
                root: PathBuf::from(root),
            }
        }
        "s3" => StorageBackend::S3(read_s3(r)),
        other => {
            r.problems.push(format!(
                "storage.backend (env {}): {other:?} is not local or s3",
                env_name("storage.backend")
            ));
            defaults.backend
        }
    };

    if max_file_bytes == 0 || max_file_bytes > MAX_OBJECT_BYTES {
        r.problems.push(format!(
            "storage.max_file_bytes must be between 1 and {MAX_OBJECT_BYTES} (5 TiB, S3's largest object)"
        ));
    }
    if !(1..=MAX_LINK_TTL_SECS).contains(&ttl_secs) {
        r.problems.push(format!(
            "storage.signed_link_ttl_secs must be between 1 and {MAX_LINK_TTL_SECS} (7 days, S3's longest)"
        ));
    }
    StorageSettings {
        backend,
        max_file_bytes,
        signed_link_ttl: Duration::from_secs(ttl_secs),
        clamav_socket,
    }
}

fn read_s3(r: &mut Reader) -> S3Settings {
    let bucket = non_empty(r, "storage.s3.bucket");
    let region = non_empty(r, "storage.s3.region").unwrap_or_else(|| "us-east-1".to_owned());
    let endpoint = non_empty(r, "storage.s3.endpoint").and_then(|text| match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
        _ => {
            r.problems.push(format!(
                "storage.s3.endpoint (env {}): {text:?} is not an http(s) URL",
                env_name("storage.s3.endpoint")
            ));
            None
        }
    });
    let force_path_style = r.or("storage.s3.force_path_style", false);
    let access_key_id = non_empty_secret(r, "storage.s3.access_key_id");
    let secret_access_key = non_empty_secret(r, "storage.s3.secret_access_key");

    if bucket.is_none() {
        r.problems.push(format!(
            "storage.s3.bucket is missing: the s3 backend needs it (set {})",
            env_name("storage.s3.bucket")
        ));
    }
    if access_key_id.is_some() != secret_access_key.is_some() {
        r.problems.push(format!(
            "storage.s3.access_key_id and storage.s3.secret_access_key go together: set both \
             ({} and {}, or their _FILE forms) or neither",
            env_name("storage.s3.access_key_id"),
            env_name("storage.s3.secret_access_key")
        ));
    }
    S3Settings {
        bucket: bucket.unwrap_or_default(),
        region,
        endpoint,
        force_path_style,
        access_key_id,
        secret_access_key,
    }
}
