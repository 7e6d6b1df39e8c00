use std::io::Write;

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use secrecy::ExposeSecret;

use super::{base, problems};
use crate::{Settings, StorageBackend};

fn with(figment: Figment, pairs: &[(&str, &str)]) -> Figment {
    pairs.iter().fold(figment, |figment, (key, value)| {
        figment.merge(Serialized::default(key, *value))
    })
}

#[test]
fn the_default_is_local_files_under_dev_with_5_gib_files_and_hour_long_links() {
    let storage = Settings::load_from(base()).unwrap().storage;
    match &storage.backend {
        StorageBackend::Local { root } => assert_eq!(root.to_str(), Some(".dev/files")),
        other => panic!("expected local, got {other:?}"),
    }
    assert_eq!(storage.max_file_bytes, 5 << 30);
    assert_eq!(storage.signed_link_ttl.as_secs(), 3600);
    assert_eq!(storage.clamav_socket, None);
    assert!(!storage.is_s3());
}

#[test]
fn s3_reads_every_key_the_helm_chart_sets_with_secrets_from_files() {
    let key_file = tempfile_with("key-id", "AKIDEXAMPLE\n");
    let secret_file = tempfile_with("secret", "wJalrXUtnFEMI\n");
    let figment = with(
        base(),
        &[
            ("storage.backend", "s3"),
            ("storage.s3.bucket", "tenant-files"),
            ("storage.s3.region", "eu-west-3"),
            ("storage.s3.endpoint", "http://127.0.0.1:9000"),
            ("storage.s3.force_path_style", "true"),
            ("storage.s3.access_key_id_file", key_file.path()),
            ("storage.s3.secret_access_key_file", secret_file.path()),
            ("storage.max_file_bytes", "1048576"),
            ("storage.signed_link_ttl_secs", "60"),
            ("storage.clamav_socket", "/run/clamav/clamd.ctl"),
        ],
    );
    let storage = Settings::load_from(figment).unwrap().storage;
    let StorageBackend::S3(s3) = &storage.backend else {
        panic!("expected s3, got {:?}", storage.backend);
    };
    assert_eq!(s3.bucket, "tenant-files");
    assert_eq!(s3.region, "eu-west-3");
    assert_eq!(
        s3.endpoint.as_ref().unwrap().as_str(),
        "http://127.0.0.1:9000/"
    );
    assert!(s3.force_path_style);
    assert_eq!(
        s3.access_key_id.as_ref().unwrap().expose_secret(),
        "AKIDEXAMPLE"
    );
    assert_eq!(
        s3.secret_access_key.as_ref().unwrap().expose_secret(),
        "wJalrXUtnFEMI"
    );
    assert_eq!(storage.max_file_bytes, 1_048_576);
    assert_eq!(storage.signed_link_ttl.as_secs(), 60);
    assert_eq!(
        storage.clamav_socket.as_deref(),
        Some("/run/clamav/clamd.ctl")
    );
    // The secret never shows in Debug output.
    let debug = format!("{storage:?}");
    assert!(
        !debug.contains("wJalrXUtnFEMI") && !debug.contains("AKIDEXAMPLE"),
        "{debug}"
    );
}

#[test]
fn the_charts_empty_region_and_endpoint_mean_unset_and_no_keys_means_the_credential_chain() {
    let figment = with(
        base(),
        &[
            ("storage.backend", "s3"),
            ("storage.s3.bucket", "files"),
            ("storage.s3.region", ""),
            ("storage.s3.endpoint", ""),
            ("storage.s3.force_path_style", "false"),
        ],
    );
    let storage = Settings::load_from(figment).unwrap().storage;
    let StorageBackend::S3(s3) = storage.backend else {
        panic!("expected s3");
    };
    assert_eq!(s3.region, "us-east-1");
    assert!(s3.endpoint.is_none());
    assert!(!s3.force_path_style);
    assert!(s3.access_key_id.is_none() && s3.secret_access_key.is_none());
}

#[test]
fn storage_comes_from_a_toml_section() {
    let toml = r#"
        [storage]
        backend = "local"
        max_file_bytes = 10_485_760
        [storage.local]
        root = "/var/lib/tenantkit/files"
    "#;
    let storage = Settings::load_from(base().merge(Toml::string(toml)))
        .unwrap()
        .storage;
    match storage.backend {
        StorageBackend::Local { root } => {
            assert_eq!(root.to_str(), Some("/var/lib/tenantkit/files"))
        }
        other => panic!("expected local, got {other:?}"),
    }
    assert_eq!(storage.max_file_bytes, 10_485_760);
}

#[test]
fn every_storage_problem_is_reported_at_once() {
    let found = problems(with(
        base(),
        &[
            ("storage.backend", "s3"),
            ("storage.s3.endpoint", "ftp://files.example"),
            ("storage.s3.access_key_id", "AKID"),
            ("storage.max_file_bytes", "0"),
            ("storage.signed_link_ttl_secs", "604801"),
        ],
    ));
    for expected in [
        "storage.s3.endpoint",
        "storage.s3.bucket is missing",
        "storage.s3.access_key_id and storage.s3.secret_access_key go together",
        "storage.max_file_bytes",
        "storage.signed_link_ttl_secs",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "no problem starting with {expected:?} in {found:?}"
        );
    }
    // The key's value is never echoed.
    assert!(found.iter().all(|p| !p.contains("AKID\"")), "{found:?}");

    let unknown = problems(with(base(), &[("storage.backend", "ftp")]));
    assert!(
        unknown[0].contains("TENANTKIT_STORAGE__BACKEND"),
        "{unknown:?}"
    );
    let unreadable = problems(with(
        base(),
        &[
            ("storage.backend", "s3"),
            ("storage.s3.bucket", "files"),
            ("storage.s3.secret_access_key_file", "/nonexistent/secret"),
        ],
    ));
    assert!(
        unreadable
            .iter()
            .any(|p| p.contains("TENANTKIT_STORAGE__S3__SECRET_ACCESS_KEY_FILE")),
        "{unreadable:?}"
    );
}

/// A file holding `text`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_with(name: &str, text: &str) -> TempFile {
    let path =
        std::env::temp_dir().join(format!("tenantkit-storage-{name}-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    TempFile(path)
}
