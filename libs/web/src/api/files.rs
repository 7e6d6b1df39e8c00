//! An organisation's files: streaming upload (raw body), listing, metadata, streaming download
//! with `Range`, rename/move, delete, signed links, and the storage used against the quota.
//! Bytes never sit whole in memory: the body streams to the store and back.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use poem::{Body, web::Data};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::{Binary, Json, Payload},
    registry::MetaSchemaRef,
};
use tenantkit_kernel::TenantId;
use tenantkit_storage::{
    ByteRange, FileCursor, FileId, FileName, FileQuery, FileSort, Folder, NewFile, SignedLink,
    StoredFile,
};
use tenantkit_tenancy::team::Actor;
use uuid::Uuid;

use super::{ApiTags, caller::Caller, text::Text};
use crate::{ApiError, AppState};

pub(crate) struct FilesApi;

#[derive(Object)]
pub(crate) struct FileView {
    id: Uuid,
    name: String,
    folder: String,
    size: u64,
    /// Sniffed from the bytes at upload; the client's claim is never used.
    content_type: String,
    sha256: String,
    #[oai(skip_serializing_if_is_none)]
    uploader: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<StoredFile> for FileView {
    fn from(file: StoredFile) -> Self {
        Self {
            id: file.id.as_uuid(),
            name: file.name.as_str().to_owned(),
            folder: file.folder.as_str().to_owned(),
            size: file.size,
            content_type: file.content_type,
            sha256: file.sha256,
            uploader: file.uploader.map(|u| u.as_uuid()),
            created_at: file.created_at,
            updated_at: file.updated_at,
        }
    }
}

#[derive(Object)]
struct FilePageView {
    items: Vec<FileView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next: Option<String>,
}

#[derive(Object)]
struct UsageView {
    used_bytes: u64,
    /// Held by uploads under way.
    reserved_bytes: u64,
    quota_bytes: u64,
}

#[derive(Object)]
struct FileChange {
    #[oai(validator(max_length = 255))]
    name: Option<Text>,
    #[oai(validator(max_length = 1024))]
    folder: Option<Text>,
}

#[derive(Object)]
struct LinkView {
    url: String,
    expires_at: DateTime<Utc>,
}

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
enum ApiFileSort {
    Name,
    Newest,
    Size,
}

#[derive(ApiResponse)]
enum Created {
    #[oai(status = 201)]
    File(Json<FileView>),
}

#[derive(ApiResponse)]
enum FileResponse {
    #[oai(status = 200)]
    File(Json<FileView>),
}

#[derive(ApiResponse)]
enum PageResponse {
    #[oai(status = 200)]
    Page(Json<FilePageView>),
}

#[derive(ApiResponse)]
enum UsageResponse {
    #[oai(status = 200)]
    Usage(Json<UsageView>),
}

#[derive(ApiResponse)]
enum LinkResponse {
    #[oai(status = 201)]
    Link(Json<LinkView>),
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    NoContent,
}

/// The file's bytes. Types a browser could execute come as attachments; `nosniff` is on every
/// response.
#[derive(ApiResponse)]
pub(crate) enum Download {
    #[oai(status = 200)]
    Whole(
        FileBytes,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "ETag")] String,
        #[oai(header = "Content-Security-Policy")] String,
    ),
    /// The requested range (`Range: bytes=a-b`, `a-` or `-n`).
    #[oai(status = 206)]
    Partial(
        FileBytes,
        #[oai(header = "Content-Type")] String,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "ETag")] String,
        #[oai(header = "Content-Security-Policy")] String,
    ),
    /// The range lies outside the file: `Content-Range: bytes */<size>`.
    #[oai(status = 416)]
    NotSatisfiable(#[oai(header = "Content-Range")] String),
}

/// A file's bytes, of whatever type was sniffed at upload: the response's `Content-Type`
/// header names it (the documented media range is `*/*`).
pub(crate) struct FileBytes(Body);

impl Payload for FileBytes {
    const CONTENT_TYPE: &'static str = "*/*";

    fn schema_ref() -> MetaSchemaRef {
        Binary::<Body>::schema_ref()
    }
}

impl poem::IntoResponse for FileBytes {
    fn into_response(self) -> poem::Response {
        poem::Response::builder().body(self.0)
    }
}

/// A file opened directly (not in a page) runs nothing and loads nothing, whatever it is.
const FILE_CSP: &str = "sandbox; default-src 'none'";

/// Streams `file` (or the `Range` of it) from the store as a download response.
pub(crate) async fn download(
    state: &AppState,
    tenant: TenantId,
    file: StoredFile,
    range_header: Option<&str>,
) -> Result<Download, ApiError> {
    let range = match range_header {
        Some(header) => match ByteRange::parse(header, file.size) {
            Ok(range) => range,
            Err(refused) => return Ok(Download::NotSatisfiable(refused.content_range())),
        },
        None => None,
    };
    let (file, bytes) = state
        .storage
        .open(&state.db, tenant, file.id, range)
        .await?;
    let body = Body::from_bytes_stream(bytes.map_err(std::io::Error::other));
    let (kind, disposition, etag) = (
        file.served_content_type(),
        file.content_disposition(),
        format!("\"{}\"", file.sha256),
    );
    Ok(match range {
        Some(range) => Download::Partial(
            FileBytes(body),
            kind,
            disposition,
            range.len(),
            range.content_range(file.size),
            "bytes".to_owned(),
            etag,
            FILE_CSP.to_owned(),
        ),
        None => Download::Whole(
            FileBytes(body),
            kind,
            disposition,
            file.size,
            "bytes".to_owned(),
            etag,
            FILE_CSP.to_owned(),
        ),
    })
}

/// Opens the tenant to add bytes (refused in restricted mode): who acts, and the plan's
/// storage quota. The transaction ends here: uploads take long and hold no connection.
pub(crate) async fn open_to_store(
    caller: &Caller,
    state: &AppState,
    tenant: TenantId,
) -> Result<(Actor, u64), ApiError> {
    let (mut tx, actor) = caller.open_tenant_to_change(state, tenant).await?;
    let quota = state
        .billing
        .entitlements(&mut tx)
        .await?
        .storage_quota_bytes;
    tx.commit().await?;
    Ok((actor, quota))
}

/// File bytes come as the raw body. A multipart form sent instead (missing boundary, broken
/// or not) would be stored with its envelope as the file's content: refused with 415.
#[allow(clippy::result_large_err)] // the operations' own error type
pub(crate) fn refuse_multipart(request: &poem::Request) -> Result<(), ApiError> {
    let multipart = request
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .is_some_and(|v| v.len() >= 10 && v[..10].eq_ignore_ascii_case(b"multipart/"));
    if multipart {
        return Err(ApiError::unsupported_media_type(
            "Send the file's bytes as the request body (any type but multipart), not a form.",
        ));
    }
    Ok(())
}

#[allow(clippy::result_large_err)] // the operations' own error type
pub(crate) fn folder(text: Option<&str>) -> Result<Option<Folder>, ApiError> {
    text.map(|t| Folder::parse(t).map_err(|e| ApiError::invalid("folder", e.message)))
        .transpose()
}

#[OpenApi(tag = "ApiTags::Files")]
impl FilesApi {
    /// Upload a file as the raw request body (any length up to `storage.max_file_bytes`;
    /// streamed, never held whole). The name and folder are query parameters; the content
    /// type is sniffed from the bytes.
    #[oai(path = "/tenants/:tenant_id/files", method = "post")]
    #[allow(clippy::too_many_arguments)] // each parameter is an argument
    async fn upload(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        #[oai(validator(max_length = 255))] name: Query<String>,
        #[oai(validator(max_length = 1024))] folder: Query<Option<String>>,
        request: &poem::Request,
        body: Binary<Body>,
    ) -> Result<Created, ApiError> {
        refuse_multipart(request)?;
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (actor, quota) = open_to_store(&caller, &state, tenant).await?;
        let target = NewFile {
            name: FileName::parse(&name.0).map_err(|e| ApiError::invalid("name", e.message))?,
            folder: self::folder(folder.0.as_deref())?.unwrap_or_else(Folder::root),
        };
        let stream = Box::pin(body.0.into_bytes_stream());
        let file = state
            .storage
            .upload(&state.db, tenant, actor.user(), &target, quota, stream)
            .await?;
        Ok(Created::File(Json(file.into())))
    }

    /// The organisation's files, one folder or all, by name, newest or size; keyset pages.
    #[oai(path = "/tenants/:tenant_id/files", method = "get")]
    #[allow(clippy::too_many_arguments)] // each query parameter is an argument
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        #[oai(validator(max_length = 1024))] folder: Query<Option<String>>,
        sort: Query<Option<ApiFileSort>>,
        #[oai(validator(max_length = 2048))] after: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
    ) -> Result<PageResponse, ApiError> {
        let (mut tx, _) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let query = FileQuery {
            folder: self::folder(folder.0.as_deref())?,
            sort: match sort.0.unwrap_or(ApiFileSort::Name) {
                ApiFileSort::Name => FileSort::Name,
                ApiFileSort::Newest => FileSort::Newest,
                ApiFileSort::Size => FileSort::Size,
            },
            after: after
                .0
                .as_deref()
                .map(FileCursor::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("after", e.message))?,
            limit: limit.0.unwrap_or(FileQuery::DEFAULT_LIMIT),
        };
        let page = state.storage.list(&mut tx, &query).await?;
        tx.commit().await?;
        Ok(PageResponse::Page(Json(FilePageView {
            items: page.files.into_iter().map(Into::into).collect(),
            next: page.next.map(|c| c.to_string()),
        })))
    }

    /// Storage used and held by uploads under way, against the plan's quota.
    #[oai(path = "/tenants/:tenant_id/storage", method = "get")]
    async fn usage(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
    ) -> Result<UsageResponse, ApiError> {
        let (mut tx, _) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let usage = state.storage.usage(&mut tx).await?;
        let quota = state
            .billing
            .entitlements(&mut tx)
            .await?
            .storage_quota_bytes;
        tx.commit().await?;
        Ok(UsageResponse::Usage(Json(UsageView {
            used_bytes: usage.used_bytes,
            reserved_bytes: usage.reserved_bytes,
            quota_bytes: quota,
        })))
    }

    /// One file's metadata.
    #[oai(path = "/tenants/:tenant_id/files/:file_id", method = "get")]
    async fn metadata(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        file_id: Path<Uuid>,
    ) -> Result<FileResponse, ApiError> {
        let (mut tx, _) = caller
            .open_tenant(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let file = state
            .storage
            .find(&mut tx, FileId::from_uuid(file_id.0))
            .await?;
        tx.commit().await?;
        Ok(FileResponse::File(Json(file.into())))
    }

    /// The file's bytes, streamed; `Range` gives 206 (media playback, resumed downloads).
    #[oai(path = "/tenants/:tenant_id/files/:file_id/content", method = "get")]
    async fn content(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        file_id: Path<Uuid>,
        #[oai(name = "Range", validator(max_length = 200))] range: Header<Option<String>>,
    ) -> Result<Download, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (mut tx, _) = caller.open_tenant(&state, tenant).await?;
        let file = state
            .storage
            .find(&mut tx, FileId::from_uuid(file_id.0))
            .await?;
        tx.commit().await?;
        download(&state, tenant, file, range.0.as_deref()).await
    }

    /// Rename and/or move the file.
    #[oai(path = "/tenants/:tenant_id/files/:file_id", method = "patch")]
    async fn rename(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        file_id: Path<Uuid>,
        change: Json<FileChange>,
    ) -> Result<FileResponse, ApiError> {
        let (mut tx, _) = caller
            .open_tenant_to_change(&state, TenantId::from_uuid(tenant_id.0))
            .await?;
        let current = state
            .storage
            .find(&mut tx, FileId::from_uuid(file_id.0))
            .await?;
        let name = match &change.0.name {
            Some(name) => {
                FileName::parse(&name.0).map_err(|e| ApiError::invalid("name", e.message))?
            }
            None => current.name.clone(),
        };
        let folder = self::folder(change.0.folder.as_ref().map(|f| f.0.as_str()))?
            .unwrap_or_else(|| current.folder.clone());
        let file = state
            .storage
            .rename(&mut tx, current.id, &name, &folder)
            .await?;
        tx.commit().await?;
        Ok(FileResponse::File(Json(file.into())))
    }

    /// Delete the file; its bytes stop counting against the quota.
    #[oai(path = "/tenants/:tenant_id/files/:file_id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        file_id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (tx, _) = caller.open_tenant(&state, tenant).await?;
        tx.commit().await?;
        state
            .storage
            .delete(&state.db, tenant, FileId::from_uuid(file_id.0))
            .await?;
        Ok(Deleted::NoContent)
    }

    /// A link that downloads the file without signing in, until `expires_at`.
    #[oai(path = "/tenants/:tenant_id/files/:file_id/link", method = "post")]
    async fn link(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        file_id: Path<Uuid>,
    ) -> Result<LinkResponse, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (mut tx, _) = caller.open_tenant(&state, tenant).await?;
        let file = state
            .storage
            .find(&mut tx, FileId::from_uuid(file_id.0))
            .await?;
        tx.commit().await?;
        let link = state.storage.signed_link(tenant, &file, Utc::now()).await?;
        let expires_at = link.expires_at();
        let url = match link {
            SignedLink::Presigned { url, .. } => url.to_string(),
            SignedLink::Token { token, .. } => {
                format!("{}files/shared/{token}", state.settings.server.public_url)
            }
        };
        Ok(LinkResponse::Link(Json(LinkView { url, expires_at })))
    }
}
