//! Listing: keyset pages in each order, the folder filter, subfolders, and renaming/moving.

use tenantkit_db::TenantTx;
use tenantkit_storage::{
    FileCursor, FileName, FileQuery, FileSort, Folder, Storage, StorageError, StoredFile,
};

use crate::{Backend, Fixture, GIB, collect, random_bytes};

/// Every name, following the cursors two files at a time.
async fn names(
    storage: &Storage,
    tx: &mut TenantTx,
    sort: FileSort,
    folder: Option<&str>,
) -> Vec<String> {
    let mut query = FileQuery {
        folder: folder.map(|f| Folder::parse(f).unwrap()),
        sort,
        after: None,
        limit: 2,
    };
    let mut names = Vec::new();
    loop {
        let page = storage.list(tx, &query).await.unwrap();
        assert!(page.files.len() <= 2);
        names.extend(page.files.iter().map(|f| f.name.as_str().to_owned()));
        match page.next {
            // Cursors travel as text.
            Some(next) => query.after = Some(FileCursor::parse(&next.to_string()).unwrap()),
            None => return names,
        }
    }
}

pub async fn listings_page_sort_filter_and_move(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let tenant = fx.tenant().await;
    for (folder, name, size) in [
        ("/", "b.txt", 300),
        ("/", "a.txt", 100),
        ("/docs", "c.txt", 200),
        ("/docs/2026", "d.txt", 500),
        ("/", "e.txt", 400),
    ] {
        fx.upload(tenant, folder, name, &random_bytes(size, size as u64), GIB)
            .await
            .unwrap();
    }
    let mut tx = fx.db.app.tenant(tenant).await.unwrap();
    let storage = &fx.storage;
    assert_eq!(
        names(storage, &mut tx, FileSort::Name, None).await,
        ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    );
    assert_eq!(
        names(storage, &mut tx, FileSort::Newest, None).await,
        ["e.txt", "d.txt", "c.txt", "a.txt", "b.txt"]
    );
    assert_eq!(
        names(storage, &mut tx, FileSort::Size, None).await,
        ["d.txt", "e.txt", "b.txt", "c.txt", "a.txt"]
    );
    assert_eq!(
        names(storage, &mut tx, FileSort::Name, Some("/")).await,
        ["a.txt", "b.txt", "e.txt"]
    );
    assert_eq!(
        names(storage, &mut tx, FileSort::Size, Some("/docs")).await,
        ["c.txt"]
    );
    assert_eq!(
        names(storage, &mut tx, FileSort::Newest, Some("/none")).await,
        Vec::<String>::new()
    );

    let folders = |list: Vec<Folder>| {
        list.iter()
            .map(|f| f.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        folders(storage.subfolders(&mut tx, &Folder::root()).await.unwrap()),
        ["/docs"]
    );
    let docs = Folder::parse("/docs").unwrap();
    assert_eq!(
        folders(storage.subfolders(&mut tx, &docs).await.unwrap()),
        ["/docs/2026"]
    );

    // A cursor is bound to its order.
    let first = storage
        .list(
            &mut tx,
            &FileQuery {
                limit: 1,
                ..FileQuery::default()
            },
        )
        .await
        .unwrap();
    let by_size = FileQuery {
        sort: FileSort::Size,
        after: first.next.clone(),
        ..FileQuery::default()
    };
    let refused = storage.list(&mut tx, &by_size).await;
    assert!(matches!(
        refused,
        Err(StorageError::Invalid {
            field: "cursor",
            ..
        })
    ));

    // Renaming onto a taken name is a conflict; moving changes metadata only.
    let c = first_named(storage, &mut tx, "c.txt").await;
    let taken = storage
        .rename(
            &mut tx,
            c.id,
            &FileName::parse("a.txt").unwrap(),
            &Folder::root(),
        )
        .await;
    assert!(matches!(taken, Err(StorageError::Conflict(_))));
    // The failed statement ended the transaction's usefulness: start again.
    drop(tx);
    let mut tx = fx.db.app.tenant(tenant).await.unwrap();
    let archive = Folder::parse("archive/").unwrap();
    let moved = storage
        .rename(&mut tx, c.id, &FileName::parse("c2.txt").unwrap(), &archive)
        .await
        .unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.folder.as_str()),
        ("c2.txt", "/archive")
    );
    assert!(moved.updated_at >= c.updated_at);
    assert_eq!(
        folders(storage.subfolders(&mut tx, &Folder::root()).await.unwrap()),
        ["/archive", "/docs"]
    );
    tx.commit().await.unwrap();
    let (_, bytes) = storage.open(&fx.db.app, tenant, c.id, None).await.unwrap();
    assert_eq!(collect(bytes).await, random_bytes(200, 200));
}

async fn first_named(storage: &Storage, tx: &mut TenantTx, name: &str) -> StoredFile {
    let page = storage
        .list(
            tx,
            &FileQuery {
                limit: 100,
                ..FileQuery::default()
            },
        )
        .await
        .unwrap();
    page.files
        .into_iter()
        .find(|f| f.name.as_str() == name)
        .unwrap()
}
