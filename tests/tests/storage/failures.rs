//! Uploads that fail — too large, over quota, a broken body, a cancelled request, a name
//! taken, a process that died, malware — leave no row, no object and no reservation.

use std::{io, path::Path, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use tenantkit_kernel::TenantId;
use tenantkit_storage::{ScanError, StorageError, Usage};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::UnixListener,
};

use crate::{Backend, Fixture, GIB, MIB, chunked, new_file, random_bytes};

async fn assert_nothing_left(fx: &Fixture, tenant: TenantId, what: &str) {
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(usage, Usage::default(), "{what}: usage");
    assert_eq!((pending, files), (0, 0), "{what}: pending records and rows");
    assert_eq!(fx.objects().await, Vec::<String>::new(), "{what}: objects");
}

/// `data`, then a failure, as a body whose client went away.
fn failing_after(data: Vec<u8>) -> futures::stream::BoxStream<'static, Result<Bytes, io::Error>> {
    chunked(data, 256 * 1024)
        .chain(futures::stream::once(async {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            ))
        }))
        .boxed()
}

pub async fn failed_uploads_leave_nothing_behind(backend: Backend) {
    let fx = Fixture::with(backend, |s| s.max_file_bytes = 12 * MIB as u64).await;
    let tenant = fx.tenant().await;
    let upload = async |data: futures::stream::BoxStream<'static, Result<Bytes, io::Error>>,
                        quota: u64| {
        fx.storage
            .upload(
                &fx.db.app,
                tenant,
                None,
                &new_file("/", "f.bin"),
                quota,
                data,
            )
            .await
    };

    // Passes the maximum in its second part, when the first is already in the store.
    let too_large = upload(chunked(random_bytes(13 * MIB, 1), 100_000), GIB).await;
    assert!(matches!(too_large, Err(StorageError::TooLarge { max }) if max == 12 * MIB as u64));
    assert_nothing_left(&fx, tenant, "too large").await;

    // The first 8 MiB part fits the quota, the rest does not.
    let over_quota = upload(chunked(random_bytes(10 * MIB, 2), 100_000), 9 * MIB as u64).await;
    assert!(matches!(
        over_quota,
        Err(StorageError::QuotaExceeded { .. })
    ));
    assert_nothing_left(&fx, tenant, "over quota").await;

    // Small and whole-file-at-once over quota too.
    let small = upload(chunked(vec![1; 1_000], 100), 999).await;
    assert!(matches!(
        small,
        Err(StorageError::QuotaExceeded { quota: 999 })
    ));
    assert_nothing_left(&fx, tenant, "small over quota").await;

    // The body breaks after a part was sent.
    let broken = upload(failing_after(random_bytes(9 * MIB, 3)), GIB).await;
    assert!(
        matches!(broken, Err(StorageError::Body(_))),
        "{:?}",
        broken.err()
    );
    assert_nothing_left(&fx, tenant, "broken body").await;

    // A taken name is refused before the body is read, and the first file stays whole.
    let first = upload(chunked(b"first".to_vec(), 2), GIB).await.unwrap();
    let again = upload(chunked(b"second".to_vec(), 2), GIB).await;
    assert!(matches!(again, Err(StorageError::Conflict(_))));
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes, pending, files),
        (5, 0, 0, 1)
    );
    assert_eq!(fx.objects().await, [format!("t/{tenant}/{}", first.id)]);
}

pub async fn a_cancelled_upload_is_cleaned_up_in_the_background(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    // 9 MiB, then the client stalls forever; the request is then dropped (as when the
    // connection closes), with the first part already in the store.
    let body = chunked(random_bytes(9 * MIB, 4), 256 * 1024)
        .chain(futures::stream::pending())
        .boxed();
    let storage = fx.storage.clone();
    let db = fx.db.app.clone();
    let request = tokio::spawn(async move {
        storage
            .upload(&db, tenant, None, &new_file("/", "stalled.bin"), GIB, body)
            .await
    });
    let mut waited = 0;
    while fx.bookkeeping(tenant).await.0.reserved_bytes < 8 * MIB as u64 {
        assert!(waited < 300, "the first part was never reserved");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    for _ in 0..100 {
        let (usage, pending, _) = fx.bookkeeping(tenant).await;
        if usage == Usage::default() && pending == 0 && fx.objects().await.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_nothing_left(&fx, tenant, "cancelled").await;
}

pub async fn abandoned_uploads_are_swept(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    // A process that died after writing its object, before committing its row: the object,
    // the record and the reservation remain. Made from a real upload, undone in SQL.
    let file = fx
        .upload(tenant, "/", "orphan.bin", &random_bytes(70_000, 5), GIB)
        .await
        .unwrap();
    let id = file.id.as_uuid();
    for statement in [
        "delete from files where tenant_id = $1 and id = $2",
        "insert into storage_pending_objects (tenant_id, file_id, reserved_bytes, sweep_after)
         values ($1, $2, 70000, now() - interval '1 second')",
        "update storage_usage set used_bytes = 0, reserved_bytes = 70000 where tenant_id = $1 and $2::uuid is not null",
    ] {
        sqlx::query(statement)
            .bind(tenant.as_uuid())
            .bind(id)
            .execute(&fx.db.owner)
            .await
            .unwrap();
    }
    // A live upload's record (its grace not over) is left alone.
    sqlx::query(
        "insert into storage_pending_objects (tenant_id, file_id, reserved_bytes, sweep_after)
         values ($1, gen_random_uuid(), 0, now() + interval '1 hour')",
    )
    .bind(tenant.as_uuid())
    .execute(&fx.db.owner)
    .await
    .unwrap();

    let swept = fx.storage.sweep(&fx.db.app, tenant).await.unwrap();
    assert_eq!((swept.objects, swept.released_bytes), (1, 70_000));
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!((usage, pending, files), (Usage::default(), 1, 0));
    assert!(fx.objects().await.is_empty());
    // Nothing more to do the second time.
    assert_eq!(
        fx.storage.sweep(&fx.db.app, tenant).await.unwrap().objects,
        0
    );
}

/// A clamd that speaks INSTREAM and finds anything containing `EICAR`.
async fn fake_clamd(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut command = [0u8; 10];
                conn.read_exact(&mut command).await.unwrap();
                assert_eq!(&command, b"zINSTREAM\0");
                let mut data = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    conn.read_exact(&mut len).await.unwrap();
                    let len = u32::from_be_bytes(len) as usize;
                    if len == 0 {
                        break;
                    }
                    let mut chunk = vec![0u8; len];
                    conn.read_exact(&mut chunk).await.unwrap();
                    data.extend(chunk);
                }
                let found = data.windows(5).any(|w| w == b"EICAR");
                let reply: &[u8] = if found {
                    b"stream: Eicar-Test-Signature FOUND\0"
                } else {
                    b"stream: OK\0"
                };
                conn.write_all(reply).await.unwrap();
            });
        }
    });
}

pub async fn infected_uploads_are_refused(backend: Backend) {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("clamd.sock");
    fake_clamd(&socket).await;
    let fx = Fixture::with(backend, |s| {
        s.clamav_socket = Some(socket.to_str().unwrap().to_owned());
    })
    .await;
    let tenant = fx.tenant().await;
    let clean = fx
        .upload(tenant, "/", "clean.txt", b"hello", GIB)
        .await
        .unwrap();
    let eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    let mut infected = random_bytes(9 * MIB, 6);
    infected.extend_from_slice(eicar);
    for data in [eicar.to_vec(), infected] {
        let refused = fx.upload(tenant, "/", "invoice.pdf", &data, GIB).await;
        match refused {
            Err(StorageError::Scan(ScanError::Infected { signature })) => {
                assert_eq!(signature, "Eicar-Test-Signature")
            }
            other => panic!("expected infected, got {other:?}"),
        }
    }
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(
        (usage.used_bytes, usage.reserved_bytes, pending, files),
        (5, 0, 0, 1)
    );
    assert_eq!(fx.objects().await, [format!("t/{tenant}/{}", clean.id)]);
    // No scanner answering: the upload is refused, never kept unscanned.
    let unreachable = fx.storage_with("other", |s| {
        s.clamav_socket = Some("/nonexistent/clamd.sock".to_owned())
    });
    let refused = unreachable
        .upload(
            &fx.db.app,
            tenant,
            None,
            &new_file("/", "x"),
            GIB,
            chunked(b"x".to_vec(), 1),
        )
        .await;
    assert!(matches!(
        refused,
        Err(StorageError::Scan(ScanError::Unavailable(_)))
    ));
    assert_eq!(fx.bookkeeping(tenant).await.0.used_bytes, 5);
}
