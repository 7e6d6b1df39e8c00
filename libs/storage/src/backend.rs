//! The object store behind storage, built from configuration, and the keys objects live under.
//!
//! Keys are `t/<tenant_id>/<file_id>`: a tenant's objects share one prefix (its purge lists
//! and deletes exactly that prefix) and no user-supplied text is ever part of a key.

use std::{path::PathBuf, sync::Arc, time::Duration};

use object_store::{
    ClientOptions, ObjectStore,
    aws::{AmazonS3, AmazonS3Builder},
    local::LocalFileSystem,
    path::Path,
};
use secrecy::ExposeSecret;
use tenantkit_config::{S3Settings, StorageBackend};
use tenantkit_kernel::TenantId;

use crate::{FileId, StorageError};

pub(crate) fn object_key(tenant: TenantId, file: FileId) -> Path {
    Path::from(format!("t/{tenant}/{file}"))
}

pub(crate) fn tenant_prefix(tenant: TenantId) -> Path {
    Path::from(format!("t/{tenant}"))
}

/// The configured store, and what only S3 offers: presigned URLs and stored response headers.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) s3: Option<Arc<AmazonS3>>,
    /// The local backend's folder, for removing what object_store leaves behind there.
    pub(crate) local_root: Option<PathBuf>,
}

impl Backend {
    pub(crate) fn build(settings: &StorageBackend) -> Result<Self, StorageError> {
        match settings {
            StorageBackend::Local { root } => {
                // object_store wants the folder to exist (it resolves it to an absolute path).
                std::fs::create_dir_all(root).map_err(|source| {
                    StorageError::Backend(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(source),
                    })
                })?;
                let store = LocalFileSystem::new_with_prefix(root)
                    .map_err(StorageError::Backend)?
                    // Removing a tenant's last file also removes its emptied folder.
                    .with_automatic_cleanup(true);
                Ok(Self {
                    store: Arc::new(store),
                    s3: None,
                    local_root: Some(std::fs::canonicalize(root).unwrap_or_else(|_| root.clone())),
                })
            }
            StorageBackend::S3(s3) => {
                let store = Arc::new(amazon_s3(s3)?);
                Ok(Self {
                    store: store.clone(),
                    s3: Some(store),
                    local_root: None,
                })
            }
        }
    }
}

fn amazon_s3(settings: &S3Settings) -> Result<AmazonS3, StorageError> {
    let mut builder = match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(key_id), Some(secret)) => AmazonS3Builder::new()
            .with_access_key_id(key_id.expose_secret())
            .with_secret_access_key(secret.expose_secret()),
        // No keys: the credential chain of the environment (AWS_* variables, a pod's web
        // identity token, container or instance metadata).
        _ => AmazonS3Builder::from_env(),
    };
    builder = builder
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                // A download streams to the client at the client's pace, and reqwest's timeout
                // covers the whole body: a slow reader of a large file would be cut off.
                .with_timeout_disabled()
                .with_allow_http(
                    settings
                        .endpoint
                        .as_ref()
                        .is_some_and(|url| url.scheme() == "http"),
                ),
        );
    match (&settings.endpoint, settings.force_path_style) {
        (Some(endpoint), true) => {
            builder = builder
                .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                .with_virtual_hosted_style_request(false);
        }
        (Some(endpoint), false) => {
            // object_store takes a virtual-hosted endpoint with the bucket already in the host.
            let mut hosted = endpoint.clone();
            let host = format!(
                "{}.{}",
                settings.bucket,
                endpoint.host_str().unwrap_or_default()
            );
            hosted
                .set_host(Some(&host))
                .map_err(|e| StorageError::invalid("storage.s3.endpoint", format!("{e}")))?;
            builder = builder
                .with_endpoint(hosted.as_str().trim_end_matches('/'))
                .with_virtual_hosted_style_request(true);
        }
        (None, path_style) => {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
    }
    builder.build().map_err(StorageError::Backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_tenant_and_file_ids_only() {
        let tenant = TenantId::new();
        let file = FileId::new();
        assert_eq!(
            object_key(tenant, file).as_ref(),
            format!("t/{tenant}/{file}")
        );
        assert!(object_key(tenant, file).prefix_matches(&tenant_prefix(tenant)));
        assert!(!object_key(TenantId::new(), file).prefix_matches(&tenant_prefix(tenant)));
    }
}
