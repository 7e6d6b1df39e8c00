//! A 1 GiB file streams through the real server, up and down, while the process's resident
//! memory stays within 100 MB of its idle size: nothing holds a whole file.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tenantkit_kernel::Role;
use tenantkit_tests::{TestApp, TestDb, api, settings_for};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;
const LIMIT_ABOVE_IDLE: u64 = 100 << 20;

/// This process's resident set (it hosts the server), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

/// Samples the resident set every 20 ms until stopped; returns the peak.
fn watch_memory() -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let handle = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak.load(Ordering::Relaxed)
        })
    };
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_streams_up_and_down_in_bounded_memory() {
    let root = tempfile::tempdir().expect("a folder for the files");
    let db = TestDb::new().await;
    let root_text = root.path().to_string_lossy().into_owned();
    let plans = format!(
        r#"[{{"name": "free", "storage_quota_bytes": {}}}]"#,
        2 * GIB
    );
    let settings = settings_for(
        &db,
        &[
            ("storage.backend", "local"),
            ("storage.local.root", &root_text),
            ("billing.plans", &plans),
        ],
    );
    let app = TestApp::spawn_with(db, settings).await;
    let org = api::org(&app, "Big").await;
    let key = api::key(&app, &org, Role::Member).await;
    // Warm up the paths once, then take the idle size.
    let warm = app
        .client
        .post(app.url(&format!("/api/v1/tenants/{}/files", org.tenant)))
        .query(&[("name", "warm.bin")])
        .bearer_auth(&key)
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; CHUNK])
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), StatusCode::CREATED);
    let idle = resident_bytes();

    // Up: 1 GiB generated as it is sent (one 1 MiB chunk, sent 1,024 times).
    let chunk = Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut expected = Sha256::new();
    for _ in 0..(GIB as usize / CHUNK) {
        expected.update(&chunk);
    }
    let expected = format!("{:x}", expected.finalize());
    let body = futures::stream::iter((0..GIB as usize / CHUNK).map({
        let chunk = chunk.clone();
        move |_| Ok::<Bytes, std::io::Error>(chunk.clone())
    }));
    let (stop, peak) = watch_memory();
    let started = Instant::now();
    let response = app
        .client
        .post(app.url(&format!("/api/v1/tenants/{}/files", org.tenant)))
        .query(&[("name", "big.bin")])
        .bearer_auth(&key)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let up = started.elapsed();
    assert_eq!(response.status(), StatusCode::CREATED);
    let file: serde_json::Value = response.json().await.unwrap();
    assert_eq!(file["size"], GIB);
    assert_eq!(file["sha256"], expected.as_str());

    // Down: streamed and hashed as it arrives.
    let started = Instant::now();
    let response = app
        .client
        .get(app.url(&format!(
            "/api/v1/tenants/{}/files/{}/content",
            org.tenant,
            file["id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = Sha256::new();
    let mut size = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(part) = stream.next().await {
        let part = part.unwrap();
        size += part.len() as u64;
        received.update(&part);
    }
    let down = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    assert_eq!(size, GIB);
    assert_eq!(format!("{:x}", received.finalize()), expected);
    let above = peak.saturating_sub(idle);
    eprintln!(
        "1 GiB up in {up:?} ({:.0} MiB/s), down in {down:?} ({:.0} MiB/s); resident idle {} MiB, \
         peak {} MiB (+{} MiB)",
        1024.0 / up.as_secs_f64(),
        1024.0 / down.as_secs_f64(),
        idle >> 20,
        peak >> 20,
        above >> 20
    );
    assert!(
        above < LIMIT_ABOVE_IDLE,
        "resident memory rose {} MiB above idle",
        above >> 20
    );
}
