//! Uploads and downloads: byte-exact round trips, ranges, the quota under concurrency, deletion
//! and content types.

use futures::{StreamExt, future::join_all};
use tenantkit_storage::{ByteRange, RangeNotSatisfiable, StorageError, Usage};

use crate::{Backend, Fixture, GIB, MIB, chunked, collect, new_file, random_bytes, sha256_hex};

pub async fn uploads_and_downloads_are_byte_exact(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let uploader = fx.user().await;
    let cases = [
        ("empty.bin", Vec::new(), "application/octet-stream"),
        ("one.txt", b"x".to_vec(), "text/plain"),
        (
            "notes.txt",
            "naïve ünïcode\n".repeat(5_000).into_bytes(),
            "text/plain",
        ),
        // Three parts on the way (8 MiB each but the last), in odd-sized chunks.
        (
            "big.bin",
            random_bytes(20 * MIB + 12_345, 1),
            "application/octet-stream",
        ),
    ];
    let mut keys = Vec::new();
    for (name, data, content_type) in &cases {
        let file = fx
            .storage
            .upload(
                &fx.db.app,
                tenant,
                Some(uploader),
                &new_file("/docs", name),
                GIB,
                chunked(data.clone(), 100_003),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(file.size, data.len() as u64, "{name}");
        assert_eq!(file.sha256, sha256_hex(data), "{name}");
        assert_eq!(file.content_type, *content_type, "{name}");
        assert_eq!(
            (file.uploader, file.folder.as_str()),
            (Some(uploader), "/docs")
        );

        let (opened, bytes) = fx
            .storage
            .open(&fx.db.app, tenant, file.id, None)
            .await
            .unwrap();
        assert_eq!(opened, file, "{name}: the metadata read back");
        let bytes = collect(bytes).await;
        assert_eq!(bytes.len(), data.len(), "{name}");
        assert!(bytes == *data, "{name}: the bytes differ");
        keys.push(format!("t/{tenant}/{}", file.id));
    }
    // Objects are keyed by tenant and file id only: no name or folder reaches the store.
    keys.sort();
    assert_eq!(fx.objects().await, keys);
    let total: u64 = cases.iter().map(|c| c.1.len() as u64).sum();
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(
        (usage, pending, files),
        (
            Usage {
                used_bytes: total,
                reserved_bytes: 0
            },
            0,
            4
        )
    );
    let mut tx = fx.db.app.tenant(tenant).await.unwrap();
    assert_eq!(fx.storage.usage(&mut tx).await.unwrap(), usage);
}

pub async fn ranges_are_byte_exact(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    // Two parts: ranges inside each and across the boundary at 8 MiB.
    let data = random_bytes(9 * MIB, 7);
    let len = data.len() as u64;
    let file = fx
        .upload(tenant, "/", "movie.bin", &data, GIB)
        .await
        .unwrap();
    let boundary = 8 * MIB as u64;
    for (header, start, end) in [
        ("bytes=0-99".to_owned(), 0, 100),
        ("bytes=40000-40999".to_owned(), 40_000, 41_000),
        (
            format!("bytes={}-{}", boundary - 10, boundary + 9),
            boundary - 10,
            boundary + 10,
        ),
        ("bytes=-500".to_owned(), len - 500, len),
        (format!("bytes={}-99999999999", len - 10), len - 10, len),
        ("bytes=0-".to_owned(), 0, len),
    ] {
        let range = ByteRange::parse(&header, len).unwrap().unwrap();
        assert_eq!(
            range.content_range(len),
            format!("bytes {start}-{}/{len}", end - 1)
        );
        let (_, bytes) = fx
            .storage
            .open(&fx.db.app, tenant, file.id, Some(range))
            .await
            .unwrap();
        let bytes = collect(bytes).await;
        assert!(
            bytes == data[start as usize..end as usize],
            "{header}: the bytes differ"
        );
    }
    // Past the end: the web answers 416 with `bytes */len`.
    for header in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 1, len + 9),
        "bytes=5-2".into(),
    ] {
        assert_eq!(
            ByteRange::parse(&header, len),
            Err(RangeNotSatisfiable { len }),
            "{header}"
        );
    }
    // A range parsed against another length is refused by `open` itself.
    let stale = ByteRange::parse(&format!("bytes={}-{}", len - 1, len + 5), len * 2)
        .unwrap()
        .unwrap();
    let refused = fx
        .storage
        .open(&fx.db.app, tenant, file.id, Some(stale))
        .await;
    assert!(
        matches!(refused, Err(StorageError::RangeNotSatisfiable(RangeNotSatisfiable { len: l })) if l == len),
        "{:?}",
        refused.err()
    );
}

pub async fn the_quota_holds_under_20_concurrent_uploads(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let quota = 1_000_000u64;
    let sizes: Vec<usize> = (0..20).map(|i| 90_000 + i * 1_000).collect();
    assert!(sizes.iter().sum::<usize>() as u64 > quota * 19 / 10);
    let uploads = sizes.iter().enumerate().map(|(i, &size)| {
        // Bodies arrive slowly, in 10 pieces, so the uploads truly overlap.
        let body = chunked(random_bytes(size, i as u64), size / 10 + 1)
            .then(|chunk| async {
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                chunk
            })
            .boxed();
        let target = new_file("/race", &format!("file-{i}.bin"));
        let storage = fx.storage.clone();
        let db = fx.db.app.clone();
        async move {
            storage
                .upload(&db, tenant, None, &target, quota, body)
                .await
        }
    });
    let results = join_all(uploads).await;
    let mut stored = 0u64;
    let mut accepted = 0;
    for result in results {
        match result {
            Ok(file) => {
                stored += file.size;
                accepted += 1;
            }
            Err(StorageError::QuotaExceeded { quota: q }) => assert_eq!(q, quota),
            Err(other) => panic!("unexpected failure: {other}"),
        }
    }
    println!("{accepted} of 20 uploads accepted: {stored} of {quota} bytes");
    assert!(
        stored <= quota,
        "{stored} bytes stored over a {quota}-byte quota"
    );
    // Nothing was lost to leaked reservations: what is left is less than any refused file.
    assert!(stored > quota - 109_000, "only {stored} bytes stored");
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(
        usage,
        Usage {
            used_bytes: stored,
            reserved_bytes: 0
        }
    );
    assert_eq!((pending, files), (0, accepted));
    let rows: i64 = sqlx::query_scalar("select sum(size)::bigint from files where tenant_id = $1")
        .bind(tenant.as_uuid())
        .fetch_one(&fx.db.owner)
        .await
        .unwrap();
    assert_eq!(rows as u64, stored, "usage equals the stored sizes");
    assert_eq!(fx.objects().await.len() as i64, accepted);
}

pub async fn deleting_frees_usage_and_the_object(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let kept = fx
        .upload(tenant, "/", "kept.bin", &random_bytes(3_000, 1), GIB)
        .await
        .unwrap();
    let gone = fx
        .upload(tenant, "/", "gone.bin", &random_bytes(5_000, 2), GIB)
        .await
        .unwrap();
    assert_eq!(fx.bookkeeping(tenant).await.0.used_bytes, 8_000);

    fx.storage
        .delete(&fx.db.app, tenant, gone.id)
        .await
        .unwrap();
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes, pending, files),
        (3_000, 0, 0, 1)
    );
    assert_eq!(fx.objects().await, [format!("t/{tenant}/{}", kept.id)]);
    let mut tx = fx.db.app.tenant(tenant).await.unwrap();
    assert!(matches!(
        fx.storage.find(&mut tx, gone.id).await,
        Err(StorageError::NotFound)
    ));
    drop(tx);
    assert!(matches!(
        fx.storage.delete(&fx.db.app, tenant, gone.id).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        fx.storage.open(&fx.db.app, tenant, gone.id, None).await,
        Err(StorageError::NotFound)
    ));
    // The name is free again.
    fx.upload(tenant, "/", "gone.bin", b"again", GIB)
        .await
        .unwrap();
}

pub async fn types_are_sniffed_and_only_harmless_ones_are_inline(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    for (name, data, content_type, inline) in [
        // The name says nothing: the bytes decide.
        (
            "photo.png",
            &b"<!doctype html><script>alert(document.cookie)</script>"[..],
            "text/html",
            false,
        ),
        (
            "logo.png",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
            "image/svg+xml",
            false,
        ),
        (
            "data.xml",
            b"<?xml version=\"1.0\"?><a/>",
            "application/xml",
            false,
        ),
        ("readme.html", b"just words\n", "text/plain", true),
        ("notes.txt", png, "image/png", true),
        (
            "report.pdf",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
            "application/pdf",
            true,
        ),
        (
            "tool.exe",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff",
            "application/vnd.microsoft.portable-executable",
            false,
        ),
    ] {
        let file = fx.upload(tenant, "/", name, data, GIB).await.unwrap();
        assert_eq!(file.content_type, content_type, "{name}");
        assert_eq!(file.inline_safe(), inline, "{name}");
        let disposition = file.content_disposition();
        let expected = if inline { "inline;" } else { "attachment;" };
        assert!(disposition.starts_with(expected), "{name}: {disposition}");
        assert!(
            disposition.contains(&format!("filename=\"{name}\"")),
            "{disposition}"
        );
    }
}

/// The process's peak resident memory so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

pub async fn large_files_stream_in_bounded_memory(backend: Backend) {
    const SIZE: usize = 256 * MIB;
    let fx = Fixture::with(backend, |s| s.max_file_bytes = GIB).await;
    let tenant = fx.tenant().await;
    // The body is made as it is sent (never whole in this process), hashed on the way.
    let sent = std::sync::Arc::new(std::sync::Mutex::new(sha2::Sha256::default()));
    let hasher = sent.clone();
    let body = futures::stream::iter(0..SIZE / (256 * 1024))
        .map(move |i| {
            let chunk = random_bytes(256 * 1024, i as u64);
            sha2::Digest::update(&mut *hasher.lock().unwrap(), &chunk);
            Ok(bytes::Bytes::from(chunk))
        })
        .boxed();
    let before = peak_rss();
    let file = fx
        .storage
        .upload(
            &fx.db.app,
            tenant,
            None,
            &new_file("/", "large.bin"),
            GIB,
            body,
        )
        .await
        .unwrap();
    let expected = format!("{:x}", sha2::Digest::finalize(sent.lock().unwrap().clone()));
    assert_eq!(
        (file.size, file.sha256.as_str()),
        (SIZE as u64, expected.as_str())
    );

    let (_, mut download) = fx
        .storage
        .open(&fx.db.app, tenant, file.id, None)
        .await
        .unwrap();
    let mut received = sha2::Sha256::default();
    let mut length = 0;
    while let Some(chunk) = download.next().await {
        let chunk = chunk.unwrap();
        length += chunk.len();
        sha2::Digest::update(&mut received, &chunk);
    }
    assert_eq!(length, SIZE);
    assert_eq!(format!("{:x}", sha2::Digest::finalize(received)), expected);
    let grown = peak_rss().saturating_sub(before);
    println!(
        "256 MiB up and down: peak resident memory grew by {} MiB",
        grown >> 20
    );
    assert!(grown < 100 << 20, "peak memory grew by {} MiB", grown >> 20);
}
