//! Resumable uploads: the size reserved up front, chunks at increasing offsets, a broken chunk
//! counting for nothing, the file byte-exact at the end, and nothing left over.

use bytes::Bytes;
use futures::StreamExt;
use tenantkit_storage::{Appended, StorageError, Usage};

use crate::{Backend, Fixture, GIB, MIB, chunked, collect, new_file, random_bytes, sha256_hex};

/// A chunk that sends `good` bytes and then fails, as a dropped connection does.
fn broken(good: Vec<u8>) -> futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    futures::stream::iter(vec![
        Ok(Bytes::from(good)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the client went away",
        )),
    ])
    .boxed()
}

pub async fn resumable_uploads_resume_after_a_broken_chunk_and_leave_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let data = random_bytes(21 * MIB + 777, 7);
    let size = data.len() as u64;
    let storage = &fx.storage;
    let db = &fx.db.app;
    let session = storage
        .start_upload(db, tenant, None, &new_file("/media", "film.bin"), size, GIB)
        .await
        .unwrap();
    assert_eq!((session.received, session.chunks), (0, 0));
    assert_eq!(
        fx.bookkeeping(tenant).await.0,
        Usage {
            used_bytes: 0,
            reserved_bytes: size
        },
        "the whole size is reserved at the start"
    );
    let first = 10 * MIB;
    let appended = storage
        .append_upload(
            db,
            tenant,
            session.id,
            0,
            GIB,
            chunked(data[..first].to_vec(), 65_536),
        )
        .await
        .unwrap();
    let Appended::Partial(after_first) = appended else {
        panic!("complete after the first chunk");
    };
    assert_eq!(after_first.received, first as u64);

    // A chunk that breaks off counts for nothing; a wrong offset is refused.
    let refused = storage
        .append_upload(
            db,
            tenant,
            session.id,
            first as u64,
            GIB,
            broken(data[first..first + MIB].to_vec()),
        )
        .await;
    assert!(matches!(refused, Err(StorageError::Body(_))), "{refused:?}");
    let stood = storage.find_upload(db, tenant, session.id).await.unwrap();
    assert_eq!(stood.received, first as u64);
    let wrong = storage
        .append_upload(db, tenant, session.id, 5, GIB, chunked(vec![1, 2, 3], 3))
        .await;
    assert!(
        matches!(&wrong, Err(StorageError::Conflict(m)) if m.contains(&first.to_string())),
        "{wrong:?}"
    );
    // Past the declared size: refused, and the upload stays where it was.
    let mut too_much = data[first..].to_vec();
    too_much.push(0);
    let over = storage
        .append_upload(
            db,
            tenant,
            session.id,
            first as u64,
            GIB,
            chunked(too_much, 1 << 20),
        )
        .await;
    assert!(
        matches!(over, Err(StorageError::Invalid { .. })),
        "{over:?}"
    );

    // Resumed: the rest in two chunks, the last completes the file.
    let second = first + 9 * MIB;
    let appended = storage
        .append_upload(
            db,
            tenant,
            session.id,
            first as u64,
            GIB,
            chunked(data[first..second].to_vec(), 100_003),
        )
        .await
        .unwrap();
    assert!(matches!(appended, Appended::Partial(_)));
    let appended = storage
        .append_upload(
            db,
            tenant,
            session.id,
            second as u64,
            GIB,
            chunked(data[second..].to_vec(), 100_003),
        )
        .await
        .unwrap();
    let Appended::Complete(file) = appended else {
        panic!("the last chunk did not complete the file");
    };
    assert_eq!(
        (file.size, file.sha256.as_str()),
        (size, sha256_hex(&data).as_str())
    );
    assert_eq!(file.folder.as_str(), "/media");
    let (_, bytes) = storage.open(db, tenant, file.id, None).await.unwrap();
    assert!(collect(bytes).await == data, "the file is byte-exact");

    // The session is gone, its chunks and reservation with it.
    assert!(matches!(
        storage.find_upload(db, tenant, session.id).await,
        Err(StorageError::NotFound)
    ));
    let (usage, pending, files) = fx.bookkeeping(tenant).await;
    assert_eq!(
        (usage, pending, files),
        (
            Usage {
                used_bytes: size,
                reserved_bytes: 0
            },
            0,
            1
        )
    );
    let objects = fx.objects().await;
    assert_eq!(objects.len(), 1, "only the file's object: {objects:?}");
    assert!(!objects[0].contains("uploads"), "{objects:?}");
}

pub async fn resumable_uploads_hold_the_quota_and_abort_cleanly(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let storage = &fx.storage;
    let db = &fx.db.app;
    let quota = 10 * MIB as u64;
    let session = storage
        .start_upload(
            db,
            tenant,
            None,
            &new_file("/", "a.bin"),
            6 * MIB as u64,
            quota,
        )
        .await
        .unwrap();
    // The reservation counts against a second session and a plain upload alike.
    let second = storage
        .start_upload(
            db,
            tenant,
            None,
            &new_file("/", "b.bin"),
            5 * MIB as u64,
            quota,
        )
        .await;
    assert!(
        matches!(second, Err(StorageError::QuotaExceeded { .. })),
        "{second:?}"
    );
    let plain = storage
        .upload(
            db,
            tenant,
            None,
            &new_file("/", "c.bin"),
            quota,
            chunked(random_bytes(5 * MIB, 1), 1 << 16),
        )
        .await;
    assert!(
        matches!(plain, Err(StorageError::QuotaExceeded { .. })),
        "{plain:?}"
    );
    // The name is taken by nothing yet, but the size must be sane.
    let empty = storage
        .start_upload(db, tenant, None, &new_file("/", "e.bin"), 0, quota)
        .await;
    assert!(
        matches!(empty, Err(StorageError::Invalid { .. })),
        "{empty:?}"
    );

    // Another tenant cannot see, feed or abort it.
    assert!(matches!(
        storage.find_upload(db, other, session.id).await,
        Err(StorageError::NotFound)
    ));
    let fed = storage
        .append_upload(db, other, session.id, 0, quota, chunked(vec![1; 10], 10))
        .await;
    assert!(matches!(fed, Err(StorageError::NotFound)), "{fed:?}");
    assert!(matches!(
        storage.abort_upload(db, other, session.id).await,
        Err(StorageError::NotFound)
    ));

    storage
        .append_upload(
            db,
            tenant,
            session.id,
            0,
            quota,
            chunked(random_bytes(MIB, 2), 1 << 16),
        )
        .await
        .unwrap();
    storage.abort_upload(db, tenant, session.id).await.unwrap();
    assert_eq!(
        fx.bookkeeping(tenant).await,
        (Usage::default(), 0, 0),
        "the reservation returned, nothing pending"
    );
    assert!(fx.objects().await.is_empty(), "{:?}", fx.objects().await);
    assert!(matches!(
        storage.find_upload(db, tenant, session.id).await,
        Err(StorageError::NotFound)
    ));
}
