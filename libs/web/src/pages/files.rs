//! The files page of the active organisation: what its files use of the storage quota, the
//! files of one folder (images previewed, audio and video played in the page), downloads,
//! deletes and uploads. Uploads are `multipart/form-data` forms that work without JavaScript;
//! with it, `/static/files.js` sends them itself to show their progress. The file part is
//! streamed to the store, never held whole.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use askama::Template;
use bytes::Bytes;
use futures::Stream;
use poem::{
    Body, FromRequest, IntoResponse, Request, RequestBody, Response, handler,
    http::StatusCode,
    web::{Form, Multipart, Path, Query},
};
use serde::Deserialize;
use tenantkit_kernel::TenantId;
use tenantkit_storage::{
    FileId, FileName, FileQuery, FileSort, Folder, NewFile, ScanError, StorageError, StoredFile,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use uuid::Uuid;

use super::{DoneQuery, Layout, PageError, page_with_status, part_head_limit, redirect};
use crate::browser::{Browser, SignedIn};

/// The most files the page lists in a folder.
const PAGE_SIZE: u32 = 200;

/// How much of a text field (the token, the folder) is read at most.
const MAX_TEXT_FIELD: u64 = 4096;

/// Bytes read from the upload at a time.
const CHUNK: usize = 64 * 1024;

struct FileRow {
    id: String,
    name: String,
    size: String,
    kind: String,
    date: String,
    /// "image", "video", "audio" or "" (no preview).
    preview: &'static str,
}

impl FileRow {
    fn of(file: &StoredFile) -> Self {
        let essence = file
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let preview = if !file.inline_safe() {
            ""
        } else if essence.starts_with("image/") {
            "image"
        } else if essence.starts_with("video/") {
            "video"
        } else if essence.starts_with("audio/") {
            "audio"
        } else {
            ""
        };
        Self {
            id: file.id.to_string(),
            name: file.name.as_str().to_owned(),
            size: bytes(file.size),
            kind: essence.to_owned(),
            date: file.created_at.format("%Y-%m-%d %H:%M").to_string(),
            preview,
        }
    }
}

#[derive(Template)]
#[template(path = "files.html")]
struct FilesPage {
    layout: Layout,
    tenant: String,
    /// The folder shown, as `Folder` writes it ("/" for the root).
    folder: String,
    parent: Option<String>,
    subfolders: Vec<(String, String)>,
    files: Vec<FileRow>,
    more: bool,
    used_bytes: u64,
    quota_bytes: u64,
    used: String,
    quota: String,
    max_file: String,
    restricted: bool,
}

/// A size as people read it: bytes, KiB, MiB or GiB with one decimal.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `/files`, or `/files?folder=…` for a folder other than the root.
fn folder_url(folder: &str) -> String {
    if folder == "/" || folder.is_empty() {
        "/files".to_owned()
    } else {
        format!("/files?folder={}", encode(folder))
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The signed-in member and the active organisation, when its area is open.
async fn member(browser: &Browser) -> Result<(SignedIn, TenantId, String), PageError> {
    let me = browser.require_signed_in().await?;
    let tenant = me.open_tenant()?.clone();
    Ok((me, tenant.id, tenant.name))
}

fn parse_folder(text: Option<&str>) -> Result<Folder, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Folder::root()),
        Some(text) => Folder::parse(text).map_err(|e| format!("The folder name {}.", e.message)),
    }
}

async fn files_page(
    browser: &Browser,
    folder: &Folder,
    notice: Option<&str>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let (me, tenant, tenant_name) = member(browser).await?;
    let state = &browser.state;
    let mut tx = state.db.tenant(tenant).await?;
    let entitlements = state.billing.entitlements(&mut tx).await?;
    let usage = state
        .storage
        .usage(&mut tx)
        .await
        .map_err(storage_failure)?;
    let page = state
        .storage
        .list(
            &mut tx,
            &FileQuery {
                folder: Some(folder.clone()),
                sort: FileSort::Name,
                after: None,
                limit: PAGE_SIZE,
            },
        )
        .await
        .map_err(storage_failure)?;
    let subfolders = state
        .storage
        .subfolders(&mut tx, folder)
        .await
        .map_err(storage_failure)?;
    tx.commit().await?;

    let mut layout = Layout::new(browser, Some(&me), "Files");
    if let Some(notice) = notice {
        layout = layout.notice(notice);
    }
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    if let Some(error) = error {
        layout = layout.error(error);
    }
    let parent = (!folder.is_root()).then(|| {
        let text = folder.as_str();
        let parent = text
            .trim_end_matches('/')
            .rsplit_once('/')
            .map(|(parent, _)| parent)
            .unwrap_or_default();
        folder_url(parent)
    });
    let quota_bytes = entitlements.storage_quota_bytes;
    let view = FilesPage {
        layout,
        tenant: tenant_name,
        folder: folder.as_str().to_owned(),
        parent,
        subfolders: subfolders
            .iter()
            .map(|f| {
                let name = f
                    .as_str()
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                (folder_url(f.as_str()), name)
            })
            .collect(),
        files: page.files.iter().map(FileRow::of).collect(),
        more: page.next.is_some(),
        used_bytes: usage.used_bytes,
        quota_bytes,
        used: bytes(usage.used_bytes),
        quota: bytes(quota_bytes),
        max_file: bytes(state.storage.max_file_bytes()),
        restricted: entitlements.restricted,
    };
    Ok(page_with_status(browser, status, &view))
}

#[derive(Deserialize, Default)]
pub(crate) struct FolderQuery {
    folder: Option<String>,
}

#[handler]
pub(crate) async fn show(
    browser: Browser,
    Query(query): Query<FolderQuery>,
    Query(done): Query<DoneQuery>,
) -> Result<Response, PageError> {
    match parse_folder(query.folder.as_deref()) {
        Ok(folder) => files_page(&browser, &folder, done.notice(), None).await,
        Err(error) => files_page(&browser, &Folder::root(), None, Some(error)).await,
    }
}

/// `GET /files/{id}/content`: the file (or the `Range` of it) of the active organisation, for
/// previews, players and downloads. Another organisation's id is a 404 like a missing one.
#[handler]
pub(crate) async fn content(
    browser: Browser,
    request: &Request,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (_, tenant, _) = member(&browser).await?;
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let state = &browser.state;
    let mut tx = state.db.tenant(tenant).await?;
    let file = state
        .storage
        .find(&mut tx, FileId::from_uuid(id))
        .await
        .map_err(storage_failure)?;
    tx.commit().await?;
    let range = request.headers().get("range").and_then(|v| v.to_str().ok());
    Ok(crate::api::files::download(state, tenant, file, range)
        .await
        .map(IntoResponse::into_response)
        .unwrap_or_else(IntoResponse::into_response))
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    folder: String,
}

#[handler]
pub(crate) async fn delete(
    browser: Browser,
    Path(id): Path<String>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, PageError> {
    browser.check_csrf(&form.csrf_token)?;
    let (_, tenant, _) = member(&browser).await?;
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    let folder = parse_folder(Some(&form.folder)).unwrap_or_else(|_| Folder::root());
    browser
        .state
        .storage
        .delete(&browser.state.db, tenant, FileId::from_uuid(id))
        .await
        .map_err(storage_failure)?;
    Ok(back_with_notice(&folder, "file-deleted"))
}

fn back_with_notice(folder: &Folder, key: &'static str) -> Response {
    let url = folder_url(folder.as_str());
    let separator = if url.contains('?') { '&' } else { '?' };
    redirect(&format!("{url}{separator}done={key}"), &[])
}

/// `POST /files/upload`, `multipart/form-data` with `csrf_token` and `folder` before `file`.
/// The token is checked before the file part is read; the file part is streamed to the store.
/// Anything but a multipart form is refused like a form without its token; a part head longer
/// than [`part_head_limit::MAX_PART_HEAD_BYTES`] with 413.
#[handler]
pub(crate) async fn upload(
    browser: Browser,
    request: &Request,
    body: Body,
) -> Result<Response, PageError> {
    let boundary = request
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok());
    // Not a form this page sent: there is no token to find.
    let Some(boundary) = boundary else {
        return Err(PageError::Csrf);
    };
    let tripped = Arc::new(AtomicBool::new(false));
    let body = Body::from_bytes_stream(part_head_limit::bounded(
        body.into_bytes_stream(),
        &boundary,
        Arc::clone(&tripped),
    ));
    let multipart = Multipart::from_request(request, &mut RequestBody::new(body)).await;
    let Ok(mut multipart) = multipart else {
        return Err(PageError::Csrf);
    };
    let head_too_long = || {
        crate::problem::render_poem_error(
            request.uri().path(),
            poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE),
        )
    };
    let mut checked = false;
    let mut folder_text = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) if tripped.load(Ordering::Relaxed) => return Ok(head_too_long()),
            Err(_) if !checked => return Err(PageError::Csrf),
            Err(_) => {
                return upload_failed(&browser, None, "The upload was interrupted.".into()).await;
            }
        };
        match field.name() {
            Some("csrf_token") => {
                let token = read_text(field.into_async_read()).await;
                // multer reads ahead: a later part's head may have failed this field's read.
                if tripped.load(Ordering::Relaxed) {
                    return Ok(head_too_long());
                }
                browser.check_csrf(&token)?;
                checked = true;
            }
            Some("folder") if checked => {
                folder_text = Some(read_text(field.into_async_read()).await);
            }
            Some("file") => {
                if !checked {
                    return Err(PageError::Csrf);
                }
                let folder = match parse_folder(folder_text.as_deref()) {
                    Ok(folder) => folder,
                    Err(error) => return upload_failed(&browser, None, error).await,
                };
                let name = field.file_name().unwrap_or_default().to_owned();
                if name.is_empty() {
                    return upload_failed(
                        &browser,
                        Some(&folder),
                        "Choose a file to upload.".into(),
                    )
                    .await;
                }
                let stream = Box::pin(chunks(field.into_async_read()));
                let stored = store(&browser, folder, &name, stream).await;
                if tripped.load(Ordering::Relaxed) {
                    return Ok(head_too_long());
                }
                return stored;
            }
            _ => {
                // Unknown fields are skipped (read and dropped, a bounded amount).
                read_text(field.into_async_read()).await;
            }
        }
    }
    if !checked {
        return Err(PageError::Csrf);
    }
    let folder = parse_folder(folder_text.as_deref()).ok();
    upload_failed(&browser, folder.as_ref(), "Choose a file to upload.".into()).await
}

async fn store<S>(
    browser: &Browser,
    folder: Folder,
    name: &str,
    stream: S,
) -> Result<Response, PageError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
{
    let (me, tenant, _) = member(browser).await?;
    let state = &browser.state;
    let mut tx = state.db.tenant(tenant).await?;
    let entitlements = state.billing.entitlements(&mut tx).await?;
    tx.commit().await?;
    if entitlements.restricted {
        return Err(PageError::Forbidden(
            "A payment is overdue, so this organisation is read-only until it is paid. \
             Owners can update the payment method on the billing page."
                .into(),
        ));
    }
    let name = match FileName::parse(name) {
        Ok(name) => name,
        Err(error) => {
            return upload_failed(
                browser,
                Some(&folder),
                format!("The file name {}.", error.message),
            )
            .await;
        }
    };
    let target = NewFile {
        name,
        folder: folder.clone(),
    };
    let stored = state
        .storage
        .upload(
            &state.db,
            tenant,
            Some(me.user.id),
            &target,
            entitlements.storage_quota_bytes,
            stream,
        )
        .await;
    match stored {
        Ok(_) => Ok(back_with_notice(&folder, "file-uploaded")),
        Err(error) => {
            let message = upload_message(error, target.name.as_str())?;
            upload_failed(browser, Some(&folder), message).await
        }
    }
}

async fn upload_failed(
    browser: &Browser,
    folder: Option<&Folder>,
    message: String,
) -> Result<Response, PageError> {
    let root = Folder::root();
    files_page(browser, folder.unwrap_or(&root), None, Some(message)).await
}

/// What a member is told when an upload is refused; failures of our own are errors.
fn upload_message(error: StorageError, name: &str) -> Result<String, PageError> {
    Ok(match error {
        StorageError::QuotaExceeded { quota } => format!(
            "There is not enough space for {name}: the organisation's files may use at most {}.",
            bytes(quota)
        ),
        StorageError::TooLarge { max } => {
            format!("{name} is too large: files may be at most {}.", bytes(max))
        }
        StorageError::Conflict(_) => {
            format!(
                "This folder already holds a file named {name}. Rename yours or delete the other first."
            )
        }
        StorageError::Invalid { field, message } => format!("The {field} {message}."),
        StorageError::Body(_) => "The upload was interrupted. Please try again.".into(),
        StorageError::Scan(ScanError::Infected { .. }) => {
            format!("{name} was refused by the malware scanner.")
        }
        other => return Err(storage_failure(other)),
    })
}

fn storage_failure(error: StorageError) -> PageError {
    match error {
        StorageError::NotFound => PageError::NotFound,
        StorageError::Db(db) => db.into(),
        other if other.is_unavailable() => {
            tracing::warn!(error = %crate::problem::cause_chain(&other), "file store unavailable");
            PageError::Unavailable
        }
        other => PageError::unexpected(&other),
    }
}

/// A small text field, at most [`MAX_TEXT_FIELD`] bytes of it ("" when it is not UTF-8).
async fn read_text(reader: impl AsyncRead + Send) -> String {
    let mut text = String::new();
    let reader = std::pin::pin!(reader.take(MAX_TEXT_FIELD));
    let mut reader = reader;
    if reader.read_to_string(&mut text).await.is_err() {
        text.clear();
    }
    text
}

/// The reader as a stream of chunks, read as the store asks for them.
fn chunks(
    reader: impl AsyncRead + Send + Unpin,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buffer = vec![0; CHUNK];
        match reader.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(Bytes::from(buffer)), Some(reader)))
            }
            Err(error) => Some((Err(error), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_folder_links_read_as_expected() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10 << 20), "10.0 MiB");
        assert_eq!(folder_url("/"), "/files");
        assert_eq!(folder_url("/a b"), "/files?folder=%2Fa+b");
    }
}
