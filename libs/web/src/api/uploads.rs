//! Resumable uploads for large files: start a session with the file's name, folder and size
//! (reserved against the quota), send the bytes in chunks with `Upload-Offset`, ask where it
//! stands after a failure and resume; the last chunk answers with the stored file.

use chrono::{DateTime, Utc};
use poem::{Body, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path},
    payload::{Binary, Json},
};
use tenantkit_kernel::TenantId;
use tenantkit_storage::{Appended, FileName, Folder, NewFile, UploadId, UploadSession};
use uuid::Uuid;

use super::{
    ApiTags,
    caller::Caller,
    files::{FileView, folder, open_to_store, refuse_multipart},
    text::Text,
};
use crate::{ApiError, AppState};

pub(crate) struct UploadsApi;

#[derive(Object)]
struct NewUpload {
    #[oai(validator(max_length = 255))]
    name: Text,
    /// `/` (the default) or `/a/b`.
    #[oai(validator(max_length = 1024))]
    folder: Option<Text>,
    /// The file's size in bytes (at least 1; at most `storage.max_file_bytes`).
    size: u64,
}

#[derive(Object)]
struct UploadView {
    id: Uuid,
    name: String,
    folder: String,
    size: u64,
    /// Bytes received: where the next chunk starts (`Upload-Offset`).
    offset: u64,
    created_at: DateTime<Utc>,
}

impl From<UploadSession> for UploadView {
    fn from(s: UploadSession) -> Self {
        Self {
            id: s.id.as_uuid(),
            name: s.name.as_str().to_owned(),
            folder: s.folder.as_str().to_owned(),
            size: s.size,
            offset: s.received,
            created_at: s.created_at,
        }
    }
}

#[derive(ApiResponse)]
enum Started {
    #[oai(status = 201)]
    Upload(Json<UploadView>),
}

#[derive(ApiResponse)]
enum Status {
    #[oai(status = 200)]
    Upload(Json<UploadView>, #[oai(header = "Upload-Offset")] u64),
}

#[derive(ApiResponse)]
enum ChunkTaken {
    /// The chunk is stored; more are expected from `Upload-Offset`.
    #[oai(status = 200)]
    More(Json<UploadView>, #[oai(header = "Upload-Offset")] u64),
    /// That was the last byte: the file is stored (the session is gone).
    #[oai(status = 201)]
    File(Json<FileView>),
}

#[derive(ApiResponse)]
enum Aborted {
    #[oai(status = 204)]
    NoContent,
}

fn upload_id(id: Uuid) -> UploadId {
    UploadId::from_uuid(id)
}

#[OpenApi(tag = "ApiTags::Files")]
impl UploadsApi {
    /// Start a resumable upload: the size is reserved against the storage quota at once.
    #[oai(path = "/tenants/:tenant_id/uploads", method = "post")]
    async fn start(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        body: Json<NewUpload>,
    ) -> Result<Started, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (actor, quota) = open_to_store(&caller, &state, tenant).await?;
        let target = NewFile {
            name: FileName::parse(&body.0.name.0)
                .map_err(|e| ApiError::invalid("name", e.message))?,
            folder: folder(body.0.folder.as_ref().map(|f| f.0.as_str()))?
                .unwrap_or_else(Folder::root),
        };
        let session = state
            .storage
            .start_upload(&state.db, tenant, actor.user(), &target, body.0.size, quota)
            .await?;
        Ok(Started::Upload(Json(session.into())))
    }

    /// Where an upload stands: resume from `offset`.
    #[oai(path = "/tenants/:tenant_id/uploads/:upload_id", method = "get")]
    async fn status(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        upload_id: Path<Uuid>,
    ) -> Result<Status, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (tx, _) = caller.open_tenant(&state, tenant).await?;
        tx.commit().await?;
        let session = state
            .storage
            .find_upload(&state.db, tenant, self::upload_id(upload_id.0))
            .await?;
        let offset = session.received;
        Ok(Status::Upload(Json(session.into()), offset))
    }

    /// Send the next chunk as the raw body, starting at `Upload-Offset` (the bytes received
    /// so far). A chunk that breaks off counts for nothing: resume from the same offset. An
    /// empty chunk at the end retries a completion that failed for a passing reason.
    #[oai(path = "/tenants/:tenant_id/uploads/:upload_id", method = "patch")]
    #[allow(clippy::too_many_arguments)] // each parameter is an argument
    async fn append(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        upload_id: Path<Uuid>,
        #[oai(name = "Upload-Offset")] offset: Header<u64>,
        request: &poem::Request,
        body: Binary<Body>,
    ) -> Result<ChunkTaken, ApiError> {
        refuse_multipart(request)?;
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (_, quota) = open_to_store(&caller, &state, tenant).await?;
        let stream = Box::pin(body.0.into_bytes_stream());
        let appended = state
            .storage
            .append_upload(
                &state.db,
                tenant,
                self::upload_id(upload_id.0),
                offset.0,
                quota,
                stream,
            )
            .await?;
        Ok(match appended {
            Appended::Partial(session) => {
                let offset = session.received;
                ChunkTaken::More(Json(session.into()), offset)
            }
            Appended::Complete(file) => ChunkTaken::File(Json(file.into())),
        })
    }

    /// Abandon an upload: its chunks are deleted and its reservation returned.
    #[oai(path = "/tenants/:tenant_id/uploads/:upload_id", method = "delete")]
    async fn abort(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        tenant_id: Path<Uuid>,
        upload_id: Path<Uuid>,
    ) -> Result<Aborted, ApiError> {
        let tenant = TenantId::from_uuid(tenant_id.0);
        let (tx, _) = caller.open_tenant(&state, tenant).await?;
        tx.commit().await?;
        state
            .storage
            .abort_upload(&state.db, tenant, self::upload_id(upload_id.0))
            .await?;
        Ok(Aborted::NoContent)
    }
}
