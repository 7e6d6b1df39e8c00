//! Tenants: one tenant cannot find, open, change, delete or link another's files; signed links
//! work, expire and refuse alteration; purging a tenant removes its files and no one else's.

use chrono::{TimeDelta, Utc};
use tenantkit_storage::{
    FileName, FileQuery, Folder, LinkError, SignedLink, StorageError, StoredFile, jobs::FilesPurged,
};

use crate::{Backend, Fixture, GIB, collect, random_bytes};

pub async fn tenants_cannot_reach_each_others_files(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (a, b) = (fx.tenant().await, fx.tenant().await);
    let data = random_bytes(10_000, 1);
    let file = fx
        .upload(a, "/secret", "plans.bin", &data, GIB)
        .await
        .unwrap();
    let not_found = |result: Result<_, StorageError>, what: &str| {
        assert!(
            matches!(result, Err(StorageError::NotFound)),
            "{what}: B reached A's file"
        );
    };

    let mut tx = fx.db.app.tenant(b).await.unwrap();
    not_found(fx.storage.find(&mut tx, file.id).await.map(|_| ()), "find");
    let new_name = FileName::parse("mine.bin").unwrap();
    let moved = fx
        .storage
        .rename(&mut tx, file.id, &new_name, &Folder::root())
        .await;
    not_found(moved.map(|_| ()), "rename");
    let page = fx
        .storage
        .list(&mut tx, &FileQuery::default())
        .await
        .unwrap();
    assert!(page.files.is_empty(), "B lists A's files");
    let secret = Folder::parse("/secret").unwrap();
    let in_folder = FileQuery {
        folder: Some(secret),
        ..FileQuery::default()
    };
    assert!(
        fx.storage
            .list(&mut tx, &in_folder)
            .await
            .unwrap()
            .files
            .is_empty()
    );
    assert!(
        fx.storage
            .subfolders(&mut tx, &Folder::root())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fx.storage.usage(&mut tx).await.unwrap().used_bytes, 0);
    drop(tx);

    not_found(
        fx.storage
            .open(&fx.db.app, b, file.id, None)
            .await
            .map(|_| ()),
        "open",
    );
    not_found(fx.storage.delete(&fx.db.app, b, file.id).await, "delete");
    not_found(
        fx.storage
            .signed_link(b, &file, Utc::now())
            .await
            .map(|_| ()),
        "link",
    );

    // A link forged for B's tenant with A's file id still reaches nothing: the token opens in
    // B's tenant, and on S3 the key carries B's prefix.
    let forged = StoredFile {
        tenant_id: b,
        ..file.clone()
    };
    match fx
        .storage
        .signed_link(b, &forged, Utc::now())
        .await
        .unwrap()
    {
        SignedLink::Token { token, .. } => {
            let (tenant, id) = fx.storage.verify_link_token(&token, Utc::now()).unwrap();
            assert_eq!((tenant, id), (b, file.id));
            not_found(
                fx.storage
                    .open(&fx.db.app, tenant, id, None)
                    .await
                    .map(|_| ()),
                "token",
            );
        }
        SignedLink::Presigned { url, .. } => {
            assert!(
                url.path().ends_with(&format!("/t/{b}/{}", file.id)),
                "{url}"
            );
            let response = fx.http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 404, "a B-prefixed key holds nothing");
        }
    }

    // A's file is untouched.
    let (_, bytes) = fx.storage.open(&fx.db.app, a, file.id, None).await.unwrap();
    assert!(collect(bytes).await == data);
    assert_eq!(fx.bookkeeping(a).await.0.used_bytes, 10_000);
}

pub async fn signed_links_work_expire_and_refuse_alteration(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    let page = b"<!doctype html><script>steal()</script>".to_vec();
    let file = fx
        .upload(tenant, "/", "page.html", &page, GIB)
        .await
        .unwrap();
    let now = Utc::now();
    let link = fx.storage.signed_link(tenant, &file, now).await.unwrap();
    let lifetime = link.expires_at() - now;
    assert!(
        (3599..=3600).contains(&lifetime.num_seconds()),
        "{lifetime}"
    );
    match link {
        SignedLink::Token { token, .. } => {
            assert!(!fx.storage.links_are_presigned());
            let (t, id) = fx.storage.verify_link_token(&token, now).unwrap();
            let (_, bytes) = fx.storage.open(&fx.db.app, t, id, None).await.unwrap();
            assert_eq!(collect(bytes).await, page);
            // Expired: made two hours ago with a one-hour lifetime.
            let old = fx
                .storage
                .signed_link(tenant, &file, now - TimeDelta::hours(2))
                .await;
            let SignedLink::Token { token: old, .. } = old.unwrap() else {
                unreachable!()
            };
            assert_eq!(
                fx.storage.verify_link_token(&old, now),
                Err(LinkError::Expired)
            );
            // Altered anywhere: refused.
            for at in [0, 10, 30, 60, token.len() - 1] {
                let mut altered = token.clone().into_bytes();
                altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
                let altered = String::from_utf8(altered).unwrap();
                let refused = fx.storage.verify_link_token(&altered, now);
                assert!(
                    matches!(refused, Err(LinkError::BadSignature | LinkError::Malformed)),
                    "position {at}: {refused:?}"
                );
            }
            // Signed under another secret key (after a rotation): refused.
            let rotated = fx.storage_with("another-secret-key", |_| {});
            assert_eq!(
                rotated.verify_link_token(&token, now),
                Err(LinkError::BadSignature)
            );
        }
        SignedLink::Presigned { url, .. } => {
            assert!(fx.storage.links_are_presigned());
            assert!(
                url.path().ends_with(&format!("/t/{tenant}/{}", file.id)),
                "{url}"
            );
            let expires: Vec<_> = url
                .query_pairs()
                .filter(|(k, _)| k == "X-Amz-Expires")
                .collect();
            let seconds: i64 = expires[0].1.parse().unwrap();
            assert!((3590..=3600).contains(&seconds), "X-Amz-Expires={seconds}");
            assert!(url.query_pairs().any(|(k, _)| k == "X-Amz-Signature"));
            // The store serves the bytes with the headers stored at upload: HTML downloads.
            let response = fx.http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
            assert_eq!(header("content-type"), "text/html");
            assert!(
                header("content-disposition").starts_with("attachment; filename=\"page.html\"")
            );
            assert_eq!(response.bytes().await.unwrap(), page);
            // Expiry and signatures are checked by S3 itself; moto does not check them unless
            // its IAM authentication is on, so they are not proven here.
        }
    }
}

pub async fn purging_a_tenant_removes_only_its_files(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (gone, stays) = (fx.tenant().await, fx.tenant().await);
    for (folder, name) in [("/", "a.bin"), ("/docs", "b.bin"), ("/docs/2026", "c.bin")] {
        fx.upload(gone, folder, name, &random_bytes(1_000, 1), GIB)
            .await
            .unwrap();
    }
    let kept = fx
        .upload(stays, "/", "a.bin", &random_bytes(2_000, 2), GIB)
        .await
        .unwrap();

    // Not purged (still active): nothing is touched.
    assert_eq!(
        fx.storage.purge_tenant(&fx.db.app, gone).await.unwrap(),
        FilesPurged::NotPurged
    );
    assert_eq!(fx.objects().await.len(), 4);

    sqlx::query("update tenants set status = 'purged' where id = $1")
        .bind(gone.as_uuid())
        .execute(&fx.db.owner)
        .await
        .unwrap();
    let purged = fx.storage.purge_tenant(&fx.db.app, gone).await.unwrap();
    assert_eq!(
        purged,
        FilesPurged::Done {
            files: 3,
            objects: 3
        }
    );
    let (usage, pending, files) = fx.bookkeeping(gone).await;
    assert_eq!((usage.used_bytes, pending, files), (0, 0, 0));
    assert_eq!(fx.objects().await, [format!("t/{stays}/{}", kept.id)]);
    // A repeated job finds nothing left.
    let again = fx.storage.purge_tenant(&fx.db.app, gone).await.unwrap();
    assert_eq!(
        again,
        FilesPurged::Done {
            files: 0,
            objects: 0
        }
    );
    assert_eq!(fx.bookkeeping(stays).await.2, 1);
}
