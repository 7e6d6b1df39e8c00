//! The files API through the real server (filesystem backend): streaming upload and download,
//! ranges byte-exact, types sniffed and dangerous ones served as attachments, signed links,
//! the quota under concurrent uploads, and tenant B seeing nothing of tenant A.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenantkit_kernel::Role;
use tenantkit_tests::{
    TestApp, TestDb,
    api::{self, Org},
    settings_for,
};

/// The free plan's storage quota here: 1 MiB.
const QUOTA: u64 = 1 << 20;

async fn app_with_files() -> (TestApp, tempfile::TempDir) {
    let root = tempfile::tempdir().expect("a folder for the files");
    let db = TestDb::new().await;
    let plans = format!(r#"[{{"name": "free", "storage_quota_bytes": {QUOTA}}}]"#);
    let root_text = root.path().to_string_lossy().into_owned();
    let settings = settings_for(
        &db,
        &[
            ("storage.backend", "local"),
            ("storage.local.root", &root_text),
            ("billing.plans", &plans),
        ],
    );
    (TestApp::spawn_with(db, settings).await, root)
}

async fn upload(
    app: &TestApp,
    key: &str,
    org: &Org,
    name: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/tenants/{}/files", org.tenant)))
        .query(&[("name", name), ("folder", "/docs")])
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, key: &str, path: &str, range: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path)).bearer_auth(key);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    request.send().await.expect("request")
}

/// A small PNG: its signature is what the type is sniffed from.
fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    bytes.extend((0..len).map(|i| (i * 7 % 251) as u8));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_stream_in_and_out_byte_exact_with_ranges() {
    let (app, _root) = app_with_files().await;
    let org = api::org(&app, "Files").await;
    let key = api::key(&app, &org, Role::Member).await;
    let bytes = png(100_000);
    let (status, file) = upload(&app, &key, &org, "photo.png", bytes.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["size"], bytes.len() as u64);
    assert_eq!(file["folder"], "/docs");
    assert_eq!(file["sha256"], format!("{:x}", Sha256::digest(&bytes)));
    let content = format!(
        "/api/v1/tenants/{}/files/{}/content",
        org.tenant,
        file["id"].as_str().unwrap()
    );

    let whole = get(&app, &key, &content, None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "image/png");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.headers()["x-content-type-options"], "nosniff");
    assert!(
        whole.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline"),
        "an image may show in the page"
    );
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let len = bytes.len();
    for (range, from, to) in [
        ("bytes=0-99", 0, 100),
        ("bytes=5000-5999", 5000, 6000),
        ("bytes=-100", len - 100, len),
        ("bytes=99000-", 99000, len),
    ] {
        let part = get(&app, &key, &content, Some(range)).await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {from}-{}/{len}", to - 1).as_str(),
            "{range}"
        );
        assert_eq!(
            part.bytes().await.unwrap().as_ref(),
            &bytes[from..to],
            "{range}"
        );
    }
    for range in [format!("bytes={len}-"), "bytes=500-100".to_owned()] {
        let refused = get(&app, &key, &content, Some(&range)).await;
        assert_eq!(
            refused.status(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{range}"
        );
        assert_eq!(
            refused.headers()["content-range"],
            format!("bytes */{len}").as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_browser_could_run_is_an_attachment_and_names_are_checked() {
    let (app, _root) = app_with_files().await;
    let org = api::org(&app, "Hostile").await;
    let key = api::key(&app, &org, Role::Member).await;
    for (name, body) in [
        (
            "page.html",
            b"<!doctype html><script>alert(1)</script>".to_vec(),
        ),
        (
            "image.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>".to_vec(),
        ),
    ] {
        let (status, file) = upload(&app, &key, &org, name, body).await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        let content = format!(
            "/api/v1/tenants/{}/files/{}/content",
            org.tenant,
            file["id"].as_str().unwrap()
        );
        let served = get(&app, &key, &content, None).await;
        let disposition = served.headers()["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment"),
            "{name}: {disposition}"
        );
        assert_eq!(served.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            served.headers()["content-security-policy"],
            "sandbox; default-src 'none'"
        );
    }
    for name in ["../etc/passwd", "a/b", "..", "nul\0byte", "line\nbreak", ""] {
        let (status, problem) = upload(&app, &key, &org, name, b"x".to_vec()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}: {problem}"
        );
    }
    let (status, file) = upload(&app, &key, &org, "fine.txt", b"hello".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let (status, _) = upload(&app, &key, &org, "fine.txt", b"again".to_vec()).await;
    assert_eq!(status, StatusCode::CONFLICT, "same name, same folder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_sees_nothing_of_tenant_a_and_links_cannot_be_altered() {
    let (app, _root) = app_with_files().await;
    let a = api::org(&app, "Alpha").await;
    let a_key = api::key(&app, &a, Role::Member).await;
    let b = api::org(&app, "Beta").await;
    let b_key = api::key(&app, &b, Role::Owner).await;
    let (_, file) = upload(&app, &a_key, &a, "secret.txt", b"alpha only".to_vec()).await;
    let id = file["id"].as_str().unwrap().to_owned();

    // B's key, against A's file id under B's own tenant: 404 everywhere.
    let b_paths = [
        format!("/tenants/{}/files/{id}", b.tenant),
        format!("/tenants/{}/files/{id}/content", b.tenant),
    ];
    for path in &b_paths {
        let (status, _) = api::call(&app, &b_key, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for (method, path, body) in [
        (
            Method::DELETE,
            format!("/tenants/{}/files/{id}", b.tenant),
            None,
        ),
        (
            Method::PATCH,
            format!("/tenants/{}/files/{id}", b.tenant),
            Some(json!({ "name": "mine.txt" })),
        ),
        (
            Method::POST,
            format!("/tenants/{}/files/{id}/link", b.tenant),
            None,
        ),
    ] {
        let (status, _) = api::call(&app, &b_key, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    // …and under A's tenant: B's key is not A's.
    let (status, _) = api::call(
        &app,
        &b_key,
        Method::GET,
        &format!("/tenants/{}/files/{id}", a.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, listing) = api::call(
        &app,
        &b_key,
        Method::GET,
        &format!("/tenants/{}/files?folder=/docs", b.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listing["items"],
        json!([]),
        "B's folder shows nothing of A's"
    );

    // A's signed link works without signing in; altered, it is a 404.
    let (status, link) = api::call(
        &app,
        &a_key,
        Method::POST,
        &format!("/tenants/{}/files/{id}/link", a.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    // The link names the configured public URL; the test server listens elsewhere.
    let path = link["url"]
        .as_str()
        .unwrap()
        .split("/files/shared/")
        .nth(1)
        .unwrap();
    let url = app.url(&format!("/files/shared/{path}"));
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), b"alpha only");
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        reqwest::get(&altered).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        reqwest::get(format!("{url}x")).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_holds_under_twenty_concurrent_uploads_and_deleting_frees_it() {
    let (app, _root) = app_with_files().await;
    let org = api::org(&app, "Quota").await;
    let key = api::key(&app, &org, Role::Member).await;
    // 20 × 100 KiB = 2000 KiB against 1 MiB: at most 10 fit.
    let size = 100 * 1024;
    let results = futures::future::join_all((0..20).map(|i| {
        let (app, key, org) = (&app, &key, &org);
        async move { upload(app, key, org, &format!("part-{i}.bin"), vec![i as u8; size]).await }
    }))
    .await;
    let stored = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::PAYLOAD_TOO_LARGE)
        .count();
    assert_eq!(stored + refused, 20, "{results:?}");
    assert!(stored as u64 * size as u64 <= QUOTA, "{stored} stored");
    assert!(stored >= 1);
    let (status, usage) = api::call(
        &app,
        &key,
        Method::GET,
        &format!("/tenants/{}/storage", org.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(usage["used_bytes"], stored as u64 * size as u64, "{usage}");
    assert_eq!(usage["quota_bytes"], QUOTA);
    // Deleting one frees exactly its bytes.
    let id = results
        .iter()
        .find(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, file)| file["id"].as_str().unwrap().to_owned())
        .unwrap();
    let (status, _) = api::call(
        &app,
        &key,
        Method::DELETE,
        &format!("/tenants/{}/files/{id}", org.tenant),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, usage) = api::call(
        &app,
        &key,
        Method::GET,
        &format!("/tenants/{}/storage", org.tenant),
        None,
    )
    .await;
    assert_eq!(
        usage["used_bytes"],
        (stored as u64 - 1) * size as u64,
        "{usage}"
    );
    // Nothing is left reserved by the refused uploads.
    assert_eq!(usage["reserved_bytes"], 0, "{usage}");
}

async fn patch_chunk(
    app: &TestApp,
    key: &str,
    path: &str,
    offset: usize,
    body: reqwest::Body,
) -> reqwest::Result<reqwest::Response> {
    app.client
        .patch(app.url(path))
        .bearer_auth(key)
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
}

/// A large file sent in chunks: a connection that drops mid-chunk loses only that chunk, the
/// client asks where the upload stands and resumes; the file arrives byte-exact, and another
/// tenant can neither see nor feed the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumable_upload_resumes_after_a_dropped_connection() {
    let (app, root) = app_with_files().await;
    let org = api::org(&app, "Resume").await;
    let key = api::key(&app, &org, Role::Member).await;
    let stranger = api::org(&app, "Stranger").await;
    let stranger_key = api::key(&app, &stranger, Role::Owner).await;
    // The 1 MiB quota: a 900 KiB PNG, in chunks of 300 KiB.
    let bytes = png(900 * 1024);
    let sessions = format!("/api/v1/tenants/{}/uploads", org.tenant);
    let started = app
        .client
        .post(app.url(&sessions))
        .bearer_auth(&key)
        .json(&json!({ "name": "poster.png", "folder": "/media", "size": bytes.len() }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::CREATED);
    let session: Value = started.json().await.unwrap();
    assert_eq!(session["offset"], 0);
    let path = format!("{sessions}/{}", session["id"].as_str().unwrap());
    // The size is reserved: a second session that would pass the quota is refused.
    let (status, _) = api::call(
        &app,
        &key,
        Method::POST,
        &format!("/tenants/{}/uploads", org.tenant),
        Some(json!({ "name": "more.bin", "size": 200 * 1024 })),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let chunk = 300 * 1024;
    let first = patch_chunk(&app, &key, &path, 0, bytes[..chunk].to_vec().into())
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["upload-offset"], chunk.to_string().as_str());

    // The connection drops halfway through the second chunk.
    let half: Vec<u8> = bytes[chunk..chunk + chunk / 2].to_vec();
    let dropped = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(half),
        Err(std::io::Error::other("the network went away")),
    ]);
    let broken = patch_chunk(
        &app,
        &key,
        &path,
        chunk,
        reqwest::Body::wrap_stream(dropped),
    )
    .await;
    assert!(
        broken.is_err() || broken.as_ref().unwrap().status().is_client_error(),
        "{broken:?}"
    );
    // Where does it stand? Still after the first chunk (the broken one is let go at once or
    // by the cancelled request's clean-up).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resumed = patch_chunk(
            &app,
            &key,
            &path,
            chunk,
            bytes[chunk..2 * chunk].to_vec().into(),
        )
        .await
        .unwrap();
        if resumed.status() == StatusCode::OK {
            break;
        }
        assert_eq!(resumed.status(), StatusCode::CONFLICT, "{resumed:?}");
        assert!(tokio::time::Instant::now() < deadline, "never released");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = get(&app, &key, &path, None).await;
    assert_eq!(
        status.headers()["upload-offset"],
        (2 * chunk).to_string().as_str()
    );

    // Another tenant: 404 for the session, whatever it tries.
    assert_eq!(get(&app, &stranger_key, &path, None).await.status(), 404);
    let fed = patch_chunk(&app, &stranger_key, &path, 2 * chunk, vec![0; 10].into())
        .await
        .unwrap();
    assert_eq!(fed.status(), 404);
    let aborted = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&stranger_key)
        .send()
        .await
        .unwrap();
    assert_eq!(aborted.status(), 404);

    // A wrong offset is a conflict that says where to resume.
    let wrong = patch_chunk(&app, &key, &path, 0, vec![0; 10].into())
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    let problem: Value = wrong.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&(2 * chunk).to_string()),
        "{problem}"
    );

    let last = patch_chunk(
        &app,
        &key,
        &path,
        2 * chunk,
        bytes[2 * chunk..].to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(last.status(), StatusCode::CREATED);
    let file: Value = last.json().await.unwrap();
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["folder"], "/media");
    assert_eq!(file["sha256"], format!("{:x}", Sha256::digest(&bytes)));
    let content = get(
        &app,
        &key,
        &format!(
            "/api/v1/tenants/{}/files/{}/content",
            org.tenant,
            file["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert!(content.bytes().await.unwrap() == bytes, "byte-exact");
    assert_eq!(
        get(&app, &key, &path, None).await.status(),
        404,
        "session gone"
    );
    let (_, usage) = api::call(
        &app,
        &key,
        Method::GET,
        &format!("/tenants/{}/storage", org.tenant),
        None,
    )
    .await;
    assert_eq!(usage["used_bytes"], bytes.len());
    assert_eq!(usage["reserved_bytes"], 0);
    let uploads = root.path().join(format!("t/{}/uploads", org.tenant));
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "chunks left behind: {left:?}");
}
